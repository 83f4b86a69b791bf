import { Container } from '@cdktf/provider-docker/lib/container';
import { Image } from '@cdktf/provider-docker/lib/image';
import { DockerProvider } from '@cdktf/provider-docker/lib/provider';
import { RandomProvider } from '@cdktf/provider-random/lib/provider';
import { AnnotationMetadataEntryType, Aspects, IAspect, TerraformStack, Testing } from 'cdktf';
import { IConstruct } from 'constructs';
import { EnvironmentImages } from '../../../constructs/images';
import { isPinned } from '../../../config/images';
import { MemoryLimitPolicy, PinnedImagesPolicy, ProductionDataPortsPolicy } from '../../../constructs/policy';
import { PostgresServer } from '../../../constructs/postgres';
import { Qdrant } from '../../../constructs/qdrant';
import { RedisSentinel } from '../../../constructs/redis-sentinel';
import { CONFIG_DEFAULTS, NETWORK, STORAGE, onHost } from './support';

/** GIVEN a stack built by `build` with `aspects`, WHEN synthesized with validations, THEN these are its error annotations. */
function policyErrors(aspects: IAspect[], build: (stack: TerraformStack) => void): { path: string; message: string }[] {
  const stack = new TerraformStack(Testing.app(), 'stack');
  // Providers, because synth with validations refuses resources without one.
  new DockerProvider(stack, 'docker', {});
  new RandomProvider(stack, 'random');
  build(stack);
  for (const aspect of aspects) Aspects.of(stack).add(aspect);
  Testing.synth(stack, true);
  return stack.node
    .findAll()
    .flatMap((node) => node.node.metadata.filter((m) => m.type === AnnotationMetadataEntryType.ERROR).map((m) => ({ path: node.node.path, message: String(m.data) })));
}

const postgres = (stack: IConstruct, publishedPort?: number) =>
  new PostgresServer(stack, 'postgres', {
    environment: 'prod',
    tenant: 'acme',
    image: 'postgres:16-alpine',
    network: NETWORK,
    storage: STORAGE.volume,
    databases: ['app'],
    memoryMb: 512,
    ...CONFIG_DEFAULTS.postgres,
    publishedPort: publishedPort === undefined ? undefined : onHost(publishedPort),
  });

describe('isPinned', () => {
  test.each([
    ['postgres:16-alpine', true],
    ['registry.example.com/mirror/postgres:16.4-alpine', true],
    ['registry.example.com:5000/postgres:16', true],
    ['postgres@sha256:' + 'a'.repeat(64), true],
    ['postgres:16@sha256:' + '0123456789abcdef'.repeat(4), true],
    ['postgres:latest', false],
    ['postgres', false],
    ['registry.example.com:5000/postgres', false],
    ['registry.example.com:5000/postgres:latest', false],
    ['minio/minio:RELEASE.2025-04-22T22-12-26Z', true],
  ])('%s → %p', (reference, pinned) => {
    expect(isPinned(reference)).toBe(pinned);
  });
});

