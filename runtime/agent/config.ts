/**
 * The agent's configuration: the contract between the Backup construct (which hands this JSON to
 * the container in TENANTRY_AGENT_CONFIG_JSON) and the agent (which reads it from there or from a
 * file). docs/agent-config.md describes it with an example; change both together.
 *
 * Secrets never appear here: every password or key is named by the environment variable that
 * holds it (`…Env` fields), and the container receives those variables from Terraform.
 */
import * as fs from 'fs';
import { z } from 'zod';
import { CronError, isValidTimeZone, parseCron } from '../schedule/cron';
import { UserError } from './errors';

export const DEFAULT_CONFIG_PATH = '/etc/tenantry/agent.json';
/** A config file elsewhere than DEFAULT_CONFIG_PATH, for an agent run outside the Backup construct's container. */
export const CONFIG_PATH_ENV = 'TENANTRY_AGENT_CONFIG';
/**
 * The agent's /metrics and /health port: the Backup construct configures it, the port slot
 * publishes it and the Dockerfile EXPOSEs it (test/agent/dockerfile.test.ts checks that one).
 */
export const AGENT_HTTP_PORT = 9187;

/**
 * The agent image's user (runtime/agent/Dockerfile creates it, uid 10001) and its command: a
 * `docker exec` of the agent runs as this user, since root in the container lacks the
 * capabilities to write the backups the agent owns.
 */
export const AGENT_EXEC = { user: 'tenantry', command: 'tenantry-agent' } as const;
/** MinIO answers to any region but signs with the one it was started with, "us-east-1" unless told otherwise. */
export const MINIO_DEFAULT_REGION = 'us-east-1';
/** Per S3 request: enough attempts to ride out a few seconds of throttling or a restarted endpoint. */
export const OFFSITE_RETRY_DEFAULTS = { attempts: 5, baseDelayMs: 1000 } as const;
/**
 * The config itself, as JSON text. The backup container's root file system is read-only, and
 * Docker copies no file into such a container, so the construct passes the config this way; every
 * `docker exec … tenantry-agent` in the container sees it too.
 */
export const CONFIG_JSON_ENV = 'TENANTRY_AGENT_CONFIG_JSON';

/** Where the agent reads its config: a file, or the environment variable holding the JSON. */
export type AgentConfigSource = { readonly path: string } | { readonly variable: string };

const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and "-", starting with a letter (at most 63 characters)');

const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name like "PG_PASSWORD"');

/** A 5-field cron expression or an @daily-style macro: the rule of the config schema and the agent alike. */
export const cronExpression = z.string().superRefine((expression, ctx) => {
  try {
    parseCron(expression);
  } catch (e) {
    if (!(e instanceof CronError)) throw e;
    ctx.addIssue({ code: 'custom', message: `invalid cron expression "${expression}": ${e.message}` });
  }
});

/** The zone schedules and retention days are evaluated in: the config schema's rule too. */
export const ianaTimeZone = z.string().refine(isValidTimeZone, { message: 'is not an IANA time zone (e.g. "UTC", "Europe/Berlin")' });

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'must be "host:port", e.g. "redis-sentinel-1:26379"');

const url = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

const count = z.number().int().min(0);

/** How many backups retention keeps, and its bounds: also what a tenant's YAML may set (config/schema.ts). */
export const retentionPolicySchema = z.strictObject({
  /** Newest backup of each of the last N calendar days (today included), in `timeZone`. */
  daily: count.max(3650),
  /** Newest backup of each of the last N ISO weeks (Monday to Sunday, this week included). */
  weekly: count.max(520),
  /** Newest backup of each of the last N calendar months (this month included). */
  monthly: count.max(240),
});

/** What every job has, whatever it backs up. */
const jobCommon = {
  /** Unique within the file; names the job's folder under `backupDir` and its off-site prefix. */
  name,
  /** When the backup runs (5-field cron or @daily-style macro), evaluated in `timeZone`. */
  schedule: cronExpression,
  retention: retentionPolicySchema,
  /** Whether finished backups are copied to the `offsite` bucket (which must then be configured). */
  offsite: z.boolean(),
};

