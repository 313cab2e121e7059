import {
  ApplicationFailure,
  ContinueAsNew,
  condition,
  continueAsNew,
  isCancellation,
  log,
  metricMeter,
  patched,
  proxyActivities,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  ListFailedBatchesResult,
  StartBatchRecoveryResult,
  SweepActivities,
} from '../activities/sweep-activities.js';
import { cleanApiText } from '../anchor-api/redact.js';
import { cutText } from './report.js';
import { absentOr, CarriedStateProblems, isBoolean, isRecord, isText } from './carried-state.js';
import { parseWorkflowInput } from './input.js';
import { pagesFrom } from './list-pages.js';
import {
  earlierDate,
  isDateText,
  newSweepResult,
  parseSweepInput,
  recordSkipped,
  recordStarted,
  SWEEP_RESULT_ID_CHARS,
  SWEEP_RESULT_ITEMS,
  sweepFailureOf,
  type SkipReason,
  type SweepFailedBatchesInput,
  type SweepPolicy,
  type SweepResult,
  type SweepStatus,
  sweepWindow,
} from './sweep-input.js';
import { scheduledByIdKey } from './search-attributes.js';

const { listFailedBatches } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

/** Sweeps started before the paged listing replay with the activity they called then (see listAllBatches). */
interface LegacySweepActivities {
  listRecentBatches(input: {
    statuses: SweepStatus[];
    createdAfter: string;
    createdBefore: string;
    pageSize: number;
  }): Promise<{ batch_id: string; failed_requests: number; status: SweepStatus }[]>;
}
const { listRecentBatches } = proxyActivities<LegacySweepActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

const START_OPTIONS = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
} as const;
/** Sweeps started before STARTS_AS_LOCAL_ACTIVITIES_PATCH start each recovery in an activity task. */
const { startBatchRecovery: startInActivityTask } = proxyActivities<SweepActivities>(START_OPTIONS);
const { startBatchRecovery: startInLocalActivity, findLastCompletedSweep } =
  proxyLocalActivities<SweepActivities>(START_OPTIONS);

/** Batch ids one listing call hands the workflow at most (plus the rest of its last page). */
export const SWEEP_CHUNK_BATCHES = 500;
const PAGED_LISTING_PATCH = 'sweep-paged-listing';
/** Sweeps from this change on list one page per activity task: one task, one Anchor call, within the budget. */
const ONE_PAGE_PER_TASK_PATCH = 'sweep-one-page-per-task';
/**
 * Sweeps from this change on start their recoveries in local activities. A start calls Temporal, not Anchor, and
 * an activity task on the queue takes a unit of the Anchor budget (the server's task rate): 1,000 starts held the
 * queue's retry calls and page reads back for about 110 s at the default 10/s (the queue runs at 0.9 of it). A
 * local activity runs in the sweep's own workflow task, outside the queue's rate, and is one history event instead
 * of three.
 */
const STARTS_AS_LOCAL_ACTIVITIES_PATCH = 'sweep-starts-recoveries-locally';
/**
 * Sweeps from this change on hand a batch to startEach once per run: a list that shifts between two page reads (a
 * batch dated inside the window after the window's first read, by an API whose clock is behind) shows one batch on
 * two pages, and its second start found the recovery this run started, counted it `started` again, and took a place
 * of maxStarts. Asked only when a page repeats a batch.
 */
const STARTS_EACH_BATCH_ONCE_PATCH = 'sweep-starts-each-batch-once';
/**
 * Sweeps from this change on hand a batch to startEach once per run in whichever case the list gives its UUID: a
 * list that gave it once in upper case and once in lower had both started, and the second start found the recovery
 * (named by the lower-case id) this run started, and counted it `started` again. Asked only when a batch comes again
 * in another case.
 */
const STARTS_EACH_BATCH_ONCE_IN_ANY_CASE_PATCH = 'sweep-starts-each-batch-once-in-any-case';

/**
 * Sweeps from this change on stop, failed with type list_repeats_pages and their report, at the third page in a row
 * that repeats a page the run read: the window's created_before fixes the list, so the API is not paging. One that
 * ignored `page` and said has_next for ever had the sweep read page 1 again as page 2, 3, … for ever (41 calls in
 * 4 s in the test, across continue-as-new), and the schedule, whose overlap policy is SKIP, skipped every later
 * sweep. One repeat alone is what a list shifted by a row shows at a page size of 1. Asked only at such a page.
 */
