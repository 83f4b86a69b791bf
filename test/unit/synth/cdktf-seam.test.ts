import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../../config/load';
import { configureTokenStackTraces, KNOWN_CDKTF_VERSION } from '../../../stacks/cdktf-seam';
import { synthesizeEnvironments } from '../../../stacks/synth';
import { buildIfStale, REPO } from '../../helpers/build';

/*
 * stacks/cdktf-seam.ts uses cdktf's internals with the version it knows only. cdktf is archived
 * and its fork cdktn differs exactly there, so the fallback to cdktf's own public path is tested
 * by telling the seam another version is installed; the verify mode is tested with
 * json-stable-stringify unresolvable for everything but cdktf itself (cdktn replaced it).
 */
const made: string[] = [];
const tmp = () => {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'cdktf-seam-'));
  made.push(dir);
  return dir;
};
afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

function files(dir: string, under = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(path.join(dir, under), { withFileTypes: true })) {
    const rel = path.join(under, entry.name);
    if (entry.isDirectory()) Object.assign(out, files(dir, rel));
    else out[rel] = fs.readFileSync(path.join(dir, rel), 'utf8');
  }
  return out;
}

describe('on a cdktf version the seam does not know', () => {
  const loaded = loadConfig(REPO);
  if (!loaded.ok) throw new Error('the example config must load');
  const environments = loaded.config.environments;

  async function synth(cdktfVersion?: string): Promise<Record<string, string>> {
    const scratch = path.join(tmp(), 'cdktf.out.partial');
    const result = await synthesizeEnvironments(environments, { root: REPO, outdir: path.join(path.dirname(scratch), 'cdktf.out'), scratch, repo: REPO, workers: 1, cdktfVersion });
    expect(result).toEqual({ ok: true });
    return files(scratch);
  }

  it('synthesizes with cdktf\'s own synthesizer, byte for byte the same, and says so once', async () => {
    expect(environments.length).toBeGreaterThan(1);
    const fast = await synth();
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let fallback: Record<string, string>;
    let printed: string[];
    try {
      fallback = await synth('0.21.1');
    } finally {
      printed = stderr.mock.calls.map(([text]) => String(text));
      stderr.mockRestore();
    }
    expect(printed).toEqual([
      `tenantry: cdktf 0.21.1 is installed and Tenantry's fast synthesis knows the internals of cdktf ${KNOWN_CDKTF_VERSION} only; synthesizing with cdktf's own synthesizer (the same output, slower).\n`,
    ]);
    expect(Object.keys(fallback).sort()).toEqual(Object.keys(fast).sort());
    expect(Object.keys(fast)).toEqual(expect.arrayContaining(['manifest.json', path.join('stacks', 'dev', 'cdk.tf.json'), path.join('stacks', 'prod', 'cdk.tf.json')]));
    for (const file of Object.keys(fast)) expect([file, fallback[file]]).toEqual([file, fast[file]]);
  });

  it('leaves cdktf\'s token stack traces alone and sets only cdktn\'s public switch', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const stackTrace = require('cdktf/lib/tokens/private/stack-trace') as { captureStackTrace: unknown };
    const before = stackTrace.captureStackTrace;
    const saved = process.env.CDKTN_DISABLE_CREATION_STACK;
    delete process.env.CDKTN_DISABLE_CREATION_STACK;
    try {
      expect(configureTokenStackTraces({}, false)).toBe(false);
      expect(stackTrace.captureStackTrace).toBe(before);
      expect(process.env.CDKTN_DISABLE_CREATION_STACK).toBe('1');
    } finally {
      if (saved === undefined) delete process.env.CDKTN_DISABLE_CREATION_STACK;
      else process.env.CDKTN_DISABLE_CREATION_STACK = saved;
    }
  });
});

describe('TENANTRY_SYNTH_VERIFY=1 without json-stable-stringify', () => {
  const MAIN = path.join(REPO, 'dist', 'main.js');
  beforeAll(() => buildIfStale(MAIN), 300_000);

  // Preloaded into the app and its synthesis threads: json-stable-stringify resolves for cdktf's
  // own modules only (cdktf 0.21.0 cannot load without it), as if a fork had replaced it. cdktf's
  // folder is resolved here, from the repository: the hook's own file lies in TMPDIR, which may be
  // outside it (test/run.sh moves TMPDIR when the checkout is private).
  // TAMPER=1 also changes one byte of what Tenantry's fast path writes, to show the check compares.
  const HOOK = `
const Module = require('module');
const fs = require('fs');
const cdktfDir = ${JSON.stringify(path.dirname(require.resolve('cdktf/package.json')))};
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (request === 'json-stable-stringify' && !(parent && parent.filename && parent.filename.startsWith(cdktfDir))) {
    throw Object.assign(new Error("Cannot find module 'json-stable-stringify'"), { code: 'MODULE_NOT_FOUND' });
  }
  return resolveFilename.call(this, request, parent, ...rest);
};
if (process.env.TAMPER === '1') {
  const writeSync = fs.writeSync;
  fs.writeSync = (fd, text, ...rest) => writeSync(fd, typeof text === 'string' ? text.replace('"//"', '"/ /"') : text, ...rest);
}
`;

  function synth(env: Record<string, string>): { status: number | null; stderr: string } {
    const dir = tmp();
    const hook = path.join(dir, 'no-json-stable-stringify.js');
    fs.writeFileSync(hook, HOOK);
    const result = spawnSync(process.execPath, [MAIN], {
      cwd: REPO,
      env: { ...process.env, NODE_OPTIONS: `--require ${hook}`, TENANTRY_CONFIG_DIR: REPO, CDKTF_OUTDIR: path.join(dir, 'cdktf.out'), TENANTRY_SYNTH_VERIFY: '1', ...env },
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { status: result.status, stderr: result.stderr };
  }

  it('compares with cdktf\'s own synthesis and passes', () => {
    expect(synth({})).toEqual({ status: 0, stderr: '' });
  });

  it('fails on a single differing byte', () => {
    const run = synth({ TAMPER: '1' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("TENANTRY_SYNTH_VERIFY: ");
    expect(run.stderr).toContain("differs from cdktf's own synthesis at character");
  });
});
