import { toRetrySnapshot } from '../../activities/batch-snapshot.js';
import { retryEffect } from '../../activities/retry-activities.js';
import { requireRecoverableBatch, type BatchStatusDetail } from '../../anchor-api/index.js';

// What a reconcile read says of a retry call whose answer was lost: only "no effect" allows another call.

const settled = { status: 'failed' as const, failed: 2, retryCountTotal: 4 };
const unchanged = { status: 'failed' as const, failed: 2, pending: 0, processing: 0, retryCountTotal: 4 };

test('unchanged retry counts, failed count and status prove no effect', () => {
  expect(retryEffect(settled, unchanged).effect).toBe('no_effect');
});

test.each(['pending', 'processing'] as const)(
  'a batch %s again after a settled status took the call, even with its counters not moved yet',
  (status) => {
    expect(retryEffect(settled, { ...unchanged, status })).toEqual({
      effect: 'took_effect',
      reason: `the batch went from failed back to ${status}`,
    });
  },
);

test('a batch already in flight by its status before the call proves nothing by that status', () => {
  // Settled by its counters while its status still said processing: the status alone cannot show the call.
  const before = { ...settled, status: 'processing' as const };
  expect(retryEffect(before, { ...unchanged, status: 'processing' }).effect).toBe('no_effect');
});

test('a snapshot without a status (recoveries from before it was kept) is judged by its counters alone', () => {
  const { status: _status, ...before } = settled;
  expect(retryEffect(before, { ...unchanged, status: 'processing' }).effect).toBe('no_effect');
});

// The contract never says a status read lists every session. A call applied to sessions it leaves out shows nothing
// in the listed ones' retry counts: summed as if whole, the list "proved" no effect and the call went again.
const oneFailedOfThree = {
  status: 'failed' as const,
  total_requests: 3,
  completed_requests: 2,
  failed_requests: 1,
  processing_requests: 0,
  pending_requests: 0,
};
const readOf = (detail: BatchStatusDetail) => toRetrySnapshot(requireRecoverableBatch(detail, 'b'), new Date());
const listed = (item_index: number, status: 'completed' | 'failed') => ({ item_index, status, retry_count: 0 });

test.each([
  ['no session', []],
  ['only the sessions a retry leaves alone', [listed(0, 'completed'), listed(2, 'completed')]],
])('a status read that lists %s of a batch with failures cannot prove a call had no effect', (_what, sessions) => {
  const read = readOf({ ...oneFailedOfThree, sessions });
  expect(read.retryCountTotal).toBeNull();
  expect(retryEffect(read, read).effect).toBe('unknown');
});

test('a list of every request of the batch, each with its retry_count, still proves no effect', () => {
  const read = readOf({
    ...oneFailedOfThree,
    sessions: [listed(0, 'completed'), listed(1, 'failed'), listed(2, 'completed')],
  });
  expect(read.retryCountTotal).toBe(0);
  expect(retryEffect(read, read).effect).toBe('no_effect');
});

test('without total_requests a list cannot be measured: the total taken from its own length proves nothing', () => {
  const { total_requests: _total, ...counters } = oneFailedOfThree;
  expect(readOf({ ...counters, sessions: [listed(1, 'failed')] }).retryCountTotal).toBeNull();
});
