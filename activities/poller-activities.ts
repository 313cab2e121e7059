import { cancellationSignal } from '@temporalio/activity';
import {
  countersAccountForAll,
  countersMayCatchUp,
  isFinishedBatchStatus,
  isInFlightBatchStatus,
} from '../anchor-api/batch-status.js';
import { listHasNext, type AnchorApiClient, type BatchSummary, type Pagination } from '../anchor-api/index.js';
import type { ListedSettle } from '../workflows/definitions.js';
import { settledAtOf } from './batch-snapshot.js';
import { countApiError } from './metrics.js';
import { toActivityFailure } from './failures.js';

export interface BatchPageRequest {
  page: number;
  limit: number;
  /** Holds the pages still while the cycle walks them: batches created later shift no page. */
  createdBefore: string;
}

/** What the list shows of a settled batch, for its recovery to go on without a read; the poller adds when. */
export type ListedCounters = Omit<ListedSettle, 'observedAt'>;

/**
 * Settled batches keep their counters when they have failures or settled this recently: what a waiting recovery
 * is woken for. A team's older clean batches, most of a long list, keep only their ids (their recoveries, if
 * any, read them): counters for all of them would multiply the poller's history by 2.5.
 */
export const RECENT_SETTLE_MS = 3_600_000;

/** One page of the list, reduced to what the poller decides on, so the history stays small. */
export interface BatchPage {
  /** Settled as far as the list shows, without the counters to say more (or clean and long settled): the recovery reads these itself. */
  settled: string[];
  /** Settled (terminal, or every session completed or failed) with failures or lately, with the list's status and counters. */
  listed?: Record<string, ListedCounters>;
  /** When the page was read. */
  readAt?: string;
  inFlight: string[];
  hasNext: boolean;
  /**
   * From the pagination's total_pages, when the API sends one that agrees with hasNext (see lastPageOf): lets the
   * poller read the remaining pages side by side.
   */
  totalPages: number | null;
}

/**
 * isSettled (batch-snapshot.ts) from what a list summary carries: status and completed/failed/total counters. The
 * API calls the batch finished; a batch `pending` or `processing` is in flight by its status, whatever its counters
 * (they may lag an accepted retry call); with no status, its counters account for every request, and counters all 0
 * account for none (a batch just created). A finished batch whose counters fall short (countersFallShort), once dated
 * COUNTERS_CATCH_UP_MS ago or undated, and a summary with neither status nor counters, go to a read of their own.
 */
export function summarySettled(summary: BatchSummary, now: number): boolean {
  const { status, total_requests: total, completed_requests: completed, failed_requests: failed } = summary;
  // Dated less than COUNTERS_CATCH_UP_MS ago, its counters may still catch up: the list is read again, at no cost to
  // its recovery, where a read of its own would poll until then.
  if (countersFallShort(summary) && summary.actual_completion_time !== undefined)
    return !countersMayCatchUp(summary.actual_completion_time, now);
  if (isFinishedBatchStatus(status)) return true;
  if (isInFlightBatchStatus(status)) return false;
  if (total === undefined || completed === undefined || failed === undefined) return status === undefined;
  return countersAccountForAll({ total, completed, failed });
}

/**
 * A batch the API calls `completed` or `failed` whose counters do not account for every request (cancelled sessions
 * are in none, so not `cancelled`): only its sessions, which the list does not carry, or the time since its completion
 * (COUNTERS_CATCH_UP_MS) tell whether the failures they show are all of them, and its recovery's own read weighs both
 * (batch-snapshot.ts). Before, the poller kept it in flight until 5 minutes after its completion, and then woke its
 * recovery with these counters: with 0 failed, it ended `clean` with sessions failing. An undated one stayed in
 * flight for good, its recovery held to its deadline, where its own read settles it from sessions that list every
 * request; its recovery now polls it on its own, as without the poller. An activity result: the poller's recorded
 * histories replay what they recorded, with no patch.
 */
function countersFallShort(summary: BatchSummary): boolean {
  const { status, total_requests: total, completed_requests: completed, failed_requests: failed } = summary;
  if (status !== 'completed' && status !== 'failed') return false;
  return total !== undefined && completed !== undefined && failed !== undefined && completed + failed < total;
}

/**
 * total_pages as far as it agrees with `hasNext` (listHasNext), for the poller takes it for the cycle's last page
 * whatever hasNext says: where has_next (or an empty page) says the list ends before total_pages does, this page;
 * where has_next says more come past total_pages, none (the poller follows hasNext, a page at a time), as the sweep
 * reads on while has_next says more whatever total_pages said. An activity result: the poller's recorded histories
 * replay the value they recorded, so this needs no workflow patch.
 */
function lastPageOf(pagination: Pagination | undefined, page: number, hasNext: boolean): number | null {
  const totalPages = pagination?.total_pages;
  if (totalPages === undefined) return null;
  if (!hasNext) return Math.min(totalPages, page);
  return page < totalPages ? totalPages : null;
}

export function createPollerActivities(api: AnchorApiClient) {
  return {
    /** Exactly one Anchor call (GET /v1/batch-sessions), so the queue's task rate limit is the call budget. */
    async readBatchPage(request: BatchPageRequest): Promise<BatchPage> {
      let result;
      try {
        result = await api.listBatches(
          { page: request.page, limit: request.limit, created_before: request.createdBefore },
          // A worker that shuts down does not wait out a read the API holds open.
          { signal: cancellationSignal() },
        );
      } catch (err) {
        countApiError(err);
        throw toActivityFailure(err);
      }
      const listed: Record<string, ListedCounters> = {};
      const readAt = Date.now();
      const page: BatchPage = {
        settled: [],
        listed,
        readAt: new Date(readAt).toISOString(),
        inFlight: [],
        hasNext: false,
        totalPages: null,
      };
      for (const summary of result.batches ?? []) {
        const {
          batch_id: rawBatchId,
          status,
          total_requests: total,
          completed_requests: completed,
          failed_requests: failed,
        } = summary;
        if (rawBatchId === undefined) continue;
        // As recoveries register it (recovery-start.ts): a list that spells it in capitals, as the sweep allows, had
        // every cycle walk the whole list for a watch it never saw, then hand it back.
        const batchId = rawBatchId.toLowerCase();
        if (!summarySettled(summary, readAt)) page.inFlight.push(batchId);
        else if (
          status === undefined ||
          total === undefined ||
          completed === undefined ||
          failed === undefined ||
          countersFallShort(summary)
        )
          page.settled.push(batchId);
        else {
          const { settledAt } = settledAtOf(summary.actual_completion_time);
          const recent = settledAt !== undefined && readAt - Date.parse(settledAt) <= RECENT_SETTLE_MS;
          // A batch `failed` with no failed session goes to a read of its own: its recovery stops, and the read gives
          // its report the batch's error, which the list does not carry.
          if (failed > 0 || (recent && status !== 'failed'))
            listed[batchId] = { status, total, completed, failed, ...(settledAt && { settledAt }) };
          else page.settled.push(batchId);
        }
      }
      const listedCount = result.batches?.length ?? 0;
      page.hasNext = listHasNext(result.pagination, request.page, listedCount, request.limit);
      page.totalPages = lastPageOf(result.pagination, request.page, page.hasNext);
      return page;
    },
  };
}

export type PollerActivities = ReturnType<typeof createPollerActivities>;
