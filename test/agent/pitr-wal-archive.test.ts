import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  abandonedFiles,
  ABANDONED_FOLDER,
  checkContinuity,
  firstGap,
  formatLsn,
  historyFileName,
  listWal,
  markOffsite,
  parseLsn,
  parseSegmentName,
  parseWalSegmentSize,
  pruneWalBefore,
  sealCompleted,
  segmentName,
  setAsideAbandoned,
  segmentNameForLsn,
  WalContents,
  walFolder,
  writeServerFile,
} from '../../runtime/agent/pitr/wal-archive';
import { BackupStore } from '../../runtime/agent/store';
import { archivedPosition } from '../../runtime/agent/pitr/receiver';
import { restorableWindowStart } from '../../runtime/agent/pitr/window';
import { diskUsage } from './pitr-harness';

const MB16 = 16 * 1024 * 1024;

async function folder(files: Record<string, string>, segmentSize = MB16): Promise<string> {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'wal-'));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  await writeServerFile(dir, { systemIdentifier: '1', walSegmentSize: segmentSize, serverMajor: 15, firstSeenAt: '' });
  return dir;
}
const seg = (timeline: number, segno: number, size = MB16) => segmentName({ timeline, segno: BigInt(segno) }, size);

describe('WAL arithmetic', () => {
  test('LSN text round trip', () => {
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
    expect(() => parseLsn('16B374D848')).toThrow('is not an LSN');
  });

  test('segment names as Postgres gives them, for 16 MB and other segment sizes', () => {
    expect(segmentNameForLsn(parseLsn('0/3000060'), 1, MB16)).toBe('000000010000000000000003');
    expect(segmentNameForLsn(parseLsn('16/B374D848'), 2, MB16)).toBe('0000000200000016000000B3');
    // 64 MB segments: 64 per 4 GB log id.
    expect(segmentNameForLsn(parseLsn('1/C000000'), 1, 64 * 1024 * 1024)).toBe('000000010000000100000003');
    expect(parseSegmentName('0000000200000016000000B3', MB16)).toEqual({ timeline: 2, segno: 0x16n * 256n + 0xb3n });
    expect(parseSegmentName('000000010000000100000040', 64 * 1024 * 1024)).toBeUndefined();
  });

  test('wal_segment_size as SHOW prints it', () => {
    expect(parseWalSegmentSize('16MB')).toBe(MB16);
    expect(parseWalSegmentSize('1GB')).toBe(1024 ** 3);
    expect(() => parseWalSegmentSize('3MB')).toThrow('power of two');
  });
});

describe('continuity', () => {
  test('an unbroken chain ending in the partial has no gap', async () => {
    const dir = await folder({ [seg(1, 1)]: 'a', [seg(1, 2)]: 'b', [`${seg(1, 3)}.partial`]: 'c' });
    const chain = checkContinuity(await listWal(dir));
    expect(chain).toMatchObject({ timeline: 1, firstLsn: '0/1000000', completeToLsn: '0/3000000', partial: `${seg(1, 3)}.partial`, unbrokenFromLsn: '0/1000000', gaps: [] });
  });

  test('a missing segment is a gap, named and located', async () => {
    const dir = await folder({ [seg(1, 1)]: 'a', [seg(1, 2)]: 'b', [seg(1, 5)]: 'e', [`${seg(1, 6)}.partial`]: 'f' });
    const chain = checkContinuity(await listWal(dir));
    expect(chain.gaps).toEqual([{ first: seg(1, 3), last: seg(1, 4), fromLsn: '0/3000000', toLsn: '0/5000000' }]);
    expect(chain.unbrokenFromLsn).toBe('0/5000000');
    // Checked from a base backup's start after the gap: nothing missing.
    expect(checkContinuity(await listWal(dir), parseLsn('0/5000028')).gaps).toEqual([]);
    // Checked from before the first segment: the missing start is a gap too.
    expect(checkContinuity(await listWal(dir), 0n).gaps[0]).toMatchObject({ first: seg(1, 0), last: seg(1, 0) });
  });

  test('a timeline switch is followed through its history; the old branch and its partial are not needed', async () => {
    const history = '1\t0/3000060\tno recovery target specified\n';
    const dir = await folder({ [seg(1, 1)]: 'a', [seg(1, 2)]: 'b', [`${seg(1, 3)}.partial`]: 'c', [historyFileName(2)]: history, [seg(2, 3)]: 'c2', [`${seg(2, 4)}.partial`]: 'd' });
    expect(checkContinuity(await listWal(dir))).toMatchObject({ timeline: 2, gaps: [], partial: `${seg(2, 4)}.partial`, completeToLsn: '0/4000000' });
    // Without timeline 2's first segment the chain breaks: segment 3 must come from timeline 2,
    // even when the abandoned timeline 1 has a completed segment 3 of its own.
    fs.rmSync(path.join(dir, seg(2, 3)));
    fs.writeFileSync(path.join(dir, seg(1, 3)), 'old branch');
    expect(checkContinuity(await listWal(dir)).gaps).toEqual([{ first: seg(2, 3), last: seg(2, 3), fromLsn: '0/3000000', toLsn: '0/4000000' }]);
  });

  test('a timeline without its history file is reported', async () => {
    const dir = await folder({ [seg(1, 1)]: 'a', [seg(2, 2)]: 'b' });
    expect(checkContinuity(await listWal(dir)).problems).toEqual(['timeline 2 has no 00000002.history: the timelines before it cannot be followed']);
  });
});

