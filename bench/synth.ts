/**
 * Synthesis benchmark (issues 2 and 4): wall time, CPU time, peak memory and JSON size of
 * `npm run synth` (compiled `node dist/main.js`) for the example config and for generated
 * configs of 1, 100 and 1000 tenants with every service in one environment, and 1000 tenants in
 * three environments; each run twice, outputs hashed to prove determinism. Against:
 *
 * - BASELINE: the same constructs run "the way a default cdktf project would": `npx ts-node
 *   main.ts` (type-checking, source maps), provider classes imported from the package index
 *   (`import { container } from '@cdktf/provider-docker'`), `new App()` with default options and
 *   `app.synth()`. Built in a temp dir from a copy of the TypeScript sources whose deep provider
 *   imports are rewritten by rewriteProviderImports(); node_modules is a symlink. Its JSON must be
 *   byte-identical to Tenantry's (it is written to the same path, so relative paths agree).
 * - LOWER BOUND: JSON.stringify of the same final documents plus writing them (best of 3).
 * - ABLATION: at 1000 tenants, each optimisation turned off on its own.
 *
 * Generated configs are YAML files in a temp dir (TENANTRY_CONFIG_DIR), read by the real loader.
 * Ports: the single-environment cases publish ports from 10000 to 32767, which holds 1138 slots
 * of 20 (portSlot = tenant index, 0..999); in the three-environment case only dev publishes.
 *
 * Peak memory is the child's RSS high-water mark from GNU time (%M, getrusage maxrss); synthesis
 * workers are threads of that process, so they are included.
 *
 * Run: `npm run bench` (everything) or `npm run build && node dist/bench/synth.js`.
 * BENCH_SYNTH_QUICK=1 skips the baseline and the ablation; BENCH_SYNTH_RUNS sets runs per case (2).
 */