const STOPS_AT_REPEATED_PAGES_PATCH = 'sweep-stops-at-repeated-pages';
const REPEATED_PAGES_IN_A_ROW = 3;
/**
 * Sweeps a schedule starts from this change on scan back to where the window of its last completed sweep ended, when
 * that is before their lookback (sweepWindow). Before, each scanned its lookback alone, and batches created while
 * sweeps were skipped or failing for longer than lookback less the interval were in no window: never recovered, never
 * reported. Asked in the first run of a sweep a schedule started; the lookup is a local activity, as it reads
 * Temporal, not Anchor.
 */
const WINDOW_FROM_LAST_COMPLETED_SWEEP_PATCH = 'sweep-window-from-last-completed-sweep';

/** What one run hands the next across continue-as-new. */
export interface CarriedSweep {
  window: SweepResult['window'];
  nextPage: number;
  /**
   * reachedBack, oldestLeftCreatedAt and oldestUnsettledCreatedAt are absent from what runs of a release before each
   * carried: a run continued from one before oldestUnsettledCreatedAt starts it at null.
   */
  result: Pick<SweepResult, 'started' | 'skipped' | 'counts'> &
    Partial<Pick<SweepResult, 'reachedBack' | 'oldestLeftCreatedAt' | 'oldestUnsettledCreatedAt'>>;
  /** Why the first run could not find where the schedule's last completed sweep ended: the chain fails at its end. */
  lookupFailure?: string;
}

/** The longest lookupFailure a run takes: what sweepFailureOf gives is shorter. */
const LOOKUP_FAILURE_MAX_CHARS = 1_000;

/** An id as a result keeps it: cut, as an earlier release may have kept a longer one. */
const resultId = (text: string) => cutText(text, SWEEP_RESULT_ID_CHARS);

/**
 * What the run before handed this one, checked before the run reads any of it: the Web UI's start form takes a
 * second argument, typed by hand. Before, a `carried` without its `result` threw a TypeError in every workflow task,
 * and the sweep stayed running with no report; other fields out of shape reached the result. Now such a state fails
 * the sweep at once as an invalid input does, naming each field. Null reads as none. What a run of this release or an
 * earlier one hands on passes: the result's fields after counts may be absent, ids longer than the result keeps are
 * cut, and a count of a reason no longer kept is dropped (a skip of one is refused, as no count would hold it). The
 * run goes on with what was checked, no other field.
 */
