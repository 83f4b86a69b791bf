import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../../config/load';
import {
  caseFiles,
  CORPUS_DIR,
  expectedLines,
  listCases,
  materialise,
  problemLines,
  removedFiles,
} from './corpus-lib';

/*
 * Bad input is a test corpus (see test/config/README.md): every case is the shared valid base
 * config plus a few changed files, and must print exactly the lines of its expected.txt: same
 * files, lines, columns and words, in the same order.
 */

const roots: string[] = [];
const fresh = (c?: Parameters<typeof materialise>[0]) => {
  const root = materialise(c);
  roots.push(root);
  return root;
};
afterAll(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

const cases = listCases(CORPUS_DIR);

describe('the base config', () => {
  test('loads cleanly, so every problem a case prints is caused by the case', () => {
    expect(problemLines(fresh())).toEqual([]);
  });

  test('covers bind storage with published ports, production, NFS and a Windows Docker host', () => {
    const root = fresh();
    const result = loadConfig(root);
    if (!result.ok) throw new Error('base config does not load');
    const envs = Object.fromEntries(result.config.environments.map((e) => [e.name, e]));
    expect(Object.keys(envs)).toEqual(['dev', 'nas', 'prod', 'win']);
    expect(envs.dev.storage).toEqual({ kind: 'bind', dataRoot: path.join(root, 'data/dev') });
    expect(envs.dev.ports.publish).toBe(true);
    expect(envs.prod.production).toBe(true);
    expect(envs.nas.storage.kind).toBe('nfs');
    expect(envs.win.docker.platform).toBe('windows');
    expect(envs.win.docker.host.startsWith('npipe://')).toBe(true);
    expect(envs.dev.tenants.map((t) => t.name)).toEqual(['alpha', 'beta']);
    expect(envs.win.tenants.map((t) => t.name)).toEqual(['alpha']);
  });
});

describe('the corpus', () => {
  test('has at least 35 cases, each with config files (or removals) and a non-empty expected.txt', () => {
    expect(cases.length).toBeGreaterThanOrEqual(35);
    for (const c of cases) {
      expect({ case: c.name, changes: caseFiles(c).length + removedFiles(c).length > 0 }).toEqual({ case: c.name, changes: true });
      expect({ case: c.name, lines: expectedLines(c).length > 0 }).toEqual({ case: c.name, lines: true });
      for (const file of caseFiles(c)) {
        expect({ case: c.name, file, inConfigFolder: /^(environments|tenants)\/[^/]+$/.test(file) }).toEqual({ case: c.name, file, inConfigFolder: true });
      }
    }
  });

  test('case numbers are unique', () => {
    const names = cases.map((c) => c.name.split('-')[0]);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('each case prints exactly its expected.txt', () => {
  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const expected = expectedLines(c);
    for (const line of expected) expect(line).toMatch(/^[^:\s]+:\d+:\d+: \S/);
    expect(problemLines(fresh(c))).toEqual(expected);
  });
});
