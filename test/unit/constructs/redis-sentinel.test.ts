import { Construct } from 'constructs';
import { RedisSentinel, RedisSentinelProps } from '../../../constructs/redis-sentinel';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { renderRedisNode, renderSentinel } from '../../../runtime/render/redis';
import { CONFIG_DEFAULTS, ContainerJson, containers, envOf, labels, NETWORK, RANDOM_PASSWORD_REF, STORAGE, synth, upload, volumes, onHost } from './support';

type SentinelProps = Partial<Omit<RedisSentinelProps, 'environment' | 'tenant' | 'network'>>;

function redis(props: SentinelProps = {}) {
  let construct: RedisSentinel | undefined;
  const out = synth((scope: Construct) => {
    construct = new RedisSentinel(scope, 'redis', {
      environment: 'dev',
      tenant: 'acme',
      image: 'redis:7.4.2-alpine',
      network: NETWORK,
      storage: STORAGE.volume,
      ...CONFIG_DEFAULTS.redis,
      ...props,
    });
  });
  const all = containers(out.doc);
  const byService = (service: string) =>
    all.filter((c) => c.labels.some((l) => l.label === 'tenantry.service' && l.value === service)).sort((a, b) => a.name.localeCompare(b.name));
  return { ...out, redis: construct!, nodes: byService('redis'), sentinels: byService('sentinel'), all };
}

const text = (c: ContainerJson, file: string) => unescapeTerraformTemplate(upload(c, file).content);
const nodeConfig = (c: ContainerJson) => text(c, '/usr/local/etc/redis/redis.conf');
const sentinelConfig = (c: ContainerJson) => text(c, '/usr/local/etc/redis/sentinel.conf');
const lines = (config: string) => config.split('\n');

