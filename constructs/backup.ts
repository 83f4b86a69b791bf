import { Construct } from 'constructs';
import type { BackupJobConfig, StorageConfig } from '../config/model';
import { BACKUP_SERVICE } from '../config/container-labels';
import type { BackupService } from '../config/schema';
import {
  AGENT_HTTP_PORT,
  AgentConfig,
  agentConfigSchema,
  CONFIG_JSON_ENV,
  MINIO_DEFAULT_REGION,
  MINIO_RESTORE_CREDENTIAL_ENV,
  OFFSITE_RETRY_DEFAULTS,
  POSTGRES_DEFAULTS,
  RESTORE_CREDENTIAL_ENV,
} from '../runtime/agent/config';
import { POSTGRES_PITR_JOB } from '../runtime/agent/pitr/layout';
import type { PostgresEndpoint } from './postgres';
import { HostPort, ServiceContainer } from './service-container';
import { StatefulVolume, VolumeMount } from './storage';
import { escapeTerraformTemplate } from './terraform-text';


/**
 * The agent container's memory limit: its Node process plus the one client a job runs (pg_dump,
 * redis-cli, mc), which stream each backup to the volume rather than through memory.
 */
export const BACKUP_AGENT_MEMORY_MB = 256;

/** What a `postgres-pitr` job streams from, and the databases its verification counts rows in. */
export type PitrSource = Pick<PostgresEndpoint, 'host' | 'port' | 'databases' | 'replication'>;

/** Where finished backups are copied, and the credential that reaches only this tenant's part of it. */
export interface BackupOffsiteTarget {
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  /** @default AWS S3 */
  readonly endpoint?: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface BackupProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /** The backup agent's image (ID or pinned reference). */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The environment's storage: where the backups volume lives. */
  readonly storage: StorageConfig;
  /** IANA zone the schedules and retention's calendar days are evaluated in. */
  readonly timeZone: string;
  /** Resolved jobs by service; only services that are present get a job. */
  readonly jobs: Readonly<Partial<Record<BackupService, BackupJobConfig>>>;
  /** The tenant's databases and the backup role that dumps them. @default no Postgres job */
  readonly postgres?: PostgresEndpoint;
  /**
   * The server whose WAL the `postgres-pitr` job streams, when it is not `postgres`: the
   * environment's shared server, archived by the environment's own agent (no logical job there).
   * @default `postgres`
   */
  readonly pitrSource?: PitrSource;
  /** Where operators get the restore credential (quoted by a restore run without it). @default not said */
  readonly postgresRestoreSource?: string;
  /** Where the job asks for a replica to copy the RDB from. @default no Redis job */
  readonly redis?: {
    /** `host:port` of every sentinel. */
    readonly sentinelAddresses: readonly string[];
    /** The name the sentinels know the master by. */
    readonly masterName: string;
    /** The Redis servers' password (a reference). */
    readonly password: string;
    /** The sentinels' password (a reference). */
    readonly sentinelPassword: string;
  };
  /** The server the job takes snapshots of. @default no Qdrant job */
  readonly qdrant?: {
    /** HTTP API URL on the environment network. */
    readonly url: string;
    /** The API key (a reference). */
    readonly apiKey: string;
  };
  /** The object store the job mirrors. @default no MinIO job */
  readonly objectStore?: {
    /** S3 API endpoint on the environment network. */
    readonly endpoint: string;
    /**
     * The agent's own, read-only MinIO user (a restore gets root from the operator, for that restore only).
     * @default no MinIO job (a store without buckets has no such user)
     */
    readonly backup?: {
      /** The user's access key. */
      readonly accessKey: string;
      /** Its secret key (a reference). */
      readonly secretKey: string;
    };
    /** The buckets the job mirrors. */
    readonly buckets: readonly { readonly name: string }[];
  };
  /** Required when any job has `offsite: true`. @default no off-site copies */
  readonly offsite?: BackupOffsiteTarget;
  /** A Slack-compatible webhook URL (a secret: pass a Terraform variable's value) for failures. @default no webhook */
  readonly webhookUrl?: string;
  /** The agent container's memory limit in MiB. @default BACKUP_AGENT_MEMORY_MB */
  readonly memoryMb?: number;
  /** Host port for the agent's /metrics and /health. @default not published */
  readonly publishedPort?: HostPort;
}

