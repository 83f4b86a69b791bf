import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../config/load';
import type { TenantryConfig } from '../config/model';
import type { Problem } from '../config/source';
import { stacksFolder } from '../stacks/cdktf-seam';
import { synthesizeEnvironments, synthOutdir } from '../stacks/synth';
import { ConfigurationError } from './errors';

/** A stack as cdktf writes it (cdk.tf.json): only the part the CLI reads. */
export interface StackJson {
  readonly resource?: Record<string, Record<string, Record<string, unknown>>>;
  readonly terraform?: { readonly required_providers?: Record<string, { readonly source: string; readonly version: string }> };
}

export interface Synthesized {
  readonly config: TenantryConfig;
  /** Each environment's cdk.tf.json, by environment name. */
  readonly stacks: ReadonlyMap<string, StackJson>;
}

/** The Tenantry checkout this CLI runs from (its package.json and the backup agent's sources), from cli/ or dist/cli/. */
export function tenantryRepo(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'cdktf.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`internal: no cdktf.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

/** Throws the configuration's problems as `file:line:col` lines, as `npm run synth` prints them. */
export function loadOrThrow(root: string, home: string = root): TenantryConfig {
  const result = loadConfig(root, home);
  if (!result.ok) throw problemsError(result.problems, root);
  return result.config;
}

export function problemsError(problems: readonly (Problem | string)[], root: string): ConfigurationError {
  return new ConfigurationError(problems, `${problems.length} problem(s) in the configuration under ${root}; nothing was written.`);
}

/**
 * Synthesizes the configuration under `root` as `npm run synth` would (paths in the JSON relative
 * to the same cdktf.out), but into a temporary folder that is removed afterwards: cdktf.out is
 * never touched. `home` is where its relative paths resolve (see loadConfig).
 */
export async function synthesize(root: string, home: string = root): Promise<Synthesized> {
  const config = loadOrThrow(root, home);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-synth-'));
  try {
    const result = await synthesizeEnvironments(config.environments, { root: home, outdir: synthOutdir(), scratch, repo: tenantryRepo() });
    if (!result.ok) throw problemsError(result.errors, home);
    return { config, stacks: readStacks(scratch, config.environments.map((e) => e.name)) };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** The stacks of a cdktf output folder (cdktf.out): every `stacks/<env>/cdk.tf.json`, or those of `environments`. */
export function readStacks(outdir: string, environments?: readonly string[]): Map<string, StackJson> {
  const folder = path.join(outdir, stacksFolder());
  const names = environments ?? (fs.existsSync(folder) ? fs.readdirSync(folder).filter((n) => fs.existsSync(path.join(folder, n, 'cdk.tf.json'))).sort() : []);
  return new Map(names.map((name) => [name, JSON.parse(fs.readFileSync(path.join(folder, name, 'cdk.tf.json'), 'utf8')) as StackJson]));
}