describe('seal: a completed segment is never replaced by other bytes', () => {
  test('different bytes renamed over a sealed segment are moved aside and the sealed bytes put back', async () => {
    const dir = await folder({ [seg(1, 1)]: 'original', [`${seg(1, 2)}.partial`]: 'x' });
    expect((await sealCompleted(dir)).sealed).toEqual([seg(1, 1)]);
    // What pg_receivewal does when it finishes a segment: rename over the name.
    fs.writeFileSync(path.join(dir, 'incoming'), 'different');
    fs.renameSync(path.join(dir, 'incoming'), path.join(dir, seg(1, 1)));
    const outcome = await sealCompleted(dir, new Date('2026-01-01T00:00:00Z'));
    expect(outcome.refused).toEqual([{ name: seg(1, 1), keptAs: `.refused/${seg(1, 1)}.20260101T000000.000Z` }]);
    expect(fs.readFileSync(path.join(dir, seg(1, 1)), 'utf8')).toBe('original');
    expect(fs.readFileSync(path.join(dir, outcome.refused[0].keptAs), 'utf8')).toBe('different');
  });

  test('the same bytes under a new inode are accepted', async () => {
    const dir = await folder({ [seg(1, 1)]: 'same' });
    await sealCompleted(dir);
    fs.writeFileSync(path.join(dir, 'incoming'), 'same');
    fs.renameSync(path.join(dir, 'incoming'), path.join(dir, seg(1, 1)));
    expect(await sealCompleted(dir)).toEqual({ sealed: [], refused: [] });
  });
});

test('pruneWalBefore removes segments before the oldest kept base backup, keeps histories', async () => {
  const dir = await folder({ [seg(1, 1)]: 'a', [`${seg(1, 2)}.partial`]: 'b', [historyFileName(2)]: '1\t0/2000100\tx\n', [seg(2, 2)]: 'b2', [seg(2, 3)]: 'c' });
  await sealCompleted(dir);
  expect((await pruneWalBefore(dir, parseLsn('0/3000028'))).sort()).toEqual([seg(1, 1), `${seg(1, 2)}.partial`, seg(2, 2)].sort());
  expect(fs.readdirSync(dir).filter((n) => !n.startsWith('.') && n !== 'server.json').sort()).toEqual([historyFileName(2), seg(2, 3)].sort());
  expect(fs.readdirSync(path.join(dir, '.sealed')).sort()).toEqual([historyFileName(2), seg(2, 3)].sort());
});

test('pruneWalBefore on a WAL folder the receiver never created (a base backup right after deploy) removes nothing and does not fail', async () => {
  const parent = await folder({});
  expect(await pruneWalBefore(path.join(parent, 'no-such-system'), parseLsn('0/3000028'))).toEqual([]);
});

