// npm run test:cluster: the whole suite on the Temporal compose pins (see test/global-setup.js), but the
// `npm start` test, which starts a dev server of its own by design.
import base from '../jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  rootDir: '..',
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/client/start\\.test\\.ts$'],
};
