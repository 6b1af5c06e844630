/**
 * When reconcile passes run. A pass walks every session, so while events pour in (a national endpoint dial is
 * 10^4 of them) passes are paced: the next one waits `GAP_FACTOR` times what the last one took, at least
 * `GAP_MIN_MS`, at most `GAP_MAX_MS`, and the events of that gap share it. Passes then take at most about a fifth
 * of the event loop. The first event after the gap is acted on at once, as soon as the code that raised it is
 * done (a microtask), not after every other message the event loop holds: a national dial's next level of links
 * waited about 9 ms behind a burst of answers when passes ran on `setImmediate`.
 *
 * The gap follows what the pass itself cost (deciding, recording progress), not the actions it started: those
 * cost the same however often passes run. A national session's first pass starts its 63 rooms' INVITEs, three
 * times its own cost, and the gap that set held back the next pass, the one the root room's answer asked for,
 * behind every other room's answer.
 */
import type { Clock, TimerHandle } from '../core/index.js';

export const GAP_FACTOR = 4;
export const GAP_MIN_MS = 2;
export const GAP_MAX_MS = 20;

export class PassPacer {
  readonly #clock: Clock;
  readonly #pass: () => number;
  #scheduled = false;
  /** The pass scheduled runs whatever the gap (`kick(true)`). */
  #urgent = false;
  #timer: TimerHandle | undefined;
  #nextAt = Number.NEGATIVE_INFINITY;
  #closed = false;

  /**
   * `pass` runs a pass and returns the time it spent starting actions; what else it cost (the clock's time) sets
   * the gap before the next.
   */
  constructor(clock: Clock, pass: () => number) {
    this.#clock = clock;
    this.#pass = pass;
  }

  /**
   * A pass is wanted: now if the gap is over, else at its end; one pass answers every kick before it runs.
   * `urgent`: what raised it lets go work the last pass held back for it (the next level of a dial waits for its
   * parent's link): the pass runs now, gap or not. Rare by design (a handful of links per dial), so no storm.
   */
  kick(urgent = false): void {
    if (this.#closed) return;
    // The pass scheduled answers this kick too; an urgent kick makes it urgent (one due in a microtask would
    // otherwise find the gap of a pass that ran meanwhile and wait for it).
    if (urgent) this.#urgent = true;
    if (this.#scheduled) {
      if (!urgent || this.#timer === undefined) return;
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#scheduled = true;
    const wait = this.#nextAt - this.#clock.now();
    if (wait > 0 && !this.#urgent) this.#timer = this.#clock.setTimeout(this.#run, wait);
    else queueMicrotask(this.#run);
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    this.#timer = undefined;
    const urgent = this.#urgent;
    this.#urgent = false;
    if (this.#closed) return;
    // Kicked while a pass ran, before it set its gap: the gap is still to be kept (unless urgent).
    if (!urgent && this.#nextAt > this.#clock.now()) {
      this.kick();
      return;
    }
    const start = this.#clock.now();
    let acting = 0;
    try {
      acting = this.#pass();
    } finally {
      const took = this.#clock.now() - start;
      const own = Math.max(0, took - acting);
      this.#nextAt = start + took + Math.min(GAP_MAX_MS, Math.max(GAP_MIN_MS, GAP_FACTOR * own));
    }
  };

  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
  }
}
