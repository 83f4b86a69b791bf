import { startTestDocker, TestDocker } from '../helpers/docker';
import { buildTestImages, formatSubstitutions } from '../helpers/docker-images';

/*
 * Once per jest run that selects a Docker suite: a daemon (DOCKER_HOST's, or the tests' own) and
 * the images, built or found in the cache. Workers start after this and inherit DOCKER_HOST, so
 * every suite's startTestDocker() reuses this daemon and leaves stopping it to the teardown.
 */
export const DAEMON_KEY = '__tenantryTestDocker';

export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const daemon = await startTestDocker();
  (globalThis as Record<string, unknown>)[DAEMON_KEY] = daemon satisfies TestDocker;
  process.env.DOCKER_HOST = daemon.host;
  try {
    const images = await buildTestImages(daemon.docker);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    console.log(`\nDocker tests: daemon ${daemon.host} (${daemon.startedHere ? 'started here' : 'already running'}); images ready in ${seconds} s, built: ${images.built.join(', ') || 'none (all cached)'}\nImages replaced in the Docker tests (production -> local):\n${formatSubstitutions(images.substitutions)}`);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
}
