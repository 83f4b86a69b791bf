import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as tls from 'tls';

/*
 * A Docker host on tcp:// with mutual TLS, as `dockerd --tlsverify` serves one: a TLS listener on
 * 127.0.0.1 that asks every client for a certificate of its own CA and relays the connection to
 * the tests' daemon. Certificates are made here with openssl, in the layout the Docker CLI reads
 * from DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem).
 */

export interface TlsDockerHost {
  /** `tcp://127.0.0.1:<port>`. */
  readonly url: string;
  /** ca.pem, cert.pem, key.pem of a client the listener accepts. */
  readonly certDir: string;
  /** The same files from another CA: the listener refuses this client, and this CA does not know the listener. */
  readonly strangerCertDir: string;
  stop(): Promise<void>;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, and a key and certificate it signed for `subject` with `extensions` (openssl -extfile text). */
function issue(dir: string, ca: string, name: string, subject: string, extensions: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subject]);
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-out', `${name}-cert.pem`, '-days', '1', '-extfile', `${name}.ext`]);
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`]);
}

/** The CLI's view of one client: DOCKER_CERT_PATH's three files. */
function clientDir(dir: string, ca: string, client: string, into: string): string {
  fs.mkdirSync(into, { recursive: true });
  fs.copyFileSync(path.join(dir, `${ca}.pem`), path.join(into, 'ca.pem'));
  fs.copyFileSync(path.join(dir, `${client}-cert.pem`), path.join(into, 'cert.pem'));
  fs.copyFileSync(path.join(dir, `${client}-key.pem`), path.join(into, 'key.pem'));
  return into;
}

export async function startTlsDockerHost(dir: string, daemonHost: string): Promise<TlsDockerHost> {
  const pki = path.join(dir, 'pki');
  fs.mkdirSync(pki, { recursive: true });
  makeCa(pki, 'ca');
  makeCa(pki, 'stranger-ca');
  issue(pki, 'ca', 'server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue(pki, 'ca', 'client', '/CN=operator', 'extendedKeyUsage=clientAuth\n');
  issue(pki, 'stranger-ca', 'stranger', '/CN=stranger', 'extendedKeyUsage=clientAuth\n');
  const read = (name: string) => fs.readFileSync(path.join(pki, name));
  const daemon = new URL(daemonHost);
  const connectDaemon = () => (daemon.protocol === 'unix:' ? net.connect(daemon.pathname) : net.connect(Number(daemon.port || 2375), daemon.hostname));
  const open = new Set<net.Socket>();
  const server = tls.createServer({ key: read('server-key.pem'), cert: read('server-cert.pem'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: true }, (client) => {
    const upstream = connectDaemon();
    open.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `tcp://127.0.0.1:${port}`,
    certDir: clientDir(pki, 'ca', 'client', path.join(dir, 'certs')),
    strangerCertDir: clientDir(pki, 'stranger-ca', 'stranger', path.join(dir, 'stranger-certs')),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Clients keep connections alive: end them, or close waits for ever.
        for (const socket of open) socket.destroy();
      }),
  };
}
