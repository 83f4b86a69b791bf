import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'yaml';
import { LOCAL_POSTGRES_MAJOR } from './docker-images';
import { buildIfStale, REPO } from './build';

/*
 * A small configuration for the Docker tests, synthesized by the real app (`node dist/main.js`):
 * one environment on its own network, one tenant with Postgres (the major the local image has),
 * PgBouncer, Redis with one replica and three Sentinels, and its backup agent. Postgres and the
 * backups sit on named volumes (the environment's storage), Redis on bind paths (a per-service
 * override), so both kinds of volume are created from the JSON.
 */

export interface DockerTestConfig {
  /** The configuration directory (environments/, tenants/). */
  readonly configDir: string;
  /** cdktf.out/stacks/<environment>/cdk.tf.json. */
  readonly stackFile: string;
  readonly environment: string;
  readonly tenant: string;
  /** The host folder under which the tenant's bind-mounted Redis data lives. */
  readonly bindRoot: string;
}

/**
 * Each Docker suite's environment and network: the suites share one daemon and jest may run two at
 * once, so no two may share a name or a subnet (two suites once both took 172.63.0.0/16).
 */
export const DOCKER_SUITES = {
  tenant: { environment: 'dockertest', subnet: '172.61.0.0/16' },
  cli: { environment: 'clitest', subnet: '172.62.0.0/16' },
  pitr: { environment: 'pitrtest', subnet: '172.63.0.0/16' },
  cliPitr: { environment: 'clipitr', subnet: '172.64.0.0/16' },
  ssh: { environment: 'sshtest', subnet: '172.65.0.0/16' },
} as const;

export interface DockerTestConfigOptions {
  /** Which suite's environment name and subnet (DOCKER_SUITES). @default 'tenant' */
  readonly suite?: keyof typeof DOCKER_SUITES;
  /** @default 'acme' */
  readonly tenant?: string;
  /** The environment's `docker` section as a user writes it. @default { host: 'unix:///var/run/docker.sock' } */
  readonly docker?: { readonly host: string; readonly sshOptions?: readonly string[] };
}

/** Writes the configuration under `dir` and synthesizes it there (cdktf.out). */
export function synthDockerTestConfig(dir: string, options: DockerTestConfigOptions = {}): DockerTestConfig {
  const { environment, subnet } = DOCKER_SUITES[options.suite ?? 'tenant'];
  const tenant = options.tenant ?? 'acme';
  const configDir = path.join(dir, 'config');
  const bindRoot = path.join(dir, 'bind');
  fs.mkdirSync(path.join(configDir, 'environments'), { recursive: true });
  fs.mkdirSync(path.join(configDir, 'tenants'), { recursive: true });
  fs.mkdirSync(bindRoot, { recursive: true });
  const off = { offsite: false };
  fs.writeFileSync(
    path.join(configDir, 'environments', `${environment}.yaml`),
    stringify({
      name: environment,
      production: false,
      docker: options.docker ?? { host: 'unix:///var/run/docker.sock' },
      network: { name: `tenantry-${environment}`, subnet },
      storage: { kind: 'volume' },
      backup: { defaults: { postgres: off, redis: off, qdrant: off, minio: off } },
    }),
  );
  const redisData = (node: string) => ({ kind: 'bind', path: path.join(bindRoot, node) });
  fs.writeFileSync(
    path.join(configDir, 'tenants', `${tenant}.yaml`),
    stringify({
      name: tenant,
      environments: [environment],
      portSlot: 0,
      services: {
        postgres: { version: LOCAL_POSTGRES_MAJOR, databases: ['app'] },
        pgbouncer: {},
        redis: { replicas: 1, sentinels: 3, quorum: 2, downAfterMs: 5000, storage: redisData('redis') },
      },
    }),
  );
  const main = path.join(REPO, 'dist', 'main.js');
  buildIfStale(main);
  const outdir = path.join(dir, 'cdktf.out');
  const synth = spawnSync(process.execPath, [main], { cwd: dir, encoding: 'utf8', env: { ...process.env, TENANTRY_CONFIG_DIR: configDir, CDKTF_OUTDIR: outdir } });
  if (synth.status !== 0) throw new Error(`synth of the Docker test configuration failed (exit ${synth.status}):\n${synth.stdout}${synth.stderr}`);
  return { configDir, stackFile: path.join(outdir, 'stacks', environment, 'cdk.tf.json'), environment, tenant, bindRoot };
}