describe('PinnedImagesPolicy', () => {
  test.each(['postgres:latest', 'postgres', 'registry.example.com:5000/redis'])('an image %s is an error on that image', (reference) => {
    const errors = policyErrors([new PinnedImagesPolicy()], (stack) => new EnvironmentImages(stack, 'images').use(reference));

    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe(
      `image "${reference}" is not pinned to a version: use a tag other than "latest" (e.g. postgres:16-alpine) or a digest`,
    );
    expect(errors[0].path).toMatch(/^stack\/images\//);
  });

  test('pinned tags and digests pass', () => {
    const errors = policyErrors([new PinnedImagesPolicy()], (stack) => {
      const images = new EnvironmentImages(stack, 'images');
      images.use('postgres:16-alpine');
      images.use('qdrant/qdrant@sha256:' + 'f'.repeat(64));
    });
    expect(errors).toEqual([]);
  });

  test('an image built here with a pinned tag passes', () => {
    const errors = policyErrors([new PinnedImagesPolicy()], (stack) => new Image(stack, 'built', { name: 'tenantry/backup-agent:0.1.0', buildAttribute: { context: '.' } }));
    expect(errors).toEqual([]);
  });
});

describe('MemoryLimitPolicy', () => {
  test('a container without memory is an error naming it', () => {
    const errors = policyErrors([new MemoryLimitPolicy()], (stack) => new Container(stack, 'raw', { name: 'dev-acme-raw', image: 'busybox:1.36' }));
    expect(errors).toEqual([{ path: 'stack/raw', message: 'container "dev-acme-raw" has no memory limit: set memoryMb' }]);
  });

  test('memory 0 is an error too', () => {
    const errors = policyErrors([new MemoryLimitPolicy()], (stack) => new Container(stack, 'raw', { name: 'dev-acme-raw', image: 'busybox:1.36', memory: 0 }));
    expect(errors.map((e) => e.message)).toEqual(['container "dev-acme-raw" has no memory limit: set memoryMb']);
  });

  test('every container built by the constructs has a limit', () => {
    const errors = policyErrors([new MemoryLimitPolicy()], (stack) => {
      postgres(stack);
      new RedisSentinel(stack, 'redis', { ...CONFIG_DEFAULTS.redis, environment: 'prod', tenant: 'acme', image: 'redis:7.4.2-alpine', network: NETWORK, storage: STORAGE.volume });
    });
    expect(errors).toEqual([]);
  });
});

describe('ProductionDataPortsPolicy', () => {
  test('a production environment publishing a Postgres port is an error', () => {
    const errors = policyErrors([new ProductionDataPortsPolicy('prod', true, false)], (stack) => postgres(stack, 25432));

    expect(errors).toEqual([
      {
        path: 'stack/postgres/server/container',
        message:
          'container "prod-acme-postgres" publishes a postgres port in production environment "prod": set ports.publish: false, or ports.allowDataPortsInProduction: true if you really mean it',
      },
    ]);
  });

  test('redis and sentinel ports count as data ports', () => {
    const errors = policyErrors([new ProductionDataPortsPolicy('prod', true, false)], (stack) =>
      new RedisSentinel(stack, 'redis', {
        ...CONFIG_DEFAULTS.redis,
        environment: 'prod',
        tenant: 'acme',
        image: 'redis:7.4.2-alpine',
        network: NETWORK,
        storage: STORAGE.volume,
        replicas: 0,
        sentinels: 1,
        quorum: 1,
        minReplicasToWrite: 0,
        publishedPorts: { nodes: [onHost(26379)], sentinels: [onHost(26380)] },
      }),
    );
    expect(errors.map((e) => e.message.slice(0, e.message.indexOf(' in production')))).toEqual([
      'container "prod-acme-redis-0" publishes a redis port',
      'container "prod-acme-sentinel-1" publishes a sentinel port',
    ]);
  });

  test('allowed with allowDataPortsInProduction', () => {
    expect(policyErrors([new ProductionDataPortsPolicy('prod', true, true)], (stack) => postgres(stack, 25432))).toEqual([]);
  });

  test('not production: no error', () => {
    expect(policyErrors([new ProductionDataPortsPolicy('dev', false, false)], (stack) => postgres(stack, 25432))).toEqual([]);
  });

  test('production without published ports: no error', () => {
    expect(policyErrors([new ProductionDataPortsPolicy('prod', true, false)], (stack) => postgres(stack))).toEqual([]);
  });

  test('a non-data service (Qdrant) may publish in production', () => {
    const errors = policyErrors([new ProductionDataPortsPolicy('prod', true, false)], (stack) =>
      new Qdrant(stack, 'qdrant', {
        environment: 'prod',
        tenant: 'acme',
        image: 'qdrant/qdrant:v1.12.4',
        network: NETWORK,
        storage: STORAGE.volume,
        memoryMb: 512,
        publishedPorts: { http: onHost(26333), grpc: onHost(26334) },
      }),
    );
    expect(errors).toEqual([]);
  });
});
