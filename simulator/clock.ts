export type ClockMode = 'real' | 'manual';

/**
 * The simulator's notion of "now". Batch state is computed from it on every read, so tests can
 * fast-forward (`advance`) instead of sleeping. In 'real' mode time also flows with the wall clock;
 * in 'manual' mode it only moves on `advance`.
 */
export class SimulatorClock {
  private readonly mode: ClockMode;
  private readonly origin: number;
  private readonly realOrigin: number;
  private offsetMs = 0;

  constructor(mode: ClockMode = 'real', start: Date = new Date()) {
    this.mode = mode;
    this.origin = start.getTime();
    this.realOrigin = Date.now();
  }

  now(): number {
    const flowed = this.mode === 'real' ? Date.now() - this.realOrigin : 0;
    return this.origin + flowed + this.offsetMs;
  }

  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`clock can only move forward, got ${ms} ms`);
    this.offsetMs += ms;
    return this.now();
  }
}
