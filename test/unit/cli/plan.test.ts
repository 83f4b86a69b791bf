import { spawnSync } from 'child_process';
import fc from 'fast-check';
import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'yaml';
import { diffStacks } from '../../../cli/plan/diff';
import { planReportSchema, PlanReport } from '../../../cli/plan/report';
import { configFiles, generatedConfig } from '../../helpers/generated-config';
import { writeConfig } from '../synth/support';
import { synthesizedFolder, tenantry } from './support';

/*
 * `tenantry plan` on generated configurations (named volumes, so every tenant has volumes): a
 * change is compared with the folder `npm run synth` would have written before it, or with a git
 * ref in a temporary repository. Its JSON output is parsed with the exported schema every time.
 */

type Change = PlanReport['environments'][number]['tenants'][number]['changes'][number] & { environment: string; tenant: string | null };

function flat(report: PlanReport): Change[] {
  return report.environments.flatMap((e) => e.tenants.flatMap((t) => t.changes.map((c) => ({ environment: e.name, tenant: t.tenant, ...c }))));
}

/** Plans `edit` of the config `files` against its synthesis before the edit; returns the exit code and the parsed report. */
async function planEdit(files: Record<string, unknown>, edit: (root: string) => void): Promise<{ code: number; report: PlanReport; changes: Change[] }> {
  const root = writeConfig(files);
  const base = await synthesizedFolder(root);
  try {
    edit(root);
    const run = await tenantry(['--config-dir', root, 'plan', '--base', base, '-o', 'json']);
    expect(run.stderr).toBe('');
    const report = planReportSchema.parse(JSON.parse(run.stdout));
    return { code: run.code, report, changes: flat(report) };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

function written(files: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(files)) as Record<string, unknown>;
}

const withPostgres = generatedConfig({ storage: false }).filter((c) => c.tenants.some((t) => t.services.postgres));

describe('tenantry plan on generated configurations', () => {
  test('a new Postgres image replaces every Postgres server container: data at risk, exit 3', async () => {
    await fc.assert(
      fc.asyncProperty(withPostgres, async (config) => {
        const files = configFiles(config);
        const { code, report, changes } = await planEdit(files, (root) => {
          for (const e of config.environments) {
            const file = `environments/${e.name}.yaml`;
            fs.writeFileSync(path.join(root, file), stringify({ ...(files[file] as object), images: { postgres: 'postgres:16.6-alpine' } }));
          }
        });
        const servers = changes.filter((c) => c.type === 'docker_container' && c.service === 'postgres');
        expect(servers.length).toBeGreaterThan(0);
        for (const s of servers) expect(s).toMatchObject({ action: 'replace', dataAtRisk: true, replacedBecause: ['image'] });
        expect(report.dataAtRisk).toBe(true);
        expect(code).toBe(3);
      }),
      { numRuns: 3, seed: 131 },
    );
  });

  test('a new memory limit updates the Postgres container in place (the docker provider updates memory): exit 0', async () => {
    await fc.assert(
      fc.asyncProperty(withPostgres, async (config) => {
        const files = configFiles(config);
        const tenant = config.tenants.find((t) => t.services.postgres)!;
        const file = `tenants/${tenant.name}.yaml`;
        const { code, changes } = await planEdit(files, (root) => {
          const doc = written(files)[file] as { services: { postgres: Record<string, unknown> } };
          doc.services.postgres.memoryMb = 2048;
          fs.writeFileSync(path.join(root, file), stringify(doc));
        });
        const servers = changes.filter((c) => c.service === 'postgres' && c.type === 'docker_container');
        expect(servers.map((c) => c.tenant)).toEqual(tenant.environments.map(() => tenant.name));
        for (const s of servers) expect(s).toMatchObject({ action: 'change', attributes: ['memory'], replacedBecause: [], dataAtRisk: false });
        expect(changes.filter((c) => c.tenant !== tenant.name)).toEqual([]);
        expect(code).toBe(0);
      }),
      { numRuns: 3, seed: 132 },
    );
  });

  test('removing a tenant removes its containers and volumes, each volume and stateful container flagged: exit 3', async () => {
    await fc.assert(
      fc.asyncProperty(withPostgres, async (config) => {
        const files = configFiles(config);
        const tenant = config.tenants.find((t) => t.services.postgres)!;
        const { code, changes } = await planEdit(files, (root) => fs.rmSync(path.join(root, 'tenants', `${tenant.name}.yaml`)));
        const own = changes.filter((c) => c.tenant === tenant.name);
        expect(own.every((c) => c.action === 'remove')).toBe(true);
        const volumes = own.filter((c) => c.type === 'docker_volume');
        expect(volumes.length).toBeGreaterThan(0);
        expect(volumes.every((v) => v.dataAtRisk)).toBe(true);
        expect(own.filter((c) => c.type === 'docker_container' && c.service === 'postgres').every((c) => c.dataAtRisk)).toBe(true);
        expect(own.filter((c) => c.service === 'pgbouncer').every((c) => !c.dataAtRisk)).toBe(true);
        expect(changes.filter((c) => c.tenant !== tenant.name && c.tenant !== null)).toEqual([]);
        expect(code).toBe(3);
      }),
      { numRuns: 3, seed: 133 },
    );
  });
});

describe('tenantry plan --base <git ref>', () => {
  const git = (cwd: string, ...args: string[]) => {
    const r = spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-C', cwd, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  test('synthesizes the ref in a temporary worktree (removed afterwards) and compares the configuration in a subfolder of the repository', async () => {
    const config = fc.sample(withPostgres, { numRuns: 1, seed: 7 })[0];
    const repo = writeConfig({});
    const files = configFiles(config);
    // Data under a path relative to the configuration: the ref's copy must resolve it where the configuration lives.
    for (const e of config.environments) files[`environments/${e.name}.yaml`] = { ...(files[`environments/${e.name}.yaml`] as object), storage: { kind: 'bind', dataRoot: './data' } };
    const root = writeConfig(files, path.join(repo, 'ops'));
    git(repo, 'init', '-q');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'base');
    const tenant = config.tenants.find((t) => t.services.postgres)!;
    fs.rmSync(path.join(root, 'tenants', `${tenant.name}.yaml`));

    const run = await tenantry(['--config-dir', root, 'plan', '--base', 'HEAD', '-o', 'json']);
    const report = planReportSchema.parse(JSON.parse(run.stdout));
    expect(report.base).toMatch(/^git ref HEAD \([0-9a-f]{12}\)$/);
    expect(flat(report).filter((c) => c.action !== 'remove')).toEqual([]);
    expect(flat(report).filter((c) => c.tenant === tenant.name).length).toBeGreaterThan(0);
    expect(run.code).toBe(3);
    expect(git(repo, 'worktree', 'list').trim().split('\n')).toHaveLength(1);

    // The same configuration at the ref: nothing to do (bind paths and state paths resolve where the configuration lives).
    git(repo, 'checkout', '-q', '--', '.');
    const same = await tenantry(['--config-dir', root, 'plan', '--base', 'HEAD']);
    expect(same).toEqual({ code: 0, stdout: expect.stringMatching(/^No changes: the configuration synthesizes to the same stacks as git ref HEAD/), stderr: '' });
  });

  test('a ref that is neither a folder nor a commit is a usage error', async () => {
    const repo = writeConfig(configFiles(fc.sample(generatedConfig({ storage: false }), { numRuns: 1, seed: 8 })[0]));
    git(repo, 'init', '-q');
    const run = await tenantry(['--config-dir', repo, 'plan', '--base', 'no-such-ref']);
    expect(run).toEqual({ code: 2, stdout: '', stderr: `tenantry: --base no-such-ref: neither a folder nor a git ref of ${fs.realpathSync(repo)}\n` });
  });
});

