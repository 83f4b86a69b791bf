/**
 * The Postgres container's restore-on-start script (runtime/render/postgres-restore-on-start.ts),
 * run by /bin/sh as root with exactly the Postgres container's capabilities and no new privileges
 * (setpriv, as Docker starts it), on real PostgreSQL 15 data directories: the live one, and a
 * prepared restore (initdb + a row) on a backup volume owned by the agent's user.
 */
import { execFile, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CONTAINER_PRIVILEGES } from '../../constructs/container-privileges';
import { PITR_FOLDERS, POSTGRES_PITR_JOB, PREPARED_RESTORE } from '../../runtime/agent/pitr/layout';
import { renderRestoreOnStart } from '../../runtime/render/postgres-restore-on-start';
import { freePort, tempDir } from '../helpers/servers';

const BIN = '/usr/lib/postgresql/15/bin';
const RESTORE_ID = '20261201T171500Z';
/** The backup agent's user in its image (runtime/agent/Dockerfile): owns the backup volume. */
const AGENT_UID = 10001;

const postgresIds = { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };

function asPostgres(file: string, args: string[]): string {
  return execFileSync(file, args, { uid: postgresIds.uid, gid: postgresIds.gid, cwd: '/', env: { PATH: `${BIN}:/usr/bin:/bin` } }).toString();
}

