import { isIP } from 'net';
import { z } from 'zod';
import { BUCKET_NAME, BUCKET_NAME_RULE } from '../runtime/bucket-name';
import { cronExpression, ianaTimeZone, retentionPolicySchema } from '../runtime/agent/config';
import { dataRootProblem, storagePathProblem } from './storage-paths';
import { isAlpineImage, isPinned } from './images';
import { POSTGRES_VERSIONS, reservedDatabase, reservedRole, tenantRoles } from './postgres-names';

/*
 * The zod schemas here are the single source of truth for Tenantry's YAML: the TypeScript types
 * are inferred from them, `npm run schema` turns them into the JSON Schema files editors use, and
 * the loader reports their issues as file:line:col problems. Rules that need more than one file
 * (duplicate names, port conflicts, unknown environments) live in config/cross-checks.ts.
 */

const DNS_LABEL = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;

/** Tenant and environment names end up in container names, hostnames and bucket names. */
export const resourceName = z
  .string()
  .max(40, 'must be at most 40 characters (it becomes part of container, volume and bucket names)')
  .regex(DNS_LABEL, 'must be a lowercase DNS label: a-z, 0-9 and "-", starting with a letter, not ending with "-"');

const postgresIdentifier = z
  .string()
  .max(63, 'must be at most 63 characters (PostgreSQL identifier limit)')
  .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lowercase PostgreSQL identifier: a-z, 0-9 and "_", not starting with a digit');

/** A tenant database: an identifier that is not one of PostgreSQL's own. */
const databaseName = postgresIdentifier.superRefine((name, ctx) => {
  const reserved = reservedDatabase(name);
  if (reserved) ctx.addIssue({ code: 'custom', message: `"${name}" cannot be a tenant database: ${reserved}; choose another name` });
});

/**
 * Each entry of a list that becomes resources (a database, a bucket) must be unique: two equal
 * entries would be one resource declared twice. Reported at the second one.
 */
function withoutDuplicates<T>(key: (item: T) => string, path: (string | number)[] = []) {
  return (items: T[], ctx: z.RefinementCtx) => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const k = key(item);
      const first = seen.get(k);
      if (first === undefined) seen.set(k, i);
      else ctx.addIssue({ code: 'custom', path: [i, ...path], message: `"${k}" is listed twice (also at [${first}]): remove one` });
    });
  };
}

/** A Postgres major version Tenantry can run; 13 and 14 lack what the init script needs. */
const postgresVersion = z
  .number()
  .int()
  .min(POSTGRES_VERSIONS.min, `Tenantry runs PostgreSQL ${POSTGRES_VERSIONS.min}-${POSTGRES_VERSIONS.max} (its init script needs psql ${POSTGRES_VERSIONS.min}'s \\getenv, which keeps passwords out of files and argv): upgrade the server first (pg_upgrade, or a dump and restore), then set ${POSTGRES_VERSIONS.min} or newer`)
  .max(POSTGRES_VERSIONS.max, `Tenantry is tested with PostgreSQL ${POSTGRES_VERSIONS.min}-${POSTGRES_VERSIONS.max}: use one of those`)
  .default(POSTGRES_VERSIONS.default);

/**
 * Server parameters a YAML file may not set, each with what it does (the refusal's reason): they
 * run shell commands, load code into the server, or replace the files that decide who may log in.
 * Whoever can edit a tenant file (or an environment's sharedPostgres) would get a shell in the
 * database container, or a login without a password, through them.
 */