/**
 * The tenant's backup container: the `tenantry-agent` runs every job on its schedule, keeps its
 * backups on their own volume (the environment's storage), and copies them off-site. Its config
 * is exactly `agentConfig` (validated here with the agent's own schema, so a construct change
 * that the agent would reject fails at synth, not at 2 a.m.), handed over as JSON in an env var
 * because the container's root file system is read-only; secrets reach it only as env vars.
 */
export class Backup extends Construct {
  readonly agentConfig: AgentConfig;
  readonly metricsUrl: string;
  /** The backup volume (the Postgres container mounts it read-only for point-in-time restores). */
  readonly volume: VolumeMount;

  constructor(scope: Construct, id: string, props: BackupProps) {
    super(scope, id);
    const { config, env } = agentConfigFor(props);
    const parsed = agentConfigSchema.safeParse(config);
    if (!parsed.success) {
      throw new Error(`backup for tenant "${props.tenant}": the agent would reject its config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    this.agentConfig = parsed.data;

    const volume = new StatefulVolume(this, 'backups', {
      environment: props.environment,
      tenant: props.tenant,
      service: BACKUP_SERVICE,
      purpose: 'backups',
      storage: props.storage,
      containerPath: '/backups',
    });
    this.volume = volume.mount;
    const container = new ServiceContainer(this, 'agent', {
      environment: props.environment,
      tenant: props.tenant,
      service: BACKUP_SERVICE,
      image: props.image,
      network: props.network,
      launch: { files: [], command: ['serve'], env: [...Object.keys(env), CONFIG_JSON_ENV] },
      // Escaped like an upload: Terraform would read a `${` in the JSON as its own interpolation.
      env: { ...env, [CONFIG_JSON_ENV]: escapeTerraformTemplate(JSON.stringify(this.agentConfig)) },
      memoryMb: props.memoryMb ?? BACKUP_AGENT_MEMORY_MB,
      volumes: [volume.mount],
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: AGENT_HTTP_PORT, host: props.publishedPort }],
      healthcheck: 'tenantry-agent health',
    });
    this.metricsUrl = `http://${container.hostname}:${AGENT_HTTP_PORT}/metrics`;
  }
}

/** The agent's JSON config (no secrets: only the names of the env vars that carry them) and those env vars. */
function agentConfigFor(props: BackupProps): { config: AgentConfig; env: Record<string, string> } {
  const env: Record<string, string> = {};
  const jobs: AgentConfig['jobs'] = [];
  const common = (service: BackupService, job: BackupJobConfig) => ({ name: service, schedule: job.schedule, retention: { ...job.retention }, offsite: job.offsite });
  const { postgres, redis, qdrant, objectStore } = props;

  if (props.jobs.postgres && postgres) {
    env.PG_PASSWORD = postgres.backupPassword;
    jobs.push({
      ...common('postgres', props.jobs.postgres),
      kind: 'postgres',
      verifySchedule: props.jobs.postgres.verifySchedule,
      postgres: {
        host: postgres.host,
        port: postgres.port,
        user: postgres.backupRole,
        passwordEnv: 'PG_PASSWORD',
        databases: [...postgres.databases],
        ...POSTGRES_DEFAULTS,
        restoreCredential: { ...RESTORE_CREDENTIAL_ENV, source: props.postgresRestoreSource },
      },
    });
  }
  const pitr = props.jobs.postgres?.pitr;
  const source = props.pitrSource ?? postgres;
  if (pitr && source) {
    if (!source.replication) throw new Error(`backup for tenant "${props.tenant}": point-in-time recovery needs a server with a replication role (a server built with pitr)`);
    env.PG_REPLICATION_PASSWORD = source.replication.password;
    jobs.push({
      name: POSTGRES_PITR_JOB,
      kind: 'postgres-pitr',
      schedule: pitr.baseBackupSchedule,
      retention: { ...props.jobs.postgres!.retention },
      offsite: props.jobs.postgres!.offsite,
      verifySchedule: pitr.verifySchedule,
      pitr: {
        host: source.host,
        port: source.port,
        user: source.replication.user,
        passwordEnv: 'PG_REPLICATION_PASSWORD',
        slot: source.replication.slot,
        windowDays: pitr.windowDays,
        maxLagSeconds: pitr.maxLagSeconds,
        maxSlotWalKeepMb: source.replication.maxSlotWalKeepMb,
        databases: [...source.databases],
      },
    });
  }
  if (props.jobs.redis && redis) {
    env.REDIS_PASSWORD = redis.password;
    env.SENTINEL_PASSWORD = redis.sentinelPassword;
    jobs.push({
      ...common('redis', props.jobs.redis),
      kind: 'redis',
      redis: { sentinels: [...redis.sentinelAddresses], masterName: redis.masterName, passwordEnv: 'REDIS_PASSWORD', sentinelPasswordEnv: 'SENTINEL_PASSWORD' },
    });
  }
  if (props.jobs.qdrant && qdrant) {
    env.QDRANT_API_KEY = qdrant.apiKey;
    jobs.push({ ...common('qdrant', props.jobs.qdrant), kind: 'qdrant', qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } });
  }
  if (props.jobs.minio && objectStore?.backup && objectStore.buckets.length > 0) {
    env.MINIO_ACCESS_KEY = objectStore.backup.accessKey;
    env.MINIO_SECRET_KEY = objectStore.backup.secretKey;
    jobs.push({
      ...common('minio', props.jobs.minio),
      kind: 'minio',
      minio: {
        endpoint: objectStore.endpoint,
        accessKeyEnv: 'MINIO_ACCESS_KEY',
        secretKeyEnv: 'MINIO_SECRET_KEY',
        ...MINIO_RESTORE_CREDENTIAL_ENV,
        buckets: objectStore.buckets.map((b) => b.name),
        region: MINIO_DEFAULT_REGION,
      },
    });
  }

  let offsite: AgentConfig['offsite'];
  if (props.offsite) {
    env.OFFSITE_ACCESS_KEY_ID = props.offsite.accessKeyId;
    env.OFFSITE_SECRET_ACCESS_KEY = props.offsite.secretAccessKey;
    offsite = {
      bucket: props.offsite.bucket,
      prefix: props.offsite.prefix,
      region: props.offsite.region,
      endpoint: props.offsite.endpoint,
      forcePathStyle: props.offsite.endpoint !== undefined,
      accessKeyIdEnv: 'OFFSITE_ACCESS_KEY_ID',
      secretAccessKeyEnv: 'OFFSITE_SECRET_ACCESS_KEY',
      retry: { ...OFFSITE_RETRY_DEFAULTS },
    };
  }

  if (props.webhookUrl !== undefined) env.TENANTRY_WEBHOOK_URL = props.webhookUrl;
  const config: AgentConfig = {
    tenant: props.tenant,
    environment: props.environment,
    timeZone: props.timeZone,
    backupDir: '/backups',
    http: { port: AGENT_HTTP_PORT, host: '0.0.0.0' },
    webhook: props.webhookUrl === undefined ? undefined : { urlEnv: 'TENANTRY_WEBHOOK_URL' },
    offsite,
    jobs,
  };
  return { config: JSON.parse(JSON.stringify(config)) as AgentConfig, env };
}
