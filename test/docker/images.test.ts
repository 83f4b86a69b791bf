import { startTestDocker, TestDocker } from '../helpers/docker';
import { buildTestImages, formatSubstitutions } from '../helpers/docker-images';
import { AGENT_DOCKERFILE } from '../../stacks/backup-image';
import { DEFAULT_IMAGES } from '../../config/images';

let daemon: TestDocker;
beforeAll(async () => {
  daemon = await startTestDocker();
});
afterAll(() => daemon.stop());

describe('the Docker tests\' images', () => {
  test('a second build finds every image in the cache and builds none', async () => {
    // The global setup built (or found) them: the same inputs give the same tags.
    const images = await buildTestImages(daemon.docker);
    expect(images.built).toEqual([]);
    console.log(`Images replaced in the Docker tests (production -> local):\n${formatSubstitutions(images.substitutions)}`);
  });

  test('lists a substitution for each default image the tenant runs and for the agent build', async () => {
    const { substitutions } = await buildTestImages(daemon.docker);
    const production = substitutions.map((s) => s.production);
    expect(production).toEqual(expect.arrayContaining([DEFAULT_IMAGES.pgbouncer, DEFAULT_IMAGES.redis, `build:${AGENT_DOCKERFILE}`]));
  });

  test('the agent image keeps the production image\'s entrypoint, user, volume and port', async () => {
    const { agent } = await buildTestImages(daemon.docker);
    const config = (await daemon.docker.getImage(agent).inspect()).Config;
    expect(config.Entrypoint).toEqual(['/sbin/tini', '--', 'tenantry-entrypoint']);
    expect(config.Cmd).toEqual(['serve']);
    expect(Object.keys(config.Volumes ?? {})).toEqual(['/backups']);
    expect(Object.keys(config.ExposedPorts ?? {})).toEqual(['9187/tcp']);
    // The image has no USER: the entrypoint drops to tenantry (uid 10001) after chowning /backups.
    expect(config.User).toBe('');
  });
});