const REFUSED_POSTGRES_PARAMETERS: Readonly<Record<string, string>> = {
  // Shell commands, run through /bin/sh by the server.
  archive_command: 'runs a shell command for every WAL segment (backups are the backup agent\'s job)',
  archive_cleanup_command: 'runs a shell command at every restartpoint of a standby',
  restore_command: 'runs a shell command to fetch WAL during recovery (restores are `tenantry-agent restore`)',
  recovery_end_command: 'runs a shell command at the end of recovery',
  ssl_passphrase_command: 'runs a shell command to get the passphrase of the SSL key',
  // Libraries, loaded into the server's processes.
  archive_library: 'loads a library to archive WAL',
  shared_preload_libraries: 'loads libraries into the server at start',
  local_preload_libraries: 'loads libraries into every session',
  session_preload_libraries: 'loads libraries into every session',
  dynamic_library_path: 'chooses where the server loads libraries (LOAD, C functions) from',
  jit_provider: 'loads a library as the JIT compiler',
  // Files in place of the ones Tenantry's image and init script set up.
  hba_file: 'replaces the rules of who may log in and how (pg_hba.conf)',
  ident_file: 'replaces the user name maps pg_hba.conf logins use',
  config_file: 'replaces the server\'s configuration file',
  data_directory: 'moves the server\'s data away from its volume',
};

/**
 * Server parameters, passed to postgres as `-c key=value` arguments (one argv entry each, no
 * shell). A value may hold spaces, quotes and "$" (log_line_prefix does), not control characters:
 * a newline would end a line of postgresql.conf-style parsing and of every log that shows it.
 */
const postgresParameters = z.record(
  z
    .string()
    .regex(/^[a-z][a-z0-9_.]*$/, 'must be a PostgreSQL parameter name')
    .superRefine((name, ctx) => {
      const why = Object.hasOwn(REFUSED_POSTGRES_PARAMETERS, name) ? REFUSED_POSTGRES_PARAMETERS[name] : undefined;
      if (why === undefined) return;
      ctx.addIssue({
        code: 'custom',
        message:
          `must not be set in YAML: it ${why}, which hands whoever edits this file the server's own powers (its postgres user owns every database on it); ` +
          "remove it (if the server really needs it, whoever runs the Docker host sets it in the server's own postgresql.conf, in its data directory)",
      });
    }),
  z.union([
    z.string().regex(/^[^\x00-\x1f\x7f]*$/, 'must not contain control characters (newlines, tabs): write the value on one line'),
    z.number(),
    z.boolean(),
  ]),
);

const tcpPort = z.number().int().min(1).max(65535);

const awsRegion = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region like "eu-central-1"');

const bucketName = z.string().regex(BUCKET_NAME, `must be an S3 bucket name (${BUCKET_NAME_RULE})`);

/** Where published ports listen on the Docker host; loopback unless an environment opens them wider. */
export const DEFAULT_PUBLISH_ADDRESS = '127.0.0.1';

const hostAddress = z.string().refine((a) => isIP(a) !== 0, {
  message: `must be an IPv4 or IPv6 address of the Docker host: "${DEFAULT_PUBLISH_ADDRESS}" (this host only), a LAN address, or "0.0.0.0" (every interface)`,
});

export const imageReference = z
  .string()
  .regex(
    /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
    // A reference that is not one says nothing useful about its tag.
    { message: 'must be an image reference like "registry.example.com/postgres:16-alpine"', abort: true },
  )
  .refine(isPinned, {
    error: (issue) => {
      const name = String(issue.input).replace(/:latest$/, '');
      return `is not pinned to a version, so each deploy may pull a different image: name one, e.g. "${name}:<version>" (not "latest"), or a digest "${name}@sha256:…"`;
    },
  });

const absolutePath = z.string().refine((p) => p.startsWith('/'), {
  message: 'must be an absolute path (starting with "/")',
});

/** A path that holds tenant data: absolute, normalized, and not a system directory (config/storage-paths.ts says why). */
const storagePath = (kind: 'host' | 'nfs-export') =>
  absolutePath.superRefine((p, ctx) => {
    const problem = p.startsWith('/') ? storagePathProblem(p, kind) : undefined;
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const memoryMb = z.number().int().min(16, 'must be at least 16 (MiB)').max(1048576);
const cpus = z.number().positive().max(256);

/** Where a stateful volume lives when a service overrides the environment's storage. */
const serviceStorage = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('volume') }),
  /** The service's volumes go to `<path>/<service>/<purpose>`: the path is this deployment's alone. */
  z.strictObject({ kind: z.literal('bind'), path: storagePath('host') }),
]);

