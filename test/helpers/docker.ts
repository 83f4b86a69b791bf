import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import Docker from 'dockerode';
import { isAlive, sleep } from './processes';

/*
 * A real Docker daemon for the tests (TESTING.md, "Docker engine"). DOCKER_HOST, when it answers,
 * is used as it is and never stopped. Otherwise the tests run their own dockerd as root, with a
 * data root in a cache folder that outlives the checkout (so images built once are reused by
 * every later run), its own socket, exec root and pid file, so it never touches a system daemon.
 *
 * Several test runs may share that daemon (two checkouts testing at once, or a run after one that
 * was killed): each registers its process id in the cache's users/ folder, and the last one to
 * stop stops the daemon. A registration whose process is gone does not count.
 */

/** Where the tests' own daemon keeps its data root, socket, exec root, pid file and log. */
export const TEST_DOCKER_CACHE = '/var/cache/tenantry-docker';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 60_000;

export interface TestDocker {
  /** The Engine API client. */
  readonly docker: Docker;
  /** The daemon's address as DOCKER_HOST spells it (unix:///…, tcp://…), for child processes. */
  readonly host: string;
  /** Whether this call started the daemon (false: DOCKER_HOST's, or one another run started). */
  readonly startedHere: boolean;
  /**
   * Releases the daemon: a DOCKER_HOST daemon is left alone; the tests' own is stopped (SIGTERM,
   * then waits for its process to exit) when no other live run uses it.
   */
  stop(): Promise<void>;
}

/** A dockerode client for a DOCKER_HOST value (unix:// or tcp://). */
export function dockerClient(host: string): Docker {
  if (host.startsWith('unix://')) return new Docker({ socketPath: host.slice('unix://'.length) });
  const url = new URL(host);
  if (url.protocol === 'tcp:' || url.protocol === 'http:') return new Docker({ host: url.hostname, port: Number(url.port || 2375) });
  throw new Error(`DOCKER_HOST=${host}: the tests speak to unix:// and tcp:// daemons only`);
}

async function answers(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/** The tests' own daemon's files under `cache`. */
export function ownDaemonPaths(cache: string) {
  return {
    dataRoot: path.join(cache, 'data'),
    execRoot: path.join(cache, 'exec'),
    socket: path.join(cache, 'docker.sock'),
    pidFile: path.join(cache, 'dockerd.pid'),
    log: path.join(cache, 'dockerd.log'),
    tmp: path.join(cache, 'tmp'),
    users: path.join(cache, 'users'),
  };
}

function daemonPid(pidFile: string): number | undefined {
  if (!fs.existsSync(pidFile)) return undefined;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  return pid > 0 && isAlive(pid) ? pid : undefined;
}

function liveUsers(usersDir: string): number[] {
  const pids = fs.readdirSync(usersDir).map(Number).filter((pid) => pid > 0);
  for (const pid of pids.filter((p) => !isAlive(p))) fs.rmSync(path.join(usersDir, String(pid)), { force: true });
  return pids.filter(isAlive);
}

export interface StartOptions {
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** @default TEST_DOCKER_CACHE */
  readonly cache?: string;
  /** Extra dockerd arguments (a second daemon beside the first needs `--bridge=none`, for one). */
  readonly daemonArgs?: readonly string[];
}

/** DOCKER_HOST's daemon if it answers, else the tests' own (started if none runs); see the file comment. */
export async function startTestDocker(options: StartOptions = {}): Promise<TestDocker> {
  const env = options.env ?? process.env;
  if (env.DOCKER_HOST) {
    const docker = dockerClient(env.DOCKER_HOST);
    if (await answers(docker)) return { docker, host: env.DOCKER_HOST, startedHere: false, stop: async () => undefined };
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      `The Docker tests need a Docker daemon: ${env.DOCKER_HOST ? `DOCKER_HOST=${env.DOCKER_HOST} does not answer, and ` : ''}` +
        `only root can start the tests' own dockerd. Run them as root, or set DOCKER_HOST to a daemon that answers (e.g. DOCKER_HOST=unix:///var/run/docker.sock).`,
    );
  }
  const files = ownDaemonPaths(options.cache ?? TEST_DOCKER_CACHE);
  fs.mkdirSync(files.users, { recursive: true, mode: 0o700 });
  fs.mkdirSync(files.dataRoot, { recursive: true, mode: 0o710 });
  const host = `unix://${files.socket}`;
  const docker = new Docker({ socketPath: files.socket });
  const registration = path.join(files.users, String(process.pid));
  fs.writeFileSync(registration, '');

  let startedHere = false;
  if (!(await answers(docker))) {
    // A daemon still starting (another run's) gets its chance before a second one is tried.
    if (daemonPid(files.pidFile) === undefined) {
      const log = fs.openSync(files.log, 'a');
      // runc writes every exec's process file under dockerd's TMPDIR: the daemon outlives the run
      // that started it (and that run's TMPDIR, which it removes), so it gets one of its own.
      fs.mkdirSync(files.tmp, { recursive: true, mode: 0o700 });
      const child = spawn(
        '/usr/sbin/dockerd',
        ['--data-root', files.dataRoot, '--exec-root', files.execRoot, '--host', host, '--pidfile', files.pidFile, ...(options.daemonArgs ?? [])],
        { detached: true, stdio: ['ignore', log, log], env: { ...process.env, TMPDIR: files.tmp } },
      );
      fs.closeSync(log);
      child.unref();
      startedHere = true;
    }
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await answers(docker))) {
      if (Date.now() > deadline) {
        fs.rmSync(registration, { force: true });
        const tail = fs.existsSync(files.log) ? fs.readFileSync(files.log, 'utf8').split('\n').slice(-15).join('\n') : '';
        throw new Error(`dockerd did not answer on ${files.socket} within ${READY_TIMEOUT_MS / 1000} s; the end of ${files.log}:\n${tail}`);
      }
      await sleep(250);
    }
  }

  const stop = async () => {
    fs.rmSync(registration, { force: true });
    if (liveUsers(files.users).length > 0) return;
    const pid = daemonPid(files.pidFile);
    if (pid === undefined) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (isAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`dockerd (pid ${pid}) did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM; see ${files.log}`);
      await sleep(200);
    }
  };
  return { docker, host, startedHere, stop };
}
