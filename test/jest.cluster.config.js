// npm run test:cluster: the whole suite on the Temporal compose pins (see test/global-setup.js), but the two
// tests of entry points that start a dev server of their own by design (`npm start`, `npm run dev-server`).
import base from '../jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  rootDir: '..',
  testNamePattern: '^(?!npm start serves the Web UI|npm run dev-server starts a dev server)',
};