/**
 * Where `restore` reads its elevated Postgres credential. The container never holds these
 * variables: an operator passes them for the one command (`docker exec -e …`).
 */
export const RESTORE_CREDENTIAL_ENV = { userEnv: 'TENANTRY_RESTORE_PGUSER', passwordEnv: 'TENANTRY_RESTORE_PGPASSWORD' } as const;

/** What a Postgres job gets when its config leaves these out (the Backup construct writes them out). */
export const POSTGRES_DEFAULTS = { parallelJobs: 2, splitTablesLargerThanMb: 256, restoreCredential: RESTORE_CREDENTIAL_ENV } as const;

/*
 * The key order of these schemas is the key order of the JSON each backup container receives: the
 * Backup construct writes the value this schema parsed, so moving a field changes every deployed
 * container's config (and replaces it on the next apply).
 */

/** How a job reaches its Postgres server: the address, the role it logs in as, the variable with that role's password. */
const postgresLogin = {
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  user: z.string().min(1),
  passwordEnv: envVarName,
};

const postgresJob = z.strictObject({
  ...jobCommon,
  kind: z.literal('postgres'),
  /**
   * When the newest backup is restored into a scratch database and compared with the row counts
   * taken at dump time.
   * @default never (only on `tenantry-agent verify`)
   */
  verifySchedule: cronExpression.optional(),
  postgres: z.strictObject({
    /*
     * `user` is the role backups and verification run as: reads every table (pg_read_all_data,
     * BYPASSRLS), may create the scratch databases verification restores into (CREATEDB). A
     * superuser also gets role passwords into globals.sql.
     */
    ...postgresLogin,
    /** Databases to dump; each becomes a directory-format archive. */
    databases: z.array(z.string().min(1)).min(1),
    /**
     * pg_dump/pg_restore worker processes.
     * @default 2
     */
    parallelJobs: z.number().int().min(1).max(32).default(POSTGRES_DEFAULTS.parallelJobs),
    /**
     * Tables at least this big (MB on disk, pg_table_size: with TOAST, without indexes) are dumped and restored in parallel chunks, beside
     * pg_dump's archive (see runtime/agent/jobs/postgres/chunks.ts); 0 splits every table.
     * @default 256
     */
    splitTablesLargerThanMb: z.number().int().min(0).default(POSTGRES_DEFAULTS.splitTablesLargerThanMb),
    /**
     * The elevated credential `restore` uses (a restore creates databases owned by other roles and
     * brings back their grants), read from these variables only for that command.
     * @default TENANTRY_RESTORE_PGUSER / TENANTRY_RESTORE_PGPASSWORD
     */
    restoreCredential: z
      .strictObject({
        userEnv: envVarName,
        passwordEnv: envVarName,
        /** Where an operator finds the credential, quoted when a restore runs without it. */
        source: z.string().min(1).optional(),
      })
      .default(POSTGRES_DEFAULTS.restoreCredential),
    /**
     * Where the agent connects to create and drop databases (verification scratch copies, restore
     * targets) and to read the roles.
     * @default "postgres"
     */
    maintenanceDatabase: z.string().min(1).optional(),
  }),
});

/** A replication slot's name as Postgres accepts it: also what the YAML's slot names are built to. */
export const replicationSlotName = z.string().regex(/^[a-z0-9_]{1,63}$/, 'must be 1-63 lowercase letters, digits and "_" (a replication slot name), e.g. "tenantry_acme"');

/**
 * Point-in-time recovery of a whole server (docs/agent-config.md, /work/briefs/pitr-design.md):
 * physical base backups on `schedule`, and WAL streamed continuously by pg_receivewal while
 * `serve` runs (runtime/agent/pitr/receiver.ts).
 */
