import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { createRetryActivities, type RecordedHeartbeat } from '../../activities/retry-activities.js';
import { AnchorApiClient, API_TEXT_MAX_CHARS } from '../../anchor-api/index.js';
import type { SendRetryInput, SendRetryResult } from '../../workflows/retry-protocol.js';

test('an announcement refused with an error of any length reaches the result and the log cut and cleaned', async () => {
  const token = '0123456789abcdef0123456789abcdef01234567';
  const refusing: RecordedHeartbeat = {
    withDeadline: (_deadline, fn) => fn(),
    heartbeat: () => Promise.reject(new Error(`refused: token=${token} ${'x'.repeat(1_000_000)}`)),
  };
  // Refused, the call is not sent: no API is asked.
  const api = new AnchorApiClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'sk-live-unused-key-1' });
  const activities = createRetryActivities(api, refusing);
  const announceAndSendRetry = (input: SendRetryInput) => activities.announceAndSendRetry(input);
  const logged: LogEntry[] = [];
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('WARN', (entry) => logged.push(entry)) });
  const result = await env.run<[SendRetryInput], SendRetryResult, typeof announceAndSendRetry>(announceAndSendRetry, {
    batchId: 'b-refused',
    maxRetries: 1,
    retryFailedOnly: true,
  });

  expect(result).toMatchObject({ kind: 'not_sent', errorType: 'announcement_refused' });
  const { reason } = result as Extract<SendRetryResult, { kind: 'not_sent' }>;
  const [entry] = logged.filter((each) => each.message.includes('announcement was refused'));
  const loggedError = String(entry?.meta?.error);
  // Before, the whole megabyte and the token were in both.
  for (const text of [reason, loggedError]) {
    expect(text).toContain('refused: token=[redacted] xxx');
    expect(text).not.toContain(token);
    expect(text.length).toBeLessThan(API_TEXT_MAX_CHARS + 100);
  }
});
