import type { App, StackManifest } from 'cdktf';
// Light modules only at the top: in parallel runs this thread just loads the config and writes the
// manifest, and need not load cdktf, the providers and the constructs (see synthesizeUnit).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isMainThread, Worker, workerData, parentPort } from 'worker_threads';
import type { EnvironmentConfig } from '../config/model';
import { AGENT_CONTEXT_DIR, AGENT_DOCKERFILE, AgentImageBuild, agentImageContext, writeAgentImageContext } from './backup-image';
import { cdktfVersion, configureTokenStackTraces, errorAnnotations, fallbackNotice, knowsCdktf, STACK_TRACES_ENV, stacksFolder, synthesizeSingleStackApp, writeManifest } from './cdktf-seam';
import { NFS_PREPARE_SCRIPT, nfsPrepareScript } from './nfs-prepare';

/*
 * How Tenantry synthesizes: one App per environment, each synthesized through the cdktf seam
 * (stacks/cdktf-seam.ts: cdktf's own code paths minus work a Tenantry app never needs, on the
 * cdktf version it knows), environments in parallel on the machine's cores (worker threads) when
 * there are two or more, more than one core, and enough tenants to pay for a thread
 * (PARALLEL_MIN_TENANTS). Each environment is independent, so every stack's JSON is
 * byte-identical to a serial run; the manifest is assembled from the per-environment entries
 * with cdktf's own Manifest class. Figures: `npm run bench` (bench/synth.ts, docs/benchmarks.md).
 */

/** Number of threads that synthesize environments (1 = serial, in the main thread). @default the cores, at most one per environment (1 for small configurations) */
export const WORKERS_ENV = 'TENANTRY_SYNTH_WORKERS';

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

export type SynthResult = { readonly ok: true } | { readonly ok: false; readonly errors: string[] };

/** What one environment's synthesis gives back to the thread that writes the manifest. */
interface UnitResult {
  readonly name: string;
  readonly manifest?: StackManifest;
  readonly errors: string[];
}

interface UnitSettings {
  readonly root: string;
  readonly outdir: string;
  readonly scratch: string;
  /** The package version and the agent image context's hash, which its tags are made of (see stacks/backup-image.ts). */
  readonly backupImage: Pick<AgentImageBuild, 'version' | 'contextHash'>;
  /** Whether the seam's fast path runs (the installed cdktf is the version it knows); decided once, in the main thread. */
  readonly fast: boolean;
}

/**
 * Synthesizes every environment into `options.scratch` (stacks/<env>/cdk.tf.json, for environments
 * on NFS stacks/<env>/nfs-prepare.sh, manifest.json and the backup agent image's build context,
 * backup-agent-context/). Policy errors (error annotations) come back as `file:1:1: message (at path)`
 * lines, sorted, for every environment at once; in that case the manifest is not written.
 * Anything else that goes wrong is thrown.
 */
export async function synthesizeEnvironments(environments: readonly EnvironmentConfig[], options: SynthOptions): Promise<SynthResult> {
  // Created up front: App and Manifest create them with an exists-then-mkdir that two threads could race on.
  const version = options.cdktfVersion ?? cdktfVersion();
  const fast = knowsCdktf(version);
  if (!fast) process.stderr.write(`${fallbackNotice(version)}\n`);
  fs.mkdirSync(path.join(options.scratch, stacksFolder(version)), { recursive: true });
  const context = agentImageContext(options.repo);
  writeAgentImageContext(context, path.join(options.scratch, AGENT_CONTEXT_DIR));
  const settings: UnitSettings = { root: options.root, outdir: options.outdir, scratch: options.scratch, backupImage: { version: packageVersion(options.repo), contextHash: context.hash }, fast };

  // Largest first, so the last environment to start is a small one.
  const order = environments.map((_, i) => i).sort((a, b) => environments[b].tenants.length - environments[a].tenants.length || a - b);
  const threads = Math.max(1, Math.min(options.workers ?? defaultWorkers(environments), environments.length));
  // Workers run the compiled file; under ts-node or jest (a .ts file) everything stays in this thread.
  const canFork = threads > 1 && __filename.endsWith('.js');

  const results = canFork ? await inWorkers(environments, order, settings, threads) : order.map((i) => synthesizeUnit(environments[i], settings));
  const errors = results.flatMap((r) => r.errors).sort();
  if (errors.length > 0) return { ok: false, errors };
  writeNfsPrepareScripts(environments, options.scratch, version);
  writeManifest(options.scratch, results.map((r) => r.manifest ?? internalError(r.name)), version);
  return { ok: true };
}

/**
 * Workers pay off only when the environments besides the largest hold at least this many tenant
 * deployments: each worker loads cdktf, the providers and the constructs again (~0.25 s), and a
 * serial run already keeps part of the second core busy with garbage collection. Measured on 2
 * cores (shared, load ~2.5): 2 x 100 tenants 15 % slower in parallel, 2 x 300 12 % faster,
 * 1000 x 3 environments 1.4x faster.
 */
export const PARALLEL_MIN_TENANTS = 200;

