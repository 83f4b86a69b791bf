/**
 * How the drill and the PITR benchmark judge a restore against the commits a client saw
 * acknowledged (e2e/acknowledged-commits.ts): the boundaries of "committed before T" and "lost".
 */
import { Commit, compareLatest, compareToTime } from '../../../e2e/acknowledged-commits';

const commit = (seq: number, sentAt: number, ackedAt?: number): Commit => ({ client: 0, seq, payload: `p${seq}`, sentAt, ackedAt });
const present = (...commits: Commit[]) => new Map(commits.map((c) => [`${c.client}:${c.seq}`, c.payload]));

describe('compareToTime', () => {
  const before = commit(1, 100, 105);
  const straddling = commit(2, 106, 112);
  const ackedAtT = commit(3, 108, 110);
  const after = commit(4, 113, 115);
  const commits = [before, straddling, ackedAtT, after];

  test('GIVEN a restore holding exactly what was acknowledged before T THEN nothing is wrong', () => {
    const result = compareToTime(commits, present(before), 110);
    expect(result).toMatchObject({ before: 1, missingBefore: [], after: 1, presentAfter: [], inFlight: 2, inFlightPresent: 0, unknown: 0 });
  });

  test('a commit acknowledged at T or sent before it and acknowledged later may be there or not', () => {
    expect(compareToTime(commits, present(before, straddling, ackedAtT), 110)).toMatchObject({ missingBefore: [], presentAfter: [], inFlightPresent: 2 });
  });

  test('a commit acknowledged before T that is missing, or has other contents, is reported', () => {
    expect(compareToTime(commits, new Map(), 110).missingBefore).toEqual([before]);
    expect(compareToTime(commits, new Map([['0:1', 'other']]), 110).missingBefore).toEqual([before]);
  });

  test('a commit sent after T that is present, and a row never written, are reported', () => {
    const result = compareToTime(commits, new Map([...present(before, after), ['0:99', 'x']]), 110);
    expect(result.presentAfter).toEqual([after]);
    expect(result.unknown).toBe(1);
  });
});

describe('compareLatest', () => {
  test('the writes lost span from the sending of the first lost commit to the loss', () => {
    const commits = [commit(1, 0, 10), commit(2, 10, 400), commit(3, 400, 700), commit(4, 700)];
    const result = compareLatest(commits, present(commits[0]), 1000);
    expect(result.acknowledged).toBe(3);
    expect(result.lost.map((c) => c.seq)).toEqual([2, 3]);
    expect(result.lostSeconds).toBeCloseTo(0.99);
  });

  test('a commit acknowledged only after the loss was noted still counts from its sending', () => {
    expect(compareLatest([commit(1, 995, 1003)], new Map(), 1000).lostSeconds).toBeCloseTo(0.005);
  });

  test('nothing lost: 0 s; an unacknowledged commit kept is counted apart', () => {
    const commits = [commit(1, 0, 10), commit(2, 10)];
    expect(compareLatest(commits, present(...commits), 20)).toMatchObject({ lost: [], lostSeconds: 0, unacknowledgedPresent: 1, unknown: 0 });
  });
});