function parseCarriedSweep(raw: unknown): CarriedSweep | undefined {
  if (raw === undefined || raw === null) return undefined;
  // Typed, so that the compiler takes refuse() for the end it is.
  const problems: CarriedStateProblems = new CarriedStateProblems();
  const check = problems.check.bind(problems);
  const isItemList = (value: unknown, keys: string[]): value is Record<string, string>[] =>
    Array.isArray(value) &&
    value.length <= SWEEP_RESULT_ITEMS &&
    value.every((item) => isRecord(item) && keys.every((key) => isText(item[key])));
  const items = (value: unknown, field: string, keys: string[]) =>
    check(
      isItemList(value, keys),
      field,
      `a list of at most ${SWEEP_RESULT_ITEMS} objects, each with ${keys.join(' and ')} (texts)`,
    );
  if (!isRecord(raw)) problems.refuse('', 'an object: what one run of a sweep hands the next');
  const { window, nextPage, result, lookupFailure } = raw;
  check(
    isRecord(window) && isDateText(window.createdAfter) && isDateText(window.createdBefore),
    'window',
    'an object with createdAfter and createdBefore, dates',
  );
  check(Number.isSafeInteger(nextPage) && (nextPage as number) >= 1, 'nextPage', 'an integer of 1 or more');
  check(
    lookupFailure === undefined || (isText(lookupFailure) && lookupFailure.length <= LOOKUP_FAILURE_MAX_CHARS),
    'lookupFailure',
    `absent, or a text of at most ${LOOKUP_FAILURE_MAX_CHARS} characters`,
  );
  const known = newSweepResult({ createdAfter: '', createdBefore: '' }, [], 0).counts;
  if (!isRecord(result)) {
    check(false, 'result', 'an object: the result so far');
  } else {
    items(result.started, 'result.started', ['batchId', 'workflowId']);
    items(result.skipped, 'result.skipped', ['batchId', 'reason']);
    check(
      !isItemList(result.skipped, ['reason']) ||
        result.skipped.every((item) => Object.hasOwn(known, item.reason ?? '')),
      'result.skipped',
      `reasons each one of ${Object.keys(known).join(', ')}`,
    );
    check(
      isRecord(result.counts) &&
        Object.entries(result.counts).every(
          ([key, count]) => !Object.hasOwn(known, key) || (Number.isSafeInteger(count) && (count as number) >= 0),
        ),
      'result.counts',
      `an object of counts of 0 or more (${Object.keys(known).join(', ')})`,
    );
    for (const field of ['oldestLeftCreatedAt', 'oldestUnsettledCreatedAt'] as const)
      check(absentOr(result[field], isDateText), `result.${field}`, 'a date or null');
    check(
      absentOr(
        result.reachedBack,
        (reached) =>
          isRecord(reached) && isText(reached.workflowId) && isDateText(reached.windowEnd) && isBoolean(reached.cut),
      ),
      'result.reachedBack',
      'null or an object with workflowId (a text), windowEnd (a date) and cut (true or false)',
    );
  }
  problems.throwIfAny();
  const checked = raw as unknown as CarriedSweep;
  const { started, skipped, counts, reachedBack, oldestLeftCreatedAt, oldestUnsettledCreatedAt } = checked.result;
  return {
    window: { createdAfter: checked.window.createdAfter, createdBefore: checked.window.createdBefore },
    nextPage: checked.nextPage,
    result: {
      started: started.map((item) => ({ batchId: resultId(item.batchId), workflowId: resultId(item.workflowId) })),
      skipped: skipped.map((item) => ({ batchId: resultId(item.batchId), reason: item.reason })),
      counts: Object.fromEntries(
        Object.entries(counts).filter(([key]) => Object.hasOwn(known, key)),
      ) as SweepResult['counts'],
      ...(reachedBack !== undefined && {
        reachedBack: reachedBack && {
          workflowId: resultId(reachedBack.workflowId),
          windowEnd: reachedBack.windowEnd,
          cut: reachedBack.cut,
        },
      }),
      ...(oldestLeftCreatedAt !== undefined && { oldestLeftCreatedAt }),
      ...(oldestUnsettledCreatedAt !== undefined && { oldestUnsettledCreatedAt }),
    },
    ...(checked.lookupFailure !== undefined && { lookupFailure: checked.lookupFailure }),
  };
}

/**
 * Sweeps from this change on check the state the run before handed them (parseCarriedSweep), and fail at once on one
 * they cannot read. Asked only for a state refused: a valid one takes the same commands as before. A state refused
 * that a sweep before this change went on with (a `result` of `{}` that started no recovery, say) replays down that
 * path, as given.
 */
const CARRIED_STATE_CHECKED_PATCH = 'sweep-carried-state-checked';

function checkedCarried(raw: CarriedSweep | undefined): CarriedSweep | undefined {
  try {
    return parseWorkflowInput(parseCarriedSweep, raw, 'InvalidSweepInput');
  } catch (err) {
    if (!patched(CARRIED_STATE_CHECKED_PATCH)) return raw;
    throw err;
  }
}

/**
 * Finds the batches created within the lookback that have failed sessions and
 * starts a recoverBatch for each that has none yet, newest first, up to
 * maxStarts. Run by a Schedule; safe to run concurrently with itself and with
 * the CLI (one recovery per batch id). The list is read a chunk at a time and
 * the result holds counts plus the first items, so neither grows with the
 * number of batches; a long sweep continues as new. Any failure after the
 * input was accepted still ends with the result so far, in the failure's details.
 */
