/**
 * A server whose tuned settings are on its command line (as every Tenantry Postgres container
 * passes them, `-c max_connections=200`), so the base backup's postgresql.conf does not hold them:
 * its restore must not fail for a recovery server started with lower defaults, real PostgreSQL 15
 * and 17.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { restoreToPoint } from '../../runtime/agent/pitr/restore';
import { runBackup } from '../../runtime/agent/runner';
import { PostgresServer, postgresVersionsUnderTest, tempDir } from '../helpers/servers';
import { testAgent, writeConfig } from './harness';
import { batchesIn, insertBatch, PITR_ENV, pitrJob, postgresUser, readRecovered, Receiver, startReceiver, startSource } from './pitr-harness';

jest.setTimeout(120_000);

/** Above the default (100): recovery with hot standby refuses to run below the source's value. */
const MAX_CONNECTIONS = 150;

describe.each(postgresVersionsUnderTest())('PostgreSQL $major', ({ binDir }) => {
  let server: PostgresServer;
  let receiver: Receiver | undefined;

  afterAll(async () => {
    await receiver?.stop();
    await server?.stop();
  });

  test(`a source started with -c max_connections=${MAX_CONNECTIONS} restores to latest`, async () => {
    server = await startSource(binDir);
    const user = postgresUser();
    const pgctl = (...args: string[]) => {
      const result = spawnSync(path.join(binDir, 'pg_ctl'), ['-D', server.dataDir, ...args], { ...user, encoding: 'utf8', env: { PATH: process.env.PATH } });
      if (result.status !== 0) throw new Error(`pg_ctl ${args.join(' ')}: ${result.stderr}`);
    };
    pgctl('-m', 'fast', '-w', 'stop');
    pgctl('-o', `-c max_connections=${MAX_CONNECTIONS}`, '-l', path.join(path.dirname(server.dataDir), 'restarted.log'), '-w', 'start');

    const { config } = writeConfig({ jobs: [pitrJob(server)] });
    receiver = await startReceiver(server, config.backupDir, pitrJob(server));
    const { agent } = testAgent(config, { ...PITR_ENV, PATH: `${binDir}:${process.env.PATH}` });
    await insertBatch(server, 1);
    expect((await runBackup(agent, config.jobs[0], 'manual')).error).toBeUndefined();
    await insertBatch(server, 2);
    await receiver.caughtUp(server);

    const target = path.join(tempDir('recovered'), 'pgdata');
    await restoreToPoint(agent, config.jobs[0] as never, { target: { latest: true }, targetDir: target });
    expect(await readRecovered(target, binDir, server.password, 'app', batchesIn)).toEqual([1, 2]);
  });
});
