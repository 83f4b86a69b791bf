/**
 * How verification chooses where recovery stops (runtime/agent/pitr/verify-point.ts): commit
 * records read from pg_waldump's output, and the stops that give each database exactly what its
 * snapshot saw. The reading of real WAL runs in pitr-verify.test.ts, against PostgreSQL 15 and 17.
 */
import { commitsInWaldump, CommitRecord, otherDatabasesCommits, planStops } from '../../runtime/agent/pitr/verify-point';

// Lines as PostgreSQL 15 (first three) and 17 (the rest) print them.
const WALDUMP = `rmgr: Heap        len (rec/tot):     59/    59, tx:        730, lsn: 0/01936E20, prev 0/01936C88, desc: INSERT+INIT off 1 flags 0x00, blkref #0: rel 1663/16384/16388 blk 0
rmgr: Heap        len (rec/tot):     59/    59, tx:        731, lsn: 0/01936E5C, prev 0/01936E20, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/16384/16388 blk 0
rmgr: Transaction len (rec/tot):     38/    38, tx:        730, lsn: 0/01936E60, prev 0/01936E20, desc: COMMIT 2026-12-01 19:51:37.612457 UTC; subxacts: 731
rmgr: Heap2       len (rec/tot):     85/    85, tx:        743, lsn: 0/0195AD98, prev 0/0195AD58, desc: MULTI_INSERT ntuples: 1, flags: 0x02, offsets: [5], blkref #0: rel 1663/16390/2608 blk 3
rmgr: Heap        len (rec/tot):     54/  7970, tx:        743, lsn: 0/0195ADF0, prev 0/0195AD98, desc: INSERT off: 3, flags: 0x00, blkref #0: rel 1663/16391/16400 blk 0 FPW
rmgr: Transaction len (rec/tot):    405/   405, tx:        743, lsn: 0/0195AE80, prev 0/0195AE38, desc: COMMIT 2026-12-01 19:51:38.414075 UTC; inval msgs: catcache 80 snapshot 2608 relcache 16388
rmgr: Heap        len (rec/tot):     59/    59, tx:        744, lsn: 0/0195B018, prev 0/0195AE80, desc: INSERT+INIT off: 1, flags: 0x00, blkref #0: rel 1664/0/1260 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        744, lsn: 0/0195B058, prev 0/0195B018, desc: COMMIT 2026-12-01 19:51:38.414728 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        745, lsn: 0/0195B080, prev 0/0195B058, desc: ABORT 2026-12-01 19:51:38.415000 UTC
rmgr: Standby     len (rec/tot):     50/    50, tx:          0, lsn: 0/0195B0A8, prev 0/0195B080, desc: RUNNING_XACTS nextXid 746 latestCompletedXid 745 oldestRunningXid 746`;

const commit = (lsn: number, xid: number, databases: number[] | 'unknown'): CommitRecord => ({ lsn: BigInt(lsn), xid, databases: databases === 'unknown' ? 'unknown' : new Set(databases) });

describe('commitsInWaldump', () => {
  test('each commit with the databases its records and its subtransactions\' records wrote to; shared catalogs and aborts left out', () => {
    expect(commitsInWaldump(WALDUMP)).toEqual([
      { lsn: 0x1936e60n, xid: 730, databases: new Set([16384]) },
      { lsn: 0x195ae80n, xid: 743, databases: new Set([16390, 16391]) },
      // It wrote only to pg_authid (database 0): no database's counts can tell, so it counts for all.
      { lsn: 0x195b058n, xid: 744, databases: 'unknown' },
    ]);
  });

  test('lines that are not records (pg_waldump\'s own notes) are skipped', () => {
    expect(commitsInWaldump('pg_waldump: first record is after 0/1000028, at 0/1000060, skipping over 56 bytes\n')).toEqual([]);
  });
});

describe('planStops', () => {
  const app = 16384;
  const ledger = 16390;

  test('one database: the stop is before the first commit its snapshot missed, after every one it saw', () => {
    // Snapshot 100:104:101 saw 100 and 102 and 103, missed 101 (running then) and 104.
    const commits = [commit(10, 100, [app]), commit(20, 102, [app]), commit(30, 101, [app]), commit(40, 103, [app]), commit(50, 104, [app])];
    // 103 was seen but committed after 101, which was missed: no stop gives exactly what the snapshot saw.
    expect(planStops(commits, [{ oid: app, snapshot: '100:104:101' }], 60n)).toBeUndefined();
    const ordered = [commit(10, 100, [app]), commit(20, 102, [app]), commit(30, 103, [app]), commit(40, 101, [app]), commit(50, 104, [app])];
    expect(planStops(ordered, [{ oid: app, snapshot: '100:104:101' }], 60n)).toEqual([{ lsn: 40n, databases: [app] }]);
    // Nothing missed before the point: stop at the point.
    expect(planStops(ordered.slice(0, 3), [{ oid: app, snapshot: '100:104:' }], 35n)).toEqual([{ lsn: 35n, databases: [app] }]);
  });

  test('two databases whose snapshots fit one point share a recovery; when they do not, each gets its own', () => {
    const commits = [commit(10, 100, [app]), commit(20, 101, [ledger]), commit(30, 102, [app]), commit(40, 103, [ledger])];
    // app saw 100 and 102, ledger saw only 101: ledger's stop must lie in (20, 40], app's in (30, 60].
    expect(planStops(commits, [{ oid: app, snapshot: '103:104:' }, { oid: ledger, snapshot: '102:103:' }], 60n)).toEqual([{ lsn: 40n, databases: [ledger, app] }]);
    // app saw only 100: its stop lies in (10, 30]; ledger's in (20, 40]: 30 serves both.
    expect(planStops(commits, [{ oid: app, snapshot: '101:102:' }, { oid: ledger, snapshot: '102:103:' }], 60n)).toEqual([{ lsn: 30n, databases: [app, ledger] }]);
    // app saw nothing of these: (−, 10]; ledger saw 101: (20, 40]: no one point serves both.
    expect(planStops(commits, [{ oid: app, snapshot: '100:100:' }, { oid: ledger, snapshot: '102:103:' }], 60n)).toEqual([
      { lsn: 10n, databases: [app] },
      { lsn: 40n, databases: [ledger] },
    ]);
  });

  test('a commit whose databases are unknown counts for every database', () => {
    const commits = [commit(10, 100, [app]), commit(20, 101, 'unknown')];
    expect(planStops(commits, [{ oid: ledger, snapshot: '101:101:' }], 60n)).toEqual([{ lsn: 20n, databases: [ledger] }]);
    expect(planStops(commits, [{ oid: ledger, snapshot: '102:102:' }], 60n)).toEqual([{ lsn: 60n, databases: [ledger] }]);
  });

  test('32-bit ids from WAL are read against the snapshot\'s epoch, across a wraparound', () => {
    const epoch = 2n ** 32n;
    // The snapshot is just after epoch 1 began: xid 4294967290 is of epoch 0 (seen), xid 5 of epoch 1 (missed).
    const snapshot = `${epoch + 3n}:${epoch + 3n}:`;
    const commits = [commit(10, 4294967290, [app]), commit(20, 5, [app])];
    expect(planStops(commits, [{ oid: app, snapshot }], 60n)).toEqual([{ lsn: 20n, databases: [app] }]);
  });

  test('the recovered-copy check leaves out transactions that wrote only to other databases', () => {
    const commits = [commit(10, 100, [app]), commit(20, 101, [ledger]), commit(30, 102, 'unknown')];
    expect(otherDatabasesCommits(commits, { oid: app, snapshot: '100:103:' })).toEqual(['101']);
  });
});