function defaultWorkers(environments: readonly EnvironmentConfig[]): number {
  const configured = Number(process.env[WORKERS_ENV]);
  if (Number.isInteger(configured) && configured >= 1) return configured;
  const sizes = environments.map((e) => e.tenants.length).sort((a, b) => b - a);
  const besidesLargest = sizes.slice(1).reduce((n, k) => n + k, 0);
  if (besidesLargest < PARALLEL_MIN_TENANTS) return 1;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
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

/** One environment in an App of its own (the seam synthesizes it as `app.synth()` would), and its policy errors. */
function synthesizeUnit(environment: EnvironmentConfig, settings: UnitSettings): UnitResult {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { App } = require('cdktf') as typeof import('cdktf');
  const { EnvironmentStack } = require('./environment-stack') as typeof import('./environment-stack');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const app = new App({ outdir: settings.scratch, stackTraces: false });
  const stack = new EnvironmentStack(app, environment.name, {
    environment,
    localStatePath: localStatePath(settings.root, settings.outdir, environment),
    backupImageBuild: backupImageBuild(settings.outdir, environment.name, settings.backupImage),
  });
  let manifest: StackManifest;
  try {
    manifest = synthesizeSingleStackApp(app, stack, settings.fast);
  } catch (error) {
    const errors = policyErrors(app, environment);
    if (errors.length === 0) throw error;
    return { name: environment.name, errors };
  }
  // cdktf-cli runs the app with CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS set, under which cdktf
  // writes the stack despite error annotations: they must still stop the run.
  const errors = policyErrors(app, environment);
  if (errors.length > 0) return { name: environment.name, errors };
  return { name: environment.name, manifest, errors: [] };
}

/** Error annotations from the policy aspects, pointed at the tenant (or environment) file they concern. */
function policyErrors(app: App, environment: EnvironmentConfig): string[] {
  const sources = new Map<string, string>([[environment.name, environment.source]]);
  for (const tenant of environment.tenants) sources.set(`${environment.name}/${tenant.name}`, tenant.source);
  return errorAnnotations(app).map(({ path: at, message }) => {
    const [env, tenant] = at.split('/');
    const file = sources.get(`${env}/${tenant}`) ?? sources.get(env) ?? at;
    return `${file}:1:1: ${message} (at ${at})`;
  });
}

/** The agent image is built from the context synth writes into the output directory (stacks/backup-image.ts). */
export function backupImageBuild(outdir: string, env: string, image: Pick<AgentImageBuild, 'version' | 'contextHash'>): AgentImageBuild {
  return { context: path.relative(path.join(outdir, 'stacks', env), path.join(outdir, AGENT_CONTEXT_DIR)), dockerfile: AGENT_DOCKERFILE, ...image };
}

/** The local backend's state file, relative to the stack's working directory as Terraform wants it. */
export function localStatePath(root: string, outdir: string, env: EnvironmentConfig): string | undefined {
  if (env.backend.kind !== 'local') return undefined;
  const state = path.resolve(root, env.backend.path ?? `terraform.${env.name}.tfstate`);
  return path.relative(path.join(outdir, 'stacks', env.name), state);
}

// ------------------------------------------------------------------ worker threads

const WORKER_TAG = 'tenantry-synth-worker';

interface WorkerInput {
  readonly tag: typeof WORKER_TAG;
  readonly environment: EnvironmentConfig;
  readonly settings: UnitSettings;
  readonly stackTraces: string | undefined;
}

type WorkerMessage = { readonly result: UnitResult } | { readonly error: { readonly message: string; readonly stack?: string } };

/**
 * Each environment in a fresh worker, at most `threads` at a time, largest first. A fresh thread
 * per environment because cdktf keeps every token it ever created in a process-global (per
 * thread) map: a thread that synthesized one environment keeps all of its tokens, and the
 * constructs they point to, until it exits. After a failure no further environment is started.
 */
function inWorkers(environments: readonly EnvironmentConfig[], order: readonly number[], settings: UnitSettings, threads: number): Promise<UnitResult[]> {
  return new Promise((resolve, reject) => {
    const results: UnitResult[] = [];
    let started = 0;
    let running = 0;
    let failure: unknown;
    const startNext = (): void => {
      while (failure === undefined && running < threads && started < order.length) {
        const environment = environments[order[started++]];
        running++;
        runWorker({ environment, settings, stackTraces: process.env[STACK_TRACES_ENV] }).then(
          (result) => results.push(result),
          (error: unknown) => (failure ??= error),
        ).finally(() => {
          running--;
          if (running === 0 && (failure !== undefined || started === order.length)) {
            if (failure !== undefined) reject(failure);
            else resolve(results);
          } else startNext();
        });
      }
    };
    startNext();
  });
}

function runWorker(input: Omit<WorkerInput, 'tag'>): Promise<UnitResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: { ...input, tag: WORKER_TAG } satisfies WorkerInput });
    let answer: WorkerMessage | undefined;
    worker.on('message', (m: WorkerMessage) => (answer = m));
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (answer && 'result' in answer) return resolve(answer.result);
      if (answer && 'error' in answer) {
        const error = new Error(answer.error.message);
        error.stack = answer.error.stack ?? answer.error.message;
        return reject(error);
      }
      reject(new Error(`the synthesis worker for environment "${input.environment.name}" exited with code ${code} without a result`));
    });
  });
}

function workerMain(input: WorkerInput): void {
  configureTokenStackTraces({ [STACK_TRACES_ENV]: input.stackTraces }, input.settings.fast);
  try {
    parentPort!.postMessage({ result: synthesizeUnit(input.environment, input.settings) } satisfies WorkerMessage);
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    parentPort!.postMessage({ error: { message: e.message, stack: e.stack } } satisfies WorkerMessage);
  }
}

if (!isMainThread && (workerData as Partial<WorkerInput> | null)?.tag === WORKER_TAG) workerMain(workerData as WorkerInput);
