/**
 * The agent's side-by-side runners: the pool used for table chunks, the pipeline that wires a
 * dump tool to a compressor, and the stdout buffer its producer gets. Real processes (sh, cat,
 * gzip, printenv, sed) stand in for psql and zstd.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { allOrNothing, inPool } from '../../runtime/agent/concurrency';
import { largeOutputBufferWorks, runPipeline, runTool, watchGrowth, withLargeOutputBuffer } from '../../runtime/agent/exec';
import { tempDir } from '../helpers/servers';
import { waitFor } from './harness';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    });
  });

describe('inPool', () => {
  test('never runs more than `width` at once, and returns results in item order', async () => {
    let running = 0;
    let most = 0;
    const results = await inPool([30, 5, 20, 1, 10, 2], 2, undefined, async (ms) => {
      most = Math.max(most, ++running);
      await sleep(ms);
      running--;
      return ms * 10;
    });
    expect(results).toEqual([300, 50, 200, 10, 100, 20]);
    expect(most).toBe(2);
  });

  test('the first failure aborts the others, starts nothing new, and is thrown only once all have stopped', async () => {
    const events: string[] = [];
    const run = inPool(['slow', 'fails', 'never'], 2, undefined, async (item, signal) => {
      events.push(`start ${item}`);
      if (item === 'fails') throw new Error('disk full');
      try {
        await sleep(5_000, signal);
      } finally {
        events.push(`stopped ${item}`);
      }
    });
    await expect(run).rejects.toThrow('disk full');
    expect(events).toEqual(['start slow', 'start fails', 'stopped slow']);
  });

  test('an already aborted parent signal stops the work at once', async () => {
    const parent = new AbortController();
    parent.abort();
    await expect(allOrNothing([(signal) => sleep(5_000, signal)], parent.signal)).rejects.toThrow('aborted');
  });
});

describe('runPipeline', () => {
  test('the producer\'s output reaches the consumer byte for byte; the consumer\'s stdout and both stderrs come back', async () => {
    const dir = tempDir('pipeline');
    const source = path.join(dir, 'source');
    fs.writeFileSync(source, Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 7919) % 251)));
    const result = await runPipeline(
      { file: 'sh', args: ['-c', 'cat source; echo produced >&2'] },
      { file: 'sh', args: ['-c', 'gzip -1 > out.gz; echo consumed; echo note >&2'] },
      { cwd: dir },
    );
    expect(result).toEqual({ stdout: 'consumed\n', stderr: ['produced\n', 'note\n'] });
    const { gunzipSync } = await import('zlib');
    expect(gunzipSync(fs.readFileSync(path.join(dir, 'out.gz'))).equals(fs.readFileSync(source))).toBe(true);
  });

  test('when both fail, both errors are reported, the consumer\'s first', async () => {
    await expect(
      runPipeline(
        { file: 'sh', args: ['-c', 'yes | head -c 50000000 || { echo "write error: Broken pipe" >&2; exit 3; }'] },
        { file: 'sh', args: ['-c', 'head -c 10 >/dev/null; echo "No space left on device" >&2; exit 1'] },
      ),
    ).rejects.toThrow(/^sh exited with 1: No space left on device; sh exited with 3: .*Broken pipe$/s);
  });

  test('a producer that fails is reported even though the consumer finished', async () => {
    await expect(runPipeline({ file: 'sh', args: ['-c', 'echo "server closed the connection" >&2; exit 2'] }, { file: 'cat', args: [] })).rejects.toThrow(
      'sh exited with 2: server closed the connection',
    );
  });

  test('a missing tool is named', async () => {
    await expect(runPipeline({ file: 'no-such-dump-tool', args: [] }, { file: 'cat', args: [] })).rejects.toThrow('no-such-dump-tool is not installed (not found on PATH)');
  });

  test('aborting kills both tools', async () => {
    const controller = new AbortController();
    const run = runPipeline({ file: 'sleep', args: ['30'] }, { file: 'cat', args: [] }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    await expect(run).rejects.toThrow(/killed by SIGTERM/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('withLargeOutputBuffer', () => {
  test('runs the tool under stdbuf with a 1 MiB stdout buffer, and the data passes unchanged', async () => {
    const wrapped = withLargeOutputBuffer({ file: 'printenv', args: ['_STDBUF_O'] });
    expect(wrapped).toEqual({ file: 'stdbuf', args: ['--output=1M', 'printenv', '_STDBUF_O'], name: 'printenv' });
    // stdbuf hands the size to its preload library through the tool's environment.
    expect((await runPipeline(wrapped, { file: 'cat', args: [] })).stdout).toBe('1048576\n');
    // sed writes through C stdio (cat does not use it).
    const dir = tempDir('stdbuf');
    fs.writeFileSync(path.join(dir, 'source'), Array.from({ length: 200_000 }, (_, i) => `${i}\t${'x'.repeat(i % 23)}\n`).join(''));
    await runPipeline(withLargeOutputBuffer({ file: 'sed', args: ['-n', 'p', 'source'] }), { file: 'sh', args: ['-c', 'cat > copy'] }, { cwd: dir });
    expect(fs.readFileSync(path.join(dir, 'copy')).equals(fs.readFileSync(path.join(dir, 'source')))).toBe(true);
  });

  test('the tool really holds its output in the larger buffer: 100 KB written, nothing sent before the end', async () => {
    // sed reads lines from a stdin kept open and writes them through stdio: with stdio's own
    // buffer (4 KiB with glibc) output appears while it runs, with 1 MiB only when it exits.
    const bytesSentBeforeEnd = async (command: { file: string; args: readonly string[] }) => {
      const { spawn } = await import('child_process');
      const child = spawn(command.file, [...command.args], { stdio: ['pipe', 'pipe', 'inherit'] });
      let received = 0;
      child.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
      child.stdin.write(Array.from({ length: 5000 }, (_, i) => `line ${i} ${'y'.repeat(12)}\n`).join(''));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = received;
      child.stdin.end();
      await new Promise((resolve) => child.once('close', resolve));
      return { before, total: received };
    };
    const plain = await bytesSentBeforeEnd({ file: 'sed', args: ['-n', 'p'] });
    const buffered = await bytesSentBeforeEnd(withLargeOutputBuffer({ file: 'sed', args: ['-n', 'p'] }));
    expect(plain.before).toBeGreaterThan(0);
    expect(buffered).toEqual({ before: 0, total: plain.total });
  });

  test('failures name the tool, not stdbuf', async () => {
    await expect(runPipeline(withLargeOutputBuffer({ file: 'sh', args: ['-c', 'echo "connection refused" >&2; exit 2'] }), { file: 'cat', args: [] })).rejects.toThrow(
      /^sh exited with 2: connection refused$/,
    );
    await expect(runPipeline(withLargeOutputBuffer({ file: 'no-such-dump-tool', args: [] }), { file: 'cat', args: [] })).rejects.toThrow(
      /^no-such-dump-tool is not installed \(not found on PATH\)$/,
    );
  });

  test('where stdbuf does not work, the tool runs as it is', () => {
    const dir = tempDir('no-stdbuf');
    // A PATH without coreutils' stdbuf; and one whose stdbuf fails (its preload library missing).
    expect(withLargeOutputBuffer({ file: 'psql', args: ['-X'] }, largeOutputBufferWorks({ PATH: dir }))).toEqual({ file: 'psql', args: ['-X'] });
    const broken = path.join(dir, 'broken');
    fs.mkdirSync(broken);
    fs.writeFileSync(path.join(broken, 'stdbuf'), '#!/bin/sh\necho "stdbuf: failed to find libstdbuf.so" >&2\nexit 125\n', { mode: 0o755 });
    expect(withLargeOutputBuffer({ file: 'psql', args: ['-X'] }, largeOutputBufferWorks({ PATH: `${broken}:/usr/bin:/bin` }))).toEqual({ file: 'psql', args: ['-X'] });
  });
});

describe('watchGrowth', () => {
  test('a file that keeps growing is never called stalled', async () => {
    const file = path.join(tempDir('growth'), 'transfer');
    // 600 ms: the tool's own start (a shell and its watchdog) must not count as a stall on a loaded machine.
    const watch = watchGrowth(file, 600);
    try {
      await runTool('sh', ['-c', 'i=0; while [ $i -lt 20 ]; do echo chunk >> "$0"; sleep 0.1; i=$((i + 1)); done', file], { signal: watch.signal });
      expect(watch.stalled()).toBe(false);
    } finally {
      watch.stop();
    }
  });

  test('a transfer that stops sending is stopped once the file has not grown for the limit', async () => {
    const file = path.join(tempDir('growth'), 'transfer');
    const watch = watchGrowth(file, 300);
    const started = Date.now();
    try {
      await expect(runTool('sh', ['-c', 'echo first > "$0"; exec sleep 30', file], { signal: watch.signal })).rejects.toThrow(/killed by SIGTERM/);
      expect(watch.stalled()).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      watch.stop();
    }
  });

  test('the parent signal still aborts, and then it is not a stall', async () => {
    const parent = new AbortController();
    const watch = watchGrowth(path.join(tempDir('growth'), 'never-written'), 60_000, parent.signal);
    setTimeout(() => parent.abort(), 100);
    try {
      await expect(runTool('sleep', ['30'], { signal: watch.signal })).rejects.toThrow(/killed by SIGTERM/);
      expect(watch.stalled()).toBe(false);
    } finally {
      watch.stop();
    }
  });
});

describe('tools die with the agent (exec.ts watchdog)', () => {
  /** Processes whose command line holds `marker`. */
  const holding = (marker: string) =>
    fs.readdirSync('/proc').filter((pid) => {
      try {
        return /^\d+$/.test(pid) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false;
      }
    });

  test('SIGKILL of the agent takes its tools, their children and both sides of a pipeline with it', async () => {
    // Unique durations mark this test's processes: sleep shows them in its command line.
    const marker = `30${process.pid % 1000}.5`;
    const script = `
      const { runTool, runPipeline } = require('./runtime/agent/exec');
      runTool('sh', ['-c', 'sleep ${marker} & sleep ${marker}; wait']);
      runPipeline({ file: 'sh', args: ['-c', 'sleep ${marker} & yes'] }, { file: 'sh', args: ['-c', 'cat >/dev/null; sleep ${marker}'] });
      setInterval(() => undefined, 1000);`;
    const agent = spawn(process.execPath, ['-r', 'ts-node/register', '-e', script], { cwd: path.resolve(__dirname, '..', '..'), env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' }, stdio: 'ignore' });
    try {
      await waitFor('the tools to start', () => (holding(`sleep ${marker}`).length >= 3 ? true : undefined), 30_000, 50);
    } finally {
      agent.kill('SIGKILL');
    }
    await new Promise((resolve) => agent.once('exit', resolve));
    try {
      await waitFor('every tool to be gone', () => (holding(`sleep ${marker}`).length === 0 ? true : undefined), 2000, 20);
    } finally {
      // Without the watchdog they live on: this test cleans up after the failure it reports.
      for (const pid of holding(`sleep ${marker}`)) process.kill(Number(pid), 'SIGKILL');
    }
  });
});
