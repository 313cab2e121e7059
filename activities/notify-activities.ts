import { setTimeout as sleep } from 'node:timers/promises';
import { activityInfo, heartbeat, log, type Info } from '@temporalio/activity';
import { workflowUiUrl, type NotifiableOutcome, type RecoveryEnd } from '../workflows/recovery-details.js';

/** Where and what to notify; from the worker's environment only, so the URL never reaches history or logs. */
export interface NotifyConfig {
  webhookUrl: string;
  outcomes: readonly NotifiableOutcome[];
  /** The Temporal Web UI's base URL, for the link to the recovery; no link without it. */
  uiUrl?: string;
  /** Waits between delivery tries within one attempt; their count + 1 is the number of tries. */
  retryDelaysMs?: readonly number[];
  requestTimeoutMs?: number;
}

export type DeliveryStatus =
  /** The webhook answered 2xx. */
  | 'delivered'
  /** The webhook refused it for good (4xx) or kept failing (5xx, unreachable) through every try. */
  | 'failed'
  /** Sent, but no answer came back (or an earlier attempt was cut off mid-send): not sent again. */
  | 'unknown'
  /** No webhook configured, or this outcome is not among NOTIFY_OUTCOMES. */
  | 'skipped';

export interface NotifyResult {
  status: DeliveryStatus;
  tries: number;
  httpStatus: number | null;
  idempotencyKey: string;
  detail: string | null;
}

export interface NotifyActivities {
  notifyRecoveryEnd(end: RecoveryEnd): Promise<NotifyResult>;
}

/** What the activity records in its heartbeat: an attempt that finds `sending` knows a request may have gone out. */
interface DeliveryProgress {
  state: 'sending' | 'waiting';
  tries: number;
}

const DEFAULT_RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000];
const HEARTBEAT_INTERVAL_MS = 2_000;
/** Connection errors that prove the request never reached the receiver. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

const OUTCOME_ICONS: Record<NotifiableOutcome, string> = {
  exhausted: ':warning:',
  deadline: ':hourglass:',
  failed: ':x:',
  batch_cancelled: ':no_entry_sign:',
  operator_cancelled: ':octagonal_sign:',
};

/** The same key for every try and attempt of one recovery end: receivers that dedupe can drop repeats. */
export function idempotencyKey(info: Pick<Info, 'workflowExecution' | 'activityId'>, end: RecoveryEnd): string {
  const execution = info.workflowExecution;
  return execution ? `${execution.workflowId}/${execution.runId}/${end.outcome}` : `${info.activityId}/${end.outcome}`;
}

/** A Slack incoming-webhook message; `metadata` carries the same facts for receivers that parse JSON. */
export function webhookMessage(end: RecoveryEnd, key: string, recoveryUrl: string | null) {
  const headline = `${OUTCOME_ICONS[end.outcome]} Recovery of batch \`${end.batchId}\` ended *${end.outcome}*`;
  const counts = `${end.rounds} rounds · ${end.retriedSessions} sessions retried · ${end.recovered} recovered · ${end.stillFailed} still failing`;
  const link = recoveryUrl ? `<${recoveryUrl}|Open the recovery in the Temporal Web UI>` : null;
  const lines = [headline, counts, ...(end.reason ? [`Reason: ${end.reason}`] : []), ...(link ? [link] : [])];
  return {
    text: lines.join('\n'),
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } }],
    metadata: {
      event_type: 'anchor_recovery_ended',
      event_payload: { ...end, idempotencyKey: key, recoveryUrl },
    },
  };
}

type Attempt =
  { kind: 'delivered' | 'refused' | 'failed'; httpStatus: number } | { kind: 'not_sent' | 'unknown'; code: string };

