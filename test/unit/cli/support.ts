import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runTenantry } from '../../../cli/program';
import { synthesize } from '../../../cli/synthesis';
import { configFiles, GeneratedConfig, generatedConfig } from '../../helpers/generated-config';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `tenantry <argv>` in this process, its output captured. */
export async function tenantry(argv: string[], options: { isTTY?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runTenantry(argv, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    isTTY: options.isTTY ?? false,
    env: options.env ?? { ...process.env, TENANTRY_CONFIG_DIR: undefined, NO_COLOR: undefined },
  });
  return { code, stdout, stderr };
}

/**
 * Generated configurations (test/helpers/generated-config.ts, named volumes, default off-site
 * settings) whose non-production environments publish ports on ranges of their own, and whose
 * tenants hold distinct slots: valid, so a test sees only what the command under test does.
 */
export function publishingConfig(): fc.Arbitrary<{ config: GeneratedConfig; slots: Record<string, number> }> {
  return generatedConfig({ storage: false }).chain((config) =>
    fc
      .uniqueArray(fc.integer({ min: 0, max: 4 }), { minLength: config.tenants.length, maxLength: config.tenants.length })
      .map((slots) => ({ config, slots: Object.fromEntries(config.tenants.map((t, i) => [t.name, slots[i]])) })),
  );
}

/** The files of a publishingConfig() sample. */
export function publishingFiles({ config, slots }: { config: GeneratedConfig; slots: Record<string, number> }): Record<string, unknown> {
  const files = configFiles(config);
  config.environments.forEach((e, i) => {
    const from = 20000 + i * 1000;
    files[`environments/${e.name}.yaml`] = { ...(files[`environments/${e.name}.yaml`] as object), ports: { publish: !e.production, from, to: from + 999 } };
  });
  for (const t of config.tenants) files[`tenants/${t.name}.yaml`] = { ...(files[`tenants/${t.name}.yaml`] as object), portSlot: slots[t.name] };
  return files;
}

/** What `npm run synth` would leave in cdktf.out for the config under `root`, in a folder of its own. */
export async function synthesizedFolder(root: string): Promise<string> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-base-out-'));
  for (const [env, stack] of (await synthesize(root)).stacks) {
    fs.mkdirSync(path.join(out, 'stacks', env), { recursive: true });
    fs.writeFileSync(path.join(out, 'stacks', env, 'cdk.tf.json'), JSON.stringify(stack));
  }
  return out;
}
