import type { Pagination } from './schemas.js';

/**
 * Whether a page after this one of the list lists more: one rule for both its readers, the sweep and the poller. An
 * empty page ends the list whatever the API claims, so a wrong has_next cannot loop for ever. The contract does not
 * require has_next: without it, total_pages says; without either, a full page may be followed by more (an empty page
 * then ends the list). Before, a list that left has_next out ended at page 1: the sweep reported the rest of its
 * window as read, and the poller handed back every watch beyond it each cycle, each recovery then reading its batch on
 * its own.
 */
export function listHasNext(pagination: Pagination | undefined, page: number, listed: number, pageSize: number) {
  if (listed === 0) return false;
  if (pagination?.has_next !== undefined) return pagination.has_next;
  if (pagination?.total_pages !== undefined) return page < pagination.total_pages;
  return listed >= pageSize;
}