// ---------------------------------------------------------------- backups

export const BACKUP_SERVICES = ['postgres', 'redis', 'qdrant', 'minio'] as const;
export type BackupService = (typeof BACKUP_SERVICES)[number];

/** One service's backup job. Every field is optional so environment defaults can fill it. */
export const backupJobSchema = z.strictObject({
  enabled: z.boolean().optional(),
  schedule: cronExpression.optional(),
  /** When the backup is restored into a scratch copy and compared with the source. */
  verifySchedule: cronExpression.optional(),
  /** Each count left out comes from the environment's defaults, then DEFAULT_BACKUP_JOBS (config/model.ts). */
  retention: retentionPolicySchema.partial().optional(),
  offsite: z.boolean().optional(),
});

/** Only Postgres backups are test-restored on a schedule; a verifySchedule elsewhere would be silently ignored. */
function unverifiedJobSchema(service: string) {
  return backupJobSchema.extend({
    verifySchedule: z
      .never(`only Postgres backups are verified on a schedule (restored into a scratch database); a ${service} backup is checked when it is taken: remove verifySchedule`)
      .optional(),
  });
}

/**
 * Point-in-time recovery of a tenant's dedicated Postgres (WAL streamed to the backup volume, and
 * physical base backups). Every field is optional so environment defaults can fill it; what each
 * resolves to when nobody sets it is DEFAULT_PITR (config/model.ts).
 */
const pitrFields = {
  enabled: z.boolean().optional(),
  /** Every moment of the last N days stays restorable (base backups and WAL are kept for it). */
  windowDays: z.number().int().min(0).max(3650).optional(),
  /** When a physical base backup is taken; restores replay WAL from the newest one before the target. */
  baseBackupSchedule: cronExpression.optional(),
  /** When the latest base backup plus WAL is recovered into a scratch server and checked. */
  verifySchedule: cronExpression.optional(),
  /** The agent's /health turns unhealthy when the WAL archive is further behind the server than this. */
  maxLagSeconds: z.number().int().min(1).max(86400).optional(),
  /** The server's max_slot_wal_keep_size: WAL the server keeps for a receiver that is down (README, "Point-in-time recovery"). */
  maxSlotWalKeepMb: z.number().int().min(64, 'must be at least 64 (MiB): a few WAL segments').max(1048576).optional(),
};

/** The PITR settings an environment default or a tenant's own server takes (a tenant's `reason` apart). */
export const PITR_SETTINGS = Object.keys(pitrFields) as (keyof typeof pitrFields)[];

const tenantPitrSchema = z.strictObject({
  ...pitrFields,
  /** Why PITR is off: a production environment refuses a tenant with it off and no reason. */
  reason: z.string().refine((r) => r.trim() !== '', { message: 'is empty: say why point-in-time recovery is off' }).optional(),
});

const environmentPitrSchema = z.strictObject({
  ...pitrFields,
  reason: z
    .never('a reason for point-in-time recovery being off belongs in each tenant file that turns it off (backup.postgres.pitr.reason): remove it here')
    .optional(),
});

function backupJobsSchema(pitr: typeof tenantPitrSchema | typeof environmentPitrSchema) {
  return z.strictObject({
    postgres: backupJobSchema.extend({ pitr: pitr.optional() }).optional(),
    redis: unverifiedJobSchema('Redis').optional(),
    qdrant: unverifiedJobSchema('Qdrant').optional(),
    minio: unverifiedJobSchema('MinIO').optional(),
  });
}

/** A tenant's `backup` section. */
const backupJobs = backupJobsSchema(tenantPitrSchema);

/** An environment's `backup.defaults`: the same, except that only a tenant can say why PITR is off. */
const backupDefaults = backupJobsSchema(environmentPitrSchema);

// ---------------------------------------------------------------- environment

const storageSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('volume') }),
  z.strictObject({
    kind: z.literal('bind'),
    /** Absolute, or "./…" relative to the config directory (resolved to absolute at load). */
    dataRoot: z.string().superRefine((p, ctx) => {
      const problem = dataRootProblem(p);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  }),
  z.strictObject({
    kind: z.literal('nfs'),
    server: z
      .string()
      .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9a-fA-F:]+\]$/, 'must be a host name or an IP address'),
    export: storagePath('nfs-export'),
    /** Mount options passed to the kernel's NFS client, comma separated. */
    options: z
      .string()
      .regex(/^[A-Za-z0-9_.=-]+(,[A-Za-z0-9_.=-]+)*$/, 'must be comma-separated mount options like "nfsvers=4.1,soft"')
      .refine((o) => !/(^|,)addr=/.test(o), { message: 'must not set addr=: Tenantry sets it from "server"' })
      .default('nfsvers=4.1,hard,timeo=600,retrans=2'),
  }),
]);

const imagesSchema = z
  .strictObject({
    postgres: imageReference.optional(),
    pgbouncer: imageReference.optional(),
    redis: imageReference.optional(),
    qdrant: imageReference.optional(),
    minio: imageReference.optional(),
    minioClient: imageReference.optional(),
    backup: imageReference.optional(),
  })
  .superRefine((images, ctx) => {
    // The backup image Tenantry builds takes its Redis tools from images.redis (runtime/agent/Dockerfile).
    // A reference refused at its key already is not judged again.
    if (!imageReference.safeParse(images.redis).success || images.backup !== undefined || isAlpineImage(images.redis!)) return;
    ctx.addIssue({
      code: 'custom',
      path: ['redis'],
      message:
        'is not an Alpine-based image (its tag does not say "alpine"), but the backup image copies redis-cli, redis-check-rdb and redis-server ' +
        'from it into an Alpine (musl) image, where the glibc binaries of a Debian-based image cannot run: use the Alpine variant of the same ' +
        'version (the official images tag it "<version>-alpine"), or set images.backup to an agent image of your own whose Redis tools are no older than this server',
    });
  });

const backendSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('local'),
    /** Relative to the config directory. @default terraform.<env>.tfstate there */
    path: z
      .string()
      .regex(/\.tfstate$/, 'must end in ".tfstate": the state holds every secret in plain text, and .gitignore keeps only *.tfstate files out of git')
      .optional(),
  }),
  z.strictObject({
    kind: z.literal('s3'),
    bucket: bucketName,
    key: z.string().min(1).optional(),
    region: awsRegion,
    encrypt: z.boolean().default(true),
    kmsKeyId: z.string().optional(),
    /** "lockfile" uses S3's conditional writes (Terraform ≥ 1.10); "dynamodb" needs dynamodbTable. */
    locking: z.enum(['lockfile', 'dynamodb', 'none']).default('lockfile'),
    dynamodbTable: z.string().optional(),
  }),
]);

