import { AGENT_HTTP_PORT } from '../runtime/agent/config';
import type { TenantServices } from './schema';

/**
 * Published host ports. A tenant owns a slot of SLOT_SIZE consecutive ports starting at
 * `ports.from + portSlot * SLOT_SIZE`; each container has a fixed offset inside the slot. Ports
 * therefore depend only on the tenant's own file, so adding a tenant never moves anyone's ports.
 *
 *   offset  0 postgres        1 pgbouncer      2 qdrant (http)   3 qdrant-grpc
 *           4 minio (s3)      5 minio-console  6 backup (agent)
 *           7 redis-0 (the initial master)     8-12 redis-1..5 (replicas)
 *          13-19 sentinel-1..7
 */
export const SLOT_SIZE = 20;

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

/** The containers of a tenant that publish ports, with their offsets. Depends only on `services`. */
export function portLayout(services: TenantServices, backupEnabled: boolean): PortSlotEntry[] {
  const entries: PortSlotEntry[] = [];
  const add = (container: string, offset: number, internal: number, dataPort: boolean) =>
    entries.push({ container, offset, internal, dataPort });
  if (services.postgres?.enabled && services.postgres.mode === 'dedicated') add('postgres', 0, 5432, true);
  if (services.postgres?.enabled && services.pgbouncer?.enabled) add('pgbouncer', 1, 6432, true);
  if (services.qdrant?.enabled) {
    add('qdrant', 2, 6333, false);
    add('qdrant-grpc', 3, 6334, false);
  }
  if (services.minio?.enabled) {
    add('minio', 4, 9000, false);
    add('minio-console', 5, 9001, false);
  }
  if (backupEnabled) add('backup', 6, AGENT_HTTP_PORT, false);
  if (services.redis?.enabled) {
    for (let i = 0; i <= services.redis.replicas; i++) add(`redis-${i}`, 7 + i, 6379, true);
    for (let i = 1; i <= services.redis.sentinels; i++) add(`sentinel-${i}`, 12 + i, 26379, true);
  }
  return entries;
}

export function publishedPorts(services: TenantServices, backupEnabled: boolean, from: number, slot: number): PublishedPort[] {
  const base = from + slot * SLOT_SIZE;
  return portLayout(services, backupEnabled).map((e) => ({
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
