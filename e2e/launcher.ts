/**
 * Runs one tenant of a synthesized stack as local processes: synthesize, translate (the table in
 * translation.ts), then start each container's translated entrypoint/command with its files and
 * env. PgBouncer, Redis and Sentinel start through the test harness (test/helpers/servers.ts),
 * which runs their start scripts with /bin/sh as the postgres user; Postgres (emulated image
 * entrypoint) and the backup agent start through processes.ts. The drill and the benchmarks share
 * this, so they all run exactly the synthesized configs.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { deploymentName } from '../config/naming';
import { CONFIG_JSON_ENV } from '../runtime/agent/config';
import { freePort, removeTempDir, startPgBouncer, startRedisProcess, tempDir } from '../test/helpers/servers';
import { startPostgresLikeImage } from './postgres-entrypoint';
import { Owner, portAccepts, runToCompletion, RunResult, startLongRunning } from './processes';
import { readStack } from './terraform';
import { LocalContainer, materialize, translateTenant, Translation } from './translation';

export const REPO_DIR = path.resolve(__dirname, '..', '..');

export interface RunningService {
  name: string;
  service: string;
  pid: number;
  port: number;
  /** What the container's pre-start step (its wrapper) printed, if it has one. */
  preStartOutput?: string;
  stop(): Promise<void>;
}

/** A missing program: the drill exits 2 naming the Debian package. */
export class MissingBinary extends Error {
  constructor(readonly binary: string, readonly debianPackage: string) {
    super(`'${binary}' is not installed; install it with: apt-get install -y ${debianPackage}`);
  }
}

/** Debian keeps one bin dir per PostgreSQL major version; the newest one wins (as in the harness). */
export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new MissingBinary('initdb', 'postgresql');
  return path.join(base, versions[0], 'bin');
}

function installed(binary: string): boolean {
  return binary.includes('/') ? fs.existsSync(binary) : (process.env.PATH ?? '').split(':').some((dir) => fs.existsSync(path.join(dir, binary)));
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Programs the drill and benchmarks run, with the Debian package of each. What is missing is
 * installed when running as root (as TESTING.md asks): the servers by the project's own
 * test/install-servers.sh, anything else with apt-get. What is still missing throws MissingBinary.
 */
export function checkBinaries(extra: [string, string][] = []): void {
  const required = (): [string, string][] => {
    const bin = fs.existsSync('/usr/lib/postgresql') ? postgresBinDirOrNull() : null;
    return [
      [bin ? path.join(bin, 'postgres') : 'initdb', 'postgresql'],
      [bin ? path.join(bin, 'pg_ctl') : 'pg_ctl', 'postgresql'],
      ['psql', 'postgresql-client'],
      ['pg_dump', 'postgresql-client'],
      ['pg_restore', 'postgresql-client'],
      ['/usr/sbin/pgbouncer', 'pgbouncer'],
      ['redis-server', 'redis-server'],
      ['redis-sentinel', 'redis-sentinel'],
      ['redis-cli', 'redis-tools'],
      ...extra,
    ];
  };
  let missing = required().filter(([binary]) => !installed(binary));
  if (missing.length > 0 && isRoot()) {
    try {
      execFileSync('bash', [path.join(REPO_DIR, 'test', 'install-servers.sh')], { stdio: 'inherit', timeout: 600_000 });
    } catch {
      // Whatever is still missing is reported below.
    }
    missing = required().filter(([binary]) => !installed(binary));
    for (const [, debianPackage] of missing) installPackage(debianPackage);
    missing = required().filter(([binary]) => !installed(binary));
  }
  if (missing.length > 0) throw new MissingBinary(missing[0][0], missing[0][1]);
}

function postgresBinDirOrNull(): string | null {
  try {
    return postgresBinDir();
  } catch {
    return null;
  }
}

/** apt-get install of one package (as root); false when that fails. Bounded in time. */
export function installPackage(debianPackage: string): boolean {
  if (!isRoot()) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', debianPackage], { env, stdio: 'pipe', timeout: 300_000 });
  try {
    install();
    return true;
  } catch {
    try {
      execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'pipe', timeout: 300_000 });
      install();
      return true;
    } catch {
      return false;
    }
  }
}

/** A program a healthcheck calls but the drill does not need: installed when possible. */
export function ensureOptional(binary: string, debianPackage: string): boolean {
  return installed(binary) || (installPackage(debianPackage) && installed(binary));
}

/**
 * `node dist/main.js` with CDKTF_OUTDIR: the compiled app, as `npm run synth` runs it. Returns
 * the environment's cdk.tf.json.
 */
