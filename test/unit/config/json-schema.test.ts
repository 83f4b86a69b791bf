import * as fs from 'fs';
import * as path from 'path';
import { parse } from 'yaml';
import { jsonSchemaFiles } from '../../../config/write-json-schema';

const repo = path.resolve(__dirname, '../../..');

describe('JSON Schema files for editors', () => {
  it('are what `npm run schema` generates from the zod schemas today (run it after changing config/schema.ts)', () => {
    for (const [name, text] of Object.entries(jsonSchemaFiles())) {
      expect(fs.readFileSync(path.join(repo, 'schema', name), 'utf8')).toBe(text);
    }
  });

  it('are referenced by every example YAML file through a yaml-language-server line', () => {
    for (const folder of ['environments', 'tenants']) {
      for (const file of fs.readdirSync(path.join(repo, folder))) {
        const text = fs.readFileSync(path.join(repo, folder, file), 'utf8');
        const kind = folder === 'environments' ? 'environment' : 'tenant';
        expect(text.split('\n')[0]).toBe(`# yaml-language-server: $schema=../schema/${kind}.schema.json`);
      }
    }
  });

  it('list every key the example files use (a typo in the schema export would let editors accept nothing)', () => {
    const tenant = JSON.parse(jsonSchemaFiles()['tenant.schema.json']);
    const acme = parse(fs.readFileSync(path.join(repo, 'tenants', 'acme.yaml'), 'utf8'));
    for (const service of Object.keys(acme.services)) {
      expect(Object.keys(tenant.properties.services.properties)).toContain(service);
      for (const key of Object.keys(acme.services[service])) {
        expect(Object.keys(tenant.properties.services.properties[service].properties)).toContain(key);
      }
    }
    expect(tenant.properties.services.properties.redis.properties.quorum).toMatchObject({ type: 'integer', minimum: 1 });
  });
});
