/** Whether the environment's Docker host runs Windows containers' file systems: said so, or reached through a named pipe. */
export function isWindowsDockerHost(docker: { readonly host: string; readonly platform: string }): boolean {
  return docker.platform === 'windows' || docker.host.startsWith('npipe://');
}

/** The identity of the machine a local socket or pipe (`unix://`, `npipe://`) reaches. */
export const LOCAL_DOCKER_HOST = 'the local machine';

/** Ports a Docker host URL may name or leave out: ssh's, and the Docker daemon's plain and TLS ones. */
const DEFAULT_PORTS: Record<string, readonly string[]> = { ssh: ['22'], tcp: ['2375', '2376'] };

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The machine a `docker.host` URL reaches, for every rule that keeps deployments on one machine
 * apart (bind paths, published ports, networks, container names): `ssh://deploy@db1.example.com`,
 * `ssh://root@DB1.example.com:22` and `tcp://db1.example.com:2376` are one machine, whatever user,
 * scheme or default port reaches it. A port other than the scheme's default is kept, as an ssh
 * tunnel's (`ssh://deploy@localhost:2201`) leads to another machine. Sockets and pipes are the
 * machine running Docker locally, as a loopback name on its default port is.
 *
 * Offline, an IP address and a host name for the same machine cannot be told apart: a
 * configuration must write one form of each machine (the README says so).
 */
export function dockerHostIdentity(url: string): string {
  const match = /^([a-z]+):\/\/(?:[^@/]*@)?(\[[^\]]*\]|[^:/?#]*)(?::(\d*))?/i.exec(url);
  if (!match) return url;
  const scheme = match[1].toLowerCase();
  if (scheme === 'unix' || scheme === 'npipe') return LOCAL_DOCKER_HOST;
  const host = match[2].toLowerCase().replace(/\.$/, '');
  const port = match[3] && !DEFAULT_PORTS[scheme]?.includes(match[3]) ? `:${match[3]}` : '';
  if (!port && LOOPBACK.has(host)) return LOCAL_DOCKER_HOST;
  return `${host}${port}`;
}
