import * as fs from 'fs';
import * as path from 'path';
import { FORCE_NEW, PROVIDERS_READ, replacingAttributes } from '../../../cli/plan/replacement';
import { readStacks } from '../../../cli/synthesis';
import { lowestFreeSlot } from '../../../config/ports';
import { REPO_ROOT, writeConfig } from '../synth/support';
import { synthesizedFolder } from './support';

/*
 * The ForceNew table was read from the providers' sources at fixed versions: when the stacks
 * require other versions (or a resource type the table lacks), this fails, so the table is read again.
 */
describe('cli/plan/replacement.ts', () => {
  test('matches the provider versions and resource types the example stacks use', async () => {
    const root = writeConfig({});
    for (const folder of ['environments', 'tenants']) fs.cpSync(path.join(REPO_ROOT, folder), path.join(root, folder), { recursive: true });
    const out = await synthesizedFolder(root);
    try {
      for (const stack of readStacks(out).values()) {
        for (const [name, provider] of Object.entries(stack.terraform?.required_providers ?? {})) expect([name, provider.version]).toEqual([name, PROVIDERS_READ[name as keyof typeof PROVIDERS_READ]]);
        for (const type of Object.keys(stack.resource ?? {})) expect(FORCE_NEW).toHaveProperty([type]);
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  test('a change under a ForceNew block forces; memory and healthcheck do not; an unknown type always does', () => {
    expect(replacingAttributes('docker_container', ['upload.content', 'memory', 'healthcheck.interval', 'env'])).toEqual(['upload.content', 'env']);
    expect(replacingAttributes('docker_image', ['build.context', 'keep_locally'])).toEqual(['build.context']);
    expect(replacingAttributes('some_new_type', ['anything'])).toEqual(['anything']);
  });
});

describe('lowestFreeSlot (config/ports.ts)', () => {
  test('skips slots another tenant holds and slots holding a port published on the same Docker host', () => {
    expect(lowestFreeSlot(new Set([0, 2]), [])).toBe(1);
    // Slot 1 of 20000-20999 is 20020-20039: another environment on the host publishes 20025.
    expect(lowestFreeSlot(new Set([0]), [{ from: 20000, to: 20999, claimed: new Set([20025]) }])).toBe(2);
    expect(lowestFreeSlot(new Set([0]), [{ from: 20000, to: 20039, claimed: new Set() }])).toBe(1);
    expect(lowestFreeSlot(new Set([0, 1]), [{ from: 20000, to: 20039, claimed: new Set() }])).toBeUndefined();
  });
});