export async function sweepFailedBatches(
  input: SweepFailedBatchesInput = {},
  carriedAsGiven?: CarriedSweep,
): Promise<SweepResult> {
  const carried = checkedCarried(carriedAsGiven);
  const policy = parseSweepPolicy(input, carried);
  // Workflow time: the same window on every replay, and the same for every run of one sweep.
  const now = Date.now();
  const fresh = newSweepResult(carried?.window ?? sweepWindow(now, policy.lookback, null).window, policy.statuses, 0);
  const result = withCarriedResult(fresh, carried);
  /**
   * Records a batch left over_limit, start_failed or held, by when it was created (unknown: the window's start), so
   * that the result says where the next sweep reaches back to. Values only: no command depends on it, so no patch.
   * Before, a batch held (6 h) longer than it stayed in the lookback was in no later window once the hold had passed.
   */
  const leaveOut = (createdAt: string | null | undefined) => {
    result.oldestLeftCreatedAt = earlierDate(result.oldestLeftCreatedAt, createdAt ?? result.window.createdAfter);
  };
  // A run continued from a release before oldestLeftCreatedAt that left batches out: when they were created is lost.
  if (
    carried !== undefined &&
    carried.result.oldestLeftCreatedAt === undefined &&
    result.counts.over_limit + result.counts.start_failed > 0
  )
    leaveOut(null);
  /** When each batch of the chunk being started was listed as created. */
  let createdAtOfListed = new Map<string, string | null>();
  const skip = (batchId: string, reason: SkipReason) => {
    recordSkipped(result, batchId, reason);
    if (reason === 'over_limit' || reason === 'start_failed' || reason === 'held')
      leaveOut(createdAtOfListed.get(batchId));
  };
  // Asked once, before the run's first command: a run keeps one way of starting throughout.
  const startBatchRecovery = patched(STARTS_AS_LOCAL_ACTIVITIES_PATCH) ? startInLocalActivity : startInActivityTask;
  /**
   * The batches this run has handed to startEach or counted past maxStarts, as listed and in lower case. Bounded by
   * continue-as-new: a run that reads pages past maxStarts until then (about 1,100 pages of 100) holds about 110,000
   * ids, about 9 MB in the two sets.
   */
  const handed = new Set<string>();
  const handedInLowerCase = new Set<string>();
  const startRecoveries = (batchIds: string[]) => {
    const fresh = batchIds.filter((batchId) => !handed.has(batchId));
    let toStart = fresh.length < batchIds.length && patched(STARTS_EACH_BATCH_ONCE_PATCH) ? fresh : batchIds;
    const freshInAnyCase = withoutCaseRepeats(toStart, handed, handedInLowerCase);
    if (freshInAnyCase.length < toStart.length && patched(STARTS_EACH_BATCH_ONCE_IN_ANY_CASE_PATCH))
      toStart = freshInAnyCase;
    result.counts.listed_again += batchIds.length - toStart.length;
    for (const batchId of toStart) {
      handed.add(batchId);
      handedInLowerCase.add(batchId.toLowerCase());
    }
    return startEach(toStart, policy, result, skip, startBatchRecovery);
  };
  /**
   * Of the batch ids a page listed once maxStarts recoveries started, those the run did not take before (started, or
   * counted over_limit already), taken now. Before, each listing counted over_limit again, beside the batch's
   * `started` or first over_limit. Counts only: no recovery starts in a run past maxStarts, so what this adds to
   * `handed` changes no command.
   */
  const takeCountedOnly = (batchIds: string[]) => {
    const taken: string[] = [];
    for (const batchId of batchIds) {
      const key = batchId.toLowerCase();
      if (handedInLowerCase.has(key)) continue;
      handed.add(batchId);
      handedInLowerCase.add(key);
      taken.push(batchId);
    }
    return taken;
  };

  /**
   * A lookup that failed (visibility down, no completed sweep readable) leaves the run its lookback: it sweeps that,
   * so recoveries still start, then fails, so that no later sweep takes it for one whose window reached back.
   */
  let lookupFailure = carried?.lookupFailure;
  try {
    const scheduleId = workflowInfo().typedSearchAttributes.get(scheduledByIdKey);
    if (carried === undefined && scheduleId !== undefined && patched(WINDOW_FROM_LAST_COMPLETED_SWEEP_PATCH)) {
      try {
        const lastCompleted = await findLastCompletedSweep({ scheduleId });
        Object.assign(result, sweepWindow(now, policy.lookback, lastCompleted));
        if (result.reachedBack?.cut)
          log.warn('Window cut at 90 days back: batches created before it are not swept', { ...result.reachedBack });
        else log.info('Sweep window', { ...result.window, reachedBackTo: result.reachedBack?.workflowId ?? null });
      } catch (err) {
        if (isCancellation(err)) throw err;
        lookupFailure = sweepFailureOf(err).message;
        log.warn('Last completed sweep not found: sweeping the lookback, then failing', { error: lookupFailure });
      }
    }
    const { window } = result;
    if (carried === undefined && !patched(PAGED_LISTING_PATCH)) {
      await listAllBatches(policy, window, result, startRecoveries);
    } else {
      const onePagePerTask = patched(ONE_PAGE_PER_TASK_PATCH);
      /** From the API's total_pages: once known, the pages after the next one are read side by side. */
      let lastPage: number | null = null;
      /** Keys of the pages this run read (16 characters a page), and how many pages in a row repeated one. */
      const pageKeysRead = new Set<string>();
      let pagesInARowRepeated = 0;
      for (let nextPage: number | null = carried?.nextPage ?? 1; nextPage !== null;) {
        const room = policy.maxStarts - result.counts.started;
        const from: number = nextPage;
        const pages = onePagePerTask && lastPage !== null ? pagesFrom(from, lastPage) : [from];
        const chunks: ListFailedBatchesResult[] = await Promise.all(
          pages.map((page) =>
            listFailedBatches({
              statuses: policy.statuses,
              pageSize: policy.pageSize,
              ...window,
              fromPage: page,
              // Once maxStarts recoveries started, the rest of the list is only counted.
              maxBatchIds: room > 0 ? Math.min(SWEEP_CHUNK_BATCHES, room) : 0,
              ...(onePagePerTask && { maxPages: 1 }),
            }),
          ),
        );
        // In page order, as if read one after another: newest batches first.
        for (const [index, chunk] of chunks.entries()) {
          if (chunk.pageKey !== undefined) {
            pagesInARowRepeated = pageKeysRead.has(chunk.pageKey) ? pagesInARowRepeated + 1 : 0;
            pageKeysRead.add(chunk.pageKey);
            if (pagesInARowRepeated >= REPEATED_PAGES_IN_A_ROW && patched(STOPS_AT_REPEATED_PAGES_PATCH)) {
              const page = pages[index] as number;
              throw ApplicationFailure.nonRetryable(
                `pages ${page - REPEATED_PAGES_IN_A_ROW + 1}-${page} of the list each repeat a page read before (the ` +
                  'same batches in the same order) while has_next says more come: the API is not paging, so the ' +
                  'rest of the window cannot be read; stopped instead of reading the same pages for ever',
                'list_repeats_pages',
              );
            }
          }
          result.counts.scanned += chunk.scanned;
          result.counts.no_failed_sessions += chunk.noFailedSessions;
          result.counts.other_status += chunk.otherStatus;
          // Values only, as no command depends on it (it goes into the result and what continue-as-new carries): no
          // patch. A listing before the field (a recorded history) reads as having listed no batch still unsettled.
          result.oldestUnsettledCreatedAt = earlierDate(
            result.oldestUnsettledCreatedAt,
            chunk.oldestUnsettledCreatedAt ?? null,
          );
          result.counts.invalid_batch_id += chunk.invalidBatchIds ?? 0;
          result.counts.outside_window += chunk.outsideWindow ?? 0;
          result.counts.listed_again += chunk.listedAgain ?? 0;
          // Values only, as no start is asked for them: not left out either, so no later window reaches back to them.
          const pastRetentionIds = chunk.pastRetentionIds ?? [];
          for (const batchId of pastRetentionIds) recordSkipped(result, batchId, 'past_retention');
          result.counts.past_retention += (chunk.pastRetention ?? 0) - pastRetentionIds.length;
          createdAtOfListed = new Map(chunk.batchIds.map((batchId, at) => [batchId, chunk.createdAt?.[at] ?? null]));
          // Counted without their ids (a task of several pages, only counting): when they were created is unknown.
          if (chunk.failed > chunk.batchIds.length) leaveOut(null);
          if (policy.maxStarts - result.counts.started > 0) {
            result.counts.over_limit += chunk.failed - chunk.batchIds.length;
            await startRecoveries(chunk.batchIds);
          } else {
            // Read side by side with a page that used up maxStarts, or later: only counted.
            const taken = takeCountedOnly(chunk.batchIds);
            const again = chunk.batchIds.length - taken.length;
            result.counts.listed_again += again;
            result.counts.over_limit += chunk.failed - again;
            for (const batchId of taken) leaveOut(createdAtOfListed.get(batchId));
          }
          nextPage = chunk.nextPage;
          lastPage = chunk.totalPages ?? lastPage;
          if (nextPage === null) break;
        }
        const info = workflowInfo();
        if (
          nextPage !== null &&
          (info.historyLength >= policy.continueAsNewAfterEvents || info.continueAsNewSuggested)
        ) {
          const { started, skipped, counts, reachedBack, oldestLeftCreatedAt, oldestUnsettledCreatedAt } = result;
          await continueAsNew<typeof sweepFailedBatches>(input, {
            window,
            nextPage,
            result: { started, skipped, counts, reachedBack, oldestLeftCreatedAt, oldestUnsettledCreatedAt },
            ...(lookupFailure !== undefined && { lookupFailure }),
          });
        }
      }
    }
    if (lookupFailure !== undefined) {
      throw ApplicationFailure.nonRetryable(
        `could not find where the window of the schedule's last completed sweep ended (${lookupFailure}): swept ` +
          'the lookback alone, and batches created before it since that sweep may be in no window yet',
        'last_sweep_unknown',
      );
    }
  } catch (err) {
    if (err instanceof ContinueAsNew || isCancellation(err)) throw err;
    throw sweepFailed(result, err);
  }
  log.info('Sweep finished', result.counts);
  countNotStarted(result.counts);
  return result;
}

