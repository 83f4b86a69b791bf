import type { App } from 'cdktf';
// Light modules only at the top: in parallel runs this thread just loads the config and writes the
// manifest, and need not load cdktf, the providers and the constructs (see synthesizeUnit).
import { AnnotationMetadataEntryType } from 'cdktf/lib/annotations';
import { Manifest, StackManifest } from 'cdktf/lib/manifest';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isMainThread, Worker, workerData, parentPort } from 'worker_threads';
import type { EnvironmentConfig } from '../config/model';
import { AGENT_CONTEXT_DIR, AGENT_DOCKERFILE, AgentImageBuild, agentImageContext, writeAgentImageContext } from './backup-image';
import { NFS_PREPARE_SCRIPT, nfsPrepareScript } from './nfs-prepare';

/*
 * How Tenantry synthesizes: the same constructs and the same cdktf code paths as `app.synth()`,
 * minus work that a Tenantry app never needs, spread over the machine's cores. Every figure below
 * is measured by `npm run bench` (bench/synth.ts, docs/benchmarks.md).
 *
 * 1. Token stack traces off (configureTokenStackTraces). cdktf records a full stack trace for
 *    every token it creates (Lazy, Intrinsic, references, computed lists): hundreds of thousands
 *    for a large environment, most of the construction time and of the memory. They only appear in
 *    cdktf's own "Object creation stack" resolution errors. TENANTRY_CDKTF_STACK_TRACES=1 turns
 *    them back on for debugging.
 * 2. Work done twice, done once. `App.synth()` resolves every element of every stack three
 *    times: a "preparing" pass whose only purpose is to find references from one stack into
 *    another (cdktf then adds outputs and remote-state data sources), the pass that produces each
 *    element's JSON, and a final pass over the merged document, whose tokens are all resolved
 *    already. Environments never reference each other, and each one is synthesized here in an App
 *    of its own, where a cross-stack reference cannot exist: the preparing pass has nothing to find
 *    and is skipped (prepareStack's backend check still runs). The final pass is skipped by
 *    stacks/stack-synthesizer.ts, which also resolves only what holds a token (cdktf's resolve
 *    costs more on literal data than on tokens) and streams the JSON to disk instead of building
 *    it in memory. Aspects, validations, annotations and the element JSON are cdktf's own code.
 * 3. Environments in parallel (worker threads) when there are two or more, more than one core,
 *    and enough tenants to pay for a thread (PARALLEL_MIN_TENANTS). Each environment is
 *    independent, so every stack's JSON is byte-identical to a serial run; the manifest is
 *    assembled from the per-environment entries with cdktf's own Manifest class.
 */

/**
 * Escape hatch and benchmark switch: run cdktf's own code for these steps (comma separated):
 * `prepare` (the preparing resolve pass), `resolve` (cdktf's resolve on every element's
 * plain data too), `synthesizer` (cdktf's StackSynthesizer, which implies `resolve`), or `all`.
 * The output must not change; if it does, that is a bug in Tenantry's shortcut.
 */
export const CDKTF_STEPS_ENV = 'TENANTRY_SYNTH_CDKTF';

/** Whether `step` should run cdktf's own code (TENANTRY_SYNTH_CDKTF). */
export function useCdktfStep(step: 'prepare' | 'synthesizer' | 'resolve', env: NodeJS.ProcessEnv = process.env): boolean {
  const steps = (env[CDKTF_STEPS_ENV] ?? '').split(',').map((s) => s.trim());
  return steps.includes('all') || steps.includes(step);
}

/** Set to 1 to record cdktf's per-token creation stack traces (slow; for debugging cdktf errors). */
export const STACK_TRACES_ENV = 'TENANTRY_CDKTF_STACK_TRACES';
/** Number of threads that synthesize environments (1 = serial, in the main thread). @default the cores, at most one per environment (1 for small configurations) */
export const WORKERS_ENV = 'TENANTRY_SYNTH_WORKERS';

const DISABLED_TRACE: readonly string[] = Object.freeze([`(token creation stack traces are off; set ${STACK_TRACES_ENV}=1 to record them)`]);

/**
 * The ONE place where Tenantry changes cdktf's behaviour: cdktf's token classes call
 * `captureStackTrace` through the module object of `cdktf/lib/tokens/private/stack-trace`
 * (`(0, stack_trace_1.captureStackTrace)()`), so replacing the export replaces it for every token
 * created afterwards. Call it before any construct exists. Must run in every thread that
 * synthesizes (each worker has its own module instances). Returns whether traces stay on.
 */
