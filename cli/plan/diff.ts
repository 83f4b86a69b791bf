import { isDeepStrictEqual } from 'util';
import { BACKUP_SERVICES } from '../../config/schema';
import type { StackJson } from '../synthesis';
import { replacingAttributes } from './replacement';

export type PlanAction = 'add' | 'change' | 'replace' | 'remove';

/** One resource of one environment's stack that the next apply adds, changes, replaces or removes. */
export interface PlannedChange {
  readonly environment: string;
  /** The tenant that owns it; null for what the environment shares (network, images). */
  readonly tenant: string | null;
  readonly action: PlanAction;
  /** Terraform's address, e.g. docker_container.acme_postgres_server_container_A9A011CF. */
  readonly address: string;
  readonly type: string;
  /** What an operator knows it by: the container, volume or bucket name, else its construct path. */
  readonly name: string;
  /** The `tenantry.service` label, where the resource has one. */
  readonly service: string | null;
  /** Changed attributes (change, replace), dotted, list positions left out. */
  readonly attributes: string[];
  /** Why it is replaced: the attributes that force it, or a replaced resource whose new id it takes. */
  readonly replacedBecause: string[];
  /** Replacing or removing it loses data unless it was backed up: a stateful container, a volume, an off-site bucket. */
  readonly dataAtRisk: boolean;
}

/**
 * Containers whose replacement or removal puts data at risk: the servers that hold data (the
 * services with backup jobs). A replaced server may not start on the data it finds (a new major
 * version, a changed data path), so a reviewer must see it. The backup agent is not one of them:
 * its backups are its volume (flagged itself when replaced or removed), a replaced agent carries on
 * from that volume, and every Tenantry upgrade replaces it (its image tag hashes its sources), so
 * counting it would mark every upgrade as data at risk. One-shot containers (provisioning, bucket
 * set-up), PgBouncer and the sentinels hold no data either.
 */
export const STATEFUL_SERVICES: readonly string[] = [...BACKUP_SERVICES];

/** Resources that are data themselves. */
const DATA_RESOURCES = new Set(['docker_volume', 'aws_s3_bucket']);

type Resource = Record<string, unknown>;

const ACTION_ORDER: Record<PlanAction, number> = { remove: 0, replace: 1, change: 2, add: 3 };

/** What applying `current` over a deployment of `base` does to one environment's resources. */
export function diffStacks(environment: string, base: StackJson | undefined, current: StackJson | undefined): PlannedChange[] {
  const before = resources(base);
  const after = resources(current);
  const tenants = tenantNames([...before.values(), ...after.values()]);
  const changes = new Map<string, { action: PlanAction; attributes: string[]; replacedBecause: string[] }>();

  for (const [address, resource] of after) {
    const old = before.get(address);
    if (old === undefined) {
      changes.set(address, { action: 'add', attributes: [], replacedBecause: [] });
      continue;
    }
    const attributes = changedAttributes(old, resource);
    if (attributes.length === 0) continue;
    const forcing = replacingAttributes(typeOf(address), attributes);
    changes.set(address, { action: forcing.length > 0 ? 'replace' : 'change', attributes, replacedBecause: forcing });
  }
  for (const address of before.keys()) if (!after.has(address)) changes.set(address, { action: 'remove', attributes: [], replacedBecause: [] });

  // A replaced resource gets new computed attributes (an image's id, a password's result): a
  // resource that takes one of them in an attribute that forces replacement is replaced too,
  // though its configuration reads the same.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [address, resource] of after) {
      const own = changes.get(address);
      if (own?.action === 'add' || own?.action === 'replace') continue;
      const causes = takesNewValues(address, resource, after, changes);
      if (causes.length === 0) continue;
      changes.set(address, { action: 'replace', attributes: own?.attributes ?? [], replacedBecause: causes });
      grew = true;
    }
  }

  return [...changes.entries()]
    .map(([address, c]): PlannedChange => {
      const resource = after.get(address) ?? before.get(address)!;
      const type = typeOf(address);
      const service = label(resource, 'tenantry.service') ?? null;
      const losing = c.action === 'replace' || c.action === 'remove';
      return {
        environment,
        tenant: ownerOf(resource, tenants),
        action: c.action,
        address,
        type,
        name: displayName(resource, address),
        service,
        attributes: c.attributes,
        replacedBecause: c.replacedBecause,
        dataAtRisk: losing && (DATA_RESOURCES.has(type) || (type === 'docker_container' && service !== null && STATEFUL_SERVICES.includes(service))),
      };
    })
    .sort((a, b) => (a.tenant ?? '').localeCompare(b.tenant ?? '') || ACTION_ORDER[a.action] - ACTION_ORDER[b.action] || a.address.localeCompare(b.address));
}

