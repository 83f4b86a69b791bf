/** @type {import('jest').Config} */
const shared = {
  testEnvironment: 'node',
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': '<rootDir>/test/jest-transform.js' },
  moduleFileExtensions: ['ts', 'js', 'json'],
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
};

module.exports = {
  // Integration tests start real servers on free ports; two workers match the machine's two cores.
  maxWorkers: 2,
  testTimeout: 120000,
  projects: [
    { ...shared, displayName: 'main', roots: ['<rootDir>/test'], testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/docker/'] },
    // A project of its own because jest runs a project's globalSetup only when one of its tests is
    // selected: `npx jest test/unit` starts no dockerd and builds no image. The setup starts the
    // daemon and builds the images once for every Docker suite (test/docker/global-setup.ts).
    {
      ...shared,
      displayName: 'docker',
      roots: ['<rootDir>/test/docker'],
      globalSetup: '<rootDir>/test/docker/global-setup.ts',
      globalTeardown: '<rootDir>/test/docker/global-teardown.ts',
    },
  ],
};
