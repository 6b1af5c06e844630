/**
 * Time as a dependency, so timer-driven state machines (SIP transactions,
 * watchdogs, deadlines) can be tested with a fake clock that advances on demand.
 */
export interface TimerHandle {
  readonly __timer: true;
}

export interface Clock {
  /** Monotonic milliseconds (not wall time). */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for records and logs. */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /**
   * `fn` on this turn of the event loop, once the I/O it polled is handled: what arrived together is handled
   * together, and the loop does not sleep for it. A timer of 0 ms is a millisecond's sleep and a wake-up, and
   * on these machines a wake-up from idle costs more CPU than most of what it runs (docs/chair.md, "CPU (session 8)").
   * Cancelled by `clearTimeout`.
   */
  setImmediate(fn: () => void): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** A real clock's handle of `setImmediate`: Node cancels immediates and timers by different calls. */
interface ImmediateHandle {
  readonly immediate: NodeJS.Immediate;
}

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Protocol timers must never keep the process alive on their own: close() does that job.
    t.unref();
    return t as unknown as TimerHandle;
  },
  // Not unref'd: an unref'd immediate makes the loop block in its poll, and it would run only after the next
  // I/O or timer, seconds later on a quiet daemon. It runs within this turn, so it holds the process no longer.
  setImmediate: (fn) => ({ immediate: setImmediate(fn) }) as ImmediateHandle as unknown as TimerHandle,
  clearTimeout: (h) => {
    if (h === undefined) return;
    if ('immediate' in h) clearImmediate((h as unknown as ImmediateHandle).immediate);
    else clearTimeout(h as unknown as NodeJS.Timeout);
  },
};

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/** A deterministic clock for tests: time moves only through `advance()`. */
export class FakeClock implements Clock {
  #now = 0;
  #seq = 0;
  #timers: FakeTimer[] = [];
  readonly #wallBase: number;

  constructor(wallBase = Date.UTC(2026, 0, 1)) {
    this.#wallBase = wallBase;
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#wallBase + this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: FakeTimer = { id: ++this.#seq, at: this.#now + Math.max(0, ms), fn };
    this.#timers.push(t);
    return t as unknown as TimerHandle;
  }

  /** A timer of 0 ms: it fires on the next `advance`, even `advance(0)`. */
  setImmediate(fn: () => void): TimerHandle {
    return this.setTimeout(fn, 0);
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    const i = this.#timers.indexOf(handle as unknown as FakeTimer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /** Pending timer count, for assertions that everything was cleaned up. */
  get pending(): number {
    return this.#timers.length;
  }

  /** When the earliest pending timer is due (undefined: none), so a test can step from one timer to the next. */
  get nextAt(): number | undefined {
    let at: number | undefined;
    for (const t of this.#timers) if (at === undefined || t.at < at) at = t.at;
    return at;
  }

  /** Move time forward, firing due timers in time order (ties in creation order). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers) {
        if (t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      }
      if (next === undefined) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }
}
