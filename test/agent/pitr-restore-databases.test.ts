/**
 * A shared server's tenant restored to a point (runtime/agent/pitr/restore-databases.ts): the
 * whole server recovered into a scratch server, and only that tenant's databases copied back into
 * the live server. Two tenants' databases on one real server; the other keeps its writes after T.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AgentConfig, RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import { PITR_FOLDERS } from '../../runtime/agent/pitr/layout';
import { clientToolDir } from '../../runtime/agent/jobs/postgres/tools';
import { restoreDatabasesToPoint } from '../../runtime/agent/pitr/restore-databases';
import { runBackup } from '../../runtime/agent/runner';
import { freePort, PostgresServer, postgresVersionsUnderTest, withDatabase } from '../helpers/servers';
import { testAgent, writeConfig } from './harness';
import { batchesIn, PITR_ENV, pitrJob, Receiver, startReceiver, startSource } from './pitr-harness';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TENANTS = ['app', 'other'];

// The logical path runs the installed client tools of the server's version (the agent image has them); 17 is fetched here as a server only.
describe.each(postgresVersionsUnderTest().filter((v) => clientToolDir(v.major) !== undefined))('PostgreSQL $major', ({ binDir }) => {
  let server: PostgresServer;
  let receiver: Receiver;
  let config: AgentConfig;

  const batch = (n: number) =>
    Promise.all(TENANTS.map((database) => withDatabase(server, database, (db) => db.query('INSERT INTO events SELECT $1 * 100 + i, $1, md5(i::text) FROM generate_series(0, 49) i', [n]))));

  beforeAll(async () => {
    server = await startSource(binDir);
    await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE other'));
    await withDatabase(server, 'other', (db) => db.query('CREATE TABLE events (id int PRIMARY KEY, batch int NOT NULL, note text)'));
    ({ config } = writeConfig({ jobs: [pitrJob(server)] }));
    receiver = await startReceiver(server, config.backupDir, pitrJob(server));
  });

  afterAll(async () => {
    await receiver?.stop();
    await server?.stop();
  });

  test("one tenant's database back to T; the other tenant's keeps every write after T; the scratch server is gone", async () => {
    const env = { ...PITR_ENV, PATH: `${binDir}:${process.env.PATH}`, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
    await batch(1);
    const { agent } = testAgent(config, env);
    expect((await runBackup(agent, config.jobs[0], 'manual')).error).toBeUndefined();
    await batch(2);
    await sleep(50);
    const t = new Date().toISOString();
    await sleep(50);
    await batch(3);
    await receiver.caughtUp(server);

    const result = await restoreDatabasesToPoint(agent, pitrJob(server), {
      target: { time: t },
      databases: ['app'],
      into: { host: server.host, port: server.port },
      scratchPort: await freePort(),
      commandLine: 'restore pitr --to-time … --only-databases app',
    });

    expect(result).toContain('app restored to');
    expect(await withDatabase(server, 'app', batchesIn)).toEqual([1, 2]);
    expect(await withDatabase(server, 'other', batchesIn)).toEqual([1, 2, 3]);
    const restores = path.join(config.backupDir, 'pitr', PITR_FOLDERS.restores);
    expect(fs.readdirSync(restores).filter((name) => name.endsWith('.scratch'))).toEqual([]);
  });

  test('without the operator\'s credential it is refused before anything is recovered', async () => {
    const { agent } = testAgent(config, { ...PITR_ENV, PATH: `${binDir}:${process.env.PATH}` });
    await expect(
      restoreDatabasesToPoint(agent, pitrJob(server), { target: { latest: true }, databases: ['app'], into: { host: server.host, port: server.port }, scratchPort: await freePort(), commandLine: 'restore pitr --latest' }),
    ).rejects.toThrow(/restore needs an elevated Postgres credential/);
  });
});