describe('diffStacks', () => {
  const stack = (image: string, memory: number) => ({
    resource: {
      docker_image: { pg: { name: image } },
      docker_container: {
        db: { name: 'dev-acme-postgres', image: '${docker_image.pg.image_id}', memory, labels: [{ label: 'tenantry.tenant', value: 'acme' }, { label: 'tenantry.service', value: 'postgres' }] },
        pool: { name: 'dev-acme-pgbouncer', image: '${docker_image.pg.name}', labels: [{ label: 'tenantry.tenant', value: 'acme' }, { label: 'tenantry.service', value: 'pgbouncer' }] },
      },
    },
  });

  test('a replaced image replaces the containers that take its computed id, not those that take a configured attribute', () => {
    const changes = diffStacks('dev', stack('postgres:16.5', 512), stack('postgres:16.6', 512));
    expect(changes.map((c) => [c.address, c.action, c.replacedBecause, c.dataAtRisk])).toEqual([
      ['docker_image.pg', 'replace', ['name'], false],
      ['docker_container.db', 'replace', ['docker_image.pg is replaced'], true],
    ]);
  });

  test('a replaced backup agent is a replacement but not data at risk (every upgrade replaces it); its volume is', () => {
    const agentStack = (tag: string, volume: string) => ({
      resource: {
        docker_volume: { backups: { name: volume, labels: [{ label: 'tenantry.tenant', value: 'acme' }, { label: 'tenantry.service', value: 'backup' }] } },
        docker_container: {
          agent: { name: 'dev-acme-backup', image: `tenantry/backup-agent:${tag}`, labels: [{ label: 'tenantry.tenant', value: 'acme' }, { label: 'tenantry.service', value: 'backup' }] },
        },
      },
    });
    const upgrade = diffStacks('dev', agentStack('aaaa', 'dev-acme-backups'), agentStack('bbbb', 'dev-acme-backups'));
    expect(upgrade.map((c) => [c.address, c.action, c.dataAtRisk])).toEqual([['docker_container.agent', 'replace', false]]);
    const moved = diffStacks('dev', agentStack('aaaa', 'dev-acme-backups'), agentStack('aaaa', 'dev-acme-backups-2'));
    expect(moved.map((c) => [c.address, c.action, c.dataAtRisk])).toEqual([['docker_volume.backups', 'replace', true]]);
  });

  test('lifecycle.ignore_changes and cdktf metadata are not changes', () => {
    const before = { resource: { docker_container: { db: { name: 'x', env: ['A=1'], '//': { metadata: { path: 'dev/a' } } } } } };
    const after = { resource: { docker_container: { db: { name: 'x', env: ['A=2'], lifecycle: { ignore_changes: ['env'] }, '//': { metadata: { path: 'dev/b' } } } } } };
    expect(diffStacks('dev', before, after)).toEqual([]);
  });
});