test('pruning frees the disk: a pruned segment takes its seal (a hard link) and its off-site marker with it', async () => {
  const MB1 = 1024 * 1024;
  const dir = await folder({}, MB1);
  for (let segno = 1; segno <= 6; segno++) fs.writeFileSync(path.join(dir, seg(1, segno, MB1)), Buffer.alloc(MB1, segno));
  await sealCompleted(dir);
  for (let segno = 1; segno <= 6; segno++) await markOffsite(dir, seg(1, segno, MB1));
  const before = diskUsage(dir);
  expect(await pruneWalBefore(dir, BigInt(4 * MB1), MB1)).toEqual([1, 2, 3].map((n) => seg(1, n, MB1)));
  expect(before - diskUsage(dir)).toBeGreaterThanOrEqual(3 * MB1);
  for (const sub of ['.sealed', '.offsite']) expect(fs.readdirSync(path.join(dir, sub)).sort()).toEqual([4, 5, 6].map((n) => seg(1, n, MB1)));
});

test('firstGap looks across timelines from a start to an end (or the newest segment)', () => {
  const files = [seg(1, 2), seg(1, 3), seg(2, 4), seg(2, 6)].map((name) => parseSegmentName(name, MB16)!);
  expect(firstGap(files, 2n, 4n)).toBeUndefined();
  expect(firstGap(files, 2n)).toBe(5n);
});

test("a job's wal/ and restores/ folders are not listed as (damaged) backups", async () => {
  const backupDir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'store-'));
  fs.mkdirSync(path.join(walFolder(backupDir, 'postgres-pitr', '7714382839368764142')), { recursive: true });
  fs.mkdirSync(path.join(backupDir, 'postgres-pitr', 'restores'));
  expect(await new BackupStore(backupDir, 'postgres-pitr').list()).toEqual([]);
});

describe('the restorable window starts at the oldest good base backup with unbroken WAL after it', () => {
  const base = (endLsn: string, endTime: string, systemIdentifier = '1') =>
    ({ startLsn: endLsn, endLsn, startTime: endTime, endTime, timeline: 1, systemIdentifier, serverMajor: 15, walSegmentBytes: MB16, compression: 'none', baseTar: 'base.tar', walTar: 'pg_wal.tar' }) as const;
  const older = base('0/2000100', '2026-12-01T10:00:00.000Z');
  const newer = base('0/5000100', '2026-12-01T12:00:00.000Z');

  test('unbroken from the oldest: its end', async () => {
    const contents = await listWal(await folder({ [seg(1, 2)]: '', [seg(1, 3)]: '', [seg(1, 4)]: '', [seg(1, 5)]: '', [`${seg(1, 6)}.partial`]: '' }));
    expect(restorableWindowStart([older, newer], () => contents)).toEqual(new Date(older.endTime));
  });

  test('a gap after the oldest: the newer one, after the gap', async () => {
    const contents = await listWal(await folder({ [seg(1, 2)]: '', [seg(1, 4)]: '', [seg(1, 5)]: '', [`${seg(1, 6)}.partial`]: '' }));
    expect(restorableWindowStart([older, newer], () => contents)).toEqual(new Date(newer.endTime));
  });

  test('across a restore: the chain follows the new timeline from its fork', async () => {
    const contents = await listWal(await folder({ [seg(1, 2)]: '', [seg(1, 3)]: '', [seg(1, 4)]: '', [historyFileName(2)]: '1\t0/3000100\tx\n', [seg(2, 3)]: '', [seg(2, 4)]: '' }));
    expect(restorableWindowStart([older], () => contents)).toEqual(new Date(older.endTime));
  });

  test('no WAL folder for the backups, or a gap after every one: nothing restorable', async () => {
    expect(restorableWindowStart([older], () => undefined)).toBeUndefined();
    const contents = await listWal(await folder({ [seg(1, 2)]: '', [seg(1, 7)]: '' }));
    expect(restorableWindowStart([older, newer], () => contents)).toBeUndefined();
  });
});

