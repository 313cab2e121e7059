/**
 * List pages a workflow reads side by side once it knows the last page, one activity task (one Anchor call)
 * each: a scan is not held back by one workflow task per page, and the queue's rate limit paces them.
 */
export const PAGES_IN_FLIGHT = 10;

/**
 * The next pages to read side by side: from `from`, PAGES_IN_FLIGHT of them at most, never past `last`; `from` at
 * least, also when the API's total_pages said the list ended before it (while has_next said it goes on): an empty
 * answer read nothing, and the sweep's loop went round in one workflow task without end.
 */
export function pagesFrom(from: number, last: number): number[] {
  const to = Math.min(Math.max(last, from), from + PAGES_IN_FLIGHT - 1);
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
