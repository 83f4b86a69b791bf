// Light modules only at the top: in parallel runs this thread just loads the config and writes the
// manifest, and need not load cdktf, the providers and the constructs (see stacks/environment-app.ts).
import * as fs from 'fs';
import * as path from 'path';
import type { EnvironmentConfig } from '../config/model';
import { AGENT_CONTEXT_DIR, agentImageContext, writeAgentImageContext } from './backup-image';
import { cdktfVersion, fallbackNotice, knowsCdktf, stacksFolder, writeManifest } from './cdktf-seam';
import { synthesizeUnit, UnitSettings } from './environment-app';
import { NFS_PREPARE_SCRIPT, nfsPrepareScript } from './nfs-prepare';
import { synthesizeInWorkers, workerCount } from './synth-workers';

/*
 * How Tenantry synthesizes a configuration: the backup agent's image context, then each
 * environment in an App of its own (stacks/environment-app.ts; cdktf's own code paths minus work
 * a Tenantry app never needs, through stacks/cdktf-seam.ts), in parallel when it pays
 * (stacks/synth-workers.ts), then the NFS preparation scripts and one manifest for all stacks,
 * written with cdktf's own Manifest class. Figures: `npm run bench` (bench/synth.ts,
 * docs/benchmarks.md).
 */

export interface SynthOptions {
  /** The config root (TENANTRY_CONFIG_DIR or the working directory). */
  readonly root: string;
  /** The output directory users see (cdktf.out), absolute. Paths in the JSON are relative to its stack folders. */
  readonly outdir: string;
  /** Where the stacks and the manifest are written (a scratch folder next to outdir), absolute. */
  readonly scratch: string;
  /** The repository root: the backup agent's image context is taken from it. */
  readonly repo: string;
  /** Threads to use. @default TENANTRY_SYNTH_WORKERS, else min(cores, environments) */
  readonly workers?: number;
  /** The cdktf version the seam's gate is asked about (tests pass another to take cdktf's own path). @default the installed cdktf's */
  readonly cdktfVersion?: string;
}

/** Where `npm run synth` writes: CDKTF_OUTDIR (as cdktf sets it), else cdktf.out in the working directory. */
export function synthOutdir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.CDKTF_OUTDIR || 'cdktf.out');
}

export type SynthResult = { readonly ok: true } | { readonly ok: false; readonly errors: string[] };

/**
 * Synthesizes every environment into `options.scratch` (stacks/<env>/cdk.tf.json, for environments
 * on NFS stacks/<env>/nfs-prepare.sh, manifest.json and the backup agent image's build context,
 * backup-agent-context/). Policy errors (error annotations) come back as `file:1:1: message (at path)`
 * lines, sorted, for every environment at once; in that case the manifest is not written.
 * Anything else that goes wrong is thrown.
 */
export async function synthesizeEnvironments(environments: readonly EnvironmentConfig[], options: SynthOptions): Promise<SynthResult> {
  const version = options.cdktfVersion ?? cdktfVersion();
  const fast = knowsCdktf(version);
  if (!fast) process.stderr.write(`${fallbackNotice(version)}\n`);
  // Created up front: App and Manifest create them with an exists-then-mkdir that two threads could race on.
  fs.mkdirSync(path.join(options.scratch, stacksFolder(version)), { recursive: true });
  const context = agentImageContext(options.repo);
  writeAgentImageContext(context, path.join(options.scratch, AGENT_CONTEXT_DIR));
  const settings: UnitSettings = { root: options.root, outdir: options.outdir, scratch: options.scratch, backupImage: { version: packageVersion(options.repo), contextHash: context.hash }, fast };

  // Largest first, so the last environment to start is a small one.
  const order = environments.map((_, i) => i).sort((a, b) => environments[b].tenants.length - environments[a].tenants.length || a - b);
  const threads = workerCount(environments, options.workers);
  const results = threads > 1 ? await synthesizeInWorkers(environments, order, settings, threads) : order.map((i) => synthesizeUnit(environments[i], settings));
  const errors = results.flatMap((r) => r.errors).sort();
  if (errors.length > 0) return { ok: false, errors };
  writeNfsPrepareScripts(environments, options.scratch, version);
  writeManifest(options.scratch, results.map((r) => r.manifest ?? internalError(r.name)), version);
  return { ok: true };
}

/** Each environment on NFS gets the script that prepares its export (stacks/nfs-prepare.ts) beside its stack. */
function writeNfsPrepareScripts(environments: readonly EnvironmentConfig[], scratch: string, version: string): void {
  for (const env of environments) {
    const script = nfsPrepareScript(env);
    if (script !== undefined) fs.writeFileSync(path.join(scratch, stacksFolder(version), env.name, NFS_PREPARE_SCRIPT), script, { mode: 0o755 });
  }
}

function internalError(stack: string): never {
  throw new Error(`internal: no manifest entry for stack ${stack}`);
}

function packageVersion(repo: string): string {
  return (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;
}