async function post(url: string, key: string, body: string, timeoutMs: number): Promise<Attempt> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel();
    if (response.ok) return { kind: 'delivered', httpStatus: response.status };
    // A 4xx is the receiver refusing this message (Slack: invalid_payload, no_service): sending it again changes nothing.
    const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
    return { kind: retryable ? 'failed' : 'refused', httpStatus: response.status };
  } catch (err) {
    // Only the code: an error message may carry the host, and the URL is a secret.
    const cause = (err as { cause?: { code?: unknown } }).cause;
    const code = typeof cause?.code === 'string' ? cause.code : (err as Error).name;
    return { kind: NOT_SENT_CODES.has(code) ? 'not_sent' : 'unknown', code };
  }
}

/**
 * Posts a recovery's end to the operators' webhook, at most once per end.
 *
 * A request that got an answer is settled by it: 2xx delivered, 4xx refused, 5xx/429 tried again
 * after a backoff, within this attempt. A request whose answer never came (timeout, reset) may
 * have been delivered, so it is not sent again. The activity heartbeats `sending` before each
 * request: when the worker dies mid-request, the next attempt finds that and reports `unknown`
 * instead of sending a second message. Every request of one end carries the same
 * `Idempotency-Key`, so a receiver that dedupes is safe even in the one window this cannot close
 * (a crash after the request left but before its heartbeat reached the server).
 */
export function createNotifyActivities(config?: NotifyConfig): NotifyActivities {
  return {
    async notifyRecoveryEnd(end) {
      const info = activityInfo();
      const key = idempotencyKey(info, end);
      const result = (status: DeliveryStatus, tries: number, httpStatus: number | null, detail: string | null) => {
        const value = { status, tries, httpStatus, idempotencyKey: key, detail };
        log.info('Recovery end notification', { ...value, batchId: end.batchId, outcome: end.outcome });
        return value;
      };
      if (!config) return result('skipped', 0, null, 'no webhook configured (NOTIFY_WEBHOOK_URL)');
      if (!config.outcomes.includes(end.outcome))
        return result('skipped', 0, null, `${end.outcome} is not in NOTIFY_OUTCOMES`);
      const previous = info.heartbeatDetails as DeliveryProgress | undefined;
      if (previous?.state === 'sending') {
        return result('unknown', previous.tries, null, 'an earlier attempt stopped while sending: not sent again');
      }

      const workflowId = info.workflowExecution?.workflowId;
      const recoveryUrl = config.uiUrl && workflowId ? workflowUiUrl(config.uiUrl, info.namespace, workflowId) : null;
      const body = JSON.stringify(webhookMessage(end, key, recoveryUrl));
      const delays = config.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
      let progress: DeliveryProgress = { state: 'waiting', tries: previous?.tries ?? 0 };
      const timer = setInterval(() => heartbeat(progress), HEARTBEAT_INTERVAL_MS);
      try {
        for (let index = 0; ; index += 1) {
          progress = { state: 'sending', tries: progress.tries + 1 };
          heartbeat(progress);
          const attempt = await post(config.webhookUrl, key, body, config.requestTimeoutMs ?? 10_000);
          progress = { state: 'waiting', tries: progress.tries };
          heartbeat(progress);
          const delay = delays[index];
          switch (attempt.kind) {
            case 'delivered':
              return result('delivered', progress.tries, attempt.httpStatus, null);
            case 'refused':
              return result(
                'failed',
                progress.tries,
                attempt.httpStatus,
                `webhook refused: HTTP ${attempt.httpStatus}`,
              );
            case 'unknown':
              return result('unknown', progress.tries, null, `no answer (${attempt.code}): not sent again`);
            default: {
              const httpStatus = 'httpStatus' in attempt ? attempt.httpStatus : null;
              const what = 'code' in attempt ? attempt.code : `HTTP ${httpStatus}`;
              if (delay === undefined) return result('failed', progress.tries, httpStatus, `still failing: ${what}`);
              log.warn('Webhook failed, trying again', { batchId: end.batchId, failure: what, delayMs: delay });
              await sleep(delay);
            }
          }
        }
      } finally {
        clearInterval(timer);
      }
    },
  };
}