const offsiteSchema = z.strictObject({
  /** "per-tenant": one bucket per tenant (isolation); "shared": one bucket, a prefix per tenant. */
  mode: z.enum(['per-tenant', 'shared']).default('per-tenant'),
  /** The bucket name in "shared" mode; the name prefix in "per-tenant" mode. */
  bucket: bucketName.max(42, 'must be at most 42 characters (per-tenant buckets append "-<environment>-<tenant>")').optional(),
  /**
   * "shared" mode only: the environment whose stack declares this bucket (several environments
   * may share one bucket, each under its own `<environment>/` prefix, but one stack owns it).
   */
  managedBy: resourceName.optional(),
  kmsKeyArn: z.string().regex(/^arn:aws[a-z-]*:kms:/, 'must be a KMS key ARN').optional(),
  objectLock: z
    .strictObject({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']).default('GOVERNANCE'), days: z.number().int().min(1).max(36500) })
    .optional(),
  /** An S3-compatible endpoint for the backup agents (e.g. a MinIO elsewhere); AWS when left out. */
  endpoint: z.string().url().optional(),
});

/** What the environment that declares a shared bucket decides for every environment using it. */
const BUCKET_SETTINGS = ['kmsKeyArn', 'objectLock', 'endpoint'] as const;

export const environmentSchema = z
  .strictObject({
    name: resourceName,
    /** Production environments get the strict policies (no published data ports, off-site backups). */
    production: z.boolean().default(false),
    timeZone: ianaTimeZone.default('UTC'),
    docker: z.strictObject({
      host: z
        .string()
        .regex(/^(unix|ssh|tcp|npipe):\/\/\S+$/, 'must be a Docker host URL: unix:///var/run/docker.sock or ssh://user@host'),
      /** Extra ssh options for an ssh:// host, e.g. ["-o", "StrictHostKeyChecking=yes"]. */
      sshOptions: z.array(z.string()).optional(),
      /** The Docker host's OS: decides what storage Postgres may use. npipe:// hosts are always windows. */
      platform: z.enum(['linux', 'windows']).default('linux'),
    }),
    network: z.strictObject({
      name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must be a Docker network name'),
      subnet: z
        .string()
        .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'must be an IPv4 CIDR like "172.30.0.0/16"')
        .refine(validCidr, { message: 'must be an IPv4 CIDR with octets 0-255 and a prefix 8-30' }),
    }),
    storage: storageSchema,
    images: imagesSchema.prefault({}),
    ports: z
      .strictObject({
        /** Publish service ports on the Docker host (for development access). */
        publish: z.boolean().default(false),
        /** The Docker host address published ports bind to; "0.0.0.0" exposes them on every interface. */
        address: hostAddress.default(DEFAULT_PUBLISH_ADDRESS),
        /** Host ports are handed out from here, 20 per tenant slot. */
        from: tcpPort.default(20000),
        to: tcpPort.default(29999),
        /** Allow published Postgres/PgBouncer/Redis ports in a production environment. */
        allowDataPortsInProduction: z.boolean().default(false),
      })
      .prefault({})
      .refine((p) => p.from <= p.to, { message: '"from" must not be larger than "to"', path: ['from'] }),
    backend: backendSchema.prefault({ kind: 'local' }),
    aws: z.strictObject({ region: awsRegion }).prefault({ region: 'us-east-1' }),
    /** A Postgres server for tenants with `postgres.mode: shared`. */
    sharedPostgres: z
      .strictObject({
        version: postgresVersion,
        memoryMb: memoryMb.default(1024),
        cpus: cpus.optional(),
        parameters: postgresParameters.default({}),
        hostPort: tcpPort.optional(),
      })
      .optional(),
    backup: z
      .strictObject({
        /** Defaults for every tenant's backup jobs (a tenant's `backup` section overrides them). */
        defaults: backupDefaults.prefault({}),
        offsite: offsiteSchema.prefault({}),
        /**
         * POST a Slack-compatible message when a backup fails. The URL is a secret: it comes from the
         * Terraform variable `backup_webhook_url`, never from YAML.
         */
        webhook: z.boolean().default(false),
      })
      .prefault({}),
  })
  .superRefine((env, ctx) => {
    if (env.backend.kind === 's3' && env.backend.locking === 'dynamodb' && !env.backend.dynamodbTable) {
      ctx.addIssue({ code: 'custom', path: ['backend', 'locking'], message: 'locking "dynamodb" needs backend.dynamodbTable' });
    }
    if (env.backup.offsite.mode === 'shared' && !env.backup.offsite.bucket) {
      ctx.addIssue({ code: 'custom', path: ['backup', 'offsite', 'mode'], message: 'mode "shared" needs backup.offsite.bucket (the one bucket all tenants share)' });
    }
    if (env.backup.offsite.managedBy !== undefined && env.backup.offsite.mode !== 'shared') {
      ctx.addIssue({ code: 'custom', path: ['backup', 'offsite', 'managedBy'], message: 'managedBy names the environment that declares a shared bucket: it needs mode "shared" and the bucket\'s name in backup.offsite.bucket' });
    }
    if (env.backup.offsite.managedBy !== undefined) {
      for (const setting of BUCKET_SETTINGS) {
        if (env.backup.offsite[setting] === undefined) continue;
        ctx.addIssue({
          code: 'custom',
          path: ['backup', 'offsite', setting],
          message: `is a setting of the bucket, which environment "${env.backup.offsite.managedBy}" declares (managedBy): set it there and remove it here`,
        });
      }
    }
  });

// ---------------------------------------------------------------- tenant services

const postgresSchema = z.strictObject({
  enabled: z.boolean().default(true),
  version: postgresVersion,
  /** "dedicated": a server per tenant; "shared": databases on the environment's sharedPostgres. */
  mode: z.enum(['dedicated', 'shared']).default('dedicated'),
  databases: z.array(databaseName).min(1).default(['app']).superRefine(withoutDuplicates((d: string) => d)),
  parameters: postgresParameters.default({}),
  memoryMb: memoryMb.default(512),
  cpus: cpus.optional(),
  storage: serviceStorage.optional(),
});

const pgbouncerSchema = z.strictObject({
  enabled: z.boolean().default(true),
  poolMode: z.enum(['session', 'transaction', 'statement']).default('transaction'),
  poolSize: z.number().int().min(1).max(10000).default(25),
  maxClients: z.number().int().min(1).max(100000).default(1000),
  memoryMb: memoryMb.default(64),
  cpus: cpus.optional(),
}).superRefine((p, ctx) => {
  if (p.poolSize > p.maxClients) {
    ctx.addIssue({
      code: 'custom',
      path: ['poolSize'],
      message: `poolSize ${p.poolSize} is larger than maxClients (${p.maxClients}): PgBouncer could never use the whole pool; lower poolSize or raise maxClients`,
    });
  }
});

const redisSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    replicas: z.number().int().min(0).max(5).default(2),
    sentinels: z.number().int().min(1).max(7).default(3),
    quorum: z.number().int().min(1).max(7).default(2),
    downAfterMs: z.number().int().min(100).max(600000).default(5000),
    minReplicasToWrite: z.number().int().min(0).max(5).default(1),
    maxmemory: z.string().regex(/^\d+(kb|mb|gb)$/i, 'must be a size like "256mb" or "1gb"').default('256mb'),
    memoryMb: memoryMb.default(384),
    cpus: cpus.optional(),
    storage: serviceStorage.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.quorum > r.sentinels) {
      ctx.addIssue({
        code: 'custom',
        path: ['quorum'],
        message: `quorum ${r.quorum} is larger than the number of sentinels (${r.sentinels}): no failover could ever be agreed; use at most ${r.sentinels}`,
      });
    }
    if (r.minReplicasToWrite > r.replicas) {
      ctx.addIssue({
        code: 'custom',
        path: ['minReplicasToWrite'],
        message: `minReplicasToWrite ${r.minReplicasToWrite} is larger than replicas (${r.replicas}): the master would refuse every write`,
      });
    }
  });

