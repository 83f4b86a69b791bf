/** The PostgreSQL major version an environment's pinned image names (config/cross-checks.ts). */
import { imageMajor } from '../../../config/cross-checks';

describe('imageMajor', () => {
  test.each([
    ['postgres:16-alpine', 16],
    ['postgres:15', 15],
    ['registry.example.com/mirror/postgres:16.4-alpine', 16],
    ['registry:5000/pg:17.0', 17],
    ['postgres:13_custom', 13],
    ['postgres:16@sha256:0123456789abcdef', 16],
  ])('%s names PostgreSQL %i', (image, major) => {
    expect(imageMajor(image)).toBe(major);
  });

  test.each(['postgres', 'postgres:latest', 'postgres:alpine', 'registry:5000/postgres', 'postgres@sha256:0123456789abcdef', 'postgres:v16'])('%s names no version', (image) => {
    expect(imageMajor(image)).toBeUndefined();
  });
});
