import * as fs from 'fs';
import * as path from 'path';
import { configRoot, loadConfig } from './config/load';
import { formatProblem } from './config/source';
import { AGENT_CONTEXT_DIR } from './stacks/backup-image';
import { NFS_PREPARE_SCRIPT } from './stacks/nfs-prepare';
import { configureTokenStackTraces } from './stacks/cdktf-seam';
import { synthesizeEnvironments, synthOutdir } from './stacks/synth';

/**
 * The cdktf app: YAML -> validated config -> one EnvironmentStack per environment -> JSON.
 *
 * Exit codes: 0 written; 2 the configuration has problems (each printed as file:line:col, nothing
 * written). Synthesis happens in a scratch directory and only complete stacks are moved into
 * place, so a failed run never leaves half-written JSON next to a previous good one.
 *
 * How the stacks are synthesized (stack traces off, one App per environment, environments in
 * parallel) is explained in stacks/synth.ts, stacks/cdktf-seam.ts and stacks/synth-workers.ts, and measured in docs/benchmarks.md.
 */
async function main(): Promise<number> {
  // Before any construct exists: cdktf's per-token stack traces are off unless TENANTRY_CDKTF_STACK_TRACES=1.
  configureTokenStackTraces();
  const root = configRoot();
  const result = loadConfig(root);
  if (!result.ok) {
    for (const problem of result.problems) console.error(formatProblem(problem));
    console.error(`${result.problems.length} problem(s) in the configuration under ${root}; nothing was written.`);
    return 2;
  }
  if (process.env.SYNTH_HCL_OUTPUT === 'true' || process.env.SYNTH_HCL_OUTPUT === '1') {
    console.error('Tenantry writes JSON stacks only: run cdktf synth without --hcl (SYNTH_HCL_OUTPUT is set); nothing was written.');
    return 2;
  }

  const outdir = synthOutdir();
  const scratch = `${outdir}.partial-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  const environments = result.config.environments;
  let synth;
  try {
    synth = await synthesizeEnvironments(environments, { root, outdir, scratch, repo: path.resolve(__dirname, '..') });
  } catch (error) {
    fs.rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
  if (!synth.ok) {
    fs.rmSync(scratch, { recursive: true, force: true });
    for (const line of synth.errors) console.error(line);
    console.error(`${synth.errors.length} policy error(s); nothing was written.`);
    return 2;
  }
  promote(scratch, outdir, environments.map((e) => e.name));
  const tenants = environments.reduce((n, e) => n + e.tenants.length, 0);
  console.log(`synthesized ${environments.length} environment(s), ${tenants} tenant deployment(s) into ${path.relative(process.cwd(), outdir) || '.'}/stacks/`);
  return 0;
}

/**
 * Moves each stack's JSON into cdktf.out with a rename (atomic per file). Only cdk.tf.json, the
 * NFS preparation script, the manifest and the agent image's build context are replaced: a stack
 * directory may also hold `.terraform/` and local state from `terraform init`/`apply`, which must
 * survive a re-synth. An environment that left NFS loses its old script, which would prepare
 * directories nothing mounts.
 */
function promote(scratch: string, outdir: string, environments: string[]): void {
  for (const env of environments) {
    const target = path.join(outdir, 'stacks', env);
    fs.mkdirSync(target, { recursive: true });
    fs.renameSync(path.join(scratch, 'stacks', env, 'cdk.tf.json'), path.join(target, 'cdk.tf.json'));
    const script = path.join(scratch, 'stacks', env, NFS_PREPARE_SCRIPT);
    if (fs.existsSync(script)) fs.renameSync(script, path.join(target, NFS_PREPARE_SCRIPT));
    else fs.rmSync(path.join(target, NFS_PREPARE_SCRIPT), { force: true });
  }
  fs.rmSync(path.join(outdir, AGENT_CONTEXT_DIR), { recursive: true, force: true });
  fs.renameSync(path.join(scratch, AGENT_CONTEXT_DIR), path.join(outdir, AGENT_CONTEXT_DIR));
  fs.renameSync(path.join(scratch, 'manifest.json'), path.join(outdir, 'manifest.json'));
  fs.rmSync(scratch, { recursive: true, force: true });
  removeStaleStacks(outdir, new Set(environments));
}

/** An environment whose file was removed must not stay deployable from an old cdk.tf.json. */
function removeStaleStacks(outdir: string, current: Set<string>): void {
  const stacks = path.join(outdir, 'stacks');
  for (const name of fs.readdirSync(stacks)) {
    if (current.has(name)) continue;
    fs.rmSync(path.join(stacks, name, 'cdk.tf.json'), { force: true });
    fs.rmSync(path.join(stacks, name, NFS_PREPARE_SCRIPT), { force: true });
  }
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