const qdrantSchema = z.strictObject({
  enabled: z.boolean().default(true),
  version: z.string().regex(/^v\d+\.\d+\.\d+$/, 'must be a Qdrant release like "v1.12.4"').default('v1.12.4'),
  memoryMb: memoryMb.default(512),
  cpus: cpus.optional(),
  storage: serviceStorage.optional(),
});

const minioBucketSchema = z.strictObject({ name: bucketName, versioned: z.boolean().default(false) });

const minioSchema = z.strictObject({
  enabled: z.boolean().default(true),
  buckets: z
    .array(minioBucketSchema)
    .default([])
    .superRefine(withoutDuplicates((b: { name: string }) => b.name, ['name'])),
  memoryMb: memoryMb.default(512),
  cpus: cpus.optional(),
  storage: serviceStorage.optional(),
});

/**
 * What each service's settings resolve to when its section is empty: the one statement of these
 * defaults (constructs take resolved values; tests check that none restates one, and the README's
 * service rows against them).
 */
export const SERVICE_DEFAULTS = {
  postgres: postgresSchema.parse({}),
  pgbouncer: pgbouncerSchema.parse({}),
  redis: redisSchema.parse({}),
  qdrant: qdrantSchema.parse({}),
  minio: minioSchema.parse({}),
};

