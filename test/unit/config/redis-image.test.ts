/**
 * images.redis must be an Alpine build while Tenantry builds the backup image, which copies its
 * Redis tools out of it into an Alpine (musl) image (runtime/agent/Dockerfile).
 */
import { isAlpineImage } from '../../../config/images';
import { environmentSchema } from '../../../config/schema';

const environment = (images: Record<string, string>) => ({
  name: 'qa',
  docker: { host: 'unix:///var/run/docker.sock' },
  network: { name: 'qa', subnet: '172.45.0.0/16' },
  storage: { kind: 'volume' },
  images,
});

const problemsAt = (images: Record<string, string>) => {
  const result = environmentSchema.safeParse(environment(images));
  return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
};

describe('isAlpineImage', () => {
  test.each(['redis:7.4.2-alpine', 'redis:alpine3.21', 'registry:5000/mirror/redis:7.4.2-alpine3.21@sha256:' + 'a'.repeat(64), 'valkey/valkey:8.1-alpine'])('%s is an Alpine build', (image) => {
    expect(isAlpineImage(image)).toBe(true);
  });

  test.each(['redis:7.4.2', 'redis:7.4.2-bookworm', 'registry:5000/alpine/redis:7.4.2', 'redis@sha256:' + 'a'.repeat(64), 'redis:notalpine'])('%s is not (or cannot be told to be)', (image) => {
    expect(isAlpineImage(image)).toBe(false);
  });
});

describe('images.redis and the built backup image', () => {
  test('an Alpine images.redis, or none, is accepted', () => {
    expect(problemsAt({ redis: 'registry.example.com/redis:7.4.2-alpine' })).toEqual([]);
    expect(problemsAt({})).toEqual([]);
  });

  test('a Debian-based images.redis is refused at images.redis', () => {
    expect(problemsAt({ redis: 'redis:7.4.2-bookworm' })).toEqual(['images.redis']);
  });

  test('a Debian-based images.redis is accepted when the environment brings its own images.backup (nothing is built then)', () => {
    expect(problemsAt({ redis: 'redis:7.4.2-bookworm', backup: 'registry.example.com/tenantry/backup-agent:1.0.0' })).toEqual([]);
  });

  test('an unpinned images.redis gets only the pinning problem', () => {
    const result = environmentSchema.safeParse(environment({ redis: 'redis:latest' }));
    expect(result.success ? [] : result.error.issues.map((i) => i.message)).toEqual([expect.stringContaining('is not pinned')]);
  });
});
