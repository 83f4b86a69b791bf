import { spawnSync } from 'child_process';
import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../../config/load';
import type { EnvironmentConfig } from '../../../config/model';
import { IMAGE_USERS, nfsPrepareScript } from '../../../stacks/nfs-prepare';
import { configFiles, generatedConfig } from '../../helpers/generated-config';
import { resourcesOf, VolumeJson } from '../constructs/support';
import { loadOrThrow, REPO_ROOT, synthEnvironment, writeConfig } from './support';

/*
 * The NFS preparation script (issue 9, item 9): run for real, as root, against a temporary
 * directory standing for the export's mount point (no NFS mount works here: the kernel has no nfs).
 * What it must create is read from the synthesized JSON alone: the `device` of every docker_volume
 * with driver_opts type=nfs, relative to the environment's export.
 */

if (process.getuid?.() !== 0) throw new Error('nfs-prepare.test.ts runs the script as root (it chowns): run the suite as root');

const SEED = 20250909;

/** Owners of the default (Alpine) images and of the backup agent image, by the `tenantry.service` label. */
const DEFAULT_OWNERS: Record<string, string> = { postgres: '70:70', redis: '999:1000', sentinel: '999:1000', qdrant: '0:0', minio: '0:0', backup: '10001:10001' };

interface NfsDevice {
  /** The device path relative to the export. */
  readonly relative: string;
  readonly service: string;
}

/** Every NFS sub-path the synthesized stack mounts, from its JSON. */
function nfsDevices(env: EnvironmentConfig): NfsDevice[] {
  if (env.storage.kind !== 'nfs') throw new Error('not an NFS environment');
  const exportRoot = env.storage.export.replace(/\/$/, '');
  const volumes = Object.values(resourcesOf<VolumeJson>(synthEnvironment(env).doc, 'docker_volume')).filter((v) => v.driver_opts?.type === 'nfs');
  return volumes.map((v) => {
    const device = v.driver_opts!.device.replace(/^:/, '');
    expect(device.startsWith(`${exportRoot}/`)).toBe(true);
    return { relative: device.slice(exportRoot.length + 1), service: v.labels.find((l) => l.label === 'tenantry.service')!.value.replace(/-\d+$/, '') };
  });
}

function newExport(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-nfs-export-'));
}

function runScript(script: string, exportDir: string) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-nfs-script-')), 'nfs-prepare.sh');
  fs.writeFileSync(file, script);
  const result = spawnSync('sh', [file, exportDir], { encoding: 'utf8' });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return result;
}

/** Every directory under `root` with owner and mode, relative paths sorted. */
function tree(root: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const st = fs.lstatSync(full);
      found.set(path.relative(root, full), `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${entry.isDirectory() ? 'dir' : 'other'}`);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return new Map([...found].sort(([a], [b]) => a.localeCompare(b)));
}

/** The leaf directories (those holding no directory): the volume directories the script made. */
function leaves(t: Map<string, string>): string[] {
  const paths = [...t.keys()];
  return paths.filter((p) => !paths.some((q) => q.startsWith(`${p}/`))).sort();
}

