/** Where stateful volumes live (config/storage-layout.ts) and what a storage path may be (config/storage-paths.ts). */
import * as path from 'path';
import { loadConfig } from '../../../config/load';
import type { StorageConfig } from '../../../config/model';
import { formatProblem } from '../../../config/source';
import { SHARED_POSTGRES_ARCHIVE_VOLUME, SHARED_POSTGRES_VOLUME, tenantVolumes, volumeLocation } from '../../../config/storage-layout';
import { dataRootProblem, storagePathProblem } from '../../../config/storage-paths';
import { resourcesOf, VolumeJson } from '../constructs/support';
import { loadOrThrow, synthEnvironment, writeConfig } from '../synth/support';

const id = { environment: 'dev', tenant: 'acme', service: 'redis-1', purpose: 'data' };
const BIND: StorageConfig = { kind: 'bind', dataRoot: '/srv/tenantry/dev' };
const NFS: StorageConfig = { kind: 'nfs', server: 'nfs-1.example.com', export: '/exports/tenantry', options: 'nfsvers=4.1,hard' };

describe('volumeLocation: the layouts existing deployments have (no data moves on upgrade)', () => {
  test.each<[string, StorageConfig, Parameters<typeof volumeLocation>[1], ReturnType<typeof volumeLocation>]>([
    ['named volume', { kind: 'volume' }, undefined, { kind: 'volume', name: 'dev-acme-redis-1-data' }],
    ['bind: <dataRoot>/<tenant>/<service>/<purpose>', BIND, undefined, { kind: 'bind', hostPath: '/srv/tenantry/dev/acme/redis-1/data' }],
    ['service path: <path>/<service>/<purpose>', NFS, { kind: 'bind', path: '/mnt/fast' }, { kind: 'bind', hostPath: '/mnt/fast/redis-1/data' }],
    ['service path with a trailing "/"', BIND, { kind: 'bind', path: '/mnt/fast/' }, { kind: 'bind', hostPath: '/mnt/fast/redis-1/data' }],
    ['service volume over bind storage', BIND, { kind: 'volume' }, { kind: 'volume', name: 'dev-acme-redis-1-data' }],
    [
      'nfs: <export>/<tenant>/<service>/<purpose>',
      NFS,
      undefined,
      { kind: 'nfs', name: 'dev-acme-redis-1-data', server: 'nfs-1.example.com', path: '/exports/tenantry/acme/redis-1/data', options: 'nfsvers=4.1,hard' },
    ],
    ['nfs export with a trailing "/"', { ...NFS, export: '/exports/tenantry/' }, undefined, expect.objectContaining({ path: '/exports/tenantry/acme/redis-1/data' })],
    ['nfs export "/" (the NFSv4 pseudo-root)', { ...NFS, export: '/' }, undefined, expect.objectContaining({ path: '/acme/redis-1/data' })],
  ])('%s', (_name, storage, override, expected) => {
    expect(volumeLocation(storage, override, id)).toEqual(expected);
  });
});

