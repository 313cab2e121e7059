// npm run test:cluster: the whole suite on the Temporal compose pins (see test/global-setup.js), but the tests that
// start a dev server of their own by design, which the dev-server run already ran: the two of entry points (`npm
// start`, `npm run dev-server`) and the task-priority test (a dev server with the new matcher and one partition).
import base from '../jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  rootDir: '..',
  testNamePattern:
    "^(?!npm start serves the Web UI|npm run dev-server starts a dev server|a settled batch's read and retry call go ahead)",
};
