import * as fs from 'fs';
import * as path from 'path';
import { containerName } from '../../config/naming';
import { startTestDocker, TestDocker } from '../helpers/docker';
import { deployFromSynth, Deployment, execIn } from '../helpers/docker-deploy';
import { buildTestImages } from '../helpers/docker-images';
import { DockerTestConfig, synthDockerTestConfig } from '../helpers/docker-tenant';

/*
 * One tenant as `terraform apply` would create it, from the synthesized JSON, on a real daemon:
 * Postgres, PgBouncer, Redis (master and replica) with three Sentinels, and the backup agent built
 * from its real Dockerfile. Then what the operator CLI relies on: the agent runs a backup inside its
 * container, and a stopped container and a failing healthcheck show in `docker inspect`.
 */

let daemon: TestDocker;
let dir: string;
let config: DockerTestConfig;
let deployment: Deployment | undefined;

const SECONDS = 1000;

beforeAll(async () => {
  daemon = await startTestDocker();
  const images = await buildTestImages(daemon.docker);
  dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'docker-tenant-'));
  config = synthDockerTestConfig(dir);
  deployment = await deployFromSynth(daemon.docker, config.stackFile, { tenant: config.tenant, substitutions: images.substitutions });
  await deployment.waitReady();
}, 300 * SECONDS);

afterAll(async () => {
  await deployment?.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
  await daemon.stop();
}, 120 * SECONDS);

const name = (suffix: string) => containerName(config.environment, config.tenant, suffix);

describe('a tenant deployed from cdk.tf.json', () => {
  test('has exactly the synthesized containers, each with its settings from the JSON', async () => {
    const d = deployment!;
    const synthesized = d.stack.containers.filter((c) => c.labels?.some((l) => l.label === 'tenantry.tenant' && l.value === config.tenant));
    expect(d.containers.map((c) => c.name)).toEqual(synthesized.map((c) => c.name).sort());
    expect(d.containers.map((c) => c.name)).toEqual(
      ['backup', 'pgbouncer', 'postgres', 'postgres-provision', 'redis-0', 'redis-1', 'sentinel-1', 'sentinel-2', 'sentinel-3'].map(name),
    );
    for (const c of d.containers) {
      const info = await c.container.inspect();
      const s = c.synthesized;
      expect(info.Name).toBe(`/${s.name}`);
      expect(info.Config.Hostname).toBe(s.hostname);
      expect(info.Config.Labels).toMatchObject(Object.fromEntries((s.labels ?? []).map((l) => [l.label, l.value])));
      expect(info.HostConfig.ReadonlyRootfs).toBe(s.read_only ?? false);
      expect(info.HostConfig.CapDrop).toEqual(s.capabilities?.drop ?? null);
      expect(info.HostConfig.CapAdd ?? null).toEqual(s.capabilities?.add ?? null);
      expect(info.HostConfig.SecurityOpt).toEqual(s.security_opts);
      expect(info.HostConfig.Memory).toBe((s.memory ?? 0) * 1024 * 1024);
      expect(info.Config.Healthcheck?.Test).toEqual(s.healthcheck?.test);
      expect(info.Config.Image).toBe(c.image.local);
      const network = Object.keys(info.NetworkSettings.Networks);
      expect(network).toEqual([`tenantry-${config.environment}`]);
      expect(info.NetworkSettings.Networks[network[0]].Aliases).toEqual(expect.arrayContaining([s.name]));
      // No secret reference is left for Docker: every random_password result was filled in.
      expect(JSON.stringify(info.Config.Env)).not.toContain('${');
    }
    // Named volumes (the environment's storage) and bind paths (the Redis override) alike.
    const postgres = await d.get(name('postgres')).container.inspect();
    expect(postgres.Mounts.find((m) => m.Destination === '/var/lib/postgresql/data')).toMatchObject({ Type: 'volume' });
    const redis = await d.get(name('redis-0')).container.inspect();
    expect(redis.Mounts.find((m) => m.Destination === '/data')).toMatchObject({ Type: 'bind', Source: path.join(config.bindRoot, 'redis', 'redis-0', 'data') });
  });

  test('every long-running container is healthy and the run-once provisioning exited 0', async () => {
    for (const c of deployment!.containers) {
      const { State } = await c.container.inspect();
      if (c.synthesized.must_run === false) expect([State.Status, State.ExitCode]).toEqual(['exited', 0]);
      else expect([c.name, State.Status, State.Health?.Status]).toEqual([c.name, 'running', 'healthy']);
    }
  });

  test('the application role reaches Postgres through PgBouncer by container name (network DNS)', async () => {
    const d = deployment!;
    const pgbouncer = d.get(name('pgbouncer'));
    const result = await execIn(d.get(name('postgres')).container, ['psql', '-h', name('pgbouncer'), '-p', '6432', '-U', `${config.tenant}_app`, '-d', 'app', '-tAc', 'select current_user'], {
      env: { PGPASSWORD: pgbouncer.env.PGBOUNCER_PASSWORD },
      user: 'postgres',
    });
    expect(result).toMatchObject({ exitCode: 0, stdout: `${config.tenant}_app\n` });
  });

  test('the agent backs up Postgres inside its container (docker exec), as its own user', async () => {
    const agent = deployment!.get(name('backup')).container;
    const run = await execIn(agent, ['tenantry-agent', 'run', 'postgres'], { user: 'tenantry' });
    expect(run.stderr).not.toMatch(/"level":"error"/);
    expect(run).toMatchObject({ exitCode: 0 });
    const [id] = run.stdout.split(':');
    expect(run.stdout).toMatch(/: ok, \d+ bytes\n$/);
    const list = await execIn(agent, ['tenantry-agent', 'list', 'postgres', '--json'], { user: 'tenantry' });
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toContain(id);
  });

  test('a stopped container shows in inspect as exited, not running', async () => {
    const sentinel = deployment!.get(name('sentinel-3')).container;
    await sentinel.stop({ t: 5 });
    const { State } = await sentinel.inspect();
    expect({ running: State.Running, status: State.Status }).toEqual({ running: false, status: 'exited' });
  });

  test('a failing healthcheck shows in inspect: a failing streak, then unhealthy', async () => {
    const replica = deployment!.get(name('redis-1'));
    // The node now wants another password than the one its healthcheck sends.
    const changed = await execIn(replica.container, ['redis-cli', 'CONFIG', 'SET', 'requirepass', 'not-the-configured-one'], { env: { REDISCLI_AUTH: replica.env.REDIS_PASSWORD } });
    expect(changed).toMatchObject({ exitCode: 0, stdout: 'OK\n' });
    const retries = replica.synthesized.healthcheck?.retries ?? 3;
    const deadline = Date.now() + 150 * SECONDS;
    let health = (await replica.container.inspect()).State.Health;
    while (health?.Status !== 'unhealthy' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2 * SECONDS));
      health = (await replica.container.inspect()).State.Health;
    }
    expect(health?.Status).toBe('unhealthy');
    expect(health?.FailingStreak).toBeGreaterThanOrEqual(retries);
    expect(health?.Log.slice(-1)[0].ExitCode).not.toBe(0);
  }, 200 * SECONDS);
});