/** A run's result, begun `fresh`, with what the runs before it carried. */
function withCarriedResult(fresh: SweepResult, carried: CarriedSweep | undefined): SweepResult {
  // Counts one level down: a run continued from a release without a count still starts it at 0.
  return { ...fresh, ...carried?.result, counts: { ...fresh.counts, ...carried?.result.counts } };
}

/**
 * Ends the sweep on `err` with its result so far: logged, its batches not started counted, and failed, so a Schedule
 * shows it, with the sweep's report in the failure's details.
 */
function sweepFailed(result: SweepResult, err: unknown): ApplicationFailure {
  const failure = sweepFailureOf(err);
  result.failure = failure;
  log.error('Sweep failed', { ...result.counts, failure });
  countNotStarted(result.counts);
  return ApplicationFailure.create({
    type: 'SweepFailed',
    message: `Sweep stopped: ${failure.type}: ${failure.message}`,
    nonRetryable: true,
    details: [result],
  });
}

/**
 * The sweep's policy. A run continued from an earlier one whose input this release refuses (a bound tightened since
 * the sweep began) fails as a sweep that fails later does: type SweepFailed, the result the runs before it carried in
 * its details, and the batches they left counted. Before, it failed with the refusal alone, and their report and
 * counts were lost. No patch: the run fails either way, in its first task, and a replay compares neither the failure's
 * type nor its details.
 */
