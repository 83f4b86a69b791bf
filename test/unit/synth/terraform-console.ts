import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/*
 * Real Terraform as the judge of what a string in a JSON config means. `terraform console` needs
 * no providers for a configuration that has only locals, so it runs offline. Terraform is not a
 * Debian package; where it is missing, the tests that need it are skipped (reported by jest as
 * skipped, with "needs terraform" in their names), never passed.
 */

export const TERRAFORM: string | undefined = findTerraform();

function findTerraform(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'terraform');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * What Terraform makes of each string when it appears as a value in a `.tf.json` file: template
 * escapes (`$${`, `%%{`) undone, interpolations evaluated. Throws with Terraform's message when
 * a string is not a valid template (e.g. a shell `${VAR:-x}` left unescaped).
 */
export function terraformReads(values: readonly string[]): string[] {
  if (!TERRAFORM) throw new Error('terraform is not on PATH');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-tf-console-'));
  try {
    fs.writeFileSync(path.join(dir, 'main.tf.json'), JSON.stringify({ locals: { values } }));
    const cliConfig = path.join(dir, 'terraformrc');
    fs.writeFileSync(cliConfig, '');
    const result = spawnSync(TERRAFORM, ['console'], {
      cwd: dir,
      // base64 keeps the answer free of the console's own quoting rules.
      input: 'base64encode(jsonencode(local.values))\n',
      encoding: 'utf8',
      env: { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_CLI_CONFIG_FILE: cliConfig, TF_DATA_DIR: path.join(dir, '.terraform') },
      timeout: 60_000,
    });
    const answer = result.stdout.trim().split('\n').pop() ?? '';
    const base64 = /^"([A-Za-z0-9+/=]*)"$/.exec(answer);
    if (result.status !== 0 || !base64) {
      // An invalid template is reported on stderr, and the console still exits 0 with "(known after apply)".
      const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');
      throw new Error(`terraform console could not evaluate the strings (exit ${result.status}):\n${plain(result.stderr)}${plain(result.stdout)}`);
    }
    return JSON.parse(Buffer.from(base64[1], 'base64').toString('utf8')) as string[];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `test` where Terraform is installed, otherwise a visible skip. */
export const withTerraform = TERRAFORM ? test : test.skip;
