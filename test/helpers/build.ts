import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

/** Tests that run the compiled app (`node dist/…`) build it first, as `npm run synth` would. */
export const REPO = path.resolve(__dirname, '..', '..');

/** What tsconfig.json compiles (its "include"), plus the test helpers the drill imports. */
const SOURCE_DIRS = ['cli', 'config', 'constructs', 'stacks', 'runtime', 'bench', 'e2e', path.join('test', 'helpers')];

function newestSource(): number {
  let newest = Math.max(fs.statSync(path.join(REPO, 'main.ts')).mtimeMs, fs.statSync(path.join(REPO, 'tsconfig.json')).mtimeMs);
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  for (const dir of SOURCE_DIRS) walk(path.join(REPO, dir));
  return newest;
}

/** `tsc -p tsconfig.json` when `compiled` (a path under dist/) is missing or older than any source. */
export function buildIfStale(compiled: string): void {
  if (fs.existsSync(compiled) && fs.statSync(compiled).mtimeMs >= newestSource()) return;
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: REPO, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`the project does not compile (tsc -p tsconfig.json exited ${tsc.status}):\n${tsc.stdout}${tsc.stderr}`);
}
