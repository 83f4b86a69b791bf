/**
 * The base backup's check without extraction (runtime/agent/pitr/base-backup-check.ts), against
 * real pg_basebackup output of PostgreSQL 15 and 17: an intact backup passes and agrees with
 * pg_verifybackup on the extracted copy; each kind of damage a disk, a copy or a person can do is
 * caught and named, as pg_verifybackup would: a flipped byte in a data file, a truncated archive,
 * a file missing, a file added, an edited manifest, a damaged WAL segment. And the hashing of a
 * tar while another process is still writing it gives what reading the finished file gives.
 * Both checksums a manifest can carry here: CRC32C (what the agent asks for) and SHA256 (where
 * CRC32C cannot load, and older backups).
 */
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { BaseBackupFiles, checkBaseBackup, followFile, hashTarFile, manifestChecksum, ManifestChecksum } from '../../runtime/agent/pitr/base-backup-check';
import { PostgresServer, postgresVersionsUnderTest, tempDir } from '../helpers/servers';
import { insertBatch, REPLICATOR, startSource } from './pitr-harness';

jest.setTimeout(120_000);

const CHECKSUMS: readonly ManifestChecksum[] = ['CRC32C', 'SHA256'];
const cases = postgresVersionsUnderTest().flatMap((version) => CHECKSUMS.map((checksum) => ({ ...version, checksum })));

test('the agent asks pg_basebackup for CRC32C here (its native part loads)', () => {
  expect(manifestChecksum()).toBe('CRC32C');
});

