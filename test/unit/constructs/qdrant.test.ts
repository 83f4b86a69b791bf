import { Container } from '@cdktf/provider-docker/lib/container';
import { Volume } from '@cdktf/provider-docker/lib/volume';
import { Construct } from 'constructs';
import type { StorageConfig } from '../../../config/model';
import { Qdrant, QdrantProps } from '../../../constructs/qdrant';
import { container, envOf, labels, NETWORK, RANDOM_PASSWORD_REF, resourcesOf, STORAGE, synth, volumes, onHost } from './support';

function qdrant(storage: StorageConfig = STORAGE.volume, props: Partial<QdrantProps> = {}) {
  let construct: Qdrant | undefined;
  const out = synth((scope: Construct) => {
    construct = new Qdrant(scope, 'qdrant', {
      environment: 'dev',
      tenant: 'acme',
      image: 'qdrant/qdrant:v1.12.4',
      network: NETWORK,
      storage,
      memoryMb: 512,
      ...props,
    });
  });
  return { ...out, qdrant: construct!, c: container(out.doc, 'dev-acme-qdrant') };
}

describe('Qdrant', () => {
  test('the API key comes from a random_password, by reference', () => {
    const { c, doc } = qdrant();
    const env = envOf(c);

    expect(env.QDRANT__SERVICE__API_KEY).toMatch(RANDOM_PASSWORD_REF);
    expect(Object.values(resourcesOf(doc, 'random_password'))).toEqual([{ length: 32, special: false }]);
    expect(env.QDRANT__TELEMETRY_DISABLED).toBe('true');
  });

  test('two named volumes: storage and snapshots, and the snapshot path env matches the mount', () => {
    const { c, doc, json } = qdrant();

    expect(volumes(doc).map((v) => v.name).sort()).toEqual(['dev-acme-qdrant-snapshots', 'dev-acme-qdrant-storage']);
    expect(json).toHaveResourceWithProperties(Volume, { name: 'dev-acme-qdrant-storage', labels: labels('dev', 'acme', 'qdrant') });
    expect(c.volumes?.map((v) => v.container_path)).toEqual(['/qdrant/storage', '/qdrant/snapshots']);
    expect(envOf(c).QDRANT__STORAGE__SNAPSHOTS_PATH).toBe('/qdrant/snapshots');
  });

  test('on bind storage both live under <dataRoot>/<tenant>/qdrant/', () => {
    const { c, doc } = qdrant(STORAGE.bind);

    expect(volumes(doc)).toEqual([]);
    expect(c.volumes).toEqual([
      { container_path: '/qdrant/storage', host_path: '/srv/tenantry/dev/acme/qdrant/storage' },
      { container_path: '/qdrant/snapshots', host_path: '/srv/tenantry/dev/acme/qdrant/snapshots' },
    ]);
  });

  test('container basics: image, memory, labels, a TCP healthcheck, nothing uploaded', () => {
    const { json, c, qdrant: q } = qdrant(STORAGE.volume, { cpus: 1.5 });

    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-qdrant',
      image: 'qdrant/qdrant:v1.12.4',
      memory: 512,
      cpus: '1.5',
      labels: labels('dev', 'acme', 'qdrant'),
    });
    expect(c.healthcheck?.test).toEqual(['CMD-SHELL', "bash -c ':> /dev/tcp/127.0.0.1/6333'"]);
    expect(c.upload ?? []).toEqual([]);
    expect(q.url).toBe('http://dev-acme-qdrant:6333');
  });

  test('publishes HTTP and gRPC only when both ports are given', () => {
    expect(qdrant().c.ports).toBeUndefined();
    expect(qdrant(STORAGE.volume, { publishedPorts: { http: onHost(20002), grpc: onHost(20003) } }).c.ports).toEqual([
      { internal: 6333, external: 20002, ip: '127.0.0.1' },
      { internal: 6334, external: 20003, ip: '127.0.0.1' },
    ]);
  });
});
