import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { environmentSchema, tenantDocumentSchema } from './schema';

/**
 * `npm run schema`: writes schema/environment.schema.json and schema/tenant.schema.json from the zod
 * schemas, for editors (the example YAML files point at them with a yaml-language-server line).
 * Input shapes are exported: defaults make keys optional, as they are for the person typing.
 */
function write(name: string, schema: z.ZodType, title: string): void {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-7' });
  const file = path.resolve(__dirname, '..', '..', 'schema', `${name}.schema.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ title, ...json }, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

write('environment', environmentSchema, 'Tenantry environment');
write('tenant', tenantDocumentSchema, 'Tenantry tenant');
