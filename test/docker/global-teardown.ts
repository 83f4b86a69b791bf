import type { TestDocker } from '../helpers/docker';
import { DAEMON_KEY } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  await ((globalThis as Record<string, unknown>)[DAEMON_KEY] as TestDocker | undefined)?.stop();
}
