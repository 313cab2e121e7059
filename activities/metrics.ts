import { metricMeter } from '@temporalio/activity';
import { AnchorApiError } from '../anchor-api/index.js';
import type { DeliveryStatus } from './notify-activities.js';

// Emitted through the SDK runtime, so they reach the same Prometheus endpoint as the SDK's own metrics.

export function countApiError(err: unknown): void {
  if (!(err instanceof AnchorApiError)) return;
  metricMeter.createCounter('anchor_api_errors', 'errors', 'Anchor API errors by class').add(1, { kind: err.kind });
}

/**
 * A retry round, and the sessions it retried when they are known (`null` when not: an answer that could not be read
 * or that did not say, a batch that could not show whether the call took effect). Such a round counts with
 * sessionsCounted="false" and adds nothing to anchor_retried_sessions: counted as 0 retried, the unknown looked known.
 * So does a negative count (an API's -1 for one it does not know), which the SDK's counter would also refuse by
 * throwing.
 */
export function countRetryCall(retriedSessions: number | null, reconciled: boolean): void {
  const counted = retriedSessions !== null && retriedSessions >= 0;
  metricMeter
    .createCounter('anchor_retry_calls', 'calls', 'Retry rounds, by whether the answer came from reconciling')
    .add(1, { reconciled: String(reconciled), sessionsCounted: String(counted) });
  if (!counted) return;
  metricMeter
    .createCounter('anchor_retried_sessions', 'sessions', 'Sessions the retry endpoint retried')
    .add(retriedSessions);
}

/**
 * Every end notification, by how it ended: a webhook that refuses them all (a Slack webhook revoked) loses every one,
 * which only the recoveries' histories would show (NotificationsFailing alerts on `failed`).
 */
export function countNotification(status: DeliveryStatus): void {
  metricMeter
    .createCounter('anchor_notifications', 'notifications', 'Recovery end notifications, by how they ended')
    .add(1, { status });
}
