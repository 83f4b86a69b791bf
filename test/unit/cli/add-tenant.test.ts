import fc from 'fast-check';
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../../../config/load';
import { displayPath } from '../../../config/source';
import { TENANT_SCHEMA_LINE } from '../../../config/write-json-schema';
import { planReportSchema } from '../../../cli/plan/report';
import { REPO_ROOT, writeConfig } from '../synth/support';
import { publishingConfig, publishingFiles, synthesizedFolder, tenantry } from './support';

/*
 * `tenantry add-tenant` on generated configurations: the slot it picks is the lowest no tenant
 * holds, the result loads and synthesizes, and the next plan adds that tenant's resources and
 * touches nobody else's. Refusals write nothing.
 */

const NEW = 'newco';

describe('tenantry add-tenant on generated configurations', () => {
  test('picks the lowest free portSlot; the configuration still loads; plan then shows only additions, all of the new tenant', async () => {
    await fc.assert(
      fc.asyncProperty(publishingConfig(), async (sample) => {
        const root = writeConfig(publishingFiles(sample));
        const base = await synthesizedFolder(root);
        try {
          const run = await tenantry(['--config-dir', root, 'add-tenant', NEW, '--services', 'postgres,redis']);
          expect(run).toMatchObject({ code: 0, stderr: '' });
          const taken = new Set(Object.values(sample.slots));
          const lowest = [0, 1, 2, 3, 4, 5].find((s) => !taken.has(s));
          const written = fs.readFileSync(path.join(root, 'tenants', `${NEW}.yaml`), 'utf8');
          expect(written.split('\n')[0]).toBe(TENANT_SCHEMA_LINE);
          expect(written).toMatch(new RegExp(`^portSlot: ${lowest}\\b`, 'm'));
          const loaded = loadConfig(root);
          expect(loaded.ok).toBe(true);

          const plan = await tenantry(['--config-dir', root, 'plan', '--base', base, '-o', 'json']);
          expect(plan.code).toBe(0);
          const report = planReportSchema.parse(JSON.parse(plan.stdout));
          const changes = report.environments.flatMap((e) => e.tenants.flatMap((t) => t.changes.map((c) => ({ tenant: t.tenant, ...c }))));
          expect(changes.length).toBeGreaterThan(0);
          // An image no tenant used before is the environment's addition; nothing else outside the new tenant changes.
          expect(changes.filter((c) => c.action !== 'add' || (c.tenant !== NEW && c.type !== 'docker_image'))).toEqual([]);
          expect(report.dataAtRisk).toBe(false);
        } finally {
          fs.rmSync(base, { recursive: true, force: true });
        }
      }),
      { numRuns: 6, seed: 13 },
    );
  });
});

describe('tenantry add-tenant refuses, and writes nothing', () => {
  const example = () => {
    const root = writeConfig({});
    fs.cpSync(path.join(REPO_ROOT, 'environments'), path.join(root, 'environments'), { recursive: true });
    fs.cpSync(path.join(REPO_ROOT, 'tenants'), path.join(root, 'tenants'), { recursive: true });
    return root;
  };
  const listing = (root: string) => fs.readdirSync(path.join(root, 'tenants')).sort();

  test('an existing tenant', async () => {
    const root = example();
    const before = fs.readFileSync(path.join(root, 'tenants', 'acme.yaml'), 'utf8');
    const run = await tenantry(['--config-dir', root, 'add-tenant', 'acme']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^tenantry: tenant "acme" exists already \(.*acme\.yaml\): edit that file, or choose another name\n$/);
    expect(fs.readFileSync(path.join(root, 'tenants', 'acme.yaml'), 'utf8')).toBe(before);
  });

  test.each([
    ['Acme', 'must be a lowercase DNS label'],
    ['../evil', 'must be a lowercase DNS label'],
    ['shared', 'is reserved'],
  ])('an invalid name: %s', async (name, message) => {
    const root = example();
    const run = await tenantry(['--config-dir', root, 'add-tenant', name]);
    expect(run.code).toBe(2);
    expect(run.stderr.split('\n').filter(Boolean)).toEqual([expect.stringContaining(message)]);
    expect(listing(root)).toEqual(['acme.yaml', 'globex.yaml']);
  });

  test('an unknown environment or service, with a suggestion', async () => {
    const root = example();
    expect(await tenantry(['--config-dir', root, 'add-tenant', 'initech', '--env', 'prdo'])).toMatchObject({ code: 2, stderr: 'tenantry: --env prdo: no such environment; did you mean "prod"? (environments: dev, prod)\n' });
    expect((await tenantry(['--config-dir', root, 'add-tenant', 'initech', '--services', 'postgres,reddis'])).stderr).toMatch(/^tenantry: --services reddis: no such service; did you mean "redis"\?/);
    expect(listing(root)).toEqual(['acme.yaml', 'globex.yaml']);
  });

  test('a tenant the configuration refuses: its problems at the new file\'s place, exit 2', async () => {
    const root = example();
    const run = await tenantry(['--config-dir', root, 'add-tenant', 'initech', '--services', 'pgbouncer']);
    expect(run.code).toBe(2);
    const lines = run.stderr.split('\n').filter(Boolean);
    expect(lines.at(-1)).toBe('1 problem(s) with tenants/initech.yaml as it would be written; nothing was written.');
    expect(lines.slice(0, -1).every((l) => l.startsWith(`${displayPath(root)}/tenants/initech.yaml:`) && l.includes('pgbouncer needs postgres'))).toBe(true);
    expect(listing(root)).toEqual(['acme.yaml', 'globex.yaml']);
  });

  test('a configuration that is already broken: its problems, nothing written', async () => {
    const root = example();
    fs.writeFileSync(path.join(root, 'tenants', 'globex.yaml'), 'name: globex\nenvironments: [dev]\nportSlot: 1\nservices:\n  redis: { replicas: 9 }\n');
    const run = await tenantry(['--config-dir', root, 'add-tenant', 'initech']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/tenants\/globex\.yaml:5:\d+: services\.redis\.replicas/);
    expect(listing(root)).toEqual(['acme.yaml', 'globex.yaml']);
  });
});
