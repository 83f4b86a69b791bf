/**
 * The synthesized output's fingerprint: sha256 of every file `npm run synth` writes (manifest.json,
 * each stack's cdk.tf.json and nfs-prepare.sh) for the bundled example and for the benchmark's
 * generated configurations (1, 100 and 1000 tenants in one environment, 1000 in three). A change
 * that must not alter the output (a refactoring) shows it by printing the same table before and
 * after; `--check <file>` compares with a table saved earlier and exits 1 on any difference.
 *
 * Configs and outputs live under fixed paths (/tmp/tenantry-output-digest/…), because a relative
 * dataRoot resolves to an absolute path that is part of the JSON. The backup image's tag ends in a
 * hash of the agent's sources (stacks/backup-image.ts), so it changes, by design, with any change
 * to the agent: the digest reads it as `<agent-tag>` and prints the tag on its own line.
 *
 * Run: `npm run build --silent && node dist/bench/output-digest.js [--check docs/output-digests.txt]`.
 */
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { writeBenchConfig } from './synth';

const REPO = path.resolve(__dirname, '..', '..');
const WORK = '/tmp/tenantry-output-digest';

interface DigestCase {
  readonly name: string;
  /** A config directory ready to synthesize. */
  readonly prepare: (dir: string) => void;
}

const CASES: DigestCase[] = [
  {
    name: 'example',
    prepare: (dir) => {
      fs.rmSync(dir, { recursive: true, force: true });
      for (const folder of ['environments', 'tenants']) fs.cpSync(path.join(REPO, folder), path.join(dir, folder), { recursive: true });
    },
  },
  { name: '1 tenant', prepare: (dir) => writeBenchConfig(dir, 1, ['dev']) },
  { name: '100 tenants', prepare: (dir) => writeBenchConfig(dir, 100, ['dev']) },
  { name: '1000 tenants', prepare: (dir) => writeBenchConfig(dir, 1000, ['dev']) },
  { name: '1000 tenants x 3 environments', prepare: (dir) => writeBenchConfig(dir, 1000, ['dev', 'staging', 'prod']) },
];

/** Every file synthesis promotes, by path relative to the output directory, sorted. */
function promotedFiles(outdir: string): string[] {
  const files = ['manifest.json'];
  for (const env of fs.readdirSync(path.join(outdir, 'stacks')).sort()) {
    for (const name of ['cdk.tf.json', 'nfs-prepare.sh']) {
      if (fs.existsSync(path.join(outdir, 'stacks', env, name))) files.push(path.join('stacks', env, name));
    }
  }
  return files;
}

/** The backup image's name with its content-hashed tag. */
const AGENT_TAG = /tenantry\/backup-agent:[0-9A-Za-z._-]+/g;

/** One line per case: its name, then the sha256 over every promoted file (path and content); and the agent tags seen. */
export function outputDigests(print: (line: string) => void = () => undefined): { lines: string[]; tags: string[] } {
  const lines: string[] = [];
  const tags = new Set<string>();
  CASES.forEach((c, i) => {
    const config = path.join(WORK, `config-${i}`);
    const outdir = path.join(WORK, `out-${i}`);
    c.prepare(config);
    fs.rmSync(outdir, { recursive: true, force: true });
    print(`synthesizing ${c.name} ...`);
    execFileSync(process.execPath, [path.join(REPO, 'dist', 'main.js')], {
      cwd: REPO,
      env: { ...process.env, TENANTRY_CONFIG_DIR: config, CDKTF_OUTDIR: outdir },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const hash = createHash('sha256');
    const files = promotedFiles(outdir);
    for (const file of files) {
      const text = fs.readFileSync(path.join(outdir, file), 'utf8');
      for (const tag of text.match(AGENT_TAG) ?? []) tags.add(tag);
      hash.update(`${file}\0`).update(text.replace(AGENT_TAG, '<agent-tag>')).update('\0');
    }
    lines.push(`${hash.digest('hex')}  ${c.name} (${files.length} files)`);
  });
  return { lines, tags: [...tags].sort() };
}

if (require.main === module) {
  const check = process.argv.indexOf('--check');
  const { lines, tags } = outputDigests((line) => process.stderr.write(`${line}\n`));
  process.stdout.write(`${lines.join('\n')}\n`);
  process.stderr.write(`backup agent image: ${tags.join(', ')}\n`);
  if (check >= 0) {
    const saved = fs.readFileSync(process.argv[check + 1], 'utf8').trim().split('\n');
    const differ = lines.filter((line, i) => line !== saved[i]);
    if (differ.length > 0 || saved.length !== lines.length) {
      process.stderr.write(`the output differs from ${process.argv[check + 1]}:\n${differ.join('\n')}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`identical to ${process.argv[check + 1]}\n`);
    }
  }
}
