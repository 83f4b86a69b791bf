import * as fs from 'fs';
import * as path from 'path';
import { containerName, deploymentName, volumeName } from '../../../config/naming';
import { containerName as constructsContainerName } from '../../../constructs/naming';
import { REPO } from '../../helpers/build';

/*
 * The naming rule `<env>-<tenant>-<service>[-<n>]` lives in config/naming.ts: the config layer's
 * clash checks and the constructs must build the same names, so neither may spell the rule out
 * itself. A name written by hand (`${env.name}-${tenant}-…`, `${env}-shared-postgres`) is what
 * this looks for in every source file that is not a test.
 */
const OWNER = 'config/naming.ts';
const FOLDERS = ['config', 'constructs', 'stacks', 'runtime', 'cli', 'e2e', 'bench'];

/** An environment's name, then "-", then a tenant's name or the shared server's tenant, inside a template literal. */
const HAND_BUILT_NAME = /\$\{[\w.]*\b(?:env|environment)(?:\.name)?\}-(?:\$\{[\w.]*\btenant(?:\.name)?\}|shared\b)/;

function sources(): string[] {
  const files = ['main.ts'];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
      const relative = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(relative);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(relative);
    }
  };
  for (const folder of FOLDERS) walk(folder);
  return files;
}

test('only config/naming.ts spells out <env>-<tenant>-…; every other name is built by calling it', () => {
  const handBuilt = sources()
    .filter((file) => file !== OWNER)
    .flatMap((file) =>
      fs
        .readFileSync(path.join(REPO, file), 'utf8')
        .split('\n')
        .flatMap((line, i) => (HAND_BUILT_NAME.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
    );
  expect(handBuilt).toEqual([]);
});

test('the rule: containers <env>-<tenant>-<service>[-<n>], volumes <container>-<purpose>; constructs use the same function', () => {
  expect(deploymentName('dev', 'acme')).toBe('dev-acme');
  expect(containerName('dev', 'acme', 'postgres')).toBe('dev-acme-postgres');
  expect(containerName('dev', 'acme', 'redis', 0)).toBe('dev-acme-redis-0');
  expect(volumeName(containerName('dev', 'acme', 'sentinel-1'), 'state')).toBe('dev-acme-sentinel-1-state');
  expect(constructsContainerName).toBe(containerName);
});
