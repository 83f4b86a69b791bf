import { Container } from '@cdktf/provider-docker/lib/container';
import { Volume } from '@cdktf/provider-docker/lib/volume';
import type { Construct } from 'constructs';
import type { StorageConfig } from '../../../config/model';
import { ServiceContainer } from '../../../constructs/service-container';
import { ServiceStorageOverride, StatefulVolume } from '../../../constructs/storage';
import { container, labels, NETWORK, STORAGE, synth, volumes } from './support';

/** One stateful volume of dev/acme/postgres, mounted by a container as every service does. */
function postgresData(storage: StorageConfig, override?: ServiceStorageOverride) {
  return synth((scope: Construct) => {
    const data = new StatefulVolume(scope, 'data', {
      environment: 'dev',
      tenant: 'acme',
      service: 'postgres',
      purpose: 'data',
      storage,
      override,
      containerPath: '/var/lib/postgresql/data',
    });
    new ServiceContainer(scope, 'server', {
      environment: 'dev',
      tenant: 'acme',
      service: 'postgres',
      image: 'postgres:16-alpine',
      network: NETWORK,
      launch: { files: [], env: [] },
      env: {},
      memoryMb: 256,
      volumes: [data.mount],
    });
  });
}

describe('StatefulVolume', () => {
  test('volume storage: a labelled named docker_volume on the local driver, mounted by name', () => {
    const { json, doc } = postgresData(STORAGE.volume);

    expect(json).toHaveResourceWithProperties(Volume, {
      name: 'dev-acme-postgres-data',
      driver: 'local',
      labels: labels('dev', 'acme', 'postgres'),
    });
    expect(volumes(doc)).toHaveLength(1);
    expect(volumes(doc)[0].driver_opts).toBeUndefined();
    expect(container(doc, 'dev-acme-postgres').volumes).toEqual([
      { container_path: '/var/lib/postgresql/data', volume_name: expect.stringMatching(/^\$\{docker_volume\.[^.]+\.name\}$/) },
    ]);
  });

  test('bind storage: a host path <dataRoot>/<tenant>/<service>/<purpose> and no docker_volume', () => {
    const { json, doc } = postgresData(STORAGE.bind);

    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-postgres',
      volumes: [{ container_path: '/var/lib/postgresql/data', host_path: '/srv/tenantry/dev/acme/postgres/data' }],
    });
    expect(json).not.toHaveResource(Volume);
    expect(volumes(doc)).toEqual([]);
  });

  test('nfs storage: driver_opts type=nfs, addr= from the server, device under the export (trailing "/" dropped)', () => {
    const { json, doc } = postgresData(STORAGE.nfs);

    expect(json).toHaveResourceWithProperties(Volume, {
      name: 'dev-acme-postgres-data',
      driver: 'local',
      driver_opts: { type: 'nfs', o: 'addr=nfs-1.example.com,nfsvers=4.1,hard', device: ':/exports/tenantry/acme/postgres/data' },
      labels: labels('dev', 'acme', 'postgres'),
    });
    expect(container(doc, 'dev-acme-postgres').volumes?.[0].volume_name).toMatch(/^\$\{docker_volume\..+\.name\}$/);
  });

  test('a service override of kind volume beats bind storage: a named volume without driver_opts', () => {
    const { doc } = postgresData(STORAGE.bind, { kind: 'volume' });

    expect(volumes(doc)).toEqual([{ name: 'dev-acme-postgres-data', driver: 'local', labels: labels('dev', 'acme', 'postgres') }]);
    expect(container(doc, 'dev-acme-postgres').volumes?.[0].host_path).toBeUndefined();
  });

  test('a service override of kind volume beats nfs storage: a local named volume, no NFS options', () => {
    const { doc } = postgresData(STORAGE.nfs, { kind: 'volume' });

    expect(volumes(doc)).toHaveLength(1);
    expect(volumes(doc)[0].driver_opts).toBeUndefined();
  });

  test('a service override of kind bind: a host path under the override path, no docker_volume', () => {
    const { doc } = postgresData(STORAGE.nfs, { kind: 'bind', path: '/mnt/fast/acme' });

    expect(volumes(doc)).toEqual([]);
    expect(container(doc, 'dev-acme-postgres').volumes).toEqual([{ container_path: '/var/lib/postgresql/data', host_path: '/mnt/fast/acme/postgres/data' }]);
  });

  test('NFS driver_opts (which force replacement) depend only on storage settings and names', () => {
    const first = postgresData(STORAGE.nfs);
    const second = postgresData({ ...STORAGE.nfs });

    expect(volumes(first.doc)[0].driver_opts).toEqual(volumes(second.doc)[0].driver_opts);
    expect(first.json).toBe(second.json);
  });
});
