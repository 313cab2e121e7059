import autocannon from 'autocannon';
import { startSimulator } from '../simulator/index.js';

/*
 * Status GETs per second for one 1,000-session batch on loopback. Half the sessions are still
 * running when the run starts (real clock), so the status body changes during the measurement.
 */
const DURATION_S = Number(process.env['BENCH_DURATION_S'] ?? 10);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const API_KEY = 'bench-key';

const simulator = await startSimulator({
  apiKeys: [API_KEY],
  failureProbability: 0.1,
  attemptDurationMs: 5000,
  queueDelayMs: 2000,
});
try {
  const script = Object.fromEntries(
    Array.from({ length: 100 }, (_, index) => [String(index * 10), ['fail', 'ok'] as ('fail' | 'ok')[]]),
  );
  const batch = simulator.createScriptedBatch({ count: 1000, script });
  const result = await autocannon({
    url: `${simulator.url}/v1/batch-sessions/${batch.id}`,
    headers: { 'anchor-api-key': API_KEY },
    connections: CONNECTIONS,
    duration: DURATION_S,
  });
  const bodyKiB = Math.round(result.throughput.average / Math.max(1, result.requests.average) / 1024);
  console.log(
    [
      `status GETs of a 1,000-session batch: ${Math.round(result.requests.average)} req/s average`,
      `(p50 latency ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ~${bodyKiB} KiB/body,`,
      `${result.non2xx} non-2xx, ${result.errors} errors, ${CONNECTIONS} connections, ${DURATION_S} s)`,
    ].join(' '),
  );
} finally {
  await simulator.close();
}
