/**
 * Pure rendering: determinism, parameter order, option checks, and that rendered files hold
 * neither secrets nor any path or port that did not come from the options. Running the files is
 * the integration tests' job (test/integration).
 */
import { execFileSync } from 'child_process';
import fc from 'fast-check';
import { renderMinioSetup, MinioSetupRenderOptions } from '../../runtime/render/minio-setup';
import { renderPgBouncer, renderPgBouncerIni, PgBouncerRenderOptions } from '../../runtime/render/pgbouncer';
import { renderPostgres, renderPostgresInitScript, PostgresRenderOptions } from '../../runtime/render/postgres';
import { renderRedisConfig, renderRedisNode, renderSentinel, renderSentinelConfig, RedisNodeRenderOptions, SentinelRenderOptions } from '../../runtime/render/redis';
import type { ContainerLaunch } from '../../runtime/render/types';

const postgres: PostgresRenderOptions = {
  databases: ['orders', 'billing'],
  appRole: 'acme_app',
  readonlyRole: 'acme_readonly',
  backupRole: 'acme_backup',
  replicationRole: 'acme_replication',
  parameters: { shared_buffers: '128MB', max_connections: 100, log_connections: true },
};
const pgbouncer: PgBouncerRenderOptions = {
  listenPort: 6432,
  serverHost: 'dev-acme-postgres',
  serverPort: 5432,
  databases: ['orders', 'billing'],
  user: 'acme_app',
  poolMode: 'transaction',
  poolSize: 25,
  maxClients: 1000,
};
const redisNode: RedisNodeRenderOptions = {
  role: 'replica',
  port: 6379,
  announceHost: 'dev-acme-redis-1',
  masterHost: 'dev-acme-redis-0',
  masterPort: 6379,
  maxmemory: '256mb',
  minReplicasToWrite: 1,
};
const sentinel: SentinelRenderOptions = {
  port: 26379,
  announceHost: 'dev-acme-sentinel-1',
  masterName: 'acme',
  masterHost: 'dev-acme-redis-0',
  masterPort: 6379,
  quorum: 2,
  downAfterMs: 5000,
};
const minio: MinioSetupRenderOptions = {
  endpoint: 'http://dev-acme-minio:9000',
  buckets: [
    { name: 'images', versioned: true },
    { name: 'thumbnails', versioned: false },
  ],
  applicationUser: 'acme-app',
  backupUser: 'acme-backup',
};

const launches: Record<string, () => ContainerLaunch> = {
  postgres: () => renderPostgres(postgres),
  pgbouncer: () => renderPgBouncer(pgbouncer),
  'redis master': () => renderRedisNode({ ...redisNode, role: 'master' }),
  'redis replica': () => renderRedisNode(redisNode),
  sentinel: () => renderSentinel(sentinel),
  'minio setup': () => renderMinioSetup(minio),
};

describe('renderers', () => {
  describe.each(Object.entries(launches))('%s', (_name, render) => {
    it('renders the same launch for the same options', () => {
      expect(render()).toEqual(render());
    });

    it('renders POSIX sh scripts that parse, start with set -eu and are marked executable', () => {
      const scripts = render().files.filter((file) => file.content.startsWith('#!'));
      expect(scripts.length).toBeGreaterThan(0);
      for (const script of scripts) {
        expect(script.executable).toBe(true);
        expect(script.content.startsWith('#!/bin/sh\n')).toBe(true);
        expect(script.content).toMatch(/^set -eu$/m);
        expect(() => execFileSync('/bin/sh', ['-n'], { input: script.content })).not.toThrow();
      }
    });

    it('holds no secret: passwords are only ever read from the environment', () => {
      const launch = render();
      for (const file of launch.files) {
        for (const token of file.content.split(/[^A-Za-z0-9+/=_-]+/)) expect(looksRandom(token)).toBe(false);
        if (!file.executable) expect(file.content).not.toMatch(/^(requirepass|masterauth|sentinel auth-pass)\b/m);
        // Where a script sets a password, the value is a printf argument or a psql variable.
        for (const line of file.content.split('\n').filter((l) => /requirepass|masterauth|auth-pass/.test(l))) expect(line).toContain('%s');
        for (const [, value] of file.content.matchAll(/\bPASSWORD (\S+)/g)) expect(value).toMatch(/^:'\w+'/);
      }
      for (const name of launch.env) expect(name).toMatch(/^[A-Z][A-Z0-9_]*$/);
    });
  });

  it('entrusts each container with exactly the secrets it needs', () => {
    expect(renderPostgres(postgres).env).toEqual(['POSTGRES_PASSWORD', 'TENANTRY_APP_PASSWORD', 'TENANTRY_READONLY_PASSWORD', 'TENANTRY_BACKUP_PASSWORD']);
    expect(renderPgBouncer(pgbouncer).env).toEqual(['PGBOUNCER_PASSWORD']);
    expect(renderRedisNode(redisNode).env).toEqual(['REDIS_PASSWORD']);
    expect(renderSentinel(sentinel).env).toEqual(['REDIS_PASSWORD', 'SENTINEL_PASSWORD']);
    expect(renderMinioSetup(minio).env).toEqual(['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD', 'MINIO_APPLICATION_SECRET_KEY', 'MINIO_BACKUP_SECRET_KEY']);
  });
});