function resources(stack: StackJson | undefined): Map<string, Resource> {
  const all = new Map<string, Resource>();
  for (const [type, byName] of Object.entries(stack?.resource ?? {})) for (const [name, resource] of Object.entries(byName)) all.set(`${type}.${name}`, resource);
  return all;
}

function typeOf(address: string): string {
  return address.slice(0, address.indexOf('.'));
}

/** Meta-arguments and cdktf's metadata: they change nothing in the real resource. */
const NOT_ATTRIBUTES = new Set(['//', 'depends_on', 'lifecycle']);

/** The attributes that differ, dotted, without list positions; less those the resource's lifecycle ignores. */
export function changedAttributes(before: Resource, after: Resource): string[] {
  const ignored = ((after.lifecycle as { ignore_changes?: unknown } | undefined)?.ignore_changes ?? []) as string[] | 'all';
  if (ignored === 'all') return [];
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => !NOT_ATTRIBUTES.has(k)).sort();
  const paths = keys.flatMap((key) => changedPaths(before[key], after[key], [key]));
  return [...new Set(paths)].filter((p) => !ignored.some((i) => p === i || p.startsWith(`${i}.`)));
}

function changedPaths(a: unknown, b: unknown, at: string[]): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  if (isMap(a) && isMap(b)) return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().flatMap((k) => changedPaths(a[k], b[k], [...at, k]));
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) return a.flatMap((item, i) => changedPaths(item, b[i], at));
  return [at.join('.')];
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const REFERENCE = /\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z0-9_]+)/g;

/** The replaced resources whose computed attributes `resource` takes in an attribute that forces its replacement. */
function takesNewValues(address: string, resource: Resource, after: Map<string, Resource>, changes: Map<string, { action: PlanAction }>): string[] {
  const forcing = replacingAttributes(typeOf(address), Object.keys(resource).filter((k) => !NOT_ATTRIBUTES.has(k)));
  const causes = new Set<string>();
  for (const attribute of forcing) {
    for (const [, type, name, attr] of JSON.stringify(resource[attribute]).matchAll(REFERENCE)) {
      const target = `${type}.${name}`;
      const configured = after.get(target)?.[attr] !== undefined;
      if (changes.get(target)?.action === 'replace' && !configured) causes.add(`${target} is replaced`);
    }
  }
  return [...causes];
}

function label(resource: Resource, key: string): string | undefined {
  const labels = resource.labels;
  if (!Array.isArray(labels)) return undefined;
  return (labels as { label?: string; value?: string }[]).find((l) => l.label === key)?.value;
}

function constructPath(resource: Resource): string | undefined {
  return ((resource['//'] as { metadata?: { path?: string } } | undefined)?.metadata?.path);
}

/** Every tenant named by a `tenantry.tenant` label in the stacks compared. */
function tenantNames(all: Resource[]): Set<string> {
  return new Set(all.map((r) => label(r, 'tenantry.tenant')).filter((t): t is string => t !== undefined));
}

/** The labelled tenant, else the tenant whose construct holds the resource (passwords, buckets), else none. */
function ownerOf(resource: Resource, tenants: Set<string>): string | null {
  const labelled = label(resource, 'tenantry.tenant');
  if (labelled !== undefined) return labelled;
  const scope = constructPath(resource)?.split('/')[1];
  return scope !== undefined && tenants.has(scope) ? scope : null;
}

function displayName(resource: Resource, address: string): string {
  for (const key of ['name', 'bucket']) {
    const value = resource[key];
    if (typeof value === 'string' && !value.includes('${')) return value;
  }
  return constructPath(resource)?.split('/').slice(1).join('/') ?? address;
}
