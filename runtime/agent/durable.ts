/**
 * Durable file operations. A backup is only as good as what survives a power cut: data is
 * fsynced before the rename that makes it visible, and the directory after, so a crash leaves
 * either the old state or the new one, never a half-written file under a final name.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { setTimeout as sleep } from 'timers/promises';
import { runTool } from './exec';

export async function fsyncPath(target: string): Promise<void> {
  const handle = await fs.promises.open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs every file and directory below `root`, then `root` itself, bottom-up. */
export async function fsyncTree(root: string): Promise<void> {
  for (const entry of await fs.promises.readdir(root, { withFileTypes: true })) {
    const child = path.join(root, entry.name);
    if (entry.isDirectory()) await fsyncTree(child);
    else if (entry.isFile()) await fsyncPath(child);
  }
  await fsyncPath(root);
}

/** How often writtenBackWhile asks for the write-back. */
const WRITE_BACK_INTERVAL_MS = 100;

/**
 * Runs `work` (something that writes a lot under `dir`: unpacking a base backup) while the
 * filesystem holding `dir` is written back every WRITE_BACK_INTERVAL_MS (`sync -f`, syncfs), so
 * the disk writes happen during the work instead of all in the fsync that must follow it.
 * Measured on a 1.1 GB base backup: unpacking took as long, and the `sync` after it fell from
 * 0.73-0.81 s to 0.01-0.02 s (docs/benchmarks.md). Only an overlap: whoever needs the files
 * durable still fsyncs them (a recovery server fsyncs its whole data directory as it starts), so a
 * write-back that fails is of no consequence and is not reported.
 */
export async function writtenBackWhile<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const finished = new AbortController();
  const writingBack = (async () => {
    while (!finished.signal.aborted) {
      await runTool('sync', ['-f', dir]).catch(() => undefined);
      // Ends early (rejects) when the work finishes: no wait after it.
      await sleep(WRITE_BACK_INTERVAL_MS, undefined, { signal: finished.signal }).catch(() => undefined);
    }
  })();
  try {
    return await work();
  } finally {
    finished.abort();
    await writingBack;
  }
}

/** Writes a file under a temporary name, fsyncs it, renames it into place, fsyncs the folder. */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const temporary = `${file}.tmp-${process.pid}`;
  try {
    await fs.promises.writeFile(temporary, content);
    await fsyncPath(temporary);
    await fs.promises.rename(temporary, file);
  } catch (error) {
    await fs.promises.rm(temporary, { force: true });
    throw error;
  }
  await fsyncPath(path.dirname(file));
}

/** Renames a finished directory into place and makes the rename itself durable. */
export async function promoteDirectory(from: string, to: string): Promise<void> {
  await fsyncTree(from);
  await fs.promises.rename(from, to);
  await fsyncPath(path.dirname(to));
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every regular file below `root`, as sorted paths relative to it with '/' separators. */
export async function listFiles(root: string, relative = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.promises.readdir(path.join(root, relative), { withFileTypes: true })) {
    const child = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(root, child)));
    else if (entry.isFile()) out.push(child);
  }
  return out.sort();
}