const postgresPitrJob = z.strictObject({
  ...jobCommon,
  kind: z.literal('postgres-pitr'),
  /**
   * When the newest base backup plus WAL is recovered by a scratch server and compared with the
   * source's row counts.
   * @default never (only on `tenantry-agent verify`)
   */
  verifySchedule: cronExpression.optional(),
  pitr: z.strictObject({
    // `user` is a role with REPLICATION (streaming and base backups) and nothing it does not need.
    ...postgresLogin,
    /** The replication slot that keeps WAL on the server while the receiver is down. */
    slot: replicationSlotName,
    /** Every moment of the last N days stays restorable (retention keeps base backups and WAL for it). */
    windowDays: z.number().int().min(0),
    /** /health is unhealthy when the archive is further behind the server than this. */
    maxLagSeconds: z.number().positive(),
    /**
     * The server's max_slot_wal_keep_size in MB: beyond it the slot is invalidated and the archive
     * has a gap. The agent alerts at 50 % and 80 % of it.
     */
    maxSlotWalKeepMb: z.number().int().min(1),
    /** What verification counts rows in: the tenant's databases. */
    databases: z.array(z.string().min(1)).min(1),
  }),
});

const redisJob = z.strictObject({
  ...jobCommon,
  kind: z.literal('redis'),
  redis: z.strictObject({
    /** Sentinels asked, in order, for a replica of `masterName`. */
    sentinels: z.array(hostPort).min(1),
    masterName: z.string().min(1),
    /** Password of the Redis servers (master and replicas). */
    passwordEnv: envVarName,
    /** @default the sentinels need no password */
    sentinelPasswordEnv: envVarName.optional(),
  }),
});

const qdrantJob = z.strictObject({
  ...jobCommon,
  kind: z.literal('qdrant'),
  qdrant: z.strictObject({
    url,
    apiKeyEnv: envVarName,
    /** @default every collection the server lists at backup time */
    collections: z.array(z.string().min(1)).min(1).optional(),
  }),
});

/**
 * Where a MinIO restore finds the credential that may write (root): set by the operator for that
 * one `docker exec`, never in the container's environment, since the agent's own user only reads.
 */
export const MINIO_RESTORE_CREDENTIAL_ENV = {
  restoreAccessKeyEnv: 'TENANTRY_RESTORE_MINIO_ACCESS_KEY',
  restoreSecretKeyEnv: 'TENANTRY_RESTORE_MINIO_SECRET_KEY',
} as const;

const minioJob = z.strictObject({
  ...jobCommon,
  kind: z.literal('minio'),
  minio: z.strictObject({
    /** S3 API endpoint of the MinIO (or any S3-compatible) server. */
    endpoint: url,
    /** The backup's credential: list and read the buckets (the agent's own MinIO user). */
    accessKeyEnv: envVarName,
    secretKeyEnv: envVarName,
    /** The restore's credential (it writes), passed only for the restore. @default TENANTRY_RESTORE_MINIO_ACCESS_KEY */
    restoreAccessKeyEnv: envVarName.default(MINIO_RESTORE_CREDENTIAL_ENV.restoreAccessKeyEnv),
    /** @default TENANTRY_RESTORE_MINIO_SECRET_KEY */
    restoreSecretKeyEnv: envVarName.default(MINIO_RESTORE_CREDENTIAL_ENV.restoreSecretKeyEnv),
    buckets: z.array(z.string().min(1)).min(1),
    /** @default MINIO_DEFAULT_REGION */
    region: z.string().min(1).default(MINIO_DEFAULT_REGION),
  }),
});

export const jobSchema = z.discriminatedUnion('kind', [postgresJob, postgresPitrJob, redisJob, qdrantJob, minioJob]);

