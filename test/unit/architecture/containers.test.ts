import * as fs from 'fs';
import * as path from 'path';
import { REPO } from '../../helpers/build';

/*
 * Hardening is the construct's, not its callers' (as in cdk8s-plus): ServiceContainer gives every
 * container no-new-privileges, drops ALL capabilities, adds back only its service's and makes the
 * root file system read-only where constructs/container-privileges.ts says so. That holds only if
 * nothing else creates a docker_container.
 */
const OWNER = 'constructs/service-container.ts';

function sources(): string[] {
  return ['constructs', 'stacks'].flatMap((dir) =>
    fs.readdirSync(path.join(REPO, dir)).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`),
  );
}

test('only ServiceContainer creates Docker containers, so every one gets its hardening', () => {
  const creators = sources().filter((file) => /\bnew Container\(/.test(fs.readFileSync(path.join(REPO, file), 'utf8')));
  expect(creators).toEqual([OWNER]);
});