/** The defaults of one entry of `minio.buckets`. */
export const MINIO_BUCKET_DEFAULTS = minioBucketSchema.omit({ name: true }).parse({});

export const servicesSchema = z
  .strictObject({
    postgres: postgresSchema.optional(),
    pgbouncer: pgbouncerSchema.optional(),
    redis: redisSchema.optional(),
    qdrant: qdrantSchema.optional(),
    minio: minioSchema.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.pgbouncer?.enabled && !s.postgres?.enabled) {
      ctx.addIssue({ code: 'custom', path: ['pgbouncer'], message: 'pgbouncer needs postgres: add a postgres section or remove pgbouncer' });
    }
  })
  // PgBouncer comes with Postgres unless the tenant turns it off: decided here, once, for ports and constructs alike.
  .transform((s) => (s.postgres?.enabled && s.pgbouncer === undefined ? { ...s, pgbouncer: { ...SERVICE_DEFAULTS.pgbouncer } } : s));

const tenantEnvironmentOverride = z.strictObject({
  services: z.record(z.string(), z.unknown()).optional(),
  backup: z.record(z.string(), z.unknown()).optional(),
});

/**
 * A tenant file as written. `overrides.<env>` is merged over `services`/`backup` for that
 * environment (maps merge, lists replace) and the result is validated with the full schema, so an
 * override gets the same checks, and error positions, as the base.
 */
export const tenantFileSchema = z.strictObject({
  name: resourceName
    .refine((n) => n !== 'shared', { message: 'is reserved for the environment\'s shared Postgres server: choose another name' })
    .superRefine((n, ctx) => {
      for (const role of Object.values(tenantRoles(n))) {
        const reserved = reservedRole(role);
        if (reserved) {
          ctx.addIssue({ code: 'custom', message: `would name its PostgreSQL role "${role}", but ${reserved}: choose another tenant name` });
          return;
        }
      }
    }),
  environments: z.array(resourceName).min(1, 'must name at least one environment'),
  /** Which block of 20 published host ports this tenant uses (needed where an environment publishes ports). */
  portSlot: z.number().int().min(0).max(3276).optional(),
  services: z.record(z.string(), z.unknown()).prefault({}),
  backup: z.record(z.string(), z.unknown()).optional(),
  overrides: z.record(resourceName, tenantEnvironmentOverride).optional(),
});

/** The validated services and backup settings of one tenant in one environment. */
export const tenantEnvironmentSchema = z.strictObject({
  services: servicesSchema,
  backup: backupJobs.prefault({}),
});

export type EnvironmentFile = z.output<typeof environmentSchema>;
export type TenantFile = z.output<typeof tenantFileSchema>;
export type TenantServices = z.output<typeof servicesSchema>;
export type BackupJobSettings = z.output<typeof backupJobSchema>;
export type PitrSettings = z.output<typeof tenantPitrSchema>;
export type Retention = z.output<typeof retentionPolicySchema>;

function validCidr(cidr: string): boolean {
  const [address, prefix] = cidr.split('/');
  const bits = Number(prefix);
  return address.split('.').every((octet) => Number(octet) <= 255) && bits >= 8 && bits <= 30;
}

/**
 * The tenant file as editors see it (JSON Schema export only): the same as tenantFileSchema,
 * with services, backup and overrides spelled out so typos are underlined while typing.
 */
export const tenantDocumentSchema = tenantFileSchema.extend({
  services: servicesSchema.optional(),
  backup: backupJobs.optional(),
  overrides: z
    .record(resourceName, z.strictObject({ services: servicesSchema.optional(), backup: backupJobs.optional() }))
    .optional(),
});