describe('the bundled example: prod is on NFS', () => {
  const config = loadOrThrow(REPO_ROOT);
  const prod = config.environments.find((e) => e.name === 'prod')!;
  const devices = nfsDevices(prod);
  const script = nfsPrepareScript(prod)!;

  test('creates exactly the NFS device paths of the synthesized stack, owned by each image\'s user, mode 0700', () => {
    const exportDir = newExport();
    const run = runScript(script, exportDir);
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    const created = tree(exportDir);
    expect(leaves(created)).toEqual(devices.map((d) => d.relative).sort());
    for (const d of devices) expect({ dir: d.relative, stat: created.get(d.relative) }).toEqual({ dir: d.relative, stat: `${DEFAULT_OWNERS[d.service]} 700 dir` });
    // Tenant and service directories above the volumes: root's, traversable (Docker mounts the volume below them).
    for (const [p, stat] of created) if (!devices.some((d) => d.relative === p)) expect({ p, stat }).toEqual({ p, stat: '0:0 755 dir' });
    expect(run.stdout.trim().split('\n')).toHaveLength(devices.length);
    fs.rmSync(exportDir, { recursive: true, force: true });
  });

  test('running it again changes nothing and prints nothing, and an existing directory keeps its owner and mode', () => {
    const exportDir = newExport();
    expect(runScript(script, exportDir).status).toBe(0);
    // The operator's own choice (another image's user), and data inside: both left alone.
    fs.chownSync(path.join(exportDir, 'acme/postgres/data'), 999, 999);
    fs.chmodSync(path.join(exportDir, 'acme/postgres/data'), 0o750);
    fs.mkdirSync(path.join(exportDir, 'acme/postgres/data/pgdata'), { mode: 0o700 });
    const before = tree(exportDir);
    const again = runScript(script, exportDir);
    expect({ status: again.status, stdout: again.stdout, stderr: again.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(tree(exportDir)).toEqual(before);
    fs.rmSync(exportDir, { recursive: true, force: true });
  });

  test('after a tenant is added, the new script creates only the new tenant\'s directories', () => {
    const exportDir = newExport();
    expect(runScript(script, exportDir).status).toBe(0);
    const before = tree(exportDir);
    const added: EnvironmentConfig = { ...prod, tenants: [...prod.tenants, { ...prod.tenants[1], name: 'initech' }] };
    const run = runScript(nfsPrepareScript(added)!, exportDir);
    expect(run.status).toBe(0);
    const after = tree(exportDir);
    for (const [p, stat] of before) expect(after.get(p)).toBe(stat);
    expect([...after.keys()].filter((p) => !before.has(p)).every((p) => p.startsWith('initech'))).toBe(true);
    expect(run.stdout.trim().split('\n').every((line) => line.startsWith(`created ${exportDir}/initech/`))).toBe(true);
    fs.rmSync(exportDir, { recursive: true, force: true });
  });

  test('a leftover of an interrupted run is finished, and a file where a directory belongs stops the script', () => {
    const exportDir = newExport();
    fs.mkdirSync(path.join(exportDir, 'acme/postgres/data.nfs-prepare-partial'), { recursive: true });
    expect(runScript(script, exportDir).status).toBe(0);
    expect(tree(exportDir).get('acme/postgres/data')).toBe('70:70 700 dir');
    expect(tree(exportDir).has('acme/postgres/data.nfs-prepare-partial')).toBe(false);

    const blocked = newExport();
    fs.mkdirSync(path.join(blocked, 'acme/postgres'), { recursive: true });
    fs.writeFileSync(path.join(blocked, 'acme/postgres/data'), '');
    const run = runScript(script, blocked);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`nfs-prepare: ${blocked}/acme/postgres/data exists and is not a directory: move it away, then run this again\n`);
    for (const dir of [exportDir, blocked]) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('refuses a missing mount point and a missing argument, creating nothing', () => {
    const missing = path.join(os.tmpdir(), 'tenantry-nfs-no-such-export');
    expect(runScript(script, missing)).toMatchObject({ status: 2, stderr: `nfs-prepare: ${missing} is not a directory: give the mount point of the export\n` });
    expect(fs.existsSync(missing)).toBe(false);
    const file = path.join(newExport(), 'nfs-prepare.sh');
    fs.writeFileSync(file, script);
    expect(spawnSync('sh', [file], { encoding: 'utf8' }).status).toBe(2);
  });

  test('is the same bytes for the same configuration, and there is none for other storage', () => {
    expect(nfsPrepareScript(loadOrThrow(REPO_ROOT).environments.find((e) => e.name === 'prod')!)).toBe(script);
    expect(nfsPrepareScript(config.environments.find((e) => e.name === 'dev')!)).toBeUndefined();
    expect(spawnSync('sh', ['-n', '-c', script]).status).toBe(0);
  });
});

test('a Debian-based Postgres or Redis image gets its own user\'s owner', () => {
  const root = writeConfig({
    'environments/prod.yaml': {
      name: 'prod',
      production: false,
      docker: { host: 'unix:///var/run/docker.sock' },
      network: { name: 'tenantry-prod', subnet: '172.31.0.0/16' },
      storage: { kind: 'nfs', server: 'nfs-1.example.com', export: '/exports/' },
      // A Debian-based Redis image needs the environment's own agent image (config/schema.ts).
      images: { postgres: 'registry.example.com/postgres:16.4-bookworm', redis: 'redis:7.4.2', backup: 'registry.example.com/tenantry/backup-agent:1.0.0' },
      backend: { kind: 'local' },
    },
    'tenants/acme.yaml': { name: 'acme', environments: ['prod'], services: { postgres: {}, redis: {} } },
  });
  const [env] = loadOrThrow(root).environments;
  const exportDir = newExport();
  expect(runScript(nfsPrepareScript(env)!, exportDir).status).toBe(0);
  const created = tree(exportDir);
  expect(created.get('acme/postgres/data')).toBe('999:999 700 dir');
  expect(created.get('acme/redis-0/data')).toBe('999:999 700 dir');
  expect(leaves(created)).toEqual(nfsDevices(env).map((d) => d.relative).sort());
  fs.rmSync(exportDir, { recursive: true, force: true });
});

test('the backup agent image\'s user is the one runtime/agent/Dockerfile creates', () => {
  const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'runtime/agent/Dockerfile'), 'utf8');
  const gid = /addgroup -S -g (\d+) tenantry/.exec(dockerfile)?.[1];
  const uid = /adduser -S -D -H -u (\d+) -G tenantry tenantry/.exec(dockerfile)?.[1];
  expect(`${uid}:${gid}`).toBe(DEFAULT_OWNERS.backup);
});

test('over generated configurations, the script creates exactly the NFS sub-paths each NFS environment mounts', () => {
  let checked = 0;
  fc.assert(
    fc.property(generatedConfig(), (generated) => {
      const result = loadConfig(writeConfig(configFiles(generated)));
      if (!result.ok) return;
      for (const env of result.config.environments.filter((e) => e.storage.kind === 'nfs')) {
        const exportDir = newExport();
        const run = runScript(nfsPrepareScript(env)!, exportDir);
        expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
        const created = tree(exportDir);
        const devices = nfsDevices(env);
        expect(leaves(created)).toEqual(devices.map((d) => d.relative).sort());
        for (const d of devices) expect(created.get(d.relative)).toBe(`${DEFAULT_OWNERS[d.service]} 700 dir`);
        fs.rmSync(exportDir, { recursive: true, force: true });
        checked++;
      }
    }),
    { seed: SEED, numRuns: 120 },
  );
  expect(checked).toBeGreaterThan(10);
}, 300_000);

test('the README\'s owner table says what IMAGE_USERS says', () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Before the first deploy on NFS'), readme.indexOf('### What a container may do'));
  const rows = Object.fromEntries(section.split('\n').filter((l) => l.startsWith('| `')).map((l) => [l.split('|')[1].trim(), l.split('|')[3].trim()]));
  const cell = (u: { alpine: { uid: number; gid: number }; debian: { uid: number; gid: number } }) =>
    u.alpine.uid === u.debian.uid && u.alpine.gid === u.debian.gid ? `\`${u.alpine.uid}:${u.alpine.gid}\`` : `\`${u.alpine.uid}:${u.alpine.gid}\` / \`${u.debian.uid}:${u.debian.gid}\``;
  expect(rows).toEqual({
    '`postgres/data`': cell(IMAGE_USERS.postgres),
    '`redis-<n>/data`, `sentinel-<n>/state`': cell(IMAGE_USERS.redis),
    '`qdrant/storage`, `qdrant/snapshots`, `minio/data`': cell(IMAGE_USERS.qdrant),
    '`backup/backups`': cell(IMAGE_USERS.backup),
  });
  expect(cell(IMAGE_USERS.minio)).toBe(cell(IMAGE_USERS.qdrant));
});
