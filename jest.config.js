/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup-runtime.ts'],
  globalSetup: '<rootDir>/test/global-setup.js',
  globalTeardown: '<rootDir>/test/global-teardown.js',
  testTimeout: 60_000,
  maxWorkers: 2,
  // Node.js does not free a test file's VM context in full (nodejs/node#33439), so a Jest worker's heap grew 20-40 MB
  // a file, to 1.4-1.7 GB by the end of a run. Freeing that much as the worker exits took it past the 500 ms Jest
  // waits before it force-exits a worker and warns. A worker whose heap is past this after a file is replaced.
  workerIdleMemoryLimit: '800MB',
};
