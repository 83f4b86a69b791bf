import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { stacksFolder } from '../../stacks/cdktf-seam';
import { OperationFailed, UsageError } from '../errors';
import { readStacks, StackJson, synthesize } from '../synthesis';

export interface Base {
  /** As the report names it: the folder, or "git ref <ref> (<commit>)". */
  readonly description: string;
  readonly stacks: ReadonlyMap<string, StackJson>;
}

/**
 * The stacks to compare with: a cdktf output folder (cdktf.out, as `npm run synth` wrote it), or
 * the configuration as it was at a git ref, synthesized by this Tenantry from a temporary `git
 * worktree` of the repository holding `root` (removed afterwards). A ref whose tree has no such
 * configuration folder compares with nothing: everything is an addition.
 */
export async function resolveBase(base: string, root: string): Promise<Base> {
  if (fs.existsSync(base) && fs.statSync(base).isDirectory()) {
    const dir = path.resolve(base);
    if (!fs.existsSync(path.join(dir, stacksFolder()))) throw new UsageError(`--base ${base}: no ${stacksFolder()}/ folder in it; give a cdktf output folder (cdktf.out) or a git ref`);
    return { description: path.relative(process.cwd(), dir) || '.', stacks: readStacks(dir) };
  }
  const top = git(root, ['rev-parse', '--show-toplevel']);
  if (top.status !== 0) throw new UsageError(`--base ${base}: not a folder, and ${root} is not in a git repository, so it is no git ref either`);
  const repository = top.stdout.trim();
  const commit = git(repository, ['rev-parse', '--verify', '--quiet', `${base}^{commit}`]);
  if (commit.status !== 0) throw new UsageError(`--base ${base}: neither a folder nor a git ref of ${repository}`);
  const sha = commit.stdout.trim();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-base-'));
  const worktree = path.join(scratch, 'worktree');
  try {
    const added = git(repository, ['worktree', 'add', '--detach', '--quiet', worktree, sha]);
    if (added.status !== 0) throw new OperationFailed(`git worktree add for ${base} failed: ${added.stderr.trim()}`);
    const copy = path.join(worktree, path.relative(fs.realpathSync(repository), fs.realpathSync(root)));
    const description = `git ref ${base} (${sha.slice(0, 12)})`;
    if (!fs.existsSync(path.join(copy, 'environments'))) return { description, stacks: new Map() };
    return { description, stacks: (await synthesize(copy, root)).stacks };
  } finally {
    git(repository, ['worktree', 'remove', '--force', worktree]);
    fs.rmSync(scratch, { recursive: true, force: true });
    git(repository, ['worktree', 'prune']);
  }
}

function git(cwd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('git', ['-C', cwd, ...args], { encoding: 'utf8' });
  if (result.error) throw new OperationFailed(`cannot run git: ${result.error.message}`);
  return result;
}