function parseSweepPolicy(input: SweepFailedBatchesInput, carried: CarriedSweep | undefined): SweepPolicy {
  try {
    return parseWorkflowInput(parseSweepInput, input, 'InvalidSweepInput');
  } catch (err) {
    if (carried === undefined || !(err instanceof ApplicationFailure)) throw err;
    throw sweepFailed(withCarriedResult(newSweepResult(carried.window, sweptStatuses(input), 0), carried), err);
  }
}

/** The statuses a refused input names, as the runs before took them; none when those are refused too. */
function sweptStatuses(input: SweepFailedBatchesInput): SweepStatus[] {
  try {
    return parseSweepInput({ statuses: input?.statuses }).statuses;
  } catch {
    return [];
  }
}

/**
 * Counts the failed batches the sweep did not start, as its result counts them, in the run that ends it, completed or
 * failed: those it left for a later one, those past the retention, and those a list past its contract showed. Its
 * counts hold those of the runs before it, which count nothing, so a sweep that continued as new counts its batches
 * once. A batch every sweep leaves (a start that always fails, a window pinned at maxStarts) counts once a sweep.
 * Every reason is added, 0 too, so each has a series once a sweep ended. Metrics only: no command depends on it, and
 * the SDK adds nothing on replay.
 */
function countNotStarted(counts: SweepResult['counts']): void {
  const left = metricMeter.createCounter(
    'anchor_sweep_batches_left',
    'batches',
    'Batches sweeps left to a later sweep, by reason',
  );
  for (const reason of ['over_limit', 'start_failed'] as const) left.add(counts[reason], { reason });
  // Apart from those left: no later sweep reaches back to a batch past the retention, so only this count, and the
  // alert on it, tell an operator that failed batches went unrecovered for good (0 too, so the series exists).
  metricMeter
    .createCounter(
      'anchor_sweep_batches_past_retention',
      'batches',
      'Failed batches sweeps did not recover, as created before the namespace retention',
    )
    .add(counts.past_retention);
  // A list past its contract: a failed batch listed with an id no recovery can take is never recovered, and a list that
  // ignores the window spends the budget on the team's whole history at every sweep. Before, only results told of it.
  const pastContract = metricMeter.createCounter(
    'anchor_sweep_batches_past_contract',
    'batches',
    'Batches sweeps listed but could not sweep, as the list broke the contract, by reason',
  );
  for (const reason of ['invalid_batch_id', 'outside_window'] as const) pastContract.add(counts[reason], { reason });
}

