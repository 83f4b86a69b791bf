import * as path from 'path';
import { execIn } from '../helpers/docker-deploy';
import { deployedTenant } from '../helpers/docker-suite';

/*
 * One tenant as `terraform apply` would create it, from the synthesized JSON, on a real daemon:
 * Postgres, PgBouncer, Redis (master and replica) with three Sentinels, and the backup agent built
 * from its real Dockerfile. Then what the operator CLI relies on: the agent runs a backup inside its
 * container, and a stopped container and a failing healthcheck show in `docker inspect`.
 */

const SECONDS = 1000;

const suite = deployedTenant({ suite: 'tenant', setupSeconds: 300 });

const { name } = suite;

describe('a tenant deployed from cdk.tf.json', () => {
  test('has exactly the synthesized containers, each with its settings from the JSON', async () => {
    const d = suite.deployment;
    const synthesized = d.stack.containers.filter((c) => c.labels?.some((l) => l.label === 'tenantry.tenant' && l.value === suite.config.tenant));
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
      expect(network).toEqual([`tenantry-${suite.config.environment}`]);
      expect(info.NetworkSettings.Networks[network[0]].Aliases).toEqual(expect.arrayContaining([s.name]));
      // No secret reference is left for Docker: every random_password result was filled in.
      expect(JSON.stringify(info.Config.Env)).not.toContain('${');
    }
    // Named volumes (the environment's storage) and bind paths (the Redis override) alike.
    const postgres = await d.get(name('postgres')).container.inspect();
    expect(postgres.Mounts.find((m) => m.Destination === '/var/lib/postgresql/data')).toMatchObject({ Type: 'volume' });
    const redis = await d.get(name('redis-0')).container.inspect();
    expect(redis.Mounts.find((m) => m.Destination === '/data')).toMatchObject({ Type: 'bind', Source: path.join(suite.config.bindRoot, 'redis', 'redis-0', 'data') });
  });

  test('every long-running container is healthy and the run-once provisioning exited 0', async () => {
    for (const c of suite.deployment.containers) {
      const { State } = await c.container.inspect();
      if (c.synthesized.must_run === false) expect([State.Status, State.ExitCode]).toEqual(['exited', 0]);
      else expect([c.name, State.Status, State.Health?.Status]).toEqual([c.name, 'running', 'healthy']);
    }
  });

  test('the application role reaches Postgres through PgBouncer by container name (network DNS)', async () => {
    const d = suite.deployment;
    const pgbouncer = d.get(name('pgbouncer'));
    const result = await execIn(d.get(name('postgres')).container, ['psql', '-h', name('pgbouncer'), '-p', '6432', '-U', `${suite.config.tenant}_app`, '-d', 'app', '-tAc', 'select current_user'], {
      env: { PGPASSWORD: pgbouncer.env.PGBOUNCER_PASSWORD },
      user: 'postgres',
    });
    expect(result).toMatchObject({ exitCode: 0, stdout: `${suite.config.tenant}_app\n` });
  });

  test('the agent backs up Postgres inside its container (docker exec), as its own user', async () => {
    const agent = suite.deployment.get(name('backup')).container;
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
    const sentinel = suite.deployment.get(name('sentinel-3')).container;
    await sentinel.stop({ t: 5 });
    const { State } = await sentinel.inspect();
    expect({ running: State.Running, status: State.Status }).toEqual({ running: false, status: 'exited' });
  });

  test('a failing healthcheck shows in inspect: a failing streak, then unhealthy', async () => {
    const replica = suite.deployment.get(name('redis-1'));
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
