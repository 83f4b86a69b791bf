import { dotted, suggest } from '../issues';
import type { ParsedDeployment, ParsedEnvironment } from '../parsed';
import { offsiteCredentialName, perTenantBucketName, usesOffsite } from '../offsite';
import { sharedArchiveUsesOffsite } from '../pitr';
import { SHARED_TENANT } from '../storage-layout';
import { Problem, SourceFile } from '../source';

/**
 * Rules that keep every environment's and tenant's off-site copies their own: one stack declares
 * each bucket, bucket and IAM user names (tenants' and shared-server archives') are unique across
 * environments, and no off-site bucket is a Terraform state bucket. (The `<env>/<tenant>` prefix that separates tenants inside a
 * shared bucket is config/offsite.ts's, by construction.)
 */
export function offsiteRules(environments: ParsedEnvironment[], deployments: ParsedDeployment[], declared: string[]): Problem[] {
  return [...offsiteBucketOwners(environments, declared), ...bucketNameClashes(environments, deployments)];
}

const OFFSITE_BUCKET = ['backup', 'offsite', 'bucket'];
const SHARED_POSTGRES = ['sharedPostgres'];
const MANAGED_BY = ['backup', 'offsite', 'managedBy'];

/**
 * `environments/prod.yaml:12:13`, for naming the other end of a clash in a message: the value at
 * `at`, or the key itself where the key is what is meant (`sharedPostgres:`, whose value is a map).
 */
function position(file: SourceFile, at: (string | number)[]): string {
  return file.position(at, { key: at === SHARED_POSTGRES });
}

/** A problem at `at`, pointed at as `position` points at it. */
function problemAt(file: SourceFile, at: (string | number)[], message: string): Problem {
  return file.problem(at, message, { key: at === SHARED_POSTGRES });
}

/**
 * One stack declares each shared bucket: every other environment naming it says which one does
 * (`managedBy`), and that environment really declares that bucket.
 */
function offsiteBucketOwners(environments: ParsedEnvironment[], declared: string[]): Problem[] {
  const problems: Problem[] = [];
  const owners = new Map<string, ParsedEnvironment>();
  for (const e of environments) {
    const { mode, bucket, managedBy } = e.env.backup.offsite;
    if (mode !== 'shared' || bucket === undefined) continue;
    if (managedBy === undefined) {
      const owner = owners.get(bucket);
      if (!owner) {
        owners.set(bucket, e);
      } else if (owner.env.name !== e.env.name) {
        problems.push(
          e.file.problem(OFFSITE_BUCKET, `backup.offsite.bucket: "${bucket}" is also declared by environment "${owner.env.name}" (${position(owner.file, OFFSITE_BUCKET)}), and a bucket must belong to one stack: add "managedBy: ${owner.env.name}" under backup.offsite here to share it (each environment keeps its own "<environment>/" prefix), or choose another bucket`),
        );
      }
      continue;
    }
    const owner = environments.find((o) => o.env.name === managedBy);
    const known = [...new Set(declared)].sort();
    if (managedBy === e.env.name) {
      problems.push(e.file.problem(MANAGED_BY, `backup.offsite.managedBy: "${managedBy}" is this environment: leave managedBy out where the bucket is declared, and name this environment in the others`));
    } else if (!owner) {
      // A broken environment file reports its own problems; naming it is not wrong.
      if (known.includes(managedBy)) continue;
      const hint = suggest(managedBy, known);
      problems.push(e.file.problem(MANAGED_BY, `backup.offsite.managedBy: environment "${managedBy}" does not exist${hint ? `; did you mean "${hint}"?` : ''} (environments: ${known.join(', ')})`));
    } else {
      const theirs = owner.env.backup.offsite;
      const declares = theirs.mode === 'shared' && theirs.bucket === bucket && theirs.managedBy === undefined;
      if (!declares) {
        const what =
          theirs.mode !== 'shared'
            ? `it has per-tenant buckets (mode "${theirs.mode}")`
            : theirs.bucket !== bucket
              ? `its shared bucket is "${theirs.bucket}" (${position(owner.file, OFFSITE_BUCKET)})`
              : `it names managedBy: ${theirs.managedBy} itself (${position(owner.file, MANAGED_BY)})`;
        problems.push(e.file.problem(MANAGED_BY, `backup.offsite.managedBy: environment "${managedBy}" does not declare bucket "${bucket}": ${what}; name the environment whose backup.offsite has mode "shared", bucket "${bucket}" and no managedBy`));
      }
    }
  }
  return problems;
}

