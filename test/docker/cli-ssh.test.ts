import * as fs from 'fs';
import * as path from 'path';
import { parse, stringify } from 'yaml';
import { backupsReportSchema } from '../../cli/commands/backups';
import { statusReportSchema } from '../../cli/status/report';
import { deployedTenant, runCli } from '../helpers/docker-suite';
import { startTlsDockerHost, TlsDockerHost } from '../helpers/docker-tls';
import { freePort } from '../helpers/servers';
import { startTestSshd, TestSshd } from '../helpers/sshd';

/*
 * `tenantry` reaching a Docker host over ssh and over tcp:// with TLS, for real. Over ssh: the
 * environment file says `docker.host: ssh://root@127.0.0.1:<port>` with its ssh options (identity
 * file, known_hosts), as a user writes it, and no DOCKER_HOST is set. The tests' own sshd logs in
 * and runs the machine's `docker system dial-stdio` against the tests' daemon, where one tenant is
 * deployed from its synthesized cdk.tf.json. Over TLS: `docker.host: tcp://127.0.0.1:<port>` with
 * DOCKER_TLS_VERIFY and DOCKER_CERT_PATH; in front of the same daemon, a listener that demands a
 * client certificate of its own CA (test/helpers/docker-tls.ts).
 */

let sshd: TestSshd | undefined;

const SECONDS = 1000;

const suite = deployedTenant({
  suite: 'ssh',
  setupSeconds: 600,
  dockerHost: async (dir, daemon) => {
    const started = await startTestSshd(path.join(dir, 'ssh'), daemon.host);
    sshd = started;
    return { docker: { host: started.url, sshOptions: started.sshOptions }, stop: () => started.stop() };
  },
});

/** The CLI in this process, with an environment holding no DOCKER_HOST (the environment file says where Docker is). */
const tenantry = (argv: string[], configDir = suite.config.configDir) => runCli(configDir, argv, { HOME: path.join(suite.dir, 'home') });

/** A copy of the configuration whose environment file has `docker` replaced. */
function configWithDocker(name: string, docker: { host: string; sshOptions?: string[] }): string {
  const copy = path.join(suite.dir, name);
  fs.cpSync(suite.config.configDir, copy, { recursive: true });
  const file = path.join(copy, 'environments', `${suite.config.environment}.yaml`);
  fs.writeFileSync(file, stringify({ ...parse(fs.readFileSync(file, 'utf8')), docker }));
  return copy;
}

describe('tenantry over ssh://', () => {
  test('status: every container of the tenant, reached through sshd', async () => {
    const run = await tenantry(['status', '--env', suite.config.environment, '-o', 'json']);
    expect(run.stderr).toBe('');
    const report = statusReportSchema.parse(JSON.parse(run.stdout));
    const [t] = report.tenants;
    expect(t).toMatchObject({ environment: suite.config.environment, tenant: suite.config.tenant, dockerHost: sshd!.url, problems: [] });
    expect(t.services.map((s) => s.container)).toEqual(suite.deployment.containers.map((c) => c.name));
    expect(t.services.find((s) => s.service === 'postgres')).toMatchObject({ state: 'running', health: 'healthy', ok: true });
    expect(run.code).toBe(0);
  }, 60 * SECONDS);

  test('backup, then backups lists it', async () => {
    const backup = await tenantry(['backup', suite.config.environment, suite.config.tenant, 'postgres']);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const id = backup.stdout.trim().split('\n').pop()!.split(':')[0];
    const run = await tenantry(['backups', suite.config.environment, suite.config.tenant, '-o', 'json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = backupsReportSchema.parse(JSON.parse(run.stdout));
    expect(report.backups.find((b) => b.id === id)).toMatchObject({ job: 'postgres', location: 'local', status: 'ok' });
  }, 120 * SECONDS);

  test('a host key that is not the known one: refused, one clear line, exit 1', async () => {
    const otherKnownHosts = path.join(suite.dir, 'other_known_hosts');
    const [, type, key] = /^(\S+) (\S+) (\S+)/.exec(fs.readFileSync(sshd!.knownHosts, 'utf8'))!;
    // The same name with another key of the same type: what ssh calls a changed host key.
    const other = fs.readFileSync(path.join(suite.dir, 'ssh', 'client_ed25519.pub'), 'utf8').split(' ')[1];
    expect(other).not.toBe(key);
    fs.writeFileSync(otherKnownHosts, `[127.0.0.1]:${sshd!.port} ${type} ${other}\n`);
    const options = sshd!.sshOptions.map((o) => o.replace(sshd!.knownHosts, otherKnownHosts));
    const configDir = configWithDocker('wrong-key', { host: sshd!.url, sshOptions: options });
    const run = await tenantry(['backups', suite.config.environment, suite.config.tenant], configDir);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    // ssh's banner about a changed key comes before its reason: only the reason is shown.
    expect(run.stderr).toBe(`tenantry: cannot reach Docker at ${sshd!.url}: Host key verification failed.\n`);
  }, 60 * SECONDS);

  test('a host that does not answer: one clear line, exit 1', async () => {
    const port = await freePort();
    const configDir = configWithDocker('unreachable', { host: `ssh://root@127.0.0.1:${port}`, sshOptions: sshd!.sshOptions });
    const run = await tenantry(['backups', suite.config.environment, suite.config.tenant], configDir);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toBe(`tenantry: cannot reach Docker at ssh://root@127.0.0.1:${port}: ssh: connect to host 127.0.0.1 port ${port}: Connection refused\n`);
    const status = await tenantry(['status', '--env', suite.config.environment], configDir);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`${suite.config.environment}/${suite.config.tenant}: cannot reach Docker at ssh://root@127.0.0.1:${port}: ssh: connect to host 127.0.0.1 port ${port}: Connection refused\n`);
  }, 60 * SECONDS);
});

describe('tenantry over tcp:// with TLS (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, as the Docker CLI reads them)', () => {
  let host: TlsDockerHost | undefined;
  beforeAll(async () => {
    host = await startTlsDockerHost(path.join(suite.dir, 'tls'), suite.daemon.host);
  });
  afterAll(() => host?.stop());

  const overTls = (argv: string[], certDir: string) =>
    runCli(configWithDocker('tls', { host: host!.url }), argv, { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir, HOME: path.join(suite.dir, 'home') });

  test('status: every container of the tenant, reached through a listener that demands a client certificate', async () => {
    const run = await overTls(['status', '--env', suite.config.environment, '-o', 'json'], host!.certDir);
    expect(run.stderr).toBe('');
    const [t] = statusReportSchema.parse(JSON.parse(run.stdout)).tenants;
    expect(t).toMatchObject({ environment: suite.config.environment, tenant: suite.config.tenant, dockerHost: host!.url, problems: [] });
    expect(t.services.map((s) => s.container)).toEqual(suite.deployment.containers.map((c) => c.name));
    expect(run.code).toBe(0);
  }, 60 * SECONDS);

  test('a client certificate of another CA (and a CA that does not know the host): refused, one clear line, exit 1', async () => {
    const run = await overTls(['backups', suite.config.environment, suite.config.tenant], host!.strangerCertDir);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(new RegExp(`^tenantry: cannot reach Docker at ${host!.url.replace(/[.]/g, '\\.')}: [^\n]+\n$`));
    expect(run.stderr).not.toMatch(/\n\s+at /);
    const status = await overTls(['status', '--env', suite.config.environment], host!.strangerCertDir);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`${suite.config.environment}/${suite.config.tenant}: cannot reach Docker at ${host!.url}: `);
  }, 60 * SECONDS);
});