/** 16+ characters mixing lower case, upper case and digits: what a generated password looks like. */
function looksRandom(token: string): boolean {
  return token.length >= 16 && /[a-z]/.test(token) && /[A-Z]/.test(token) && /[0-9]/.test(token);
}

describe('renderPostgres', () => {
  it('keeps the image entrypoint and passes parameters as -c key=value sorted by key', () => {
    const launch = renderPostgres(postgres);
    expect(launch.entrypoint).toBeUndefined();
    expect(launch.command).toEqual(['postgres', '-c', 'log_connections=on', '-c', 'max_connections=100', '-c', 'shared_buffers=128MB']);
    expect(launch.files).toEqual([{ path: '/docker-entrypoint-initdb.d/10-tenantry-init.sh', content: renderPostgresInitScript(postgres), executable: true }]);
  });

  it('gives the same command whatever the order the parameters were written in', () => {
    const parameterName = fc.stringMatching(/^[a-z][a-z0-9_]{0,20}$/);
    const parameterValue = fc.oneof(fc.stringMatching(/^[A-Za-z0-9]{1,8}$/), fc.integer(), fc.boolean());
    fc.assert(
      fc.property(fc.dictionary(parameterName, parameterValue), (parameters) => {
        const reversed = Object.fromEntries(Object.entries(parameters).reverse());
        const command = renderPostgres({ ...postgres, parameters }).command ?? [];
        expect(renderPostgres({ ...postgres, parameters: reversed }).command).toEqual(command);
        const keys = command.filter((_arg, i) => i % 2 === 0 && i > 0).map((pair) => pair.split('=')[0]);
        expect(keys).toEqual([...keys].sort());
      }),
    );
  });

  it('runs psql with ON_ERROR_STOP and without psqlrc, taking passwords through \\getenv', () => {
    const script = renderPostgresInitScript(postgres);
    expect(script).toContain('psql -v ON_ERROR_STOP=1 --no-psqlrc');
    expect(script).toContain('\\getenv app_password TENANTRY_APP_PASSWORD');
    expect(script).toContain('\\getenv readonly_password TENANTRY_READONLY_PASSWORD');
  });

  it('passes a parameter value with spaces, quotes and "$" as one argument, and refuses a control character', () => {
    const value = `%m [%p] $user 'q' "dq" `;
    expect(renderPostgres({ ...postgres, parameters: { log_line_prefix: value } }).command).toEqual(['postgres', '-c', `log_line_prefix=${value}`]);
    expect(() => renderPostgres({ ...postgres, parameters: { application_name: 'a\nb' } })).toThrow('parameter application_name has a control character');
  });

  it('names the option and the value it refuses', () => {
    expect(() => renderPostgres({ ...postgres, databases: ['orders', 'Bad-Name'] })).toThrow(
      'renderPostgres: databases[1] must be a lower-case identifier of at most 63 characters ([a-z_][a-z0-9_]*) (value: "Bad-Name")',
    );
    expect(() => renderPostgres({ ...postgres, readonlyRole: 'acme_app' })).toThrow('appRole, readonlyRole, backupRole and replicationRole must differ');
    expect(() => renderPostgres({ ...postgres, databases: [] })).toThrow('databases must be a non-empty list');
    expect(() => renderPostgres({ ...postgres, parameters: { 'bad key': 1 } })).toThrow('parameter names');
  });
});

