import { retryEffect } from '../../activities/retry-activities.js';

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
