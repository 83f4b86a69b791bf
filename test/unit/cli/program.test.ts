import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { tenantryProgram } from '../../../cli/program';
import { buildIfStale, REPO } from '../../helpers/build';
import { REPO_ROOT, writeConfig } from '../synth/support';
import { synthesizedFolder, tenantry } from './support';

/*
 * The `tenantry` bin as users run it (node dist/cli/main.js): every error is one line (a
 * configuration's problems one line each, as npm run synth prints them), exit 2 for usage and
 * configuration mistakes, 1 for a failed operation, never a stack trace; --help for every command
 * has examples; colour only in a terminal, never with --no-color or NO_COLOR.
 */

const BIN = path.join(REPO, 'dist', 'cli', 'main.js');
beforeAll(() => buildIfStale(BIN), 300_000);

function bin(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, TENANTRY_CONFIG_DIR: undefined } });
  const stderr = r.stderr.split('\n').filter(Boolean);
  expect(stderr.filter((l) => /^\s+at /.test(l))).toEqual([]);
  return { code: r.status, stdout: r.stdout, stderr };
}

function example(): string {
  const root = writeConfig({});
  for (const folder of ['environments', 'tenants']) fs.cpSync(path.join(REPO_ROOT, folder), path.join(root, folder), { recursive: true });
  return root;
}

describe('node dist/cli/main.js', () => {
  test.each([
    [['no-such-command'], "tenantry: unknown command 'no-such-command' (see tenantry --help)"],
    [['plan', '-o', 'yaml'], "tenantry: option '-o, --output <format>' argument 'yaml' is invalid. Allowed choices are table, json, markdown. (see tenantry --help)"],
    [['add-tenant'], "tenantry: missing required argument 'name' (see tenantry --help)"],
  ])('usage mistake %j: exit 2, one line', (args, line) => {
    expect(bin(args)).toEqual({ code: 2, stdout: '', stderr: [line] });
  });

  test('a configuration with problems: file:line:col lines and a summary, exit 2', () => {
    const root = example();
    fs.writeFileSync(path.join(root, 'tenants', 'globex.yaml'), 'name: globex\nenvironments: [dev, prdo]\nportSlot: 1\n');
    const run = bin(['--config-dir', root, 'plan', '--base', root]);
    expect(run.code).toBe(2);
    expect(run.stderr).toEqual([expect.stringMatching(/tenants\/globex\.yaml:2:\d+: environments\[1\]: environment "prdo" does not exist; did you mean "prod"\?/), `1 problem(s) in the configuration under ${root}; nothing was written.`]);
  });

  test('a failed operation (an unreadable base stack): exit 1, one line, no stack trace', () => {
    const root = example();
    const base = path.join(writeConfig({}), 'cdktf.out');
    fs.mkdirSync(path.join(base, 'stacks', 'dev'), { recursive: true });
    fs.writeFileSync(path.join(base, 'stacks', 'dev', 'cdk.tf.json'), '{ not json');
    const run = bin(['--config-dir', root, 'plan', '--base', base]);
    expect(run.code).toBe(1);
    expect(run.stderr).toEqual([expect.stringMatching(/^tenantry: .*JSON/)]);
  });

  test('--help for tenantry and each command, with examples for each command', () => {
    const top = bin(['--help']);
    expect(top.code).toBe(0);
    const commands = tenantryProgram({ stdout: () => undefined, stderr: () => undefined, isTTY: false, env: {} }).commands.map((c) => c.name());
    expect(commands).toEqual(['status', 'backups', 'backup', 'restore', 'add-tenant', 'plan']);
    for (const command of commands) {
      expect(top.stdout).toContain(command);
      const help = bin([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/\nExamples:\n {2}tenantry /);
    }
  });
});

describe('colour', () => {
  let root: string;
  let base: string;
  beforeAll(async () => {
    root = example();
    base = await synthesizedFolder(root);
    fs.rmSync(path.join(root, 'tenants', 'globex.yaml'));
  });
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));
  const ESC = '\u001b[';

  test('in a terminal, data at risk is red', async () => {
    const run = await tenantry(['--config-dir', root, 'plan', '--base', base], { isTTY: true, env: {} });
    expect(run.code).toBe(3);
    expect(run.stdout).toContain(`${ESC}31m`);
  });

  test.each([
    ['piped', false, {}, []],
    ['--no-color', true, {}, ['--no-color']],
    ['NO_COLOR', true, { NO_COLOR: '1' }, []],
  ])('none when %s', async (_name, isTTY, env, flags) => {
    const run = await tenantry([...flags, '--config-dir', root, 'plan', '--base', base], { isTTY, env });
    expect(run.code).toBe(3);
    expect(run.stdout).toContain('remove (data at risk)');
    expect(run.stdout).not.toContain(ESC);
  });
});
