import type { App, StackManifest } from 'cdktf';
import * as path from 'path';
import type { EnvironmentConfig } from '../config/model';
import { AGENT_CONTEXT_DIR, AGENT_DOCKERFILE, AgentImageBuild } from './backup-image';
import { errorAnnotations, synthesizeSingleStackApp } from './cdktf-seam';

/*
 * One environment in an App of its own: the unit of synthesis, in the main thread or in a
 * worker (stacks/synth-workers.ts). Environments never reference each other, which is what lets
 * the seam skip cdktf's cross-stack pass and lets them run in parallel.
 */

/** What one environment's synthesis gives back to the thread that writes the manifest. */
export interface UnitResult {
  readonly name: string;
  readonly manifest?: StackManifest;
  readonly errors: string[];
}

export interface UnitSettings {
  readonly root: string;
  readonly outdir: string;
  readonly scratch: string;
  /** The package version and the agent image context's hash, which its tags are made of (see stacks/backup-image.ts). */
  readonly backupImage: Pick<AgentImageBuild, 'version' | 'contextHash'>;
  /** Whether the seam's fast path runs (the installed cdktf is the version it knows); decided once, in the main thread. */
  readonly fast: boolean;
}

/** One environment in an App of its own (the seam synthesizes it as `app.synth()` would), and its policy errors. */
export function synthesizeUnit(environment: EnvironmentConfig, settings: UnitSettings): UnitResult {
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