describe('storage paths are written normalized, and hold no system directory', () => {
  test.each([
    ['/srv/pg', undefined],
    ['/srv/pg/', undefined],
    ['/usrdata/x', undefined],
    ['/home/ops/tenantry', undefined],
    ['/srv/../etc', 'must not contain ".."'],
    ['/srv/pg/..', 'must not contain ".."'],
    ['/srv/./pg', 'must not contain "." segments: write /srv/pg'],
    ['/srv//pg', 'must not contain empty segments ("//"): write /srv/pg'],
    ['/srv/pg//', 'must not contain empty segments ("//"): write /srv/pg'],
    ['/srv/pg\t', 'must not contain spaces or control characters'],
    ['/srv/a:b', 'must not contain ":"'],
    ['/', 'is the root of the host\'s file system'],
    ['/etc', 'is /etc, which belongs to the host\'s system or to Docker'],
    ['/usr/local/data', 'is under /usr, which belongs'],
    ['/lib64/x', 'is under /lib64'],
    ['/proc/1', 'is under /proc'],
    ['/var/lib/docker/volumes/x', 'is under /var/lib/docker'],
    ['/var', 'is /var, whose subdirectories are the system\'s own'],
    ['/home/', 'is /home, whose subdirectories are the system\'s own'],
  ])('host path %j', (p, problem) => {
    const found = storagePathProblem(p, 'host');
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });

  test('an NFS export may be "/" or any normalized path (the system directories are the NFS server\'s business)', () => {
    expect(storagePathProblem('/', 'nfs-export')).toBeUndefined();
    expect(storagePathProblem('/etc/exports/x', 'nfs-export')).toBeUndefined();
    expect(storagePathProblem('/exports/../etc', 'nfs-export')).toContain('".."');
  });

  test.each([
    ['./data', undefined],
    ['./data/dev/', undefined],
    ['/srv/tenantry', undefined],
    ['../data', 'must not leave the config directory'],
    ['..', 'must not leave the config directory'],
    ['./', 'is the config directory itself'],
    ['./a/../../b', 'must not contain ".."'],
    ['./a//b', 'write ./a/b'],
    ['data', 'must be an absolute path, or start with "./"'],
    ['/etc/tenantry', 'is under /etc'],
  ])('dataRoot %j', (p, problem) => {
    const found = dataRootProblem(p);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });
});

const LOCAL = 'unix:///var/run/docker.sock';
const env = (name: string, subnet: string, extra: Record<string, unknown> = {}) => ({
  name,
  docker: { host: LOCAL },
  network: { name: `tenantry-${name}`, subnet },
  storage: { kind: 'volume' },
  ...extra,
});

describe('tenantVolumes lists exactly the volumes the constructs create', () => {
  test('a tenant with every service, and the shared Postgres server', () => {
    const root = writeConfig({
      'environments/dev.yaml': env('dev', '172.30.0.0/16', { sharedPostgres: {} }),
      'tenants/acme.yaml': {
        name: 'acme',
        environments: ['dev'],
        services: { postgres: {}, redis: { replicas: 2, sentinels: 3 }, qdrant: {}, minio: { buckets: [{ name: 'images' }] } },
      },
    });
    const config = loadOrThrow(root);
    const [dev] = config.environments;
    const [acme] = dev.tenants;

    const synthesized = Object.values(resourcesOf<VolumeJson>(synthEnvironment(dev).doc, 'docker_volume')).map((v) => v.name).sort();
    const listed = [
      ...tenantVolumes(acme.services, Object.keys(acme.backup).length > 0).map((v) => volumeLocation(dev.storage, undefined, { environment: 'dev', tenant: 'acme', ...v })),
      volumeLocation(dev.storage, undefined, { environment: 'dev', ...SHARED_POSTGRES_VOLUME }),
      volumeLocation(dev.storage, undefined, { environment: 'dev', ...SHARED_POSTGRES_ARCHIVE_VOLUME }),
    ].map((l) => (l.kind === 'volume' ? l.name : ''));

    expect(listed.sort()).toEqual(synthesized);
    expect(synthesized).toHaveLength(13);
  });
});

