import { Construct } from 'constructs';
import { RedisPorts, SERVICE_PORTS } from '../config/ports';
import { renderRedisNode, renderSentinel } from '../runtime/render/redis';
import { containerName } from './naming';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer, SIDE_CONTAINER_MEMORY_MB } from './service-container';
import { StatefulServiceProps, StatefulVolume } from './storage';

export interface RedisSentinelProps extends StatefulServiceProps {
  /** Replicas of the master (redis-1..N). */
  readonly replicas: number;
  /** Sentinels (sentinel-1..M) that watch the master and promote a replica when it is down. */
  readonly sentinels: number;
  /** Sentinels that must agree the master is down before a failover. */
  readonly quorum: number;
  /** How long a node may be silent before a sentinel thinks it down. */
  readonly downAfterMs: number;
  /**
   * The master refuses writes unless this many replicas are connected: bounds what a failover can
   * lose to writes acknowledged in the last `min-replicas-max-lag` seconds.
   */
  readonly minReplicasToWrite: number;
  /** Redis's own memory limit (`maxmemory`), e.g. "256mb". */
  readonly maxmemory: string;
  /** The container's memory limit, per node. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no CPU limit */
  readonly cpus?: number;
  /**
   * Host ports of every node (`nodes[i]`: redis-i) and every sentinel (`sentinels[i]`:
   * sentinel-(i+1)). @default none published
   */
  readonly publishedPorts?: RedisPorts<HostPort>;
}

/** A node's or a sentinel's own volume, mounted where both keep their live config (and a node its data). */
function redisVolume(scope: Construct, id: string, props: RedisSentinelProps, service: string, purpose: string): StatefulVolume {
  return new StatefulVolume(scope, id, {
    environment: props.environment,
    tenant: props.tenant,
    service,
    purpose,
    storage: props.storage,
    override: props.storageOverride,
    containerPath: '/data',
  });
}

/**
 * Redis with Sentinel: redis-0 starts as master, redis-1..N replicate it, and the sentinels
 * promote a replica when the master is down. Clients ask the sentinels for the master by name.
 */
export class RedisSentinel extends Construct {
  readonly masterName: string;
  readonly password: string;
  readonly sentinelPassword: string;
  /** `host:port` of every sentinel. */
  readonly sentinelAddresses: string[];
  readonly nodeHosts: string[];

  constructor(scope: Construct, id: string, props: RedisSentinelProps) {
    super(scope, id);
    const { replicas, sentinels, quorum, minReplicasToWrite } = props;
    validate(props);

    this.masterName = props.tenant;
    this.password = generatedSecret(this, 'password');
    this.sentinelPassword = generatedSecret(this, 'sentinel-password');
    const common = { environment: props.environment, tenant: props.tenant, image: props.image, network: props.network, cpus: props.cpus };
    const host = (service: 'redis' | 'sentinel', index: number) => containerName(props.environment, props.tenant, service, index);
    const masterHost = host('redis', 0);
    const published = (port: HostPort | undefined, internal: number) => (port === undefined ? undefined : [{ internal, host: port }]);

    this.nodeHosts = [];
    for (let i = 0; i <= replicas; i++) {
      const data = redisVolume(this, `data-${i}`, props, `redis-${i}`, 'data');
      const node = new ServiceContainer(this, `node-${i}`, {
        ...common,
        service: 'redis',
        index: i,
        launch: renderRedisNode({
          role: i === 0 ? 'master' : 'replica',
          port: SERVICE_PORTS.redis,
          announceHost: host('redis', i),
          masterHost,
          masterPort: SERVICE_PORTS.redis,
          maxmemory: props.maxmemory,
          minReplicasToWrite,
        }),
        env: { REDIS_PASSWORD: this.password },
        memoryMb: props.memoryMb,
        volumes: [data.mount],
        publishedPorts: published(props.publishedPorts?.nodes[i], SERVICE_PORTS.redis),
        // REDISCLI_AUTH keeps the password off the process list, where `-a` would put it.
        healthcheck: 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG',
      });
      this.nodeHosts.push(node.hostname);
    }

    this.sentinelAddresses = [];
    for (let i = 1; i <= sentinels; i++) {
      // Sentinel records failovers (current master, epochs, its own id) in its live config under
      // /data; on the container's own volume that record survives the container being replaced.
      const state = redisVolume(this, `sentinel-state-${i}`, props, `sentinel-${i}`, 'state');
      const sentinel = new ServiceContainer(this, `sentinel-${i}`, {
        ...common,
        service: 'sentinel',
        index: i,
        launch: renderSentinel({
          port: SERVICE_PORTS.sentinel,
          announceHost: host('sentinel', i),
          masterName: this.masterName,
          masterHost,
          masterPort: SERVICE_PORTS.redis,
          quorum,
          downAfterMs: props.downAfterMs,
        }),
        env: { REDIS_PASSWORD: this.password, SENTINEL_PASSWORD: this.sentinelPassword },
        memoryMb: SIDE_CONTAINER_MEMORY_MB,
        volumes: [state.mount],
        publishedPorts: published(props.publishedPorts?.sentinels[i - 1], SERVICE_PORTS.sentinel),
        healthcheck: `REDISCLI_AUTH="$SENTINEL_PASSWORD" redis-cli -p ${SERVICE_PORTS.sentinel} ping | grep -q PONG`,
      });
      this.sentinelAddresses.push(`${sentinel.hostname}:${SERVICE_PORTS.sentinel}`);
    }
  }
}

function validate(p: RedisSentinelProps): void {
  const where = `redis for tenant "${p.tenant}"`;
  if (p.quorum < 1 || p.quorum > p.sentinels) {
    throw new Error(`${where}: quorum must be between 1 and sentinels (${p.sentinels}) (value: ${p.quorum})`);
  }
  if (p.minReplicasToWrite > p.replicas) {
    throw new Error(`${where}: minReplicasToWrite (${p.minReplicasToWrite}) must not exceed replicas (${p.replicas}), or the master refuses every write`);
  }
  const ports = p.publishedPorts;
  if (ports && (ports.nodes.length !== p.replicas + 1 || ports.sentinels.length !== p.sentinels)) {
    throw new Error(`${where}: publishedPorts must give a port to each of the ${p.replicas + 1} nodes and ${p.sentinels} sentinels (value: ${ports.nodes.length} nodes, ${ports.sentinels.length} sentinels)`);
  }
}