describe('renderPgBouncer', () => {
  it('renders the ini the pooler needs, with one line per database', () => {
    const ini = renderPgBouncerIni(pgbouncer);
    expect(ini).toContain('orders = host=dev-acme-postgres port=5432 dbname=orders\nbilling = host=dev-acme-postgres port=5432 dbname=billing\n');
    for (const line of [
      'listen_addr = 0.0.0.0',
      'listen_port = 6432',
      'auth_type = scram-sha-256',
      'auth_file = /tmp/pgbouncer/userlist.txt',
      'pool_mode = transaction',
      'default_pool_size = 25',
      'max_client_conn = 1000',
      'ignore_startup_parameters = extra_float_digits,options',
      'unix_socket_dir =',
    ]) {
      expect(ini.split('\n')).toContain(line);
    }
  });

  it('starts through its script, which execs pgbouncer with the rendered ini', () => {
    const launch = renderPgBouncer(pgbouncer);
    expect(launch.entrypoint).toEqual(['/bin/sh', '/etc/pgbouncer/tenantry-start.sh']);
    expect(launch.files.map((file) => file.path)).toEqual(['/etc/pgbouncer/pgbouncer.ini', '/etc/pgbouncer/tenantry-start.sh']);
    expect(launch.files[1].content).toContain("exec pgbouncer '/etc/pgbouncer/pgbouncer.ini'");
  });
});

describe('renderRedisNode and renderSentinel', () => {
  it('renders replicaof only for a replica, and the safety settings on every node', () => {
    const master = renderRedisConfig({ ...redisNode, role: 'master' });
    const replica = renderRedisConfig(redisNode);
    expect(master).not.toMatch(/^replicaof /m);
    expect(replica).toMatch(/^replicaof dev-acme-redis-0 6379$/m);
    for (const config of [master, replica]) {
      for (const line of ['appendonly yes', 'maxmemory 256mb', 'maxmemory-policy noeviction', 'min-replicas-to-write 1', 'min-replicas-max-lag 10', 'dir /data']) {
        expect(config.split('\n')).toContain(line);
      }
    }
  });

  it('turns hostname resolution on before the monitor line that names a host', () => {
    const lines = renderSentinelConfig(sentinel).split('\n');
    const monitor = lines.indexOf('sentinel monitor acme dev-acme-redis-0 6379 2');
    expect(monitor).toBeGreaterThan(lines.indexOf('sentinel resolve-hostnames yes'));
    expect(monitor).toBeGreaterThan(lines.indexOf('sentinel announce-hostnames yes'));
    expect(lines).toContain('sentinel announce-ip dev-acme-sentinel-1');
    expect(lines).toContain('sentinel failover-timeout acme 60000');
    expect(lines).toContain('sentinel parallel-syncs acme 1');
  });

  it('refuses a memory size Redis would not parse', () => {
    expect(() => renderRedisNode({ ...redisNode, maxmemory: '256 MB' })).toThrow('renderRedisNode: maxmemory must be a Redis memory size');
  });
});

describe('paths and ports come from the options only (the e2e drill rewrites them)', () => {
  const defaults = ['/docker-entrypoint-initdb.d', '/etc/pgbouncer', '/tmp/pgbouncer', '/data', '/usr/local/etc/redis', '/tenantry'];
  const defaultPorts = ['5432', '6432', '6379', '26379', '9000'];
  const moved: Record<string, ContainerLaunch> = {
    postgres: renderPostgres({ ...postgres, initDir: '/x/init' }),
    pgbouncer: renderPgBouncer({ ...pgbouncer, listenPort: 16432, serverPort: 15432, configDir: '/x/conf', runDir: '/x/run' }),
    redis: renderRedisNode({ ...redisNode, port: 16379, masterPort: 16380, dataDir: '/x/data', configDir: '/x/conf' }),
    sentinel: renderSentinel({ ...sentinel, port: 26380, masterPort: 16380, dataDir: '/x/data', configDir: '/x/conf' }),
    minio: renderMinioSetup({ ...minio, endpoint: 'http://127.0.0.1:19000', scriptDir: '/x/setup' }),
  };

  it.each(Object.entries(moved))('%s mentions no default path or port', (_name, launch) => {
    const everything = JSON.stringify(launch);
    for (const dir of defaults) expect(everything).not.toMatch(new RegExp(`["' =]${dir.replace(/\//g, '\\/')}\\b`));
    for (const port of defaultPorts) expect(everything).not.toMatch(new RegExp(`\\b${port}\\b`));
  });
});
