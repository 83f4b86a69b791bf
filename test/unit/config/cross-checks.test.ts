import { loadConfig } from '../../../config/load';
import { writeConfig } from '../synth/support';

/*
 * The cross-file checks pass what they know about a clash as fields, never by writing it into a
 * message and reading it back: a tenant's name or a YAML comment can then not change what they say.
 * (The corpus holds the exact wording; these cases are about names and comments it does not try.)
 */

const DEV = {
  name: 'dev',
  docker: { host: 'unix:///var/run/docker.sock' },
  network: { name: 'tenantry-dev', subnet: '172.30.0.0/16' },
  storage: { kind: 'volume' },
  ports: { publish: true, from: 20000, to: 20999 },
};

function problems(files: Record<string, unknown>): string[] {
  const result = loadConfig(writeConfig({ 'environments/dev.yaml': DEV, ...files }));
  return result.ok ? [] : result.problems.map((p) => p.message);
}

test('a tenant whose name ends in "-shared-postgres" is told about port slots, not about a shared server', () => {
  const tenant = (name: string) => ({ name, environments: ['dev'], portSlot: 0, services: { postgres: { databases: ['app'] } } });
  const messages = problems({ 'tenants/a-shared-postgres.yaml': tenant('a-shared-postgres'), 'tenants/b.yaml': tenant('b') });

  expect(messages).toHaveLength(1);
  expect(messages[0]).toMatch(/^host port 20000 of dev-\S+-postgres is already claimed by dev-\S+-postgres \(.*tenants\/\S+\.yaml:\d+:\d+\) on Docker host unix:\/\/\/var\/run\/docker.sock \(and \d+ more ports?\): give one of them another portSlot$/);
});

test('the other end of a clash is named by file:line:col alone, even when a comment follows its value', () => {
  const tenant = (name: string, comment: string) => `name: ${name}${comment}\nenvironments: [dev]\nportSlot: 1\nservices:\n  postgres:\n    databases: [app]\n`;
  const messages = problems({ 'tenants/acme.yaml': tenant('acme', ' #the first'), 'tenants/zeta.yaml': tenant('acme', '') });

  expect(messages).toContainEqual(expect.stringMatching(/^tenant name "acme" is already used by \S*tenants\/acme\.yaml:1:7: names must be unique/));
});
