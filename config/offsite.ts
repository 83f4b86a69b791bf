import { createHash } from 'crypto';
import { deploymentName } from './naming';

/*
 * Where each tenant's off-site copies live. The environment is part of every prefix, in both
 * bucket modes, so that environments sharing a bucket never share a key: one rule, whatever the
 * mode. The loader checks the names computed here for clashes across environments; the constructs
 * and the agent config take them as resolved values.
 */

/** The name, or per-tenant name prefix, of off-site buckets when `backup.offsite.bucket` is left out. */
export const DEFAULT_OFFSITE_BUCKET = 'tenantry-backups';

/** Whether a tenant's backups go off-site at all (then it gets a bucket, or a prefix, and a credential). */
export function usesOffsite(tenant: { readonly jobs: Readonly<Record<string, { readonly offsite: boolean } | undefined>> }): boolean {
  return Object.values(tenant.jobs).some((job) => job?.offsite);
}

/** Key prefix of one tenant in one environment: `<env>/<tenant>`; objects are `<prefix>/<job>/<backup-id>/<file>`. */
export function offsitePrefix(environment: string, tenant: string): string {
  return `${environment}/${tenant}`;
}

/** The bucket of one tenant in "per-tenant" mode: `<bucket>-<env>-<tenant>`, bounded to S3's 63 characters. */
export function perTenantBucketName(bucket: string | undefined, environment: string, tenant: string): string {
  return boundedName(`${bucket ?? DEFAULT_OFFSITE_BUCKET}-${deploymentName(environment, tenant)}`, 63);
}

/** The IAM user holding one tenant's off-site credential (IAM user names: at most 64 characters). */
export function offsiteCredentialName(environment: string, tenant: string): string {
  return boundedName(`${deploymentName(environment, tenant)}-backup`, 64);
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