/** The sweep as it was before the paged listing: one activity listed every batch. Kept for replay. */
async function listAllBatches(
  policy: SweepPolicy,
  window: SweepResult['window'],
  result: SweepResult,
  startRecoveries: (batchIds: string[]) => Promise<void>,
): Promise<void> {
  const listed = await listRecentBatches({ statuses: policy.statuses, pageSize: policy.pageSize, ...window });
  result.counts.scanned = listed.length;
  const queue: string[] = [];
  for (const batch of listed) {
    if (batch.failed_requests > 0) queue.push(batch.batch_id);
    else result.counts.no_failed_sessions += 1;
  }
  await startRecoveries(queue);
}

/**
 * Starts a recovery for each batch, in order, until the sweep has started
 * maxStarts; the rest are over_limit. maxStarts counts recoveries actually
 * started: a start that finds one running frees its slot. At most fanOut
 * starts are in flight.
 */
async function startEach(
  batchIds: string[],
  policy: SweepPolicy,
  result: SweepResult,
  skip: (batchId: string, reason: SkipReason) => void,
  startBatchRecovery: SweepActivities['startBatchRecovery'],
): Promise<void> {
  const queue = [...batchIds];
  let inFlight = 0;
  const done = () => queue.length === 0 || result.counts.started >= policy.maxStarts;
  const slotFree = () => result.counts.started + inFlight < policy.maxStarts;
  const startNext = async (): Promise<void> => {
    for (;;) {
      await condition(() => done() || slotFree());
      if (done()) return;
      // Another lane woken by the same change may have taken the slot first.
      if (!slotFree()) continue;
      const batchId = queue.shift() as string;
      inFlight += 1;
      let outcome: StartBatchRecoveryResult | undefined;
      try {
        outcome = await startBatchRecovery({ batchId, recovery: policy.recovery });
      } catch (err) {
        log.warn('Could not start a recovery; a later sweep tries again', {
          batchId,
          error: cleanApiText(String(err)),
        });
      } finally {
        inFlight -= 1;
      }
      if (outcome === undefined) skip(batchId, 'start_failed');
      else if (outcome.outcome === 'started') recordStarted(result, batchId, outcome.workflowId);
      else skip(batchId, outcome.outcome);
    }
  };
  await Promise.all(Array.from({ length: policy.fanOut }, startNext));
  for (const batchId of queue) skip(batchId, 'over_limit');
}

/**
 * The batch ids but those that come again in another case (after one handed before, or one before them in the list).
 * A repeat in the same case is left in: whether it is taken out is STARTS_EACH_BATCH_ONCE_PATCH's question.
 */
function withoutCaseRepeats(batchIds: string[], handed: Set<string>, handedInLowerCase: Set<string>): string[] {
  const spellings = new Map<string, string>();
  return batchIds.filter((batchId) => {
    const key = batchId.toLowerCase();
    const earlier = spellings.get(key);
    if (earlier === undefined) spellings.set(key, batchId);
    const caseRepeat =
      (earlier !== undefined && earlier !== batchId) || (handedInLowerCase.has(key) && !handed.has(batchId));
    return !caseRepeat;
  });
}
