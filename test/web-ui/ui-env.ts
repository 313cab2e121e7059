import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { BatchRecoveries } from '../../client/recoveries.js';
import { startDevServer } from '../../dev/dev-server.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import { TEST_API_KEY, workerConfig, workflowBundle } from '../helpers/recovery-env.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';
import { resolveChromium } from './chromium.js';

/** Where the screenshots of the Web UI tests are kept (git-ignored). */
export const ARTIFACTS_DIR = path.resolve('test-artifacts', 'web-ui');

// Playwright adds --headless and a fresh --user-data-dir of its own (removed at close).
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The Temporal server and Web UI the tests drive. */
interface UiServer {
  address: string;
  namespace: string;
  uiUrl: string;
}

export interface UiEnv {
  server: UiServer;
  /** The Web UI's base URL, e.g. http://127.0.0.1:41234. */
  uiUrl: string;
  namespace: string;
  simulator: RunningSimulator;
  client: Client;
  recoveries: BatchRecoveries;
  taskQueue: string;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Saves a full-page PNG of the page as test-artifacts/web-ui/<name>.png; returns the path. */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * On the cluster target (npm run test:cluster), the UI server compose pins, started by global
 * setup in front of a namespace of its own; otherwise a dev server of its own with its Web UI (the
 * shared dev server is headless).
 */
async function startUiServer(cleanups: (() => Promise<unknown>)[]): Promise<UiServer> {
  const { TEMPORAL_ADDRESS, TEST_TEMPORAL_UI_URL, TEST_TEMPORAL_UI_NAMESPACE } = process.env;
  if (TEST_TEMPORAL_UI_URL && TEMPORAL_ADDRESS && TEST_TEMPORAL_UI_NAMESPACE) {
    return { address: TEMPORAL_ADDRESS, namespace: TEST_TEMPORAL_UI_NAMESPACE, uiUrl: TEST_TEMPORAL_UI_URL };
  }
  const server = await startDevServer({ ui: true });
  cleanups.push(() => server.stop());
  if (!server.uiUrl) throw new Error('the dev server was started without its Web UI');
  return { address: server.address, namespace: server.namespace, uiUrl: server.uiUrl };
}

/**
 * A Temporal server with the Web UI, the simulator, a worker on it and a headless Chromium page.
 * Everything started is stopped by close(), in reverse order, also after a
 * partial start.
 */
export async function startUiEnv(): Promise<UiEnv> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw new AggregateError(errors, 'closing the Web UI test environment');
  };
  try {
    await mkdir(ARTIFACTS_DIR, { recursive: true });
    const server = await startUiServer(cleanups);

    const simulator = await startSimulator({ apiKeys: [TEST_API_KEY], attemptDurationMs: 40, queueDelayMs: 10 });
    cleanups.push(() => simulator.close());

    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: server.namespace });
    const taskQueue = uniqueTaskQueue('web-ui');

    const workerConnection = await NativeConnection.connect({ address: server.address });
    cleanups.push(() => workerConnection.close());
    const workers = await createRecoveryWorkers({
      config: workerConfig(taskQueue, simulator.url, TEST_API_KEY, server),
      connection: workerConnection,
      workflows: workflowBundle(),
    });
    const running = workers.run();
    cleanups.push(async () => {
      workers.shutdown();
      await running;
    });

    const browser = await chromium.launch({ executablePath: await resolveChromium(), args: CHROMIUM_ARGS });
    cleanups.push(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, baseURL: server.uiUrl });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);

    return {
      server,
      uiUrl: server.uiUrl,
      namespace: server.namespace,
      simulator,
      client,
      recoveries: new BatchRecoveries(client, taskQueue),
      taskQueue,
      browser,
      context,
      page,
      async screenshot(name) {
        const file = path.join(ARTIFACTS_DIR, `${name}.png`);
        await page.screenshot({ path: file, fullPage: true });
        return file;
      },
      close,
    };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}
