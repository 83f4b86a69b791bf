import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { portAccepts, signalThenKill, sleep, spawnWatched } from './processes';
import { freePort } from './servers';

/*
 * A real sshd for the tests of `docker.host: ssh://…` (Debian's openssh-server, installed by
 * test/install-servers.sh). It runs as root on 127.0.0.1 with its own config, host key, pid file
 * and port, accepts only the one generated client key, and sets DOCKER_HOST for that key's
 * sessions (authorized_keys `environment=`, PermitUserEnvironment) so the remote
 * `docker system dial-stdio` reaches the tests' daemon as a remote host's docker reaches its own.
 * The client side gets what a user has: an identity file and a known_hosts with the host's key.
 */

const READY_TIMEOUT_MS = 15_000;

export interface TestSshd {
  readonly port: number;
  /** `ssh://root@127.0.0.1:<port>`, as an environment's `docker.host` names it. */
  readonly url: string;
  /** The client's private key. */
  readonly identityFile: string;
  /** A known_hosts holding this sshd's host key (under `[127.0.0.1]:<port>`). */
  readonly knownHosts: string;
  /** The `sshOptions` an environment file gives for this host. */
  readonly sshOptions: string[];
  stop(): Promise<void>;
}

function keygen(file: string, comment: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  return fs.readFileSync(`${file}.pub`, 'utf8').trim();
}

/** Starts sshd with its files under `dir`, its sessions' `docker` pointed at `dockerHost`. */
export async function startTestSshd(dir: string, dockerHost: string): Promise<TestSshd> {
  if (!fs.existsSync('/usr/sbin/sshd')) throw new Error('The ssh tests need sshd: bash test/install-servers.sh (as root) installs openssh-server');
  if (process.getuid?.() !== 0) throw new Error('The ssh tests run sshd as root (it logs in as root to reach the tests\' Docker daemon): run them as root');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // sshd's privilege separation directory, which Debian's service unit would create.
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = path.join(dir, 'host_ed25519');
  const identityFile = path.join(dir, 'client_ed25519');
  const hostPublic = keygen(hostKey, 'tenantry-test-sshd');
  const clientPublic = keygen(identityFile, 'tenantry-test-client');
  const authorizedKeys = path.join(dir, 'authorized_keys');
  fs.writeFileSync(authorizedKeys, `environment="DOCKER_HOST=${dockerHost}" ${clientPublic}\n`, { mode: 0o600 });
  const port = await freePort();
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPublic.split(' ').slice(0, 2).join(' ')}\n`, { mode: 0o600 });
  const configFile = path.join(dir, 'sshd_config');
  const pidFile = path.join(dir, 'sshd.pid');
  fs.writeFileSync(
    configFile,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'AuthenticationMethods publickey',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'PermitUserEnvironment DOCKER_HOST',
      'UsePAM no',
      // Its files live under TMPDIR, which in CI is below /tmp (world-writable): StrictModes refuses an
      // authorized_keys file below such a directory. This sshd is a throwaway on 127.0.0.1 with a
      // generated key; nothing else can write those files.
      'StrictModes no',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'PrintMotd no',
      '',
    ].join('\n'),
  );
  // -D: stay in the foreground (its PID is the one to stop); -e: log to stderr, kept for failures.
  const sshd = await spawnWatched('sshd', ['/usr/sbin/sshd', '-D', '-e', '-f', configFile], {});
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await portAccepts(port))) {
    if (sshd.exited() || Date.now() > deadline) {
      await signalThenKill(sshd.pid, 'SIGTERM');
      throw new Error(`sshd on 127.0.0.1:${port} did not start (${sshd.exited() ?? 'timeout'}):\n${sshd.logTail()}`);
    }
    await sleep(100);
  }
  return {
    port,
    url: `ssh://root@127.0.0.1:${port}`,
    identityFile,
    knownHosts,
    sshOptions: ['-i', identityFile, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'],
    stop: () => signalThenKill(sshd.pid, 'SIGTERM'),
  };
}
