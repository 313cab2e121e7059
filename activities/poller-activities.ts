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

/** One page of the list, reduced to what the poller decides on, so the history stays small. */
export interface BatchPage {
  /** Settled as far as the list shows, without the status or counters to say more: the recovery reads these itself. */
  settled: string[];
  /** Settled (terminal, or every session completed or failed), with the status and counters the list showed. */
  listed?: Record<string, ListedCounters>;
  /** When the page was read. */
  readAt?: string;
  inFlight: string[];
  hasNext: boolean;
  /** From the pagination, when the API sends it: lets the poller read the remaining pages side by side. */
  totalPages: number | null;
}

/** The list summary carries status and completed/failed/total counters, enough to see a settle. */
export function summarySettled(summary: BatchSummary): boolean {
  const { status, total_requests: total, completed_requests: completed, failed_requests: failed } = summary;
  if (status === 'completed' || status === 'failed' || status === 'cancelled') return true;
  if (total === undefined || completed === undefined || failed === undefined) return true;
  return completed + failed >= total;
}

export function createPollerActivities(api: AnchorApiClient) {
  return {
    /** Exactly one Anchor call (GET /v1/batch-sessions), so the queue's task rate limit is the call budget. */
    async readBatchPage(request: BatchPageRequest): Promise<BatchPage> {
      let result;
      try {
        result = await api.listBatches({
          page: request.page,
          limit: request.limit,
          created_before: request.createdBefore,
        });
      } catch (err) {
        countApiError(err);
        throw toActivityFailure(err);
      }
      const listed: Record<string, ListedCounters> = {};
      const page: BatchPage = {
        settled: [],
        listed,
        readAt: new Date().toISOString(),
        inFlight: [],
        hasNext: false,
        totalPages: null,
      };
      for (const summary of result.batches ?? []) {
        const { batch_id: batchId, status, total_requests: total, completed_requests: completed } = summary;
        const { failed_requests: failed } = summary;
        if (batchId === undefined) continue;
        if (!summarySettled(summary)) page.inFlight.push(batchId);
        else if (status === undefined || total === undefined || completed === undefined || failed === undefined)
          page.settled.push(batchId);
        else listed[batchId] = { status, total, completed, failed, ...settledAtOf(summary.actual_completion_time) };
      }
      const { has_next: hasNext, total_pages: totalPages } = result.pagination ?? {};
      page.hasNext = hasNext ?? (totalPages !== undefined && request.page < totalPages);
      page.totalPages = totalPages ?? null;
      return page;
    },
  };
}

export type PollerActivities = ReturnType<typeof createPollerActivities>;