/** Whatever copies off-site under its own prefix and credential: a tenant, or an environment's archive of its shared server. */
interface OffsiteOwner {
  readonly env: ParsedEnvironment['env'];
  /** The tenant name its bucket, prefix and IAM user are made of (SHARED_TENANT for the archive). */
  readonly tenant: string;
  readonly what: string;
  readonly file: SourceFile;
  readonly at: (string | number)[];
}

interface BucketClaim {
  readonly name: string;
  readonly what: string;
  readonly file: SourceFile;
  readonly at: (string | number)[];
  readonly state: boolean;
}

/**
 * Bucket names are global: every bucket a stack declares (shared, per-tenant after truncation)
 * is declared once across all environments, and no off-site bucket is a Terraform state bucket
 * (state holds every secret; a backup credential must not reach it). Environments may share a
 * state bucket with each other: each has its own key. IAM user names are global per account too.
 */
function bucketNameClashes(environments: ParsedEnvironment[], deployments: ParsedDeployment[]): Problem[] {
  const claims: BucketClaim[] = [];
  for (const e of environments) {
    const { mode, bucket } = e.env.backup.offsite;
    if (e.env.backend.kind === 's3') claims.push({ name: e.env.backend.bucket, what: `the Terraform state bucket of environment "${e.env.name}"`, file: e.file, at: ['backend', 'bucket'], state: true });
    if (mode === 'shared' && bucket !== undefined) claims.push({ name: bucket, what: `the shared off-site bucket of environment "${e.env.name}"`, file: e.file, at: OFFSITE_BUCKET, state: false });
  }
  // The shared server's archive copies off-site as a tenant named SHARED_TENANT would: its names can clash like one.
  const owners: OffsiteOwner[] = [
    ...environments.filter((e) => sharedArchiveUsesOffsite(e.env)).map((e) => ({
      env: e.env,
      tenant: SHARED_TENANT,
      what: `the shared Postgres server's archive in environment "${e.env.name}"`,
      file: e.file,
      at: SHARED_POSTGRES,
    })),
    ...deployments.filter(usesOffsite).map((d) => ({
      env: d.environment.env,
      tenant: d.tenant.name,
      what: `tenant "${d.tenant.name}" in environment "${d.environment.env.name}"`,
      file: d.file,
      at: ['name'],
    })),
  ];
  const credentials = new Map<string, OffsiteOwner>();
  const problems: Problem[] = [];
  for (const o of owners) {
    const { env } = o;
    if (env.backup.offsite.mode === 'per-tenant') {
      const name = perTenantBucketName(env.backup.offsite.bucket, env.name, o.tenant);
      claims.push({ name, what: `the off-site bucket of ${o.what}`, file: o.file, at: o.at, state: false });
    }
    const user = offsiteCredentialName(env.name, o.tenant);
    const other = credentials.get(user);
    if (!other) {
      credentials.set(user, o);
    } else {
      problems.push(
        problemAt(o.file, o.at, `${dotted(o.at)}: the off-site credential of ${o.what} would be IAM user "${user}", like that of ${other.what} (${position(other.file, other.at)}): rename one of the tenants or environments`),
      );
    }
  }

  const first = new Map<string, BucketClaim>();
  for (const claim of claims) {
    const earlier = first.get(claim.name);
    if (!earlier) {
      first.set(claim.name, claim);
      continue;
    }
    // Environments sharing a state bucket, and shared buckets named twice (offsiteBucketOwners), are not this rule's.
    if (earlier.state === claim.state && (claim.state || claim.at === OFFSITE_BUCKET)) continue;
    const [offsite, other] = claim.state ? [earlier, claim] : [claim, earlier];
    const why = other.state
      ? 'an off-site bucket must not be a Terraform state bucket (state holds every secret, and a backup credential must not reach it)'
      : 'bucket names are global, and each bucket belongs to one stack';
    const fix =
      offsite.at === OFFSITE_BUCKET
        ? 'choose another bucket'
        : offsite.at === SHARED_POSTGRES
          ? 'set another backup.offsite.bucket in the environment, or rename the environment'
          : 'set another backup.offsite.bucket in the environment, or rename the tenant';
    problems.push(problemAt(offsite.file, offsite.at, `${dotted(offsite.at)}: bucket "${claim.name}", ${offsite.what}, is also ${other.what} (${position(other.file, other.at)}): ${why}: ${fix}`));
  }
  return problems;
}
