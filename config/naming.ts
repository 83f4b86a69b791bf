/*
 * The naming rule: everything of one tenant in one environment is named after both, so that names
 * are unique per environment and tenant by construction. Containers are
 * `<env>-<tenant>-<service>[-<n>]` (also their hostname on the network), named volumes
 * `<env>-<tenant>-<service>[-<n>]-<purpose>`; off-site buckets and credentials carry
 * `<env>-<tenant>` too (config/offsite.ts). The config layer checks these names for clashes and
 * the constructs deploy them: both build them here, so the names checked are the names deployed.
 */

/** `<env>-<tenant>`: the part of a name that says whose it is. */
export function deploymentName(environment: string, tenant: string): string {
  return `${environment}-${tenant}`;
}

/** Container names are `<env>-<tenant>-<service>[-<n>]`, which is also their hostname on the network. */
export function containerName(environment: string, tenant: string, service: string, index?: number): string {
  const name = `${deploymentName(environment, tenant)}-${service}`;
  return index === undefined ? name : `${name}-${index}`;
}

/** A named volume is its container's name and what it holds: `dev-acme-redis-1` + `data`. */
export function volumeName(container: string, purpose: string): string {
  return `${container}-${purpose}`;
}
