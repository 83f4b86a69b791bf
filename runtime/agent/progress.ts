/**
 * `tenantry-agent run <job> --progress=json`: one JSON line per update on stdout, for the operator
 * CLI's progress bar. The runner reports its phases; while the driver writes, the bytes done are
 * the size of the run's partial directory, read every PROGRESS_INTERVAL_MS. The total is the
 * previous good backup's size when there is one (an estimate: `totalIsEstimate`), else unknown.
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';

export const PROGRESS_INTERVAL_MS = 500;

/** What a run is doing: writing the backup, checking it, copying it off-site, applying retention; then done or failed. */
export type ProgressPhase = ProgressLine['phase'];

/** One line of `run --progress=json`; the operator CLI reads it with this schema. */
export const progressLineSchema = z.object({
  job: z.string(),
  id: z.string(),
  phase: z.enum(['backup', 'check', 'offsite', 'retention', 'done', 'failed']),
  bytesDone: z.number(),
  bytesTotal: z.number().nullable(),
  totalIsEstimate: z.boolean(),
  at: z.string(),
});

export type ProgressLine = z.infer<typeof progressLineSchema>;

/** What the runner tells whoever watches a run (runner.ts calls it at each phase). */
export type PhaseListener = (phase: ProgressPhase, run: { id: string; dir: string; sizeBytes?: number }) => void;

async function treeSize(dir: string): Promise<number> {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch {
    return 0; // not created yet, or promoted away meanwhile
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await treeSize(full);
    else total += await fs.promises.stat(full).then((s) => s.size, () => 0);
  }
  return total;
}

function treeSizeNow(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** A listener that prints progress lines with `write` until `stop()`; `expected` is the previous good backup's size. */
export function jsonProgress(job: string, expected: number | undefined, write: (line: string) => void): { listener: PhaseListener; stop: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let done = 0;
  const emit = (phase: ProgressPhase, id: string) =>
    write(`${JSON.stringify({ job, id, phase, bytesDone: done, bytesTotal: expected ?? null, totalIsEstimate: expected !== undefined, at: new Date().toISOString() } satisfies ProgressLine)}\n`);
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  const listener: PhaseListener = (phase, run) => {
    stop();
    // The writing phase may end between two reads: its final size, once, when the check starts.
    if (phase === 'check') done = treeSizeNow(run.dir);
    if (run.sizeBytes !== undefined) done = run.sizeBytes;
    emit(phase, run.id);
    if (phase !== 'backup') return;
    let reading = false;
    timer = setInterval(() => {
      if (reading) return;
      reading = true;
      void treeSize(run.dir).then((size) => {
        reading = false;
        if (timer === undefined || size === done) return;
        done = size;
        emit('backup', run.id);
      });
    }, PROGRESS_INTERVAL_MS);
  };
  return { listener, stop };
}