describe('RedisSentinel', () => {
  test('defaults: a master and 2 replicas (redis-0..2), 3 sentinels (sentinel-1..3), nothing else', () => {
    const { nodes, sentinels, all } = redis();

    expect(nodes.map((c) => c.name)).toEqual(['dev-acme-redis-0', 'dev-acme-redis-1', 'dev-acme-redis-2']);
    expect(sentinels.map((c) => c.name)).toEqual(['dev-acme-sentinel-1', 'dev-acme-sentinel-2', 'dev-acme-sentinel-3']);
    expect(all).toHaveLength(6);
  });

  test('1 + N nodes and M sentinels as configured', () => {
    const { nodes, sentinels } = redis({ replicas: 4, sentinels: 5, quorum: 3, minReplicasToWrite: 2 });

    expect(nodes.map((c) => c.name)).toEqual(['dev-acme-redis-0', 'dev-acme-redis-1', 'dev-acme-redis-2', 'dev-acme-redis-3', 'dev-acme-redis-4']);
    expect(sentinels).toHaveLength(5);
  });

  test('replicas point at redis-0; the master has no replicaof line', () => {
    const { nodes } = redis();

    expect(lines(nodeConfig(nodes[0])).filter((l) => l.startsWith('replicaof'))).toEqual([]);
    for (const replica of nodes.slice(1)) {
      expect(lines(nodeConfig(replica))).toContain('replicaof dev-acme-redis-0 6379');
      expect(lines(nodeConfig(replica))).toContain(`replica-announce-ip ${replica.name}`);
    }
  });

  test('every node carries maxmemory, noeviction and min-replicas-to-write (any node may become master)', () => {
    const { nodes } = redis({ maxmemory: '1gb', minReplicasToWrite: 2 });

    for (const node of nodes) {
      expect(lines(nodeConfig(node))).toEqual(expect.arrayContaining(['maxmemory 1gb', 'maxmemory-policy noeviction', 'min-replicas-to-write 2', 'appendonly yes']));
    }
  });

  test('sentinel configs monitor redis-0 under the tenant name with quorum and down-after (defaults 2 and 5000)', () => {
    const { sentinels } = redis();

    for (const sentinel of sentinels) {
      expect(lines(sentinelConfig(sentinel))).toEqual(
        expect.arrayContaining([
          'sentinel monitor acme dev-acme-redis-0 6379 2',
          'sentinel down-after-milliseconds acme 5000',
          'sentinel resolve-hostnames yes',
          'sentinel announce-hostnames yes',
          `sentinel announce-ip ${sentinel.name}`,
        ]),
      );
    }
  });

  test('quorum and down-after from props reach every sentinel', () => {
    const { sentinels } = redis({ sentinels: 5, quorum: 3, downAfterMs: 12000 });

    for (const sentinel of sentinels) {
      expect(lines(sentinelConfig(sentinel))).toEqual(expect.arrayContaining(['sentinel monitor acme dev-acme-redis-0 6379 3', 'sentinel down-after-milliseconds acme 12000']));
    }
  });

  test('uploads and entrypoints are exactly what the renderers produce', () => {
    const { nodes, sentinels } = redis({ replicas: 1, sentinels: 1, quorum: 1 });
    const asUploads = (files: { path: string; content: string; executable?: boolean }[]) =>
      [...files].sort((a, b) => a.path.localeCompare(b.path)).map((f) => ({ file: f.path, content: f.content, executable: f.executable ?? false }));
    const unescaped = (c: ContainerJson) => (c.upload ?? []).map((u) => ({ ...u, content: unescapeTerraformTemplate(u.content) }));

    const replica = renderRedisNode({
      role: 'replica',
      port: 6379,
      announceHost: 'dev-acme-redis-1',
      masterHost: 'dev-acme-redis-0',
      masterPort: 6379,
      maxmemory: '256mb',
      minReplicasToWrite: 1,
    });
    expect(unescaped(nodes[1])).toEqual(asUploads(replica.files));
    expect(nodes[1].entrypoint).toEqual(replica.entrypoint);

    const sentinel = renderSentinel({
      port: 26379,
      announceHost: 'dev-acme-sentinel-1',
      masterName: 'acme',
      masterHost: 'dev-acme-redis-0',
      masterPort: 6379,
      quorum: 1,
      downAfterMs: 5000,
    });
    expect(unescaped(sentinels[0])).toEqual(asUploads(sentinel.files));
    expect(sentinels[0].entrypoint).toEqual(sentinel.entrypoint);
  });

  test('one password for every node, a second one for sentinels: both references, not values', () => {
    const { nodes, sentinels } = redis();
    const redisPassword = envOf(nodes[0]).REDIS_PASSWORD;
    const sentinelPassword = envOf(sentinels[0]).SENTINEL_PASSWORD;

    expect(redisPassword).toMatch(RANDOM_PASSWORD_REF);
    expect(sentinelPassword).toMatch(RANDOM_PASSWORD_REF);
    expect(sentinelPassword).not.toBe(redisPassword);
    for (const c of nodes) expect(envOf(c)).toEqual({ REDIS_PASSWORD: redisPassword });
    for (const c of sentinels) expect(envOf(c)).toEqual({ REDIS_PASSWORD: redisPassword, SENTINEL_PASSWORD: sentinelPassword });
  });

  test('each node keeps its data, and each sentinel its failover record, on its own volume; memory 384 MiB per node, 64 MiB per sentinel', () => {
    const { nodes, sentinels, doc } = redis();

    expect(volumes(doc).map((v) => v.name).sort()).toEqual([
      'dev-acme-redis-0-data',
      'dev-acme-redis-1-data',
      'dev-acme-redis-2-data',
      'dev-acme-sentinel-1-state',
      'dev-acme-sentinel-2-state',
      'dev-acme-sentinel-3-state',
    ]);
    for (const node of nodes) {
      expect(node.volumes).toEqual([{ container_path: '/data', volume_name: expect.stringMatching(/^\$\{docker_volume\./) }]);
      expect(node.memory).toBe(384);
      expect(node.labels).toEqual(labels('dev', 'acme', 'redis'));
    }
    for (const sentinel of sentinels) {
      expect(sentinel.volumes).toEqual([{ container_path: '/data', volume_name: expect.stringMatching(/^\$\{docker_volume\./) }]);
      expect(sentinel.memory).toBe(64);
      expect(sentinel.labels).toEqual(labels('dev', 'acme', 'sentinel'));
    }
  });

  test('publishes each node and sentinel on the host port given for it', () => {
    const { nodes, sentinels } = redis({
      replicas: 1,
      sentinels: 2,
      quorum: 1,
      minReplicasToWrite: 1,
      publishedPorts: { nodes: [onHost(20007), onHost(20008)], sentinels: [onHost(20013), onHost(20014, '::1')] },
    });

    expect(nodes.map((n) => n.ports)).toEqual([[{ internal: 6379, external: 20007, ip: '127.0.0.1' }], [{ internal: 6379, external: 20008, ip: '127.0.0.1' }]]);
    expect(sentinels.map((n) => n.ports)).toEqual([[{ internal: 26379, external: 20013, ip: '127.0.0.1' }], [{ internal: 26379, external: 20014, ip: '::1' }]]);
    expect(redis().nodes.map((n) => n.ports)).toEqual([undefined, undefined, undefined]);
  });

  test('host ports that do not match the nodes and sentinels fail at synth, naming both counts', () => {
    expect(() => redis({ publishedPorts: { nodes: [onHost(20007)], sentinels: [onHost(20013)] } })).toThrow(
      'redis for tenant "acme": publishedPorts must give a port to each of the 3 nodes and 3 sentinels (value: 1 nodes, 1 sentinels)',
    );
  });

  test('tells clients the master name and every sentinel address', () => {
    const { redis: r } = redis();

    expect(r.masterName).toBe('acme');
    expect(r.sentinelAddresses).toEqual(['dev-acme-sentinel-1:26379', 'dev-acme-sentinel-2:26379', 'dev-acme-sentinel-3:26379']);
    expect(r.nodeHosts).toEqual(['dev-acme-redis-0', 'dev-acme-redis-1', 'dev-acme-redis-2']);
  });

  describe('validation', () => {
    test('quorum > sentinels throws, naming quorum, sentinels and the value', () => {
      expect(() => redis({ sentinels: 3, quorum: 4 })).toThrow('redis for tenant "acme": quorum must be between 1 and sentinels (3) (value: 4)');
    });

    test('quorum above the default 3 sentinels throws', () => {
      expect(() => redis({ quorum: 5 })).toThrow(/quorum must be between 1 and sentinels \(3\) \(value: 5\)/);
    });

    test('quorum 0 throws', () => {
      expect(() => redis({ quorum: 0 })).toThrow(/quorum must be between 1 and sentinels \(3\) \(value: 0\)/);
    });

    test('minReplicasToWrite > replicas throws, because the master would refuse every write', () => {
      expect(() => redis({ replicas: 1, minReplicasToWrite: 2 })).toThrow(
        'redis for tenant "acme": minReplicasToWrite (2) must not exceed replicas (1), or the master refuses every write',
      );
    });

    test('no replicas works when minReplicasToWrite is 0', () => {
      const { nodes } = redis({ replicas: 0, minReplicasToWrite: 0 });
      expect(nodes.map((c) => c.name)).toEqual(['dev-acme-redis-0']);
    });

    test('a single sentinel with quorum 1 is accepted', () => {
      expect(redis({ sentinels: 1, quorum: 1 }).sentinels).toHaveLength(1);
    });
  });
});