import { ChildProcess, spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { installPackage, MissingBinary } from '../e2e/launcher';
import { textTable } from '../e2e/text-table';
import { cdktfVersion } from '../stacks/cdktf-seam';

const REPO = path.resolve(__dirname, '..', '..');
const GNU_TIME = '/usr/bin/time';
const TENANTRY_MAIN = path.join(REPO, 'dist', 'main.js');

// ------------------------------------------------------------------ processes

const children = new Set<ChildProcess>();

/** Kills (by process group) every child this benchmark started and has not seen exit. */
export function killSynthBenchChildren(): void {
  for (const child of children) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
process.on('exit', killSynthBenchChildren);

interface Measured {
  readonly code: number;
  readonly wallS: number;
  readonly cpuS: number;
  readonly maxRssMb: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv under GNU time in its own process group; resolves when it exits. */
function measure(argv: string[], options: { env: NodeJS.ProcessEnv; cwd: string }): Promise<Measured> {
  const timeFile = path.join(os.tmpdir(), `tenantry-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  return new Promise((resolve, reject) => {
    const child = spawn(GNU_TIME, ['-f', '%e %U %S %M', '-o', timeFile, ...argv], { env: options.env, cwd: options.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.on('close', (code) => {
      children.delete(child);
      try {
        const [wall, user, sys, rss] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        fs.rmSync(timeFile, { force: true });
        resolve({ code: code ?? 1, wallS: wall, cpuS: user + sys, maxRssMb: rss / 1024, stdout, stderr });
      } catch (e) {
        reject(new Error(`${argv.join(' ')}: no timing from ${GNU_TIME} (${String(e)}); stderr: ${stderr.slice(-500)}`));
      }
    });
  });
}

/** The environment children get: ours, minus anything that would change what Tenantry or cdktf do. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(TENANTRY_|CDKTF_|SYNTH_HCL_OUTPUT$|NODE_OPTIONS$|TS_NODE_)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * GNU time measures the children. Installed with apt-get when missing and running as root;
 * otherwise MissingBinary (run-all turns that into exit code 2 and one sentence).
 */
export function ensureGnuTime(): void {
  if (fs.existsSync(GNU_TIME)) return;
  installPackage('time');
  if (!fs.existsSync(GNU_TIME)) throw new MissingBinary(GNU_TIME, 'time');
}

// ------------------------------------------------------------------ generated configuration

type EnvKind = 'dev' | 'staging' | 'prod';

const ENVIRONMENTS: Record<EnvKind, (single: boolean) => string> = {
  // One environment with everything: published ports and off-site copies of every backup.
  dev: (single) => `# Generated by bench/synth.ts.
name: dev
production: false
timeZone: Europe/Berlin
docker:
  host: unix:///var/run/docker.sock
network:
  name: tenantry-dev
  subnet: 172.30.0.0/16
storage:
  kind: volume
ports:
  publish: true
  from: 10000
  to: 32767          # 1138 slots of 20 ports
backend:
  kind: local
aws:
  region: eu-central-1
backup:
${single ? '' : `  defaults:
    postgres: { offsite: false, retention: { daily: 3, weekly: 1, monthly: 0 } }
    redis: { offsite: false }
    qdrant: { offsite: false }
    minio: { offsite: false }
`}  offsite:
    mode: per-tenant
    bucket: bench-backups
`,
  staging: () => `# Generated by bench/synth.ts.
name: staging
timeZone: UTC
docker:
  host: ssh://deploy@docker-staging.internal.example.com
network:
  name: tenantry-staging
  subnet: 172.29.0.0/16
storage:
  kind: bind
  dataRoot: /srv/tenantry/staging
ports:
  publish: false
backend:
  kind: s3
  bucket: bench-terraform-state
  region: eu-central-1
aws:
  region: eu-central-1
backup:
  offsite:
    mode: shared
    bucket: bench-staging-backups
`,
  prod: () => `# Generated by bench/synth.ts.
name: prod
production: true
timeZone: Europe/Berlin
docker:
  host: ssh://deploy@docker-prod-1.internal.example.com
  sshOptions: ["-o", "StrictHostKeyChecking=yes"]
network:
  name: tenantry-prod
  subnet: 172.31.0.0/16
storage:
  kind: nfs
  server: nfs-1.internal.example.com
  export: /exports/tenantry/prod
images:
  postgres: registry.example.com/mirror/postgres:16.4-alpine
  redis: registry.example.com/mirror/redis:7.4.2-alpine
ports:
  publish: false
backend:
  kind: s3
  bucket: bench-terraform-state
  key: tenantry/prod.tfstate
  region: eu-central-1
  locking: lockfile
aws:
  region: eu-central-1
backup:
  defaults:
    postgres: { schedule: "0 1 * * *", verifySchedule: "30 3 * * *", retention: { daily: 14, weekly: 8, monthly: 12 } }
  offsite:
    mode: per-tenant
    bucket: bench-backups
    objectLock: { mode: GOVERNANCE, days: 14 }
`,
};

function tenantYaml(index: number, environments: EnvKind[]): string {
  const name = `tenant-${String(index).padStart(4, '0')}`;
  const overrides = environments.includes('prod')
    ? `overrides:
  prod:
    services:
      postgres: { memoryMb: 4096, cpus: 2, parameters: { shared_buffers: 1GB } }
      redis: { maxmemory: 1gb, memoryMb: 1536 }
`
    : '';
  return `# Generated by bench/synth.ts: every service.
name: ${name}
environments: [${environments.join(', ')}]
portSlot: ${index}
services:
  postgres:
    version: 16
    databases: [app, analytics]
    parameters: { shared_buffers: 128MB, max_connections: 200, log_min_duration_statement: 500 }
    memoryMb: 768
  pgbouncer: { poolMode: transaction, poolSize: 25, maxClients: 1000 }
  redis: { replicas: 2, sentinels: 3, quorum: 2, downAfterMs: 5000, minReplicasToWrite: 1, maxmemory: 256mb }
  qdrant: { version: v1.12.4 }
  minio:
    buckets:
      - { name: images, versioned: true }
      - { name: thumbnails }
backup:
  postgres:
    retention: { daily: 7 }
${overrides}`;
}

/** Writes environments/*.yaml and tenants/*.yaml for `tenants` tenants deployed to `environments`. */
export function writeBenchConfig(dir: string, tenants: number, environments: EnvKind[]): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'environments'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'tenants'));
  for (const env of environments) fs.writeFileSync(path.join(dir, 'environments', `${env}.yaml`), ENVIRONMENTS[env](environments.length === 1));
  for (let i = 0; i < tenants; i++) fs.writeFileSync(path.join(dir, 'tenants', `tenant-${String(i).padStart(4, '0')}.yaml`), tenantYaml(i, environments));
}

// ------------------------------------------------------------------ outputs

/** sha256 of each file Tenantry promotes (manifest.json, stacks/<env>/cdk.tf.json), by relative path. */
function outputHashes(outdir: string): Map<string, string> {
  const files = ['manifest.json'];
  const stacks = path.join(outdir, 'stacks');
  if (fs.existsSync(stacks)) for (const env of fs.readdirSync(stacks).sort()) files.push(path.join('stacks', env, 'cdk.tf.json'));
  const hashes = new Map<string, string>();
  for (const f of files) {
    const p = path.join(outdir, f);
    if (fs.existsSync(p)) hashes.set(f, createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
  }
  return hashes;
}

const sameHashes = (a: Map<string, string>, b: Map<string, string>) => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

function jsonBytes(outdir: string): number {
  const stacks = path.join(outdir, 'stacks');
  return fs.readdirSync(stacks).reduce((n, env) => n + fs.statSync(path.join(stacks, env, 'cdk.tf.json')).size, 0);
}

// ------------------------------------------------------------------ baseline

const BASELINE_MAIN = `// Generated by bench/synth.ts: Tenantry's constructs run the way a default cdktf project runs
// its app (cdktf.json "app": "npx ts-node main.ts"): default App options, app.synth().
import { App } from 'cdktf';
import * as fs from 'fs';
import * as path from 'path';
import { configRoot, loadConfig } from './config/load';
import { formatProblem } from './config/source';
import { EnvironmentStack } from './stacks/environment-stack';

const root = configRoot();
const result = loadConfig(root);
if (!result.ok) {
  for (const problem of result.problems) console.error(formatProblem(problem));
  process.exit(2);
}
const app = new App();
const outdir = path.resolve(app.outdir);
// The backup image is built from the real repository, as in Tenantry's own main.ts.
const repo = process.env.TENANTRY_BENCH_REPO as string;
const version = (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;
for (const environment of result.config.environments) {
  const stackDir = path.join(outdir, 'stacks', environment.name);
  const backend = environment.backend;
  new EnvironmentStack(app, environment.name, {
    environment,
    localStatePath: backend.kind === 'local' ? path.relative(stackDir, path.resolve(root, backend.path ?? \`terraform.\${environment.name}.tfstate\`)) : undefined,
    backupImageBuild: { context: path.relative(stackDir, repo), dockerfile: 'runtime/agent/Dockerfile', version, contextHash: 'bench' },
  });
}
app.synth();
`;

const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * `import { A, B } from '@cdktf/provider-x/lib/some-resource'` becomes an import of the package
 * index's namespace (`import { someResource as __x_someResource } from '@cdktf/provider-x'`) and
 * aliases (`import A = __x_someResource.A`), which is how the index is meant to be used.
 */
export function rewriteProviderImports(source: string): { text: string; count: number } {
  let count = 0;
  const text = source.replace(/^import (type )?\{([^}]*)\} from '@cdktf\/(provider-[a-z0-9-]+)\/lib\/([a-z0-9-]+)';$/gm, (_m, type: string | undefined, names: string, pkg: string, mod: string) => {
    count++;
    const ns = `__${camel(pkg)}_${camel(mod)}`;
    const lines = [`import ${type ?? ''}{ ${camel(mod)} as ${ns} } from '@cdktf/${pkg}';`];
    for (const name of names.split(',').map((n) => n.trim()).filter(Boolean)) {
      if (name.includes(' as ')) throw new Error(`rewriteProviderImports: aliased import "${name}" is not supported`);
      lines.push(type ? `type ${name} = ${ns}.${name};` : `import ${name} = ${ns}.${name};`);
    }
    return lines.join('\n');
  });
  return { text, count };
}

function copyTree(from: string, to: string, filter: (file: string) => boolean = () => true): void {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst, filter);
    else if (entry.isFile() && filter(src)) fs.copyFileSync(src, dst);
  }
}

function walkTs(dir: string, visit: (file: string) => void): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules') walkTs(p, visit);
    else if (entry.isFile() && p.endsWith('.ts')) visit(p);
  }
}

/**
 * A copy of the TypeScript sources the app needs (config, constructs, stacks, runtime) plus
 * package.json, tsconfig.json and node_modules (symlink). `mainSource`: the app's main.ts;
 * `indexImports`: rewrite deep provider imports to the package index.
 */
function prepareSourceCopy(dir: string, mainSource: string, indexImports: boolean): { rewritten: number } {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const folder of ['config', 'constructs', 'stacks', 'runtime']) copyTree(path.join(REPO, folder), path.join(dir, folder), (f) => f.endsWith('.ts') || f.endsWith('.json'));
  for (const file of ['package.json', 'tsconfig.json']) fs.copyFileSync(path.join(REPO, file), path.join(dir, file));
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'main.ts'), mainSource);
  let rewritten = 0;
  if (indexImports) {
    walkTs(dir, (file) => {
      const { text, count } = rewriteProviderImports(fs.readFileSync(file, 'utf8'));
      if (count > 0) fs.writeFileSync(file, text);
      rewritten += count;
      if (/from '@cdktf\/provider-[a-z0-9-]+\/lib\//.test(text)) throw new Error(`${file}: a deep provider import was not rewritten`);
    });
  }
  return { rewritten };
}

// ------------------------------------------------------------------ lower bound

const LOWER_BOUND_SCRIPT = `
const fs = require('fs'), path = require('path');
const [files, outdir] = JSON.parse(process.argv[1]);
const docs = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
fs.mkdirSync(outdir, { recursive: true });
let best = Infinity;
for (let run = 0; run < 3; run++) {
  const start = process.hrtime.bigint();
  docs.forEach((doc, i) => fs.writeFileSync(path.join(outdir, i + '.json'), JSON.stringify(doc, null, 2)));
  best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
}
fs.rmSync(outdir, { recursive: true, force: true });
console.log(best);
`;

async function lowerBound(outdir: string, scratch: string): Promise<number> {
  const files = ['manifest.json', ...fs.readdirSync(path.join(outdir, 'stacks')).map((env) => path.join('stacks', env, 'cdk.tf.json'))].map((f) => path.join(outdir, f));
  const m = await measure([process.execPath, '-e', LOWER_BOUND_SCRIPT, JSON.stringify([files, scratch])], { env: cleanEnv({}), cwd: REPO });
  if (m.code !== 0) throw new Error(`lower bound failed: ${m.stderr}`);
  return Number(m.stdout.trim());
}

// ------------------------------------------------------------------ the benchmark

interface Case {
  readonly name: string;
  readonly tenants: number;
  readonly environments: number;
  /** The config directory (the repository root for the example). */
  readonly configDir: string;
  readonly baseline: boolean;
}

interface CaseResult {
  readonly case: Case;
  readonly runs: Measured[];
  readonly best: Measured;
  readonly jsonBytes: number;
  readonly deterministic: boolean;
  readonly hashes: Map<string, string>;
  readonly lowerBoundS: number;
  readonly baseline?: { readonly run: Measured; readonly identical: boolean; readonly note: string };
}

interface AblationRow {
  readonly variant: string;
  readonly run: Measured | undefined;
  readonly reference: Measured;
  readonly note: string;
}

export interface SynthBenchmark {
  readonly header: string[];
  readonly cases: CaseResult[];
  readonly ablation: AblationRow[];
  /** node -e '' alone; Tenantry's constructs and loader (deep provider imports); the three provider package indexes. */
  readonly moduleLoad: { readonly startup: Measured; readonly deep: Measured; readonly index: Measured };
  readonly quick: boolean;
  readonly loadAverage: [number, number];
  readonly baselineRewrites: number;
}

async function runTenantry(c: Case, outdir: string, extraEnv: Record<string, string> = {}): Promise<Measured> {
  fs.rmSync(outdir, { recursive: true, force: true });
  const m = await measure([process.execPath, TENANTRY_MAIN], { env: cleanEnv({ TENANTRY_CONFIG_DIR: c.configDir, CDKTF_OUTDIR: outdir, ...extraEnv }), cwd: REPO });
  if (m.code !== 0) throw new Error(`node dist/main.js failed for case ${c.name} (exit ${m.code}):\n${m.stderr.slice(-2000)}`);
  return m;
}

export async function runSynthBenchmark(options: { print?: (line: string) => void } = {}): Promise<SynthBenchmark> {
  const print = options.print ?? (() => undefined);
  ensureGnuTime();
  if (!fs.existsSync(TENANTRY_MAIN)) throw new Error(`${TENANTRY_MAIN} is missing: run \`npm run build\` first (npm run bench does)`);
  const quick = process.env.BENCH_SYNTH_QUICK === '1';
  const runsPerCase = Math.max(1, Number(process.env.BENCH_SYNTH_RUNS ?? 2));
  const loadAverage: [number, number] = [os.loadavg()[0], 0];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-bench-synth-'));
  try {
    const cases: Case[] = [
      { name: 'example', tenants: 2, environments: 2, configDir: REPO, baseline: true },
      { name: '1 tenant', tenants: 1, environments: 1, configDir: path.join(work, 'config-1'), baseline: true },
      { name: '100 tenants', tenants: 100, environments: 1, configDir: path.join(work, 'config-100'), baseline: true },
      { name: '1000 tenants', tenants: 1000, environments: 1, configDir: path.join(work, 'config-1000'), baseline: true },
      { name: '1000 tenants x 3 envs', tenants: 1000, environments: 3, configDir: path.join(work, 'config-1000x3'), baseline: false },
    ];
    for (const c of cases) {
      if (c.configDir !== REPO) writeBenchConfig(c.configDir, c.tenants, c.environments === 1 ? ['dev'] : ['dev', 'staging', 'prod']);
    }

    let baselineDir: string | undefined;
    let baselineRewrites = 0;
    if (!quick) {
      baselineDir = path.join(work, 'baseline');
      baselineRewrites = prepareSourceCopy(baselineDir, BASELINE_MAIN, true).rewritten;
    }

    const results: CaseResult[] = [];
    for (const c of cases) {
      const outdir = path.join(work, 'out', 'cdktf.out');
      const runs: Measured[] = [];
      let first: Map<string, string> | undefined;
      let deterministic = true;
      for (let r = 0; r < runsPerCase; r++) {
        print(`synth: ${c.name}, run ${r + 1} of ${runsPerCase} ...`);
        runs.push(await runTenantry(c, outdir));
        const hashes = outputHashes(outdir);
        if (first === undefined) first = hashes;
        else if (!sameHashes(first, hashes)) deterministic = false;
      }
      const hashes = first!;
      const bytes = jsonBytes(outdir);
      print(`synth: ${c.name}, lower bound ...`);
      const lowerBoundS = await lowerBound(outdir, path.join(work, 'lower-bound'));
      let baseline: CaseResult['baseline'];
      if (baselineDir && c.baseline) {
        print(`synth: ${c.name}, baseline (npx ts-node main.ts) ...`);
        fs.rmSync(outdir, { recursive: true, force: true });
        const env = cleanEnv({ TENANTRY_CONFIG_DIR: c.configDir, CDKTF_OUTDIR: outdir, TENANTRY_BENCH_REPO: REPO, NODE_OPTIONS: '--max-old-space-size=4096' });
        const run = await measure(['npx', '--no-install', 'ts-node', 'main.ts'], { env, cwd: baselineDir });
        const theirs = outputHashes(outdir);
        const identical = run.code === 0 && sameHashes(hashes, theirs);
        const differing = [...new Set([...hashes.keys(), ...theirs.keys()])].filter((k) => hashes.get(k) !== theirs.get(k));
        const note = run.code !== 0 ? `baseline failed (exit ${run.code}): ${run.stderr.trim().split('\n').slice(-3).join(' | ')}` : identical ? '' : `differs: ${differing.join(', ')}`;
        baseline = { run, identical, note };
      }
      fs.rmSync(outdir, { recursive: true, force: true });
      const best = runs.reduce((a, b) => (b.wallS < a.wallS ? b : a));
      results.push({ case: c, runs, best, jsonBytes: bytes, deterministic, hashes, lowerBoundS, baseline });
    }

    const ablation: AblationRow[] = [];
    if (!quick) {
      const big = cases.find((c) => c.name === '1000 tenants')!;
      const bigResult = results.find((r) => r.case === big)!;
      const outdir = path.join(work, 'out', 'cdktf.out');
      const variant = async (label: string, env: Record<string, string>, note = '') => {
        print(`synth ablation: ${label} ...`);
        const run = await runTenantry(big, outdir, env);
        const same = sameHashes(bigResult.hashes, outputHashes(outdir));
        ablation.push({ variant: label, run, reference: bigResult.best, note: note || (same ? 'same JSON' : 'JSON DIFFERS') });
      };
      await variant('token stack traces on (TENANTRY_CDKTF_STACK_TRACES=1)', { TENANTRY_CDKTF_STACK_TRACES: '1' });
      await variant("cdktf's preparing resolve pass (TENANTRY_SYNTH_CDKTF=prepare)", { TENANTRY_SYNTH_CDKTF: 'prepare' });
      await variant("cdktf's resolve on literal data too (TENANTRY_SYNTH_CDKTF=resolve)", { TENANTRY_SYNTH_CDKTF: 'resolve' });
      await variant("cdktf's stack synthesizer: its resolve, 2nd resolve, json-stable-stringify (TENANTRY_SYNTH_CDKTF=synthesizer)", { TENANTRY_SYNTH_CDKTF: 'synthesizer' });
      await variant('all of the above (stack traces on, TENANTRY_SYNTH_CDKTF=all)', { TENANTRY_CDKTF_STACK_TRACES: '1', TENANTRY_SYNTH_CDKTF: 'all' });

      // Tenantry's own main.ts, unchanged, under ts-node instead of compiled: the copy lives one
      // level down so that main.ts finds package.json at ../ as it does from dist/.
      print('synth ablation: ts-node main.ts ...');
      const tsnodeRoot = path.join(work, 'tsnode');
      prepareSourceCopy(path.join(tsnodeRoot, 'app'), fs.readFileSync(path.join(REPO, 'main.ts'), 'utf8'), false);
      fs.copyFileSync(path.join(REPO, 'package.json'), path.join(tsnodeRoot, 'package.json'));
      fs.rmSync(outdir, { recursive: true, force: true });
      const tsnode = await measure(['npx', '--no-install', 'ts-node', 'main.ts'], { env: cleanEnv({ TENANTRY_CONFIG_DIR: big.configDir, CDKTF_OUTDIR: outdir }), cwd: path.join(tsnodeRoot, 'app') });
      ablation.push({ variant: 'ts-node main.ts instead of node dist/main.js', run: tsnode.code === 0 ? tsnode : undefined, reference: bigResult.best, note: tsnode.code === 0 ? 'JSON not compared: backup build context is relative to the copy' : `failed: ${tsnode.stderr.slice(-300)}` });

      const x3 = cases.find((c) => c.environments === 3)!;
      const x3Result = results.find((r) => r.case === x3)!;
      print('synth ablation: 1000 x 3 serial ...');
      const serial = await runTenantry(x3, outdir, { TENANTRY_SYNTH_WORKERS: '1' });
      ablation.push({ variant: '1000 x 3 envs, serial (TENANTRY_SYNTH_WORKERS=1) vs parallel', run: serial, reference: x3Result.best, note: sameHashes(x3Result.hashes, outputHashes(outdir)) ? 'same JSON' : 'JSON DIFFERS' });
      fs.rmSync(outdir, { recursive: true, force: true });

    }

    // Fixed costs: what any run pays before the first construct.
    print('synth: node start-up and module load ...');
    const load = (specs: string[]) => measure([process.execPath, '-e', specs.map((spec) => `require(${JSON.stringify(spec)});`).join('')], { env: cleanEnv({}), cwd: REPO });
    const startup = await load([]);
    const deep = await load([path.join(REPO, 'dist', 'stacks', 'environment-stack.js'), path.join(REPO, 'dist', 'config', 'load.js')]);
    const index = await load(['cdktf', '@cdktf/provider-aws', '@cdktf/provider-docker', '@cdktf/provider-random']);
    const moduleLoad = { startup, deep, index };

    loadAverage[1] = os.loadavg()[0];
    const header = [
      `Synthesis benchmark: nproc ${os.availableParallelism?.() ?? os.cpus().length} (${os.cpus()[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB), node ${process.version}, cdktf ${cdktfVersion()}; ${new Date().toISOString().slice(0, 16)}Z`,
      `load average ${loadAverage[0].toFixed(1)} at start, ${loadAverage[1].toFixed(1)} at end (a shared machine inflates wall times; CPU time = user + sys of the process and its threads)`,
    ];
    return { header, cases: results, ablation, moduleLoad, loadAverage, baselineRewrites, quick };
  } finally {
    killSynthBenchChildren();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ formatting

const s1 = (x: number) => x.toFixed(x < 10 ? 2 : 1);
const mb = (x: number) => x.toFixed(0);
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}x`;

export function formatSynthBenchmark(result: SynthBenchmark): string {
  const out: string[] = [...result.header, ''];
  out.push(
    `Tenantry: \`node dist/main.js\` as \`npm run synth\` runs it, config in TENANTRY_CONFIG_DIR, output in CDKTF_OUTDIR (temp dir); generated tenants have all five services and backups; best wall time of ${result.cases[0]?.runs.length ?? '?'} runs.`,
  );
  out.push(
    textTable(
      ['case', 'tenants', 'envs', 'wall s', 'CPU s', 'peak RSS MB', 'JSON MB', 'deterministic (sha256 of runs)'],
      result.cases.map((r) => [r.case.name, r.case.tenants, r.case.environments, s1(r.best.wallS), s1(r.best.cpuS), mb(Math.max(...r.runs.map((m) => m.maxRssMb))), (r.jsonBytes / 1e6).toFixed(2), r.deterministic ? `yes (${r.runs.length} runs)` : 'NO']),
    ),
  );
  const t100 = result.cases.find((r) => r.case.name === '100 tenants');
  const t1000 = result.cases.find((r) => r.case.name === '1000 tenants');
  if (t100 && t1000) {
    out.push(`growth 100 -> 1000 tenants (10x input): wall ${ratio(t1000.best.wallS, t100.best.wallS)}, CPU ${ratio(t1000.best.cpuS, t100.best.cpuS)}, JSON ${ratio(t1000.jsonBytes, t100.jsonBytes)} (linear would be 10.0x)`);
  }
  out.push('');
  out.push(
    `${result.quick ? '[BENCH_SYNTH_QUICK=1: no baseline, no ablation] ' : ''}Baseline: the same constructs as a default cdktf project runs them (\`npx ts-node main.ts\`, type-checking; provider imports from the package index, ${result.baselineRewrites} imports rewritten; \`new App()\` defaults; app.synth(); NODE_OPTIONS=--max-old-space-size=4096 as the cdktf CLI sets it), one run. Lower bound: JSON.stringify(doc, null, 2) of the same final documents plus writeFileSync, in-process, best of 3; fixed costs = node start-up + loading the modules (below).`,
  );
  out.push(
    textTable(
      ['case', 'Tenantry s', 'baseline s', 'speed-up', 'baseline CPU s', 'baseline RSS MB', 'same JSON as baseline', 'lower bound s', 'Tenantry / lower bound', 'same, minus fixed costs'],
      result.cases.map((r) => [
        r.case.name,
        s1(r.best.wallS),
        r.baseline ? s1(r.baseline.run.wallS) : '-',
        r.baseline && r.baseline.run.code === 0 ? ratio(r.baseline.run.wallS, r.best.wallS) : '-',
        r.baseline ? s1(r.baseline.run.cpuS) : '-',
        r.baseline ? mb(r.baseline.run.maxRssMb) : '-',
        r.baseline ? (r.baseline.identical ? 'yes, byte for byte' : `NO: ${r.baseline.note}`) : result.quick ? 'skipped (BENCH_SYNTH_QUICK=1)' : 'not run (~3 GB, minutes)',
        r.lowerBoundS.toFixed(3),
        ratio(r.best.wallS, r.lowerBoundS),
        r.best.wallS > 2 * result.moduleLoad.deep.wallS ? ratio(r.best.wallS - result.moduleLoad.deep.wallS, r.lowerBoundS) : '-',
      ]),
    ),
  );
  if (result.ablation.length > 0) {
    out.push('');
    out.push('What each optimisation buys (1000 tenants, one environment unless stated; each row turns ONE optimisation off, one run):');
    out.push(
      textTable(
        ['variant', 'wall s', 'CPU s', 'peak RSS MB', 'Tenantry wall s', 'slower by', 'output'],
        result.ablation.map((a) => [a.variant, a.run ? s1(a.run.wallS) : '-', a.run ? s1(a.run.cpuS) : '-', a.run ? mb(a.run.maxRssMb) : '-', s1(a.reference.wallS), a.run ? ratio(a.run.wallS, a.reference.wallS) : '-', a.note]),
      ),
    );
  }
  const { startup, deep, index } = result.moduleLoad;
  out.push('');
  out.push(
    `Fixed costs (node -e require(...), one run): node start-up ${s1(startup.wallS)} s / ${mb(startup.maxRssMb)} MB; Tenantry's constructs and loader (deep provider imports) ${s1(deep.wallS)} s / ${mb(deep.maxRssMb)} MB; cdktf + the three provider package indexes ${s1(index.wallS)} s / ${mb(index.maxRssMb)} MB.`,
  );
  return out.join('\n');
}

if (require.main === module) {
  const stop = (signal: NodeJS.Signals) => {
    killSynthBenchChildren();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  runSynthBenchmark({ print: (line) => console.error(line) }).then(
    (result) => console.log(formatSynthBenchmark(result)),
    (error: unknown) => {
      if (error instanceof MissingBinary) {
        console.error(`bench: ${error.message}`);
        process.exit(2);
      }
      console.error(error instanceof Error ? error.stack : error);
      process.exit(1);
    },
  );
}
