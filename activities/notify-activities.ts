import { Context, type Info } from '@temporalio/activity';
import { workflowUiUrl, type NotifiableOutcome, type RecoveryEnd } from '../workflows/recovery-details.js';
import { countNotification } from './metrics.js';
import { WebhookDigest } from './webhook-digest.js';

/** Where and what to notify; from the worker's environment only, so the URL never reaches history or logs. */
export interface NotifyConfig {
  webhookUrl: string;
  outcomes: readonly NotifiableOutcome[];
  /** The Temporal Web UI's base URL, for the link to the recovery; no link without it. */
  uiUrl?: string;
  /** Waits after failed requests within one attempt; their count + 1 is the number of tries. */
  retryDelaysMs?: readonly number[];
  /** One request, to the answer's headers (default 10 s). */
  requestTimeoutMs?: number;
  /** Each step of opening its connection: DNS lookup, TCP connect, TLS handshake (default 5 s). */
  connectTimeoutMs?: number;
  /** The least time between two messages to the webhook from all the task queue's workers (default 1 s). */
  minPostIntervalMs?: number;
}

export type DeliveryStatus =
  /** The webhook answered 2xx. */
  | 'delivered'
  /** The webhook refused it for good (4xx, a redirect: not followed) or kept failing (5xx, unreachable) to the end. */
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
  /** Ends the last request carried, this one's included (0 when none was sent); absent before the digest. */
  endsInMessage?: number;
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
const DEFAULT_MIN_POST_INTERVAL_MS = 1_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/**
 * A connect to Slack takes milliseconds; 5 s lets a SYN be lost twice (resent after 1 s and 3 s). Half the request's
 * 10 s: a black-holed webhook costs each try 5 s, and an attempt's 2 min hold all five tries (about 40 s).
 */
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** 20 blocks and a header: within Slack's 50 blocks (fewer when their text is long: webhook-digest.ts). */
const MAX_ENDS_PER_MESSAGE = 20;
/** Within the 10 s heartbeat timeout; the notifications worker sends every heartbeat (no throttle), so not often. */
const HEARTBEAT_INTERVAL_MS = 5_000;

/** The same key for every try and attempt of one recovery end: receivers that dedupe can drop repeats. */
export function idempotencyKey(info: Pick<Info, 'workflowExecution' | 'activityId'>, end: RecoveryEnd): string {
  const execution = info.workflowExecution;
  return execution ? `${execution.workflowId}/${execution.runId}/${end.outcome}` : `${info.activityId}/${end.outcome}`;
}

/** When this attempt's time is up: its start-to-close from now, or the activity's schedule-to-close if sooner. */
function attemptDeadline(info: Info): number {
  const attemptEnds = Date.now() + info.startToCloseTimeoutMs;
  if (!info.scheduleToCloseTimeoutMs) return attemptEnds;
  return Math.min(attemptEnds, info.scheduledTimestampMs + info.scheduleToCloseTimeoutMs);
}

/**
 * Posts a recovery's end to the operators' webhook, at most once per end.
 *
 * The worker's WebhookDigest sends it, with the other ends waiting at the time, in one message; the task queue's
 * `senders()` workers together post at most one every `minPostIntervalMs` (webhook-digest.ts says how answers settle
 * it). The activity heartbeats `sending` before each request that carries its end: when the worker dies mid-request,
 * the next attempt finds that and reports `unknown` instead of sending a second message. Each end's key
 * (`Idempotency-Key` of a message of one end; in a message of several, in its metadata) is the same for every request
 * that carries it, so a receiver that dedupes ends by it is safe even in the windows this cannot close: a crash
 * after the request left but before its heartbeat reached the server, and a retry on another worker of an attempt
 * whose `sending` heartbeat was lost (a retry on the same worker finds the end among those the digest sent).
 */
export function createNotifyActivities(config?: NotifyConfig, senders?: () => number): NotifyActivities {
  const digest =
    config &&
    new WebhookDigest({
      webhookUrl: config.webhookUrl,
      retryDelaysMs: config.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
      requestTimeoutMs: config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      connectTimeoutMs: config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      minPostIntervalMs: config.minPostIntervalMs ?? DEFAULT_MIN_POST_INTERVAL_MS,
      maxEndsPerMessage: MAX_ENDS_PER_MESSAGE,
      ...(senders && { senders }),
    });
  return {
    async notifyRecoveryEnd(end) {
      // The digest calls back from whichever activity started its sending: this activity's own context is held here.
      const context = Context.current();
      const { info } = context;
      const key = idempotencyKey(info, end);
      const result = (
        status: DeliveryStatus,
        tries: number,
        httpStatus: number | null,
        detail: string | null,
        endsInMessage = 0,
      ) => {
        const value = { status, tries, httpStatus, idempotencyKey: key, detail, endsInMessage };
        context.log.info('Recovery end notification', { ...value, batchId: end.batchId, outcome: end.outcome });
        // Once per end: an attempt that returns completes the activity, and only a failed attempt is retried.
        countNotification(status);
        return value;
      };
      if (!config || !digest) return result('skipped', 0, null, 'no webhook configured (NOTIFY_WEBHOOK_URL)');
      if (!config.outcomes.includes(end.outcome))
        return result('skipped', 0, null, `${end.outcome} is not in NOTIFY_OUTCOMES`);
      const previous = info.heartbeatDetails as DeliveryProgress | undefined;
      if (previous?.state === 'sending') {
        return result('unknown', previous.tries, null, 'an earlier attempt stopped while sending: not sent again');
      }

      const workflowId = info.workflowExecution?.workflowId;
      const recoveryUrl = config.uiUrl && workflowId ? workflowUiUrl(config.uiUrl, info.namespace, workflowId) : null;
      let progress: DeliveryProgress = { state: 'waiting', tries: previous?.tries ?? 0 };
      const timer = setInterval(() => context.heartbeat(progress), HEARTBEAT_INTERVAL_MS);
      try {
        const delivery = await digest.deliver(
          {
            end,
            key,
            recoveryUrl,
            deadlineAt: attemptDeadline(info),
            onSending() {
              progress = { state: 'sending', tries: progress.tries + 1 };
              context.heartbeat(progress);
            },
            onRetry(failure, delayMs) {
              progress = { state: 'waiting', tries: progress.tries };
              context.heartbeat(progress);
              context.log.warn('Webhook failed, trying again', { batchId: end.batchId, failure, delayMs });
            },
            onGivenBack() {
              // Flushed before the cancelled attempt fails: the next attempt sends the end instead of reporting it
              // `unknown`.
              progress = { state: 'waiting', tries: progress.tries };
              context.heartbeat(progress);
            },
          },
          context.cancellationSignal,
        );
        // The last heartbeat stays `sending`: an attempt after a crash here must not send the end again.
        switch (delivery.status) {
          case 'delivered':
            return result('delivered', progress.tries, delivery.httpStatus, null, delivery.ends);
          case 'failed':
            return result('failed', progress.tries, delivery.httpStatus, delivery.detail, delivery.ends);
          case 'unknown':
            return result('unknown', progress.tries, null, delivery.detail, delivery.ends);
        }
      } finally {
        clearInterval(timer);
      }
    },
  };
}