describe('an abandoned branch (the server forked a new timeline at a restore)', () => {
  // Timeline 3 left timeline 1 at 0/5000100 (in segment 5); timeline 2 is an earlier restore's branch.
  const history = [{ parent: 1, switchpoint: 0x5000100n }];
  const partialWith = (tail: boolean) => {
    const bytes = Buffer.alloc(MB16);
    bytes.fill(1, 0, 0x100);
    if (tail) bytes[0x200] = 1;
    return bytes;
  };

  test('segments past the fork, a complete fork segment, and timelines outside the history are abandoned; what precedes the fork is not', async () => {
    const dir = await folder({ [seg(1, 4)]: 'a', [seg(1, 5)]: 'b', [seg(1, 6)]: 'c', [`${seg(1, 7)}.partial`]: 'd', [seg(2, 3)]: 'e', [seg(3, 5)]: 'f', [historyFileName(2)]: '1\t0/3000000\tx\n' });
    const names = await abandonedFiles(dir, await listWal(dir), 3, history);
    expect(names.sort()).toEqual([seg(1, 5), seg(1, 6), `${seg(1, 7)}.partial`, seg(2, 3)].sort());
  });

  test('a partial fork segment is abandoned only when it holds bytes past the switchpoint (an ordinary promotion leaves it written up to it)', async () => {
    const ended = await folder({});
    fs.writeFileSync(path.join(ended, `${seg(1, 5)}.partial`), partialWith(false));
    expect(await abandonedFiles(ended, await listWal(ended), 3, history)).toEqual([]);
    const forked = await folder({});
    fs.writeFileSync(path.join(forked, `${seg(1, 5)}.partial`), partialWith(true));
    expect(await abandonedFiles(forked, await listWal(forked), 3, history)).toEqual([`${seg(1, 5)}.partial`]);
  });

  test('set aside into abandoned/<timeline>/, never overwriting, seal dropped; the chain left is the new timeline\'s', async () => {
    const dir = await folder({ [seg(1, 4)]: 'a', [seg(1, 5)]: 'b', [seg(1, 6)]: 'c', [seg(3, 5)]: 'f', [historyFileName(3)]: '1\t0/5000100\tx\n' });
    await sealCompleted(dir);
    fs.mkdirSync(path.join(dir, ABANDONED_FOLDER, '00000001'), { recursive: true });
    fs.writeFileSync(path.join(dir, ABANDONED_FOLDER, '00000001', seg(1, 6)), 'older');
    const moved = await setAsideAbandoned(dir, [seg(1, 5), seg(1, 6)], new Date('2026-12-01T18:00:00Z'));
    expect(moved).toEqual([path.join(ABANDONED_FOLDER, '00000001', seg(1, 5)), path.join(ABANDONED_FOLDER, '00000001', `${seg(1, 6)}.20261201T180000.000Z`)]);
    expect(moved.map((m) => fs.readFileSync(path.join(dir, m), 'utf8'))).toEqual(['b', 'c']);
    expect(fs.readFileSync(path.join(dir, ABANDONED_FOLDER, '00000001', seg(1, 6)), 'utf8')).toBe('older');
    expect(fs.readdirSync(path.join(dir, '.sealed')).sort()).toEqual([historyFileName(3), seg(1, 4), seg(3, 5)].sort());
    expect(checkContinuity(await listWal(dir))).toMatchObject({ timeline: 3, gaps: [], problems: [] });
  });
});

describe('archivedPosition: what /metrics calls archived', () => {
  const MB16 = 16 * 1024 * 1024;
  const contents = (names: string[]): WalContents => {
    const ids = names.map((name) => ({ ...parseSegmentName(name.replace(/\.partial$/, ''), MB16)!, name }));
    return { segmentSize: MB16, segments: ids.filter((f) => !f.name.endsWith('.partial')), partials: ids.filter((f) => f.name.endsWith('.partial')), histories: new Map() };
  };

  test('streaming: the slot\'s confirmed position, inside the segment being received', () => {
    const folder = contents(['000000010000000000000003', '000000010000000000000004.partial']);
    expect(archivedPosition(parseLsn('0/4001000'), folder, 1)).toBe(parseLsn('0/4001000'));
  });

  test('a slot created anew after a restore (timeline 2) while the folder holds nothing of timeline 2: nothing counts as archived', () => {
    const folder = contents(['000000010000000000000003', '000000010000000000000004.partial']);
    expect(archivedPosition(parseLsn('0/5000100'), folder, 2)).toBeUndefined();
  });

  test('a confirmed position past the folder\'s newest file on the timeline is bounded by that file\'s end', () => {
    const folder = contents(['000000020000000000000005']);
    expect(archivedPosition(parseLsn('0/7000000'), folder, 2)).toBe(parseLsn('0/6000000'));
  });

  test('no slot (never streamed, or dropped): nothing counts as archived', () => {
    expect(archivedPosition(undefined, contents(['000000010000000000000003']), 1)).toBeUndefined();
  });
});
