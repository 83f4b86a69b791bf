/**
 * The end-to-end drill (`npm run drill`): synthesize the example `dev` environment, take tenant
 * acme's containers from cdk.tf.json exactly as Docker would create them, translate them for
 * this machine (every change is a row of e2e/translation.ts, printed first), run them as local
 * processes with the real servers, and prove the tenant's promises:
 *
 *   - Postgres: rows written through PgBouncer survive backup (the agent), DROP DATABASE … FORCE
 *     and restore (the agent), identical row for row, and the app can write again;
 *   - Postgres point-in-time recovery: under continuous acknowledged writes, with the server and
 *     its data directory destroyed, a restore to a time T holds exactly the commits made before T,
 *     and a restore to the latest point loses under a second of acknowledged writes;
 *   - PgBouncer: 1000 clients connected at once are served by no more server connections than
 *     the pool size;
 *   - Redis: after SIGKILL of the master, the sentinels promote a replica, and no write the
 *     master acknowledged is lost.
 *
 * Exit codes: 0 every step passed; 1 a step failed; 2 a required program is missing.
 * Every process the drill starts is stopped by PID on the way out, also on failure.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RESTORE_CREDENTIAL_ENV } from '../runtime/agent/config';
import { POSTGRES_PITR_JOB } from '../runtime/agent/pitr/layout';
import { CommitWriter, compareLatest, compareToTime, rowsPresent } from './acknowledged-commits';
import { agentMetric } from './agent-metrics';
import { MissingBinary, checkBinaries, ensureOptional, RunningService, TenantRun } from './launcher';
import { ensureOpenFiles } from './limits';
import { manyClients } from './pgbouncer-load';
import { killTree } from './processes';
import { ANALYTICS_TABLES, APP_TABLES, asSuperuser, digestTables, runAppWorkload, TableDigest } from './postgres-workload';
import { AcknowledgedWriter, killMasterAndTime, missingOrDifferent, replicationInfo, SentinelView, waitForSteadyState } from './redis-failover';
import { DrillReport, StepFailed, Steps } from './report';
import { formatTable, LocalContainer } from './translation';

export const DRILL_ENVIRONMENT = 'dev';
export const DRILL_TENANT = 'acme';
const CLIENTS = 1000;
/** The table the point-in-time step's writer fills, in database app. */
const PITR_TABLE = 'pitr_drill';
/** Issue 12's recovery point objective: acknowledged writes of less than a second may be lost. */
const RPO_SECONDS = 1;
const START_ORDER = ['postgres', 'pgbouncer', 'redis', 'sentinel', 'backup'];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A `key = value` or `key value` setting from a rendered config file. */
function setting(c: LocalContainer, file: string, key: string): string {
  const f = c.files.find((x) => x.path.endsWith(`/${file}`));
  const match = f && new RegExp(`^${key}\\s*=?\\s*(\\S+)\\s*$`, 'm').exec(f.content);
  if (!match) throw new Error(`${c.name}: no "${key}" in ${file}`);
  return match[1];
}

function sameDigests(before: Record<string, TableDigest>, after: Record<string, TableDigest>, detail: (line: string) => void): string[] {
  const differences: string[] = [];
  for (const table of Object.keys(before)) {
    const b = before[table];
    const a = after[table];
    detail(`${table}: ${b.rows} rows md5 ${b.md5} → ${a ? `${a.rows} rows md5 ${a.md5}` : 'missing'}`);
    if (!a || a.rows !== b.rows || a.md5 !== b.md5) differences.push(table);
    if (a && a.badChecksums > 0) differences.push(`${table} (${a.badChecksums} rows whose checksum column does not match)`);
  }
  return differences;
}