export function synthesize(outdir: string, environment: string): string {
  const main = path.join(REPO_DIR, 'dist', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} does not exist; run \`npm run build\` first`);
  execFileSync(process.execPath, [main], { cwd: REPO_DIR, env: { ...process.env, CDKTF_OUTDIR: outdir }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const file = path.join(outdir, 'stacks', environment, 'cdk.tf.json');
  if (!fs.existsSync(file)) throw new Error(`synth wrote no ${file}`);
  return file;
}

export class TenantRun {
  private readonly services = new Map<string, RunningService>();

  private constructor(
    readonly translation: Translation,
    readonly root: string,
    readonly owner: Owner,
    readonly stackFile: string,
  ) {}

  /** Synthesizes the config in the repository, reads the stack and translates one tenant. */
  static async prepare(environment: string, tenant: string): Promise<TenantRun> {
    const root = tempDir(`drill-${deploymentName(environment, tenant)}`);
    try {
      const stat = fs.statSync(root);
      const owner = { uid: stat.uid, gid: stat.gid };
      const stackFile = synthesize(path.join(root, 'cdktf.out'), environment);
      const translation = await translateTenant(readStack(stackFile), { environment, tenant, root, repoDir: REPO_DIR, postgresBinDir: postgresBinDir(), freePort });
      return new TenantRun(translation, root, owner, stackFile);
    } catch (error) {
      removeTempDir(root);
      throw error;
    }
  }

  container(name: string): LocalContainer {
    const c = this.translation.containers.find((x) => x.name === name);
    if (!c) throw new Error(`no container ${name} in the drill (have: ${this.translation.containers.map((x) => x.name).join(', ')})`);
    return c;
  }

  byService(service: string): LocalContainer[] {
    return this.translation.containers.filter((c) => c.service === service);
  }

  running(name: string): RunningService {
    const s = this.services.get(name);
    if (!s) throw new Error(`${name} is not running`);
    return s;
  }

  /**
   * Writes the container's files and starts it; resolves when it accepts connections. Starting
   * a container again after it died keeps its dirs (data), as a Docker restart does.
   */
  async start(name: string): Promise<RunningService> {
    const c = this.container(name);
    materialize(c, this.owner);
    const preStartOutput = c.preStart ? await this.preStart(c) : undefined;
    const started = await this.launch(c);
    const service: RunningService = {
      name,
      service: c.service,
      pid: started.pid,
      port: c.port,
      preStartOutput,
      stop: async () => {
        this.services.delete(name);
        await started.stop();
      },
    };
    this.services.set(name, service);
    return service;
  }

  /** Forgets a service the caller killed itself (e.g. SIGKILL in a failover drill). */
  forget(name: string): void {
    this.services.delete(name);
  }

  /** The wrapper split off the container's entrypoint (translation.ts), as root with the container's env. */
  private async preStart(c: LocalContainer): Promise<string> {
    const result = await runToCompletion(c.preStart!, { env: c.env, timeoutMs: 600_000 });
    const output = `${result.stdout}${result.stderr}`.trim();
    if (result.code !== 0) throw new Error(`${c.name}: ${c.preStart!.join(' ')} exited with ${result.code}: ${output.slice(-2000)}`);
    return output;
  }

  private async launch(c: LocalContainer): Promise<{ pid: number; stop(): Promise<void> }> {
    if (c.launch === 'postgres-image-entrypoint') return startPostgresLikeImage(c, this.owner, this.root);
    const [shell, script, ...rest] = c.argv;
    const shellScript = shell === '/bin/sh' && script !== undefined && rest.length === 0;
    if (c.service === 'pgbouncer' || c.service === 'redis' || c.service === 'sentinel') {
      if (!shellScript || c.user !== 'postgres') throw new Error(`${c.name}: expected /bin/sh <start script> as the postgres user (argv: ${c.argv.join(' ')}, user ${c.user})`);
      if (c.service === 'pgbouncer') {
        const ini = c.files.find((f) => f.path.endsWith('.ini'));
        return startPgBouncer(ini?.path ?? '', c.port, c.env, script);
      }
      return startRedisProcess({ script, env: c.env }, c.port);
    }
    if (c.service === 'backup') {
      return startLongRunning(c.name, c.argv, { env: c.env, owner: this.ownerOf(c), stopSignal: 'SIGTERM', emergencySignal: 'SIGKILL' }, () => portAccepts(c.port));
    }
    throw new Error(`${c.name}: the drill does not know how to start service "${c.service}"`);
  }

  /**
   * Runs a one-shot agent command (`run postgres`, `restore …`) as the backup container would
   * with `docker exec`: the image entrypoint, the container's env (its translated config in it).
   * `extraEnv` is what an operator passes for the one command (`docker exec -e …`), e.g. the
   * restore credential, which the container never holds.
   */
  agent(args: string[], extraEnv: Record<string, string> = {}, timeoutMs = 300_000): Promise<RunResult> {
    const [c] = this.byService('backup');
    if (!c) throw new Error('the tenant has no backup container');
    const serve = c.argv.indexOf('serve');
    if (serve < 0 || !c.env[CONFIG_JSON_ENV]) throw new Error(`${c.name}: expected "<agent> serve" with its config in ${CONFIG_JSON_ENV} (argv: ${c.argv.join(' ')})`);
    return runToCompletion([...c.argv.slice(0, serve), ...args], { env: { ...c.env, ...extraEnv }, owner: this.ownerOf(c), timeoutMs });
  }

  /** The container's healthcheck, run as Docker would (CMD-SHELL) with the container's env and user. */
  healthcheck(name: string): Promise<RunResult> {
    const c = this.container(name);
    if (!c.healthcheck) return Promise.resolve({ code: 0, stdout: '(no healthcheck)', stderr: '' });
    return runToCompletion(['/bin/sh', '-c', c.healthcheck], { env: c.env, owner: this.ownerOf(c), timeoutMs: 5000 });
  }

  /** The OS user a container's processes run as (its translation row): the postgres user, else root. */
  ownerOf(c: LocalContainer): Owner | undefined {
    return c.user === 'postgres' ? this.owner : undefined;
  }

  /** Stops everything started, in reverse order, by PID; then removes the temp dir. */
  async stopAll(): Promise<number> {
    const all = [...this.services.values()].reverse();
    for (const s of all) await s.stop();
    removeTempDir(this.root);
    return all.length;
  }

  /** Ports of every container (run or not) that still accept connections: should be none after stopAll. */
  async portsStillTaken(): Promise<number[]> {
    const ports = this.translation.containers.flatMap((c) => Object.values(c.ports));
    const taken: number[] = [];
    for (const port of ports) if (await portAccepts(port)) taken.push(port);
    return taken;
  }
}
