import { cancellationSignal } from '@temporalio/activity';
import { countersAccountForAll, isFinishedBatchStatus, isInFlightBatchStatus } from '../anchor-api/batch-status.js';
import type { AnchorApiClient, BatchSummary } from '../anchor-api/index.js';
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
  /** From the pagination, when the API sends it: lets the poller read the remaining pages side by side. */
  totalPages: number | null;
}

/**
 * isSettled (batch-snapshot.ts) from what a list summary carries: status and completed/failed/total counters. The
 * API calls the batch finished; a batch `pending` or `processing` is in flight by its status, whatever its counters
 * (they may lag an accepted retry call); with no status, its counters account for every request, and counters all 0
 * account for none (a batch just created). Only a summary with neither status nor counters cannot tell: its recovery
 * reads the batch.
 */
export function summarySettled(summary: BatchSummary): boolean {
  const { status, total_requests: total, completed_requests: completed, failed_requests: failed } = summary;
  if (isFinishedBatchStatus(status)) return true;
  if (isInFlightBatchStatus(status)) return false;
  if (total === undefined || completed === undefined || failed === undefined) return status === undefined;
  return countersAccountForAll({ total, completed, failed });
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
          batch_id: batchId,
          status,
          total_requests: total,
          completed_requests: completed,
          failed_requests: failed,
        } = summary;
        if (batchId === undefined) continue;
        if (!summarySettled(summary)) page.inFlight.push(batchId);
        else if (status === undefined || total === undefined || completed === undefined || failed === undefined)
          page.settled.push(batchId);
        else {
          const { settledAt } = settledAtOf(summary.actual_completion_time);
          const recent = settledAt !== undefined && readAt - Date.parse(settledAt) <= RECENT_SETTLE_MS;
          if (failed > 0 || recent)
            listed[batchId] = { status, total, completed, failed, ...(settledAt && { settledAt }) };
          else page.settled.push(batchId);
        }
      }
      const { has_next: hasNext, total_pages: totalPages } = result.pagination ?? {};
      page.hasNext = hasNext ?? (totalPages !== undefined && request.page < totalPages);
      page.totalPages = totalPages ?? null;
      return page;
    },
  };
}

export type PollerActivities = ReturnType<typeof createPollerActivities>;