describe.each(cases)('PostgreSQL $major, $checksum manifest', ({ binDir, checksum }) => {
  let server: PostgresServer;
  let intact: string;
  const PATH = `${binDir}:${process.env.PATH}`;

  beforeAll(async () => {
    server = await startSource(binDir);
    await insertBatch(server, 1, 2000);
    intact = path.join(tempDir('base-backup-check'), 'intact');
    execFileSync(
      path.join(binDir, 'pg_basebackup'),
      ['-h', server.host, '-p', String(server.port), '-U', REPLICATOR.user, '-D', intact, '--format=tar', '--wal-method=stream', '--checkpoint=fast', '--compress=server-zstd:1', `--manifest-checksums=${checksum}`],
      { env: { PGPASSWORD: REPLICATOR.password, PATH } },
    );
  });

  afterAll(() => server?.stop());

  /** A copy of the intact backup, changed by `damage` (given the copy's folder). */
  const damaged = (damage: (dir: string) => void): BaseBackupFiles => {
    const dir = path.join(tempDir('base-backup-damaged'), 'backup');
    fs.cpSync(intact, dir, { recursive: true });
    damage(dir);
    return { dir, baseTar: 'base.tar.zst', walTar: 'pg_wal.tar', PATH };
  };
  /** Rewrites base.tar.zst after `edit` changed its unpacked files. */
  const repack = (dir: string, edit: (unpacked: string) => void) => {
    const unpacked = fs.mkdtempSync(path.join(path.dirname(dir), 'unpacked-'));
    execFileSync('sh', ['-c', `zstd -dc "${dir}/base.tar.zst" | tar -xf - -C "${unpacked}"`]);
    edit(unpacked);
    execFileSync('sh', ['-c', `tar -cf - -C "${unpacked}" . | zstd -q -1 -f -o "${dir}/base.tar.zst"`]);
  };
  /** The largest file of the table `events` was written into: a data file of the database `app`. */
  const dataFile = (unpacked: string) => {
    const files = fs.readdirSync(path.join(unpacked, 'base'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && /^\d+$/.test(e.name));
    return files.map((e) => path.join(e.parentPath, e.name)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
  };

  test('an intact backup passes, as pg_verifybackup on the extracted copy agrees, and nothing but the check folder is written and then removed', async () => {
    const manifest = await checkBaseBackup({ dir: intact, baseTar: 'base.tar.zst', walTar: 'pg_wal.tar', PATH });
    expect(manifest.Files.length).toBeGreaterThan(100);
    expect(new Set(manifest.Files.map((file) => file['Checksum-Algorithm']))).toEqual(new Set([checksum]));
    expect(fs.existsSync(`${intact}.tmp-check`)).toBe(false);
    const extracted = tempDir('base-backup-extracted');
    execFileSync('sh', ['-c', `zstd -dc "${intact}/base.tar.zst" | tar -xf - -C "${extracted}" && tar -xf "${intact}/pg_wal.tar" -C "${extracted}/pg_wal"`]);
    const verify = spawnSync(path.join(binDir, 'pg_verifybackup'), ['--quiet', `--manifest-path=${intact}/backup_manifest`, extracted], { encoding: 'utf8' });
    expect(verify).toMatchObject({ status: 0, stderr: '' });
  });

  test.each([
    ['a byte flipped in a data file', (dir: string) => repack(dir, (u) => {
      const file = dataFile(u);
      const bytes = fs.readFileSync(file);
      bytes[bytes.length - 100] ^= 0xff;
      fs.writeFileSync(file, bytes);
    }), new RegExp(`does not match its manifest: "base/\\d+/\\d+" does not match its ${checksum} checksum`)],
    ['a data file missing', (dir: string) => repack(dir, (u) => fs.rmSync(dataFile(u))), /"base\/\d+\/\d+" is in the manifest but not in the backup/],
    ['a file added', (dir: string) => repack(dir, (u) => fs.writeFileSync(path.join(u, 'base', 'stray'), 'x')), /"base\/stray" is in the backup but not in its manifest/],
    ['a file grown', (dir: string) => repack(dir, (u) => fs.appendFileSync(path.join(u, 'PG_VERSION'), '\n')), /"PG_VERSION" has size \d+ in the backup, \d+ in the manifest/],
    ['the compressed archive truncated', (dir: string) => fs.truncateSync(path.join(dir, 'base.tar.zst'), Math.floor(fs.statSync(path.join(dir, 'base.tar.zst')).size / 2)), /zstd/],
    ['the manifest edited (a size changed, its checksum not)', (dir: string) => {
      const file = path.join(dir, 'backup_manifest');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/"Path": "PG_VERSION", "Size": (\d+)/, (_m, size) => `"Path": "PG_VERSION", "Size": ${Number(size) + 1}`));
    }, /backup_manifest's checksum is [0-9a-f]{64}, but it says [0-9a-f]{64}: the manifest is damaged/],
    ['a WAL segment of the backup\'s span damaged', (dir: string) => {
      const unpacked = fs.mkdtempSync(path.join(path.dirname(dir), 'wal-'));
      execFileSync('tar', ['-xf', path.join(dir, 'pg_wal.tar'), '-C', unpacked]);
      const segment = fs.readdirSync(unpacked).find((n) => /^[0-9A-F]{24}$/.test(n))!;
      const bytes = fs.readFileSync(path.join(unpacked, segment));
      // The first record after the segment's long page header: its length field.
      bytes.fill(0xff, 40, 48);
      fs.writeFileSync(path.join(unpacked, segment), bytes);
      execFileSync('tar', ['-cf', path.join(dir, 'pg_wal.tar'), '-C', unpacked, '.']);
    }, /the WAL of the base backup's span \([0-9A-F/]+\.\.[0-9A-F/]+, timeline 1\) does not parse/],
  ])('%s: refused, naming it', async (_what, damage, message) => {
    const backup = damaged(damage);
    await expect(checkBaseBackup(backup)).rejects.toThrow(message);
    expect(fs.existsSync(`${backup.dir}.tmp-check`)).toBe(false);
  });
});

describe('followFile: reading a file while another process writes it', () => {
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const collect = async (stream: NodeJS.ReadableStream) => {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };

  test('a file created late and written in bursts with pauses is read whole, ending when the writer has finished', async () => {
    const file = path.join(tempDir('follow'), 'growing');
    const written: Buffer[] = [];
    const writer = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 60));
      for (let burst = 0; burst < 12; burst++) {
        const data = Buffer.alloc(300_000 + burst * 7_001, burst);
        fs.appendFileSync(file, data);
        written.push(data);
        await new Promise((resolve) => setTimeout(resolve, burst % 3 === 0 ? 45 : 1));
      }
    })();
    const read = await collect(followFile(file, writer));
    expect(read.length).toBe(Buffer.concat(written).length);
    expect(sha(read)).toBe(sha(Buffer.concat(written)));
  });

  test('a writer that fails before creating the file ends the reading with an error, not a wait', async () => {
    const file = path.join(tempDir('follow'), 'never');
    const failed = Promise.reject(new Error('pg_basebackup: could not connect'));
    await expect(collect(followFile(file, failed))).rejects.toThrow('never was never written');
  });

  test('a compressed tar hashed while it is written equals the same tar hashed afterwards', async () => {
    const dir = tempDir('follow-tar');
    const source = path.join(dir, 'files');
    fs.mkdirSync(path.join(source, 'base'), { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(source, 'base', String(i)), Buffer.alloc(50_000 * (i + 1), i));
    fs.writeFileSync(path.join(source, 'check'), '123456789');
    const tar = path.join(dir, 'base.tar.zst');
    // zstd writes the archive as tar produces it, slowly enough (a pipe, -1 and small blocks) to be followed.
    const writing = new Promise<void>((resolve, reject) => {
      const child = spawn('sh', ['-c', `tar -cf - -b 1 -C "${source}" . | zstd -q -1 --no-progress -o "${tar}"`]);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
    });
    const streamed = await hashTarFile(tar, 'SHA256', undefined, followFile(tar, writing));
    const afterwards = await hashTarFile(tar, 'SHA256');
    expect([...streamed.files.entries()].sort()).toEqual([...afterwards.files.entries()].sort());
    expect(streamed.files.get('base/19')).toEqual({ size: 1_000_000, checksum: sha(Buffer.alloc(1_000_000, 19)) });
    // CRC-32C's check value (of "123456789") is 0xE3069283; backup_manifest writes its bytes little-endian.
    const crc = await hashTarFile(tar, 'CRC32C');
    expect(crc.files.get('check')?.checksum).toBe('839206e3');
  });
});