export const offsiteSchema = z.strictObject({
  bucket: z.string().min(3),
  /** Keys are `<prefix>/<job>/<backup-id>/<file>`; the tenant's credential is scoped to it. */
  prefix: z.string().regex(/^[^/].*[^/]$|^[^/]$/, 'must not start or end with "/"'),
  region: z.string().min(1),
  /** @default AWS S3 for `region`; set it for an S3-compatible service */
  endpoint: url.optional(),
  /** @default false (virtual-hosted-style URLs, as AWS prefers) */
  forcePathStyle: z.boolean().default(false),
  accessKeyIdEnv: envVarName,
  secretAccessKeyEnv: envVarName,
  /** Per S3 request: attempts with exponential backoff starting at `baseDelayMs`, doubling, capped at 30 s. */
  retry: z
    .strictObject({
      attempts: z.number().int().min(1).max(20).default(OFFSITE_RETRY_DEFAULTS.attempts),
      baseDelayMs: z.number().int().min(1).max(60_000).default(OFFSITE_RETRY_DEFAULTS.baseDelayMs),
    })
    .default(OFFSITE_RETRY_DEFAULTS),
});

export const agentConfigSchema = z
  .strictObject({
    tenant: name,
    environment: name,
    /** IANA zone for schedules, retention calendar days and `list` output. */
    timeZone: ianaTimeZone,
    /** Absolute path of the backup volume; each job gets `<backupDir>/<job>/`. */
    backupDir: z.string().startsWith('/', 'must be an absolute path'),
    http: z.strictObject({
      port: z.number().int().min(1).max(65535),
      /** @default "0.0.0.0" (reachable from the container network for Prometheus) */
      host: z.string().min(1).default('0.0.0.0'),
    }),
    /** @default no webhook */
    webhook: z.strictObject({ urlEnv: envVarName }).optional(),
    /** @default no off-site copies (then no job may set `offsite: true`) */
    offsite: offsiteSchema.optional(),
    jobs: z.array(jobSchema).min(1),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.jobs.forEach((job, i) => {
      if (seen.has(job.name)) ctx.addIssue({ code: 'custom', path: ['jobs', i, 'name'], message: `duplicate job name "${job.name}"` });
      seen.add(job.name);
      if (job.offsite && config.offsite === undefined) {
        ctx.addIssue({ code: 'custom', path: ['jobs', i, 'offsite'], message: 'is true but the file has no top-level "offsite" section' });
      }
    });
  });

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type JobConfig = AgentConfig['jobs'][number];
export type JobKind = JobConfig['kind'];
export type OffsiteConfig = NonNullable<AgentConfig['offsite']>;
export type RetentionPolicy = z.infer<typeof retentionPolicySchema>;

/** `jobs[2].postgres.port` style, as people read paths in JSON. */
function issuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

function describeIssue(issue: z.core.$ZodIssue): string {
  // zod says "expected string, received undefined" for a missing field; people say "is required".
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) return `is required (${issue.expected})`;
  return issue.message;
}

/** Validates an already-parsed value; every problem is listed, one per line. */
export function parseAgentConfig(value: unknown, source: string): AgentConfig {
  const result = agentConfigSchema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${source}: ${issuePath(issue.path) || '(top level)'}: ${describeIssue(issue)}`);
  throw new UserError(problems.join('\n'));
}

export function readAgentConfig(source: AgentConfigSource, env: NodeJS.ProcessEnv): AgentConfig {
  if ('path' in source) return loadAgentConfig(source.path);
  return parseAgentConfigText(env[source.variable] ?? '', `agent config in ${source.variable}`);
}

export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : `cannot be read (${code})`;
    throw new UserError(`agent config ${path} ${why}; pass --config <path> or set ${CONFIG_PATH_ENV}`);
  }
  return parseAgentConfigText(text, `agent config ${path}`, path);
}

function parseAgentConfigText(text: string, what: string, source = what): AgentConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  return parseAgentConfig(value, source);
}

/** The value of a secret's environment variable; a missing one is a deployment mistake. */
export function secretFromEnv(variable: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[variable];
  if (value === undefined || value === '') {
    throw new UserError(`environment variable ${variable} is not set (the agent config names it as a secret)`);
  }
  return value;
}

export function findJob(config: AgentConfig, jobName: string): JobConfig {
  const job = config.jobs.find((j) => j.name === jobName);
  if (job === undefined) {
    throw new UserError(`no job named "${jobName}" in the agent config (jobs: ${config.jobs.map((j) => j.name).join(', ')})`);
  }
  return job;
}
