import type { AnchorApiClient, BatchSummary } from '../anchor-api/index.js';
import { countApiError } from './metrics.js';
import { toActivityFailure } from './failures.js';

export interface BatchPageRequest {
  page: number;
  limit: number;
  /** Holds the pages still while the cycle walks them: batches created later shift no page. */
  createdBefore: string;
}

/** One page of the list, reduced to what the poller decides on: ids only, so the history stays small. */
export interface BatchPage {
  /** Terminal, or every session completed or failed, or counters missing: the recovery reads these itself. */
  settled: string[];
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
      const page: BatchPage = { settled: [], inFlight: [], hasNext: false, totalPages: null };
      for (const summary of result.batches ?? []) {
        if (summary.batch_id === undefined) continue;
        (summarySettled(summary) ? page.settled : page.inFlight).push(summary.batch_id);
      }
      const { has_next: hasNext, total_pages: totalPages } = result.pagination ?? {};
      page.hasNext = hasNext ?? (totalPages !== undefined && request.page < totalPages);
      page.totalPages = totalPages ?? null;
      return page;
    },
  };
}

export type PollerActivities = ReturnType<typeof createPollerActivities>;