export function configureTokenStackTraces(env: NodeJS.ProcessEnv = process.env): boolean {
  const enabled = env[STACK_TRACES_ENV] === '1' || env[STACK_TRACES_ENV] === 'true';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const stackTrace = require('cdktf/lib/tokens/private/stack-trace') as { captureStackTrace: (below?: unknown) => readonly string[] };
  const original = (stackTrace as { __tenantryOriginal?: typeof stackTrace.captureStackTrace }).__tenantryOriginal ?? stackTrace.captureStackTrace;
  Object.defineProperty(stackTrace, '__tenantryOriginal', { value: original, configurable: true });
  stackTrace.captureStackTrace = enabled ? original : () => DISABLED_TRACE;
  return enabled;
}

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
  fs.mkdirSync(path.join(options.scratch, Manifest.stacksFolder), { recursive: true });
  const context = agentImageContext(options.repo);
  writeAgentImageContext(context, path.join(options.scratch, AGENT_CONTEXT_DIR));
  const settings: UnitSettings = { root: options.root, outdir: options.outdir, scratch: options.scratch, backupImage: { version: packageVersion(options.repo), contextHash: context.hash } };

  // Largest first, so the last environment to start is a small one.
  const order = environments.map((_, i) => i).sort((a, b) => environments[b].tenants.length - environments[a].tenants.length || a - b);
  const threads = Math.max(1, Math.min(options.workers ?? defaultWorkers(environments), environments.length));
  // Workers run the compiled file; under ts-node or jest (a .ts file) everything stays in this thread.
  const canFork = threads > 1 && __filename.endsWith('.js');

  const results = canFork ? await inWorkers(environments, order, settings, threads) : order.map((i) => synthesizeUnit(environments[i], settings));
  const errors = results.flatMap((r) => r.errors).sort();
  if (errors.length > 0) return { ok: false, errors };
  writeNfsPrepareScripts(environments, options.scratch);
  writeManifest(options.scratch, results);
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
function writeNfsPrepareScripts(environments: readonly EnvironmentConfig[], scratch: string): void {
  for (const env of environments) {
    const script = nfsPrepareScript(env);
    if (script !== undefined) fs.writeFileSync(path.join(scratch, Manifest.stacksFolder, env.name, NFS_PREPARE_SCRIPT), script, { mode: 0o755 });
  }
}

/** The manifest `App.synth()` would write for an App holding all these stacks, with cdktf's own Manifest class. */
function writeManifest(scratch: string, results: UnitResult[]): void {
  const manifest = new Manifest(cdktfVersion(), scratch, false);
  for (const r of [...results].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!r.manifest) throw new Error(`internal: no manifest entry for stack ${r.name}`);
    (manifest.stacks as Record<string, StackManifest>)[r.name] = r.manifest;
  }
  manifest.writeToFile();
}

function cdktfVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('cdktf/package.json') as { version: string }).version;
}

function packageVersion(repo: string): string {
  return (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * One environment, exactly as `App.synth()` would do it for an App holding only this stack:
 * prepareStack (backend check; its preparing resolve pass finds nothing in a one-stack App),
 * the stack synthesizer (aspects, validations, annotations, toTerraform, JSON), the App's own
 * validations.
 */
function synthesizeUnit(environment: EnvironmentConfig, settings: UnitSettings): UnitResult {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { App } = require('cdktf') as typeof import('cdktf');
  const { EnvironmentStack } = require('./environment-stack') as typeof import('./environment-stack');
  const { synthesizeStack } = require('./stack-synthesizer') as typeof import('./stack-synthesizer');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const app = new App({ outdir: settings.scratch, stackTraces: false });
  const stack = new EnvironmentStack(app, environment.name, {
    environment,
    localStatePath: localStatePath(settings.root, settings.outdir, environment),
    backupImageBuild: backupImageBuild(settings.outdir, environment.name, settings.backupImage),
  });
  try {
    if (useCdktfStep('prepare')) stack.prepareStack();
    else stack.ensureBackendExists();
    synthesizeStack(stack, { outdir: settings.scratch, skipValidation: false, manifest: app.manifest });
    const appErrors = app.node.validate();
    if (appErrors.length > 0) throw new Error(`App validation failed with the following errors:\n  ${appErrors.join('\n  ')}`);
  } catch (error) {
    const errors = policyErrors(app, environment);
    if (errors.length === 0) throw error;
    return { name: environment.name, errors };
  }
  // cdktf-cli runs the app with CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS set, under which cdktf
  // writes the stack despite error annotations: they must still stop the run.
  const errors = policyErrors(app, environment);
  if (errors.length > 0) return { name: environment.name, errors };
  return { name: environment.name, manifest: app.manifest.stacks[environment.name], errors: [] };
}

/** Error annotations from the policy aspects, pointed at the tenant (or environment) file they concern. */
function policyErrors(app: App, environment: EnvironmentConfig): string[] {
  const sources = new Map<string, string>([[environment.name, environment.source]]);
  for (const tenant of environment.tenants) sources.set(`${environment.name}/${tenant.name}`, tenant.source);
  const lines: string[] = [];
  for (const node of app.node.findAll()) {
    for (const entry of node.node.metadata) {
      if (entry.type !== AnnotationMetadataEntryType.ERROR) continue;
      const [env, tenant] = node.node.path.split('/');
      const file = sources.get(`${env}/${tenant}`) ?? sources.get(env) ?? node.node.path;
      lines.push(`${file}:1:1: ${String(entry.data)} (at ${node.node.path})`);
    }
  }
  return lines;
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
  configureTokenStackTraces({ [STACK_TRACES_ENV]: input.stackTraces });
  try {
    parentPort!.postMessage({ result: synthesizeUnit(input.environment, input.settings) } satisfies WorkerMessage);
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    parentPort!.postMessage({ error: { message: e.message, stack: e.stack } } satisfies WorkerMessage);
  }
}

if (!isMainThread && (workerData as Partial<WorkerInput> | null)?.tag === WORKER_TAG) workerMain(workerData as WorkerInput);
