import { createHash } from 'crypto';

/** Container names are `<env>-<tenant>-<service>[-<n>]`, which is also their hostname on the network. */
export function containerName(environment: string, tenant: string, service: string, index?: number): string {
  return index === undefined ? `${environment}-${tenant}-${service}` : `${environment}-${tenant}-${service}-${index}`;
}

/** The labels every Tenantry container and volume carries, so operators can filter by them. */
export function tenantryLabels(environment: string, tenant: string, service: string): { label: string; value: string }[] {
  return [
    { label: 'tenantry.env', value: environment },
    { label: 'tenantry.service', value: service },
    { label: 'tenantry.tenant', value: tenant },
  ];
}

/**
 * Names with a length limit (IAM users: 64, S3 buckets: 63) built from names that may together be
 * longer: cut, then a short hash of the full name keeps them unique and stable across runs.
 */
export function boundedName(name: string, max: number): string {
  if (name.length <= max) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, max - 9).replace(/[.-]+$/, '')}-${digest}`;
}
