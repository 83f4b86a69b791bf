import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { environmentSchema, tenantDocumentSchema } from './schema';

/**
 * `npm run schema`: writes schema/environment.schema.json and schema/tenant.schema.json from the zod
 * schemas, for editors (the example YAML files point at them with a yaml-language-server line).
 * Input shapes are exported: defaults make keys optional, as they are for the person typing.
 */
export const TENANT_SCHEMA_FILE = 'tenant.schema.json';

/** The first line of a tenant file, pointing editors at its schema from `tenants/` (as the example tenants do). */
export const TENANT_SCHEMA_LINE = `# yaml-language-server: $schema=../schema/${TENANT_SCHEMA_FILE}`;

export function jsonSchemaFiles(): Record<string, string> {
  const render = (schema: z.ZodType, title: string) =>
    JSON.stringify({ title, ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-7' }) }, null, 2) + '\n';
  return {
    'environment.schema.json': render(environmentSchema, 'Tenantry environment'),
    [TENANT_SCHEMA_FILE]: render(tenantDocumentSchema, 'Tenantry tenant'),
  };
}

if (require.main === module) {
  const dir = path.resolve(__dirname, '..', '..', 'schema');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(jsonSchemaFiles())) {
    fs.writeFileSync(path.join(dir, name), text);
    console.log(`wrote ${path.relative(process.cwd(), path.join(dir, name))}`);
  }
}
