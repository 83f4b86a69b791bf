import * as fs from 'fs';
import * as path from 'path';
import { containerName } from '../../config/naming';
import { startTestDocker, TestDocker } from './docker';
import type Docker from 'dockerode';
import { runTenantry } from '../../cli/program';
import { deployFromSynth, Deployment, execIn, ExecResult } from './docker-deploy';
import { buildTestImages } from './docker-images';
import { DOCKER_SUITES, DockerTestConfig, DockerTestConfigOptions, synthDockerTestConfig } from './docker-tenant';

/*
 * What every Docker suite does around its tests, once: start (or join) the test daemon, build the
 * images (cached), synthesize the suite's configuration in a temporary folder, create one
 * tenant's containers from cdk.tf.json and wait until they are ready; afterwards remove them, the
 * folder and the daemon's reference.
 */

export interface DeployedTenant {
  readonly daemon: TestDocker;
  /** The suite's temporary folder (configuration, cdktf.out, bind paths). */
  readonly dir: string;
  readonly config: DockerTestConfig;
  readonly deployment: Deployment;
  /** `<env>-<tenant>-<suffix>`, through the naming rule. */
  name(suffix: string): string;
}

export interface DeployedTenantOptions {
  /** The suite's environment and subnet (DOCKER_SUITES). */
  readonly suite: keyof typeof DOCKER_SUITES;
  /** Only these services' containers (and their one-shots). @default all of the tenant's */
  readonly services?: readonly string[];
  /** How long setting up may take: the first run on a machine builds the images. */
  readonly setupSeconds: number;
  /** Where the environment file says Docker is, started before synthesis (an sshd in front of the daemon); its `stop` runs after the containers are removed. */
  readonly dockerHost?: (dir: string, daemon: TestDocker) => Promise<{ docker: NonNullable<DockerTestConfigOptions['docker']>; stop(): Promise<void> }>;
}

const SECONDS = 1000;
/** Removing the containers and the folder. */
const TEARDOWN_SECONDS = 120;

/** Registers the suite's beforeAll and afterAll; the returned fields may be read once beforeAll has run. */
export function deployedTenant(options: DeployedTenantOptions): DeployedTenant {
  let daemon: TestDocker | undefined;
  let dir: string | undefined;
  let config: DockerTestConfig | undefined;
  let deployment: Deployment | undefined;
  let host: { stop(): Promise<void> } | undefined;
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the Docker suite's ${what} is read before its beforeAll has run (or after it failed)`);
    return value;
  };

  beforeAll(async () => {
    daemon = await startTestDocker();
    const images = await buildTestImages(daemon.docker);
    dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', `docker-${DOCKER_SUITES[options.suite].environment}-`));
    const custom = await options.dockerHost?.(dir, daemon);
    host = custom;
    config = synthDockerTestConfig(dir, { suite: options.suite, docker: custom?.docker });
    deployment = await deployFromSynth(daemon.docker, config.stackFile, { tenant: config.tenant, services: options.services, substitutions: images.substitutions });
    await deployment.waitReady();
  }, options.setupSeconds * SECONDS);

  afterAll(async () => {
    await deployment?.destroy();
    await host?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await daemon?.stop();
  }, TEARDOWN_SECONDS * SECONDS);

  return {
    get daemon() {
      return ready(daemon, 'daemon');
    },
    get dir() {
      return ready(dir, 'folder');
    },
    get config() {
      return ready(config, 'configuration');
    },
    get deployment() {
      return ready(deployment, 'deployment');
    },
    name(suffix: string) {
      const { environment, tenant } = ready(config, 'configuration');
      return containerName(environment, tenant, suffix);
    },
  };
}

/** `tenantry` run in this process on a configuration folder, its output captured (no TTY). */
export async function runCli(configDir: string, argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runTenantry(['--config-dir', configDir, ...argv], {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    isTTY: false,
    env: { PATH: process.env.PATH, ...env },
  });
  return { code, stdout, stderr };
}

/** An exec's stdout; an error with its whole output when it exited non-zero. */
export function stdoutOf(result: ExecResult, what: string): string {
  if (result.exitCode !== 0) throw new Error(`${what} exited ${result.exitCode}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** SQL as the image's superuser on the server's socket, inside the Postgres container. */
export async function psqlIn(container: Docker.Container, query: string, database: string): Promise<string> {
  const result = await execIn(container, ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'postgres', '-d', database, '-c', query], { user: 'postgres' });
  return stdoutOf(result, query).trim();
}

/** How often `until` asks again. */
const UNTIL_POLL_MS = 500;

/** Asks `probe` until it gives a value (a throw counts as not yet); after `timeoutMs`, fails naming the last error. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60 * SECONDS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, UNTIL_POLL_MS));
  }
}

/** Waits until the tenant's WAL receiver has flushed everything its Postgres server has written. */
export function receiverCaughtUp(postgres: Docker.Container, timeoutMs?: number): Promise<true> {
  const behind = "SELECT coalesce((SELECT flush_lsn >= pg_current_wal_lsn() FROM pg_stat_replication WHERE application_name = 'tenantry-agent postgres-pitr'), false)";
  return until('the receiver to catch up', async () => ((await psqlIn(postgres, behind, 'postgres')) === 't' ? true : undefined), timeoutMs);
}

/** The manifest of the agent's backup `id` of `job`, read inside its container as its own user. */
export async function agentManifest(agent: Docker.Container, job: string, id: string): Promise<{ details: Record<string, unknown> }> {
  const result = await execIn(agent, ['cat', `/backups/${job}/${id}/manifest.json`], { user: 'tenantry' });
  return JSON.parse(stdoutOf(result, 'cat manifest')) as { details: Record<string, unknown> };
}

/** A second between the writes and T, so that a restore to T cannot confuse them. */
const CLEAR_OF_T_MS = 1100;

/**
 * The point-in-time scenario's writes in `app`: table `events` with rows 1-40 ('before'), a time
 * T read from the server's clock, rows 41-60 ('after'), all archived. Returns T (ISO, UTC).
 */
export async function writeAroundTime(postgres: Docker.Container, archiveTimeoutMs?: number): Promise<string> {
  const sql = (query: string, database = 'app') => psqlIn(postgres, query, database);
  await sql('CREATE TABLE events (id int PRIMARY KEY, note text)');
  await sql("INSERT INTO events SELECT i, 'before' FROM generate_series(1, 40) i");
  await new Promise((resolve) => setTimeout(resolve, CLEAR_OF_T_MS));
  const target = await sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", 'postgres');
  await new Promise((resolve) => setTimeout(resolve, CLEAR_OF_T_MS));
  await sql("INSERT INTO events SELECT i, 'after' FROM generate_series(41, 60) i");
  await receiverCaughtUp(postgres, archiveTimeoutMs);
  return target;
}