/** A cleanly shut down data directory with table `origin` holding one row, and a marker file naming it. */
async function dataDirectory(at: string, origin: string): Promise<void> {
  asPostgres(`${BIN}/initdb`, ['--pgdata', at, '--username', 'postgres', '--auth', 'trust', '--no-sync', '--locale', 'C']);
  const socketDir = path.dirname(at);
  const port = await freePort();
  asPostgres(`${BIN}/pg_ctl`, ['--pgdata', at, '--wait', '--options', `-p ${port} -k ${socketDir} -c listen_addresses=`, '--log', `${at}.log`, 'start']);
  try {
    asPostgres(`${BIN}/psql`, ['-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE TABLE origin (v text); INSERT INTO origin VALUES ('${origin}')`]);
  } finally {
    asPostgres(`${BIN}/pg_ctl`, ['--pgdata', at, '--wait', '--mode', 'fast', 'stop']);
  }
  fs.writeFileSync(path.join(at, 'tenantry-test-origin'), origin);
  fs.chownSync(path.join(at, 'tenantry-test-origin'), postgresIds.uid, postgresIds.gid);
}

/** The row a server started on `at` returns: proves the directory is one Postgres accepts. */
async function originRow(at: string): Promise<string> {
  const socketDir = tempDir('restore-check');
  const port = await freePort();
  asPostgres(`${BIN}/pg_ctl`, ['--pgdata', at, '--wait', '--options', `-p ${port} -k ${socketDir} -c listen_addresses=`, '--log', path.join(socketDir, 'server.log'), 'start']);
  try {
    return asPostgres(`${BIN}/psql`, ['-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-At', '-c', 'SELECT v FROM origin']).trim();
  } finally {
    asPostgres(`${BIN}/pg_ctl`, ['--pgdata', at, '--wait', '--mode', 'fast', 'stop']);
  }
}

const marker = (dir: string) => fs.readFileSync(path.join(dir, 'tenantry-test-origin'), 'utf8');

interface Layout {
  /** The data volume's root, as the container sees /var/lib/postgresql/data. */
  volume: string;
  pgdata: string;
  backup: string;
  script: string;
}

let templates: { live: string; restored: string };

beforeAll(async () => {
  const root = tempDir('restore-templates');
  templates = { live: path.join(root, 'live'), restored: path.join(root, 'restored') };
  await dataDirectory(templates.live, 'live');
  await dataDirectory(templates.restored, 'restored');
}, 120_000);

/**
 * A data volume whose root is owned and moded like one of Tenantry's storage kinds, holding the live
 * data directory, and a backup volume with a READY restore named in `pending`.
 */
function layout(volumeOwner: 'postgres' | 'root', volumeMode: number, mountVolume?: (volume: string) => void): Layout {
  const root = tempDir('restore-on-start');
  const volume = path.join(root, 'data');
  fs.mkdirSync(volume);
  mountVolume?.(volume);
  const pgdata = path.join(volume, 'pgdata');
  execFileSync('cp', ['-a', templates.live, pgdata]);
  const owner = volumeOwner === 'postgres' ? postgresIds : { uid: 0, gid: 0 };
  fs.chownSync(volume, owner.uid, owner.gid);
  fs.chmodSync(volume, volumeMode);

  const backup = path.join(root, 'backup');
  const restores = path.join(backup, POSTGRES_PITR_JOB, PITR_FOLDERS.restores);
  fs.mkdirSync(path.join(restores, RESTORE_ID), { recursive: true });
  execFileSync('cp', ['-a', templates.restored, path.join(restores, RESTORE_ID, 'pgdata')]);
  fs.writeFileSync(path.join(restores, RESTORE_ID, PREPARED_RESTORE.ready), JSON.stringify({ id: RESTORE_ID }));
  fs.writeFileSync(path.join(restores, PREPARED_RESTORE.pending), `${RESTORE_ID}\n`);
  execFileSync('chown', ['-R', `${AGENT_UID}:${AGENT_UID}`, backup]);
  execFileSync('chmod', ['-R', 'go-rwx', backup]);

  const script = path.join(root, 'restore-on-start.sh');
  fs.writeFileSync(script, renderRestoreOnStart({ backupMount: backup }), { mode: 0o755 });
  return { volume, pgdata, backup, script };
}

/** The container's start: root with the Postgres container's capabilities only, then the image's entrypoint (here: a marker). */
function start(l: Layout): Promise<{ code: number; stdout: string; stderr: string }> {
  const caps = CONTAINER_PRIVILEGES.postgres.capabilities.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const argv = ['--no-new-privs', `--bounding-set=-all,${caps}`, `--inh-caps=-all`, '/bin/sh', l.script, 'sh', '-c', 'echo entrypoint ran'];
  return new Promise((resolve) => {
    execFile('setpriv', argv, { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', PGDATA: l.pgdata }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const entries = (dir: string) => fs.readdirSync(dir).sort();

describe.each([
  ['a named volume (postgres, 1777 from the image)', 'postgres', 0o1777],
  ['an NFS volume (postgres, 0700 from nfs-prepare.sh)', 'postgres', 0o700],
  ['a bind volume (root, 0755 as Docker creates it)', 'root', 0o755],
] as const)('restore on start, data volume on %s', (_kind, owner, mode) => {
  test('swaps the prepared restore in, keeps the old data directory, and a second start changes nothing', async () => {
    const l = layout(owner, mode);
    const first = await start(l);
    expect(first).toMatchObject({ code: 0, stdout: 'entrypoint ran\n' });
    expect(first.stderr).toContain(`restore ${RESTORE_ID} applied`);
    expect(entries(l.volume)).toEqual(['pgdata', `pgdata.before-restore-${RESTORE_ID}`, 'restores-applied']);
    expect(marker(l.pgdata)).toBe('restored');
    expect(marker(path.join(l.volume, `pgdata.before-restore-${RESTORE_ID}`))).toBe('live');
    expect(fs.existsSync(path.join(l.volume, 'restores-applied', RESTORE_ID))).toBe(true);
    const stat = fs.statSync(l.pgdata);
    expect({ uid: stat.uid, mode: stat.mode & 0o777 }).toEqual({ uid: postgresIds.uid, mode: 0o700 });
    expect(await originRow(l.pgdata)).toBe('restored');

    const second = await start(l);
    expect(second).toEqual({ code: 0, stdout: 'entrypoint ran\n', stderr: '' });
    expect(entries(l.volume)).toEqual(['pgdata', `pgdata.before-restore-${RESTORE_ID}`, 'restores-applied']);
    expect(marker(l.pgdata)).toBe('restored');
  }, 60_000);
});

describe('restore on start: what must not change the live data directory', () => {
  const mounted: string[] = [];
  afterEach(() => {
    for (const m of mounted.splice(0)) execFileSync('umount', [m]);
  });

  /** A tmpfs just larger than the live data directory: the copy of the restore cannot fit. */
  const smallFilesystem = (volume: string) => {
    const usedKb = Number(execFileSync('du', ['-sk', templates.live]).toString().split('\t')[0]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${usedKb + 2048}k`, 'tmpfs', volume]);
    mounted.push(volume);
  };

  test.each([
    ['full', (l: Layout) => void l],
    ['read-only', (l: Layout) => execFileSync('mount', ['-o', 'remount,ro', l.volume])],
  ])('a copy that fails on a %s data volume leaves the live directory in place, untouched, and the server starts on it', async (_what, breakVolume) => {
    const l = layout('postgres', 0o1777, smallFilesystem);
    breakVolume(l);
    // The directory itself and everything in it; not its parent (the failed copy wrote there).
    const listing = () => execFileSync('ls', ['-ld', '--full-time', l.pgdata]).toString() + execFileSync('ls', ['-lAR', '--full-time', l.pgdata]).toString();
    const before = listing();
    const run = await start(l);
    expect(run).toMatchObject({ code: 0, stdout: 'entrypoint ran\n' });
    expect(run.stderr).toContain(`could not copy restore ${RESTORE_ID}`);
    expect(entries(l.volume).filter((e) => e !== 'lost+found')).toEqual(['pgdata']);
    expect(listing()).toBe(before);
    expect(marker(l.pgdata)).toBe('live');
  }, 60_000);

  test('a pending restore that is not READY, or not a restore id, is ignored', async () => {
    const l = layout('postgres', 0o1777);
    const restores = path.join(l.backup, POSTGRES_PITR_JOB, PITR_FOLDERS.restores);
    fs.rmSync(path.join(restores, RESTORE_ID, PREPARED_RESTORE.ready));
    expect((await start(l)).stderr).toContain(`pending names restore ${RESTORE_ID}, which is not ready: ignored`);
    fs.writeFileSync(path.join(restores, PREPARED_RESTORE.pending), '../../etc\n');
    expect((await start(l)).stderr).toContain('which is not a restore id: ignored');
    expect(entries(l.volume)).toEqual(['pgdata']);
    expect(marker(l.pgdata)).toBe('live');
  }, 60_000);

  test('a start stopped between moving the live directory aside and renaming the copy finishes the swap', async () => {
    const l = layout('postgres', 0o1777);
    const staged = path.join(l.volume, `pgdata.restore-${RESTORE_ID}`);
    execFileSync('cp', ['-a', templates.restored, staged]);
    fs.renameSync(l.pgdata, path.join(l.volume, `pgdata.before-restore-${RESTORE_ID}`));
    const run = await start(l);
    expect(run.code).toBe(0);
    expect(entries(l.volume)).toEqual(['pgdata', `pgdata.before-restore-${RESTORE_ID}`, 'restores-applied']);
    expect(marker(l.pgdata)).toBe('restored');
  }, 60_000);
});
