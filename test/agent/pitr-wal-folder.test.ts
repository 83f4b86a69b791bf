import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { firstGap, formatLsn, listWal, parseLsn, pruneWalBefore, segmentName, segmentOf } from '../../runtime/agent/pitr/wal-folder';

const MB16 = 16 * 1024 * 1024;

test('LSNs and segment names follow Postgres: 0/3000028 is in 000000010000000000000003, 1/0 in ...0100000000', () => {
  expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
  expect(segmentName(1, segmentOf(parseLsn('0/3000028'), MB16), MB16)).toBe('000000010000000000000003');
  expect(segmentName(2, segmentOf(parseLsn('1/0'), MB16), MB16)).toBe('000000020000000100000000');
  expect(segmentName(1, segmentOf(parseLsn('0/FF000000'), MB16), MB16)).toBe('0000000100000000000000FF');
  expect(() => parseLsn('12345')).toThrow('is not an LSN');
});

test('the archive is read by segment across timelines; a gap is named; pruning keeps history files and what the oldest backup needs', async () => {
  const folder = fs.mkdtempSync(path.join(process.env.TMPDIR ?? os.tmpdir(), 'wal-'));
  for (const name of ['000000010000000000000002', '000000010000000000000003', '00000002.history', '000000020000000000000004', '000000020000000000000006.partial']) fs.writeFileSync(path.join(folder, name), '');
  const { segments, histories } = await listWal(folder, MB16);
  expect(segments.map((s) => s.name)).toEqual(['000000010000000000000002', '000000010000000000000003', '000000020000000000000004', '000000020000000000000006.partial']);
  expect(histories).toEqual(['00000002.history']);
  expect(firstGap(segments, 2n, 4n)).toBeUndefined();
  expect(firstGap(segments, 2n)).toBe(5n);
  expect(await pruneWalBefore(folder, parseLsn('0/3000028'), MB16)).toEqual(['000000010000000000000002']);
  expect(fs.readdirSync(folder).sort()).toEqual(['000000010000000000000003', '00000002.history', '000000020000000000000004', '000000020000000000000006.partial']);
  fs.rmSync(folder, { recursive: true });
});