describe('storage rules that let a configuration through', () => {
  const problems = (files: Record<string, unknown>) => {
    const result = loadConfig(writeConfig(files));
    return result.ok ? [] : result.problems.map(formatProblem);
  };

  test('one tenant file with a service path per environment, on one Docker host', () => {
    expect(
      problems({
        'environments/dev.yaml': env('dev', '172.30.0.0/16'),
        'environments/qa.yaml': env('qa', '172.31.0.0/16'),
        'tenants/acme.yaml': {
          name: 'acme',
          environments: ['dev', 'qa'],
          services: { postgres: {} },
          overrides: { dev: { services: { postgres: { storage: { kind: 'bind', path: '/srv/pg/dev' } } } }, qa: { services: { postgres: { storage: { kind: 'bind', path: '/srv/pg/qa' } } } } },
        },
      }),
    ).toEqual([]);
  });

  test('one service path in two environments on different Docker hosts (each host has its own /srv)', () => {
    expect(
      problems({
        'environments/dev.yaml': env('dev', '172.30.0.0/16'),
        'environments/qa.yaml': { ...env('qa', '172.31.0.0/16'), docker: { host: 'ssh://deploy@qa.example.com' } },
        'tenants/acme.yaml': { name: 'acme', environments: ['dev', 'qa'], services: { postgres: { storage: { kind: 'bind', path: '/srv/pg' } } } },
      }),
    ).toEqual([]);
  });

  test('two environments on one Docker host with one dataRoot and no tenant in both', () => {
    const bind = { storage: { kind: 'bind', dataRoot: '/srv/tenantry' } };
    expect(
      problems({
        'environments/dev.yaml': env('dev', '172.30.0.0/16', bind),
        'environments/qa.yaml': env('qa', '172.31.0.0/16', bind),
        'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: { postgres: {} } },
        'tenants/globex.yaml': { name: 'globex', environments: ['qa'], services: { postgres: {} } },
      }),
    ).toEqual([]);
  });

  test('production on bind storage: a service path of its own is still bind storage', () => {
    expect(
      problems({
        'environments/prod.yaml': env('prod', '172.30.0.0/16', { production: true, storage: { kind: 'bind', dataRoot: '/srv/tenantry' } }),
        'tenants/acme.yaml': { name: 'acme', environments: ['prod'], services: { postgres: { storage: { kind: 'bind', path: '/mnt/fast/acme' } } } },
      }),
    ).toEqual([]);
  });

  test('production on a Windows host with bind storage: Postgres on a named volume, as the Windows rule demands', () => {
    const windows = { production: true, docker: { host: 'npipe:////./pipe/docker_engine', platform: 'windows' }, storage: { kind: 'bind', dataRoot: '/c/tenantry' } };
    expect(
      problems({
        'environments/prod.yaml': env('prod', '172.30.0.0/16', windows),
        'tenants/acme.yaml': { name: 'acme', environments: ['prod'], services: { postgres: { storage: { kind: 'volume' } } } },
      }),
    ).toEqual([]);
  });

  test('a relative dataRoot resolves under the config directory', () => {
    const root = writeConfig({ 'environments/dev.yaml': env('dev', '172.30.0.0/16', { storage: { kind: 'bind', dataRoot: './data/dev/' } }) });
    expect(loadOrThrow(root).environments[0].storage).toEqual({ kind: 'bind', dataRoot: path.join(root, 'data/dev') });
  });
});

describe('a tenant directory is its own, even where no two volumes share a path', () => {
  test('an environment whose dataRoot is another environment\'s tenant directory on the same Docker host is refused there', () => {
    const root = writeConfig({
      'environments/dev.yaml': env('dev', '172.30.0.0/16', { storage: { kind: 'bind', dataRoot: '/srv/tenantry' } }),
      'environments/qa.yaml': env('qa', '172.31.0.0/16', { storage: { kind: 'bind', dataRoot: '/srv/tenantry/acme' } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: { postgres: {} } },
      'tenants/globex.yaml': { name: 'globex', environments: ['qa'], services: { postgres: {} } },
    });
    const result = loadConfig(root);

    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      expect.stringMatching(
        /environments\/qa\.yaml:\d+:\d+: storage\.dataRoot: tenant "globex"'s postgres data in environment "qa" would be \/srv\/tenantry\/acme\/globex\/postgres\/data on Docker host unix:\/\/\/var\/run\/docker\.sock, inside \/srv\/tenantry\/acme, tenant "acme"'s directory in environment "dev" \(\S*environments\/dev\.yaml:\d+:\d+\).*: give each environment its own dataRoot, neither inside nor around another environment's tenant directories$/,
      ),
    ]);
  });
});
