import * as os from 'os';
import { isMainThread, parentPort, Worker, workerData } from 'worker_threads';
import type { EnvironmentConfig } from '../config/model';
import { configureTokenStackTraces, STACK_TRACES_ENV } from './cdktf-seam';
import { synthesizeUnit, UnitResult, UnitSettings } from './environment-app';

/*
 * Environments in parallel: each in a fresh worker thread, at most one per core, when there are
 * enough tenants to pay for the threads. Each environment is independent, so every stack's JSON
 * is byte-identical to a serial run.
 */

/** Number of threads that synthesize environments (1 = serial, in the main thread). @default the cores, at most one per environment (1 for small configurations) */
export const WORKERS_ENV = 'TENANTRY_SYNTH_WORKERS';

/**
 * Workers pay off only when the environments besides the largest hold at least this many tenant
 * deployments: each worker loads cdktf, the providers and the constructs again, and a serial run
 * already keeps part of the second core busy with garbage collection. Measurements: docs/benchmarks.md.
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

/** How many threads synthesize these environments: `requested`, else TENANTRY_SYNTH_WORKERS, else the cores when it pays; at most one per environment. */
export function workerCount(environments: readonly EnvironmentConfig[], requested: number | undefined): number {
  const threads = Math.max(1, Math.min(requested ?? defaultWorkers(environments), environments.length));
  // Workers run the compiled file; under ts-node or jest (a .ts file) everything stays in this thread.
  return __filename.endsWith('.js') ? threads : 1;
}

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
export function synthesizeInWorkers(environments: readonly EnvironmentConfig[], order: readonly number[], settings: UnitSettings, threads: number): Promise<UnitResult[]> {
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
