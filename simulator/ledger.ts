import type { AnchorEndpoint } from '../anchor-api/endpoints.js';

export type CallOutcome = 'in_flight' | 'answered' | 'dropped' | 'hung';

export interface LedgerCall {
  seq: number;
  /** Simulator-clock time the call arrived. */
  at: string;
  /** Wall-clock time the call arrived, for rates and latencies when the simulator's clock is manual. */
  receivedAtMs: number;
  method: string;
  path: string;
  endpoint: AnchorEndpoint | 'unknown';
  batchId: string | undefined;
  requestBody: unknown;
  outcome: CallOutcome;
  /** Status sent; undefined when nothing was sent (dropped, hung, still in flight). */
  statusCode: number | undefined;
  /** Wall-clock time the answer was sent or the connection dropped; undefined while in flight or hung. */
  answeredAtMs: number | undefined;
  /** The injected fault's type, if one fired. */
  fault: string | undefined;
}

export interface LedgerRetry {
  seq: number;
  /** Simulator-clock time the retry was applied. */
  at: string;
  batchId: string;
  /** The ledger call (the POST) that applied it. */
  callSeq: number | undefined;
  /** Wall-clock time that POST arrived. */
  receivedAtMs: number | undefined;
  /** Wall-clock time the retry was applied: later than the arrival under a `latency` fault, even if the client gave up. */
  appliedAtMs: number;
  body: { retry_failed_only: boolean; max_retries: number };
  retriedSessions: number;
  retriedItems: number[];
}

export interface BatchLedger {
  calls: LedgerCall[];
  retries: LedgerRetry[];
}

/** Every contract call received and every retry applied, so tests can check what really reached "Anchor". */
export class Ledger {
  private calls: LedgerCall[] = [];
  private retries: LedgerRetry[] = [];
  /** Per-batch view, so reading one batch's ledger stays cheap when thousands of batches share a simulator. */
  private byBatch = new Map<string, BatchLedger>();
  private seq = 0;

  recordCall(
    call: Omit<LedgerCall, 'seq' | 'outcome' | 'statusCode' | 'answeredAtMs' | 'fault' | 'requestBody'>,
  ): LedgerCall {
    const entry: LedgerCall = {
      ...call,
      seq: ++this.seq,
      outcome: 'in_flight',
      statusCode: undefined,
      answeredAtMs: undefined,
      fault: undefined,
      requestBody: undefined,
    };
    this.calls.push(entry);
    if (entry.batchId !== undefined) this.batchLedger(entry.batchId).calls.push(entry);
    return entry;
  }

  /** Files a call under the batch it turned out to be about (a create learns its batch id when handled). */
  assignBatch(entry: LedgerCall, batchId: string): void {
    if (entry.batchId !== undefined) return;
    entry.batchId = batchId;
    this.batchLedger(batchId).calls.push(entry);
  }

  recordRetry(retry: Omit<LedgerRetry, 'seq'>): LedgerRetry {
    const entry = { ...retry, seq: ++this.seq };
    this.retries.push(entry);
    this.batchLedger(entry.batchId).retries.push(entry);
    return entry;
  }

  all(): BatchLedger {
    return { calls: [...this.calls], retries: [...this.retries] };
  }

  /** The most calls that arrived within any window of `windowMs` (wall clock): the rate the API saw at its busiest. */
  mostCallsWithin(windowMs: number): number {
    return mostWithinWindow(
      this.calls.map((call) => call.receivedAtMs),
      windowMs,
    );
  }

  forBatch(batchId: string): BatchLedger {
    const ledger = this.byBatch.get(batchId);
    return { calls: [...(ledger?.calls ?? [])], retries: [...(ledger?.retries ?? [])] };
  }

  clear(): void {
    this.calls = [];
    this.retries = [];
    this.byBatch.clear();
  }

  private batchLedger(batchId: string): BatchLedger {
    let ledger = this.byBatch.get(batchId);
    if (ledger === undefined) {
      ledger = { calls: [], retries: [] };
      this.byBatch.set(batchId, ledger);
    }
    return ledger;
  }
}

/** The most of `timesMs` (in any order) that fall within any window of `windowMs`. */
export function mostWithinWindow(timesMs: number[], windowMs: number): number {
  const sorted = [...timesMs].sort((a, b) => a - b);
  let most = 0;
  for (let first = 0, last = 0; last < sorted.length; last += 1) {
    while (sorted[last]! - sorted[first]! >= windowMs) first += 1;
    most = Math.max(most, last - first + 1);
  }
  return most;
}
