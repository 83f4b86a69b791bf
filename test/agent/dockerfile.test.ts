import * as fs from 'fs';
import * as path from 'path';
import { AGENT_HTTP_PORT, DEFAULT_CONFIG_PATH } from '../../runtime/agent/config';
import { importedPackages } from './compiled';

/*
 * The Dockerfile cannot import the agent's constants, so this test holds it to them: a port or a
 * config directory changed in TypeScript alone would leave the image exposing the old one.
 */
const DOCKERFILE = fs.readFileSync(path.resolve(__dirname, '../../runtime/agent/Dockerfile'), 'utf8');

describe('runtime/agent/Dockerfile', () => {
  test('exposes exactly the agent HTTP port (AGENT_HTTP_PORT)', () => {
    expect([...DOCKERFILE.matchAll(/^EXPOSE\s+(.+)$/gm)].map((m) => m[1].trim())).toEqual([String(AGENT_HTTP_PORT)]);
  });

  test('creates the directory of the default config path (DEFAULT_CONFIG_PATH)', () => {
    const created = [...DOCKERFILE.matchAll(/mkdir -p ([^\\&\n]+)/g)].flatMap((m) => m[1].trim().split(/\s+/));
    expect(created).toContain(path.posix.dirname(DEFAULT_CONFIG_PATH));
  });

  test('uninstalls exactly the dependencies the agent does not import (the image carries no synth or CLI packages)', () => {
    const repo = path.resolve(__dirname, '../..');
    const copied = [...DOCKERFILE.matchAll(/^COPY (runtime\/\S+) \.\/runtime\//gm)].map((m) => m[1]);
    expect(copied.length).toBeGreaterThan(0);
    const imported = new Set(importedPackages(copied));
    const dependencies = Object.keys((JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
    const uninstalled = /npm uninstall --no-save --ignore-scripts ([^\\&\n]+)/.exec(DOCKERFILE)?.[1].trim().split(/\s+/) ?? [];
    expect([...uninstalled].sort()).toEqual(dependencies.filter((d) => !imported.has(d)).sort());
  });
});