/** Owner and ACL of a database and of its public schema, as one comparable line. */
async function databaseAccess(superuser: { port: number; user: string; password: string }, database: string): Promise<string> {
  const db = await asSuperuser(superuser, (client) =>
    client.query<{ owner: string; acl: string | null }>('SELECT pg_get_userbyid(datdba) AS owner, datacl::text AS acl FROM pg_database WHERE datname = $1', [database]),
  );
  const schema = await asSuperuser({ ...superuser, database }, (client) =>
    client.query<{ owner: string; acl: string | null }>("SELECT pg_get_userbyid(nspowner) AS owner, nspacl::text AS acl FROM pg_namespace WHERE nspname = 'public'"),
  );
  const [d] = db.rows;
  const [s] = schema.rows;
  return `owner ${d?.owner}, acl ${d?.acl ?? '(default: PUBLIC may connect)'}; schema public owner ${s?.owner}, acl ${s?.acl ?? '(default)'}`;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Waits (bounded) until the backup container's WAL receiver streams, from its own /metrics. */
async function receiverStreaming(tenant: TenantRun): Promise<void> {
  const [backup] = tenant.byService('backup');
  for (let i = 0; i < 300; i++) {
    if ((await agentMetric(backup.port, 'tenantry_pitr_receiver_up', POSTGRES_PITR_JOB)) === 1) return;
    await sleep(200);
  }
  throw new Error(`the backup container's WAL receiver did not start streaming within 60 s (tenantry_pitr_receiver_up on 127.0.0.1:${backup.port}/metrics)`);
}

/**
 * Issue 12, item 8, through the synthesized containers only: the backup container's agent
 * (serve: the WAL receiver; run: the base backup; restore: the prepared restore) and the Postgres
 * container's restore-on-start wrapper, which applies it when the container starts.
 */
async function pointInTimeStep(
  tenant: TenantRun,
  postgres: LocalContainer,
  superuser: { port: number; user: string; password: string },
  appUrl: string | undefined,
  analyticsUrl: string | undefined,
  detail: (line: string) => void,
): Promise<void> {
  if (!appUrl || !analyticsUrl) throw new Error('the tenant output has no app/analytics database URL');
  const [backup] = tenant.byService('backup');
  const pgdata = postgres.env.PGDATA;
  const agent = async (args: string[]) => {
    const result = await tenant.agent(args);
    if (result.code !== 0) throw new Error(`tenantry-agent ${args.join(' ')} failed (exit ${result.code}):\n${agentOutput(result)}`);
    return agentOutput(result).split('\n').filter((line) => !line.startsWith('{')).join(' ');
  };
  const rows = () => rowsPresent({ host: '127.0.0.1', port: superuser.port, user: superuser.user, password: superuser.password, database: 'app' }, PITR_TABLE);
  const restartPostgres = async () => {
    const started = await tenant.start(postgres.name);
    for (const line of (started.preStartOutput ?? '').split('\n').filter(Boolean)) detail(`  Postgres container start: ${line}`);
  };

  await receiverStreaming(tenant);
  detail(`${backup.name} serve: WAL receiver streaming (tenantry_pitr_receiver_up 1)`);
  detail(`tenantry-agent run ${POSTGRES_PITR_JOB}: ${await agent(['run', POSTGRES_PITR_JOB])}`.trim());

  const writer = new CommitWriter({ connectionString: appUrl, connectionTimeoutMillis: 10_000 }, PITR_TABLE, 2);
  await writer.start();
  let destroyedAt = 0;
  let t = 0;
  try {
    await sleep(2000);
    t = Date.now();
    await sleep(2000);
    destroyedAt = Date.now();
    const killed = killTree(tenant.running(postgres.name).pid);
    tenant.forget(postgres.name);
    fs.rmSync(pgdata, { recursive: true, force: true });
    detail(`T = ${iso(t)}; SIGKILL of ${killed} Postgres processes at ${iso(destroyedAt)}, then ${pgdata} deleted`);
  } finally {
    await writer.stop();
  }
  detail(`writer (2 connections through PgBouncer): ${writer.commits.length} INSERTs sent, ${writer.acknowledged} acknowledged; it stopped on: ${writer.errors[0] ?? 'nothing'}`);

  // The backup container stops while the server runs restored to T, as its receiver would follow
  // that server onto a new timeline, and --latest follows the newest timeline of the archive.
  await tenant.running(backup.name).stop();
  detail(`${backup.name} stopped (so the archive's latest stays the destroyed server's)`);
  detail(`tenantry-agent restore ${POSTGRES_PITR_JOB} --to-time ${iso(t)}: ${await agent(['restore', POSTGRES_PITR_JOB, '--to-time', iso(t)])}`);
  await restartPostgres();
  const atT = await rows();
  const toT = compareToTime(writer.commits, atT.rows, t);
  detail(
    `restored to T: ${atT.rows.size} rows; acknowledged before T ${toT.before}, missing ${toT.missingBefore.length}; sent after T ${toT.after}, present ${toT.presentAfter.length}; ` +
      `in flight at T ${toT.inFlight} (present ${toT.inFlightPresent}); rows never written ${toT.unknown}; wrong checksums ${atT.badChecksums}`,
  );
  const wrongAtT = toT.missingBefore.length + toT.presentAfter.length + toT.unknown + atT.badChecksums;

  await tenant.running(postgres.name).stop();
  detail(`tenantry-agent restore ${POSTGRES_PITR_JOB} --latest: ${await agent(['restore', POSTGRES_PITR_JOB, '--latest'])}`);
  await restartPostgres();
  const latest = await rows();
  const lost = compareLatest(writer.commits, latest.rows, destroyedAt);
  detail(
    `restored to latest: ${latest.rows.size} rows; acknowledged ${lost.acknowledged}, lost ${lost.lost.length} (sent in the last ${(lost.lostSeconds * 1000).toFixed(0)} ms before the kill); ` +
      `unacknowledged but kept ${lost.unacknowledgedPresent}; rows never written ${lost.unknown}; wrong checksums ${latest.badChecksums}`,
  );
  const kept = fs.readdirSync(path.dirname(pgdata)).filter((name) => name.startsWith('pgdata.before-restore-'));
  detail(`data directories kept aside by the restore-on-start script: ${kept.join(', ') || 'none'}`);

  await tenant.start(backup.name);
  await receiverStreaming(tenant);
  await runAppWorkload(appUrl, analyticsUrl, { connections: 2, transactions: 5 });
  detail(`${backup.name} started again: the receiver streams from the restored server; the app wrote 5 more transactions through PgBouncer`);

  const problems: string[] = [];
  if (wrongAtT > 0) problems.push(`the restore to T is not exactly the commits before T (${toT.missingBefore.length} missing, ${toT.presentAfter.length} from after T, ${toT.unknown} unknown, ${atT.badChecksums} bad checksums)`);
  if (lost.unknown + latest.badChecksums > 0) problems.push(`the restore to latest holds ${lost.unknown} rows never written and ${latest.badChecksums} with a wrong checksum`);
  if (lost.lostSeconds >= RPO_SECONDS) problems.push(`the restore to latest lost ${lost.lostSeconds.toFixed(3)} s of acknowledged writes (${lost.lost.length} commits), not under ${RPO_SECONDS} s`);
  // The first restore replaced nothing (the data directory was deleted); the second, the one restored to T.
  if (kept.length !== 1) problems.push(`expected the data directory restored to T kept aside by the restore to latest, found ${kept.join(', ') || 'none'}`);
  if (problems.length > 0) throw new Error(problems.join('; '));
}

function agentOutput(result: { code: number; stdout: string; stderr: string }): string {
  return (result.stdout.trim() + (result.stderr.trim() ? `\n${result.stderr.trim()}` : '')).split('\n').slice(-12).join('\n');
}

/** Runs the drill; throws MissingBinary (before starting anything) when a program is missing. */
export async function runDrill(print: (line: string) => void = console.log): Promise<DrillReport> {
  checkBinaries();
  const steps = new Steps(print);
  let run: TenantRun | undefined;
  let translation = '';
  try {
    await steps.run(
      'preflight: programs and open-files limit',
      async (detail) => {
        checkBinaries();
        detail('postgres, pg_ctl, psql, pg_dump, pg_restore, pgbouncer, redis-server, redis-sentinel, redis-cli: present');
        // PgBouncer's healthcheck uses nc (busybox in its image); not needed for the drill's proofs.
        detail(`nc (PgBouncer's healthcheck): ${ensureOptional('nc', 'netcat-openbsd') ? 'present' : 'missing, and netcat-openbsd could not be installed'}`);
        // The drill holds CLIENTS client sockets; PgBouncer as many, plus pool and margin.
        detail(ensureOpenFiles(CLIENTS + 512));
      },
      true,
    );

    await steps.run(
      `synthesize the ${DRILL_ENVIRONMENT} environment and translate tenant ${DRILL_TENANT}`,
      async (detail) => {
        run = await TenantRun.prepare(DRILL_ENVIRONMENT, DRILL_TENANT);
        detail(`node dist/main.js with CDKTF_OUTDIR → ${run.stackFile}`);
        detail(`containers run: ${run.translation.containers.map((c) => c.name).join(', ')}`);
        translation = formatTable(run.translation.rows);
        print(`\nTranslation table (e2e/translation.ts), ${run.translation.rows.length} rows:\n${translation}\n`);
      },
      true,
    );
    const tenant = run!;

    const started = new Map<string, RunningService>();
    await steps.run(
      'start every container as a local process',
      async (detail) => {
        for (const service of START_ORDER) {
          for (const c of tenant.byService(service)) {
            const t = Date.now();
            started.set(c.name, await tenant.start(c.name));
            detail(`${c.name}: pid ${started.get(c.name)!.pid}, 127.0.0.1:${c.port} (${c.argv.slice(0, 2).join(' ')}…, as ${c.user}) ready in ${Date.now() - t} ms`);
          }
        }
      },
      true,
    );

    await steps.run('container healthchecks (their own commands, translated)', async (detail) => {
      const failures: string[] = [];
      for (const c of tenant.translation.containers) {
        const result = await tenant.healthcheck(c.name);
        const missing = result.code === 127 ? /(\S+): not found/.exec(result.stderr)?.[1] : undefined;
        if (missing) {
          // The image has the program (busybox); this machine may not. Not a finding about the stack.
          detail(`${c.name}: not run here: \`${missing}\` is not installed (Debian: ${missing === 'nc' ? 'netcat-openbsd' : missing}); command: ${c.healthcheck}`);
        } else if (result.code === 0) {
          detail(`${c.name}: healthy`);
        } else {
          failures.push(c.name);
          detail(`${c.name}: exit ${result.code}: ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' / ')}`);
        }
      }
      if (failures.length > 0) throw new Error(`unhealthy: ${failures.join(', ')}`);
    });

    const output = tenant.translation.output;
    const [postgres] = tenant.byService('postgres');
    const [pgbouncer] = tenant.byService('pgbouncer');
    const superuser = { port: postgres.port, user: postgres.env.POSTGRES_USER || 'postgres', password: postgres.env.POSTGRES_PASSWORD };
    const appUrl = output.database_urls.app;
    const analyticsUrl = output.database_urls.analytics;

    let access: { before: string; after?: string } | undefined;
    await steps.run('Postgres: write through PgBouncer, back up, DROP DATABASE, restore, compare', async (detail) => {
      if (!appUrl || !analyticsUrl) throw new Error(`the tenant output has no app/analytics database URL (has: ${Object.keys(output.database_urls).join(', ')})`);
      detail(`application URL from output tenant_${DRILL_TENANT}.database_urls.app: ${appUrl.replace(/:[^:@/]+@/, ':***@')}`);
      const workload = await runAppWorkload(appUrl, analyticsUrl, { connections: 8, transactions: 400 });
      detail(`workload: ${workload.transactions} transactions over ${workload.connections} connections in ${workload.ms} ms; rows ${JSON.stringify(workload.rows)}`);
      const before = { ...(await digestTables(appUrl, APP_TABLES)), ...(await digestTables(analyticsUrl, ANALYTICS_TABLES)) };
      access = { before: await databaseAccess(superuser, 'app') };

      const backup = await tenant.agent(['run', 'postgres']);
      detail(`tenantry-agent run postgres: exit ${backup.code}`);
      if (backup.code !== 0) throw new Error(`the backup failed:\n${agentOutput(backup)}`);
      const listed = await tenant.agent(['list']);
      for (const line of listed.stdout.trim().split('\n').slice(-4)) detail(`  list: ${line}`);

      await asSuperuser(superuser, (client) => client.query('DROP DATABASE app WITH (FORCE)'));
      const gone = await asSuperuser(superuser, (client) => client.query("SELECT 1 FROM pg_database WHERE datname = 'app'"));
      if (gone.rowCount !== 0) throw new Error('database app still exists after DROP DATABASE');
      detail('DROP DATABASE app WITH (FORCE): done, database gone');

      // --only: the backup holds both databases and --target names one.
      // As the README's restore how-to says: the superuser from admin_<tenant>, passed for this command only.
      const restore = await tenant.agent(['restore', 'postgres', '--from', 'latest', '--only', 'app', '--target', 'app'], {
        [RESTORE_CREDENTIAL_ENV.userEnv]: superuser.user,
        [RESTORE_CREDENTIAL_ENV.passwordEnv]: superuser.password,
      });
      detail(`tenantry-agent restore postgres --from latest --only app --target app: exit ${restore.code}`);
      if (restore.code !== 0) throw new Error(`the restore failed:\n${agentOutput(restore)}`);
      for (const line of agentOutput(restore).split('\n').slice(-3)) detail(`  ${line}`);

      const after = { ...(await digestTables(appUrl, APP_TABLES)), ...(await digestTables(analyticsUrl, ANALYTICS_TABLES)) };
      const differences = sameDigests(before, after, detail);
      if (differences.length > 0) throw new Error(`restored contents differ: ${differences.join(', ')}`);
      access.after = await databaseAccess(superuser, 'app');

      // The restored database must still be the app's: owned by it, writable through PgBouncer.
      await runAppWorkload(appUrl, analyticsUrl, { connections: 2, transactions: 5 });
      const owner = await asSuperuser({ ...superuser, database: 'app' }, (client) =>
        client.query<{ table: string; owner: string }>("SELECT tablename AS table, tableowner AS owner FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
      );
      detail(`after restore: the app wrote 5 more transactions through PgBouncer; owners ${owner.rows.map((r) => `${r.table}=${r.owner}`).join(', ')}`);
    });

    // Who owns the database and who may connect are part of the tenant's isolation (the init
    // script revokes PUBLIC's CONNECT), so a faithful restore brings them back too.
    await steps.run('Postgres: the restored database keeps its owner and privileges', async (detail) => {
      if (!access?.after) throw new Error('not checked: the restore above did not complete');
      detail(`before: ${access.before}`);
      detail(`after:  ${access.after}`);
      if (access.after !== access.before) throw new Error('the restored database has another owner or other privileges than the one dropped');
    });

    await steps.run('Postgres point-in-time recovery: writes, time T, more writes, server and data directory destroyed, restore to T, then to latest', (detail) =>
      pointInTimeStep(tenant, postgres, superuser, appUrl, analyticsUrl, detail),
    );

    await steps.run(`PgBouncer: ${CLIENTS} clients connected at once, served by the pool`, async (detail) => {
      const poolSize = Number(setting(pgbouncer, 'pgbouncer.ini', 'default_pool_size'));
      const maxClients = Number(setting(pgbouncer, 'pgbouncer.ini', 'max_client_conn'));
      const poolMode = setting(pgbouncer, 'pgbouncer.ini', 'pool_mode');
      detail(`synthesized: pool_mode ${poolMode}, default_pool_size ${poolSize}, max_client_conn ${maxClients}`);
      const appRole = new URL(appUrl).username;
      const result = await manyClients({ url: appUrl, pgbouncerPort: pgbouncer.port, clients: CLIENTS, superuser, appRole, database: 'app', querySeconds: 0.05, timeoutMs: 120_000 });
      detail(`connected ${result.clients} clients in ${result.connectMs} ms; ESTABLISHED on PgBouncer's port with all connected: ${result.establishedAtPeak}`);
      detail(`queries: ${result.queriesOk}/${result.clients} ok in ${result.queryMs} ms (SELECT pg_sleep(0.05) each)`);
      detail(`server connections of ${appRole} to app (pg_stat_activity, ${result.samples} samples): max ${result.maxServerConnections} (pool size ${poolSize})`);
      if (result.queryErrors.length > 0) detail(`errors: ${result.queryErrors.join(' | ')}`);
      const problems: string[] = [];
      if (result.establishedAtPeak < CLIENTS) problems.push(`only ${result.establishedAtPeak} client connections were open at once`);
      if (result.queriesOk !== CLIENTS) problems.push(`${CLIENTS - result.queriesOk} queries failed`);
      if (result.maxServerConnections > poolSize) problems.push(`${result.maxServerConnections} server connections exceed the pool size ${poolSize}`);
      if (result.maxServerConnections === 0) problems.push('no server connection was ever seen (sampling broken?)');
      if (problems.length > 0) throw new Error(problems.join('; '));
    });

    await steps.run('Redis: SIGKILL the master under acknowledged writes; sentinels fail over; nothing acknowledged is lost', async (detail) => {
      const redis = output.redis;
      if (!redis) throw new Error(`the tenant output has no redis section`);
      const view: SentinelView = {
        masterName: redis.master_name,
        password: redis.password,
        sentinelPassword: redis.sentinel_password,
        sentinels: redis.sentinels.map((s) => Number(s.split(':')[1])),
      };
      const nodes = tenant.byService('redis');
      const minReplicas = Number(setting(nodes[0], 'redis.conf', 'min-replicas-to-write'));
      const maxLag = Number(setting(nodes[0], 'redis.conf', 'min-replicas-max-lag'));
      const sentinelConf = tenant.byService('sentinel')[0];
      const downAfter = setting(sentinelConf, 'sentinel.conf', `sentinel down-after-milliseconds ${view.masterName}`);
      detail(`synthesized: ${nodes.length} nodes, ${view.sentinels.length} sentinels, min-replicas-to-write ${minReplicas}, min-replicas-max-lag ${maxLag}, down-after-milliseconds ${downAfter}`);
      const masterPort = await waitForSteadyState(view, nodes.length - 1, 60_000);
      detail(`steady: master 127.0.0.1:${masterPort}, ${nodes.length - 1} replicas connected, every sentinel sees them and ${view.sentinels.length - 1} others`);

      const writer = new AcknowledgedWriter(view, { maxWrites: 20_000, timeoutMs: 90_000, prefix: 'drill:k' });
      writer.start();
      try {
        for (let i = 0; i < 200 && writer.ackedBy(masterPort) < 100; i++) await sleep(50);
        if (writer.ackedBy(masterPort) === 0) throw new Error(`no write was acknowledged by the master before the kill: ${JSON.stringify(writer.result.refused)}`);
        const killed: string[] = [];
        const timing = await killMasterAndTime(
          view,
          (port) => {
            const node = nodes.find((n) => n.port === port);
            if (!node) throw new Error(`the sentinels name 127.0.0.1:${port}, which is no node the drill started`);
            const service = tenant.running(node.name);
            const cmdline = fs.readFileSync(`/proc/${service.pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
            process.kill(service.pid, 'SIGKILL');
            tenant.forget(node.name);
            killed.push(`${node.name} (pid ${service.pid}: ${cmdline}) after ${writer.ackedBy(port)} acknowledged writes`);
          },
          60_000,
        );
        detail(`SIGKILL ${killed.join('')}`);
        detail(`failover: ${(timing.failoverMs / 1000).toFixed(2)} s from kill to all sentinels naming 127.0.0.1:${timing.newMasterPort} (per sentinel: ${timing.perSentinelMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s)`);
        for (let i = 0; i < 600 && writer.ackedBy(timing.newMasterPort) < 100; i++) await sleep(50);
        const result = await writer.stop();
        detail(`writes: ${result.attempted} attempted, ${result.acknowledged.size} acknowledged (old master ${writer.ackedBy(timing.oldMasterPort)}, new master ${writer.ackedBy(timing.newMasterPort)}), refused/failed: ${JSON.stringify(result.refused)}`);
        if (writer.ackedBy(timing.newMasterPort) === 0) throw new Error('the new master acknowledged no write');

        // Settled: the new master has its remaining replica back (min-replicas-to-write is met).
        for (let i = 0; i < 300; i++) {
          const info = await replicationInfo(timing.newMasterPort, view.password).catch(() => ({} as Record<string, string>));
          if (info.role === 'master' && Number(info.connected_slaves) >= Math.max(1, minReplicas)) break;
          await sleep(100);
        }
        const lost = await missingOrDifferent(timing.newMasterPort, view.password, result.acknowledged);
        detail(`acknowledged writes missing or different on the new master: ${lost.length}${lost.length ? ` (e.g. ${lost.slice(0, 5).join(', ')})` : ''}`);
        detail(`(min-replicas-to-write ${minReplicas} bounds what can be lost, it does not prevent it: replication stays asynchronous, so a write acknowledged in the last moment before the kill may be missing; the drill counts every such write as lost)`);
        if (lost.length > 0) throw new Error(`${lost.length} acknowledged writes were lost`);
      } finally {
        await writer.stop();
      }
    });
  } catch (error) {
    if (!(error instanceof StepFailed)) {
      await steps.run('unexpected error', async () => {
        throw error;
      });
    }
  } finally {
    await steps.run('stop every process by PID; ports free', async (detail) => {
      if (!run) return;
      const stopped = await run.stopAll();
      const taken = await run.portsStillTaken();
      detail(`stopped ${stopped} processes; temp dir removed; ports still accepting connections: ${taken.length ? taken.join(', ') : 'none'}`);
      if (taken.length > 0) throw new Error(`ports still taken: ${taken.join(', ')}`);
    });
  }
  const ok = steps.results.every((s) => s.ok);
  print(`\nDRILL ${ok ? 'PASSED' : 'FAILED'}: ${steps.results.filter((s) => s.ok).length}/${steps.results.length} steps passed`);
  return { ok, translation, steps: steps.results };
}

async function main(): Promise<number> {
  const jsonAt = process.argv.indexOf('--json');
  try {
    const report = await runDrill();
    if (jsonAt > 0 && process.argv[jsonAt + 1]) fs.writeFileSync(process.argv[jsonAt + 1], JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof MissingBinary) {
      console.error(`The drill needs ${error.binary}: install the Debian package ${error.debianPackage} (apt-get install -y ${error.debianPackage}).`);
      return 2;
    }
    throw error;
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
