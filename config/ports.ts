import { AGENT_HTTP_PORT } from '../runtime/agent/config';
import type { TenantServices } from './schema';

/**
 * Published host ports. A tenant owns a slot of SLOT_SIZE consecutive ports starting at
 * `ports.from + portSlot * SLOT_SIZE`; each container has a fixed offset inside the slot. Ports
 * therefore depend only on the tenant's own file, so adding a tenant never moves anyone's ports.
 * Twenty hold every port at the schema's maxima (5 replicas, 7 sentinels): the README's port table
 * is generated from this layout.
 */
export const SLOT_SIZE = 20;

/** Where each port sits in a tenant's slot; Redis nodes and sentinels count up from theirs. */
const SLOT_OFFSETS = { postgres: 0, pgbouncer: 1, qdrantHttp: 2, qdrantGrpc: 3, minioApi: 4, minioConsole: 5, backup: 6, redisNodes: 7, sentinels: 13 } as const;

/**
 * The ports the services listen on inside their containers, which published host ports map to
 * and other containers connect to. The images' own defaults, except PgBouncer's, which Tenantry
 * renders into its config (the image's 5432 would read as Postgres).
 */
export const SERVICE_PORTS = {
  postgres: 5432,
  pgbouncer: 6432,
  qdrantHttp: 6333,
  qdrantGrpc: 6334,
  minioApi: 9000,
  minioConsole: 9001,
  backup: AGENT_HTTP_PORT,
  redis: 6379,
  sentinel: 26379,
} as const;

/** Redis's published ports: `nodes[i]` is redis-i (redis-0 the initial master), `sentinels[i]` is sentinel-(i+1). */
export interface RedisPorts<T> {
  readonly nodes: readonly T[];
  readonly sentinels: readonly T[];
}

/**
 * One `T` per published port of a tenant, by the service and port it reaches; a service absent
 * here publishes nothing (it is off, or the environment publishes no ports).
 */
export interface TenantPorts<T> {
  readonly postgres?: T;
  readonly pgbouncer?: T;
  readonly qdrant?: { readonly http: T; readonly grpc: T };
  readonly minio?: { readonly api: T; readonly console: T };
  readonly backup?: T;
  readonly redis?: RedisPorts<T>;
}

export interface PublishedPort {
  /** The container's key inside the tenant, e.g. "postgres", "redis-1", "sentinel-2". */
  readonly container: string;
  readonly internal: number;
  readonly external: number;
  /** Database and cache ports: refused in production unless the environment allows them. */
  readonly dataPort: boolean;
}

interface PortSlotEntry {
  readonly container: string;
  readonly offset: number;
  readonly internal: number;
  readonly dataPort: boolean;
}

/** The ports of a tenant's slot, by service. Depends only on `services`. */
function slotLayout(services: TenantServices, backupEnabled: boolean): TenantPorts<PortSlotEntry> {
  const entry = (container: string, offset: number, internal: number, dataPort: boolean): PortSlotEntry => ({ container, offset, internal, dataPort });
  const { postgres, pgbouncer, qdrant, minio, redis } = services;
  const P = SERVICE_PORTS;
  const O = SLOT_OFFSETS;
  return {
    postgres: postgres?.enabled && postgres.mode === 'dedicated' ? entry('postgres', O.postgres, P.postgres, true) : undefined,
    pgbouncer: postgres?.enabled && pgbouncer?.enabled ? entry('pgbouncer', O.pgbouncer, P.pgbouncer, true) : undefined,
    qdrant: qdrant?.enabled ? { http: entry('qdrant', O.qdrantHttp, P.qdrantHttp, false), grpc: entry('qdrant-grpc', O.qdrantGrpc, P.qdrantGrpc, false) } : undefined,
    minio: minio?.enabled ? { api: entry('minio', O.minioApi, P.minioApi, false), console: entry('minio-console', O.minioConsole, P.minioConsole, false) } : undefined,
    backup: backupEnabled ? entry('backup', O.backup, P.backup, false) : undefined,
    redis: redis?.enabled
      ? {
          nodes: Array.from({ length: redis.replicas + 1 }, (_, i) => entry(`redis-${i}`, O.redisNodes + i, P.redis, true)),
          sentinels: Array.from({ length: redis.sentinels }, (_, i) => entry(`sentinel-${i + 1}`, O.sentinels + i, P.sentinel, true)),
        }
      : undefined,
  };
}

/** Every port of `ports`, in slot order. */
export function portList<T>(ports: TenantPorts<T>): T[] {
  const { postgres, pgbouncer, qdrant, minio, backup, redis } = ports;
  const list = [postgres, pgbouncer, qdrant?.http, qdrant?.grpc, minio?.api, minio?.console, backup, ...(redis?.nodes ?? []), ...(redis?.sentinels ?? [])];
  return list.filter((p): p is T => p !== undefined);
}

/** The same ports, each turned into something else. */
export function mapPorts<T, U>(ports: TenantPorts<T>, f: (port: T) => U): TenantPorts<U> {
  const { postgres, pgbouncer, qdrant, minio, backup, redis } = ports;
  const map = (p: T | undefined) => (p === undefined ? undefined : f(p));
  return {
    postgres: map(postgres),
    pgbouncer: map(pgbouncer),
    qdrant: qdrant && { http: f(qdrant.http), grpc: f(qdrant.grpc) },
    minio: minio && { api: f(minio.api), console: f(minio.console) },
    backup: map(backup),
    redis: redis && { nodes: redis.nodes.map(f), sentinels: redis.sentinels.map(f) },
  };
}

/** The containers of a tenant that publish ports, with their offsets, in slot order. Depends only on `services`. */
export function portLayout(services: TenantServices, backupEnabled: boolean): PortSlotEntry[] {
  return portList(slotLayout(services, backupEnabled));
}

/** The tenant's host ports in slot `slot` of the range starting at `from`. */
export function publishedPorts(services: TenantServices, backupEnabled: boolean, from: number, slot: number): TenantPorts<PublishedPort> {
  const base = from + slot * SLOT_SIZE;
  return mapPorts(slotLayout(services, backupEnabled), (e) => ({
    container: e.container,
    internal: e.internal,
    external: base + e.offset,
    dataPort: e.dataPort,
  }));
}

/** How many whole slots fit in the environment's port range. */
export function slotCount(from: number, to: number): number {
  return Math.floor((to - from + 1) / SLOT_SIZE);
}

/** An environment a new tenant joins that publishes ports: its range, and every port taken on its Docker host. */
export interface SlotRange {
  readonly from: number;
  readonly to: number;
  readonly claimed: ReadonlySet<number>;
}

/**
 * The slot a new tenant gets: the lowest that no tenant file names (a slot stays its tenant's in
 * every environment, so one that later joins another environment keeps its ports) whose whole
 * block fits every publishing environment it joins and holds no port already published on that
 * environment's Docker host. Undefined when the ranges are full.
 */
export function lowestFreeSlot(taken: ReadonlySet<number>, ranges: readonly SlotRange[]): number | undefined {
  const limit = ranges.length === 0 ? taken.size + 1 : Math.min(...ranges.map((r) => slotCount(r.from, r.to)));
  for (let slot = 0; slot < limit; slot++) {
    if (taken.has(slot)) continue;
    const clear = ranges.every((r) => {
      const base = r.from + slot * SLOT_SIZE;
      for (let port = base; port < base + SLOT_SIZE; port++) if (r.claimed.has(port)) return false;
      return true;
    });
    if (clear) return slot;
  }
  return undefined;
}
