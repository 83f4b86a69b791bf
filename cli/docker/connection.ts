import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { Duplex } from 'stream';
import Docker from 'dockerode';
import type { EnvironmentConfig } from '../../config/model';
import { errorMessage } from '../../runtime/agent/errors';
import { OperationFailed } from '../errors';

/** A Docker Engine API client for one environment's host, and how to let go of it. */
export interface DockerConnection {
  readonly docker: Docker;
  /** The URL it reaches, as the environment file (or DOCKER_HOST) says it. */
  readonly host: string;
  close(): void;
}

/**
 * The environment's `docker.host`, or DOCKER_HOST when set (one daemon for every environment: a
 * test daemon, or a tunnel an operator opened). `ssh://` runs the system's `ssh` with the
 * environment's `sshOptions`, as the Docker CLI and Terraform's Docker provider do: the user's
 * ~/.ssh/config, agent and known_hosts apply, and the host needs the `docker` CLI
 * (`docker system dial-stdio`). `tcp://` speaks TLS on port 2376 or with DOCKER_TLS_VERIFY=1,
 * with the client certificate in DOCKER_CERT_PATH (default ~/.docker), as the Docker CLI does.
 */
export function connect(environment: EnvironmentConfig, env: NodeJS.ProcessEnv): DockerConnection {
  const host = env.DOCKER_HOST || environment.docker.host;
  const sshOptions = env.DOCKER_HOST ? [] : (environment.docker.sshOptions ?? []);
  // Every field is given, so docker-modem's own reading of DOCKER_HOST can add nothing.
  const base = { host: undefined, port: undefined, socketPath: undefined, protocol: undefined } as Docker.DockerOptions;
  const url = parse(host, environment.name);
  switch (url.protocol) {
    case 'unix:':
      return plain(host, new Docker({ ...base, socketPath: decodeURIComponent(url.pathname) }));
    case 'npipe:':
      return plain(host, new Docker({ ...base, socketPath: `//${url.host}${url.pathname}`.replace(/\//g, '\\') }));
    case 'tcp:': {
      const port = Number(url.port || 2375);
      if (port !== 2376 && env.DOCKER_TLS_VERIFY !== '1') return plain(host, new Docker({ ...base, protocol: 'http', host: url.hostname, port }));
      const certs = env.DOCKER_CERT_PATH || path.join(os.homedir(), '.docker');
      const read = (name: string) => fs.readFileSync(path.join(certs, name));
      return plain(host, new Docker({ ...base, protocol: 'https', host: url.hostname, port, ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') }));
    }
    case 'ssh:': {
      const agent = new SshAgent(host, sshArguments(url, sshOptions));
      // docker-modem takes an `agent` for every request (modem.js, dial); @types/dockerode omits it.
      const options: Docker.DockerOptions & { agent: http.Agent } = { ...base, protocol: 'http', host: 'docker', agent };
      return { docker: new Docker(options), host, close: () => agent.destroy() };
    }
    default:
      throw new OperationFailed(`environment ${environment.name}: cannot reach Docker at ${host} (unix://, npipe://, tcp:// and ssh:// are understood)`);
  }
}

function parse(host: string, environment: string): URL {
  try {
    return new URL(host);
  } catch {
    throw new OperationFailed(`environment ${environment}: "${host}" is not a Docker host URL`);
  }
}

/** The Docker host could not be reached at all; the message names the host and why. */
export class DockerUnreachable extends OperationFailed {}

/** Node's codes for a connection that failed before Docker could answer: refused, unreachable, or a TLS handshake refused either way. */
const CONNECTION_FAILURE = /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOENT|EACCES|EPROTO|EPIPE|ENOTFOUND|EAI_AGAIN|ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO)/;

/**
 * A failure to reach `host` as one line naming it (`cannot reach Docker at tcp://…: self-signed
 * certificate in certificate chain`); any other error as it is.
 */
export function asUnreachable(host: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (error instanceof OperationFailed || typeof code !== 'string' || !CONNECTION_FAILURE.test(code)) return error;
  return new DockerUnreachable(`cannot reach Docker at ${host}: ${errorMessage(error)}`);
}

const plain = (host: string, docker: Docker): DockerConnection => ({ docker, host, close: () => undefined });

/** `ssh [options] [-p port] [-l user] host -- docker system dial-stdio`. */
export function sshArguments(url: URL, options: readonly string[]): string[] {
  return [
    ...options,
    ...(url.port ? ['-p', url.port] : []),
    ...(url.username ? ['-l', decodeURIComponent(url.username)] : []),
    url.hostname,
    '--',
    'docker',
    'system',
    'dial-stdio',
  ];
}

/**
 * An HTTP agent whose connections are `ssh … docker system dial-stdio` processes, kept alive between
 * requests. When ssh fails (a changed host key, a refused connection, a missing `docker` there), its
 * stdout ends before it exits: the connection is held open until ssh has exited, so a request fails
 * with ssh's own last line rather than an empty "socket hang up".
 */
class SshAgent extends http.Agent {
  constructor(
    private readonly host: string,
    private readonly args: string[],
  ) {
    super({ keepAlive: true, maxSockets: 4 });
  }

  override createConnection(): Duplex {
    const child = spawn('ssh', this.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
    const failed = (why: string) => socket.destroy(new DockerUnreachable(`cannot reach Docker at ${this.host}: ${why}`));
    // The connection lives as long as the ssh process, whatever its pipes do first.
    const socket = new Duplex({
      read: () => child.stdout.resume(),
      // A write into a pipe ssh has closed is answered by ssh's exit, with its reason.
      write: (chunk: Buffer, _encoding, done) => child.stdin.write(chunk, () => done()),
      final: (done) => child.stdin.end(() => done()),
      destroy: (error, done) => {
        child.kill();
        done(error);
      },
    });
    child.stdin.on('error', () => undefined);
    child.stdout.on('data', (chunk: Buffer) => socket.push(chunk) || child.stdout.pause());
    child.on('error', (error) => failed(`ssh: ${error.message}`));
    child.on('close', (code, signal) => {
      if (code === 0 || signal !== null) socket.push(null);
      else failed(lastLine(stderr) ?? `ssh exited ${code}`);
    });
    // http expects a socket's knobs; a pipe to ssh has none of them to turn.
    Object.assign(socket, { setKeepAlive: () => socket, setNoDelay: () => socket, setTimeout: () => socket, ref: () => socket, unref: () => socket });
    return socket;
  }
}

/** ssh's last line of stderr: its reason for giving up (the lines before are warnings and banners). */
function lastLine(text: string): string | undefined {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .pop();
}
