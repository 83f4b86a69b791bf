import { App } from 'cdktf';
import * as fs from 'fs';
import * as path from 'path';
import { configRoot, loadConfig } from './config/load';
import type { EnvironmentConfig } from './config/model';
import { formatProblem } from './config/source';
import { EnvironmentStack } from './stacks/environment-stack';

/**
 * The cdktf app: YAML -> validated config -> one EnvironmentStack per environment -> JSON.
 *
 * Exit codes: 0 written; 2 the configuration has problems (each printed as file:line:col, nothing
 * written). Synthesis happens in a scratch directory and only complete stacks are moved into
 * place, so a failed run never leaves half-written JSON next to a previous good one.
 */
function main(): number {
  const root = configRoot();
  const result = loadConfig(root);
  if (!result.ok) {
    for (const problem of result.problems) console.error(formatProblem(problem));
    console.error(`${result.problems.length} problem(s) in the configuration under ${root}; nothing was written.`);
    return 2;
  }

  const outdir = path.resolve(process.env.CDKTF_OUTDIR || 'cdktf.out');
  const scratch = `${outdir}.partial-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  // Stack traces are recorded for every token cdktf creates; they are only useful when debugging cdktf itself.
  const app = new App({ outdir: scratch, stackTraces: false });
  const sources = new Map<string, string>();
  for (const environment of result.config.environments) {
    new EnvironmentStack(app, environment.name, {
      environment,
      localStatePath: localStatePath(root, outdir, environment),
      backupImageBuild: backupImageBuild(outdir, environment.name),
    });
    sources.set(environment.name, environment.source);
    for (const tenant of environment.tenants) sources.set(`${environment.name}/${tenant.name}`, tenant.source);
  }

  try {
    app.synth();
  } catch (error) {
    fs.rmSync(scratch, { recursive: true, force: true });
    const lines = policyErrors(app, sources);
    if (lines.length === 0) throw error;
    for (const line of lines) console.error(line);
    console.error(`${lines.length} policy error(s); nothing was written.`);
    return 2;
  }
  promote(scratch, outdir, result.config.environments.map((e) => e.name));
  const tenants = result.config.environments.reduce((n, e) => n + e.tenants.length, 0);
  console.log(`synthesized ${result.config.environments.length} environment(s), ${tenants} tenant deployment(s) into ${path.relative(process.cwd(), outdir) || '.'}/stacks/`);
  return 0;
}

/** Error annotations from the policy aspects, pointed at the tenant (or environment) file they concern. */
function policyErrors(app: App, sources: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const node of app.node.findAll()) {
    for (const entry of node.node.metadata) {
      if (entry.type !== 'aws:cdk:error') continue;
      const [env, tenant] = node.node.path.split('/');
      const file = sources.get(`${env}/${tenant}`) ?? sources.get(env) ?? node.node.path;
      lines.push(`${file}:1:1: ${String(entry.data)} (at ${node.node.path})`);
    }
  }
  return lines.sort();
}

/** The agent image is built from this repository (its Dockerfile copies the compiled runtime). */
function backupImageBuild(outdir: string, env: string): { context: string; dockerfile: string; name: string } {
  const repo = path.resolve(__dirname, '..');
  const { version } = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
  return { context: path.relative(path.join(outdir, 'stacks', env), repo), dockerfile: 'runtime/agent/Dockerfile', name: `tenantry/backup-agent:${version}` };
}

/** The local backend's state file, relative to the stack's working directory as Terraform wants it. */
function localStatePath(root: string, outdir: string, env: EnvironmentConfig): string | undefined {
  if (env.backend.kind !== 'local') return undefined;
  const state = path.resolve(root, env.backend.path ?? `terraform.${env.name}.tfstate`);
  return path.relative(path.join(outdir, 'stacks', env.name), state);
}

/**
 * Moves each stack's JSON into cdktf.out with a rename (atomic per file). Only cdk.tf.json and the
 * manifest are replaced: a stack directory may also hold `.terraform/` and local state from
 * `terraform init`/`apply`, which must survive a re-synth.
 */
function promote(scratch: string, outdir: string, environments: string[]): void {
  for (const env of environments) {
    const target = path.join(outdir, 'stacks', env);
    fs.mkdirSync(target, { recursive: true });
    fs.renameSync(path.join(scratch, 'stacks', env, 'cdk.tf.json'), path.join(target, 'cdk.tf.json'));
  }
  fs.renameSync(path.join(scratch, 'manifest.json'), path.join(outdir, 'manifest.json'));
  fs.rmSync(scratch, { recursive: true, force: true });
  removeStaleStacks(outdir, new Set(environments));
}

/** An environment whose file was removed must not stay deployable from an old cdk.tf.json. */
function removeStaleStacks(outdir: string, current: Set<string>): void {
  const stacks = path.join(outdir, 'stacks');
  for (const name of fs.readdirSync(stacks)) {
    if (!current.has(name)) fs.rmSync(path.join(stacks, name, 'cdk.tf.json'), { force: true });
  }
}

process.exitCode = main();
