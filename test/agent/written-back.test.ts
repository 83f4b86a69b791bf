/**
 * writtenBackWhile: the filesystem under a folder is written back while a long write runs, and
 * never after it. The `sync` it runs is the system's own, behind a wrapper on PATH that first
 * records its arguments (what the test observes) and then executes the real one.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writtenBackWhile } from '../../runtime/agent/durable';

const realSync = execFileSync('sh', ['-c', 'command -v sync']).toString().trim();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function folder(): string {
  return fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'written-back-'));
}

/** A folder for PATH whose `sync` appends its arguments to `calls` and then runs `then`. */
function recordingSync(calls: string, then: string): string {
  const bin = folder();
  fs.writeFileSync(path.join(bin, 'sync'), `#!/bin/sh\necho "$*" >> '${calls}'\n${then}\n`, { mode: 0o755 });
  return bin;
}

const callsIn = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);

/** Waits until `file` records `count` calls (a loaded machine's sync can take a while). */
async function callsReach(file: string, count: number): Promise<void> {
  for (const deadline = Date.now() + 30_000; callsIn(file).length < count; await sleep(20)) {
    if (Date.now() > deadline) throw new Error(`only ${callsIn(file).length} of ${count} syncs within 30 s`);
  }
}

describe('writtenBackWhile', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  test('syncs the folder\'s filesystem repeatedly while the work runs, returns its result, and stops with it', async () => {
    const dir = folder();
    const calls = path.join(folder(), 'calls');
    process.env.PATH = `${recordingSync(calls, `exec ${realSync} "$@"`)}:${savedPath}`;
    const result = await writtenBackWhile(dir, async () => {
      fs.writeFileSync(path.join(dir, 'data'), Buffer.alloc(8 << 20, 1));
      await callsReach(calls, 3);
      return 'written';
    });
    expect(result).toBe('written');
    const during = callsIn(calls);
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(new Set(during)).toEqual(new Set([`-f ${dir}`]));
    await sleep(400);
    expect(callsIn(calls)).toHaveLength(during.length);
  });

  test('the work\'s failure is the caller\'s; the write-back stops with it', async () => {
    const dir = folder();
    const calls = path.join(folder(), 'calls');
    process.env.PATH = `${recordingSync(calls, `exec ${realSync} "$@"`)}:${savedPath}`;
    await expect(
      writtenBackWhile(dir, async () => {
        await sleep(250);
        throw new Error('tar exited with 2');
      }),
    ).rejects.toThrow('tar exited with 2');
    const after = callsIn(calls).length;
    expect(after).toBeGreaterThanOrEqual(1);
    await sleep(400);
    expect(callsIn(calls)).toHaveLength(after);
  });

  test('a sync that fails (an old one without -f) does not fail the work: the write-back is only an overlap', async () => {
    const calls = path.join(folder(), 'calls');
    process.env.PATH = `${recordingSync(calls, 'echo "sync: invalid option -- f" >&2; exit 1')}:${savedPath}`;
    await expect(writtenBackWhile(folder(), async () => (await callsReach(calls, 2), 42))).resolves.toBe(42);
  });
});
