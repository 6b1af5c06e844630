/**
 * Ordering of one MCU's commands without head-of-line blocking. Commands that
 * must keep their order share a lane (a key: the same output, the same
 * source's audio, the same cascade link); different lanes run concurrently,
 * and health checks take no lane at all:
 *
 *   out:sip:chair   [layout]──>[show]──>[keyframe]
 *   audio:sip:x     [mute]────>[unmute]
 *   (no lane)       [OPTIONS]  [OPTIONS] ...
 *
 * Every command has its own deadline, counted from when it was issued: it
 * leaves its lane at that deadline whether or not the MCU answered, so the
 * next command of the lane starts then at the latest; a command whose
 * deadline passes while it waits is never started.
 */
import type { Clock } from '../core/index.js';

export class CommandLanes {
  readonly #clock: Clock;
  /** Per lane, a promise that settles when its last command leaves it. */
  readonly #tails = new Map<string, Promise<void>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Lanes with a command waiting or running. */
  get busy(): number {
    return this.#tails.size;
  }

  /**
   * Run `work` once the previous command of `lane` has left it; settle with
   * its outcome, or with `timeout()` when the clock reaches `deadlineAt`
   * first. `lane` undefined: start at once.
   */
  run<T>(lane: string | undefined, deadlineAt: number, work: () => Promise<T>, timeout: () => Error): Promise<T> {
    const prev = lane === undefined ? undefined : this.#tails.get(lane);
    let leave!: () => void;
    const left = new Promise<void>((resolve) => {
      leave = resolve;
    });
    if (lane !== undefined) {
      this.#tails.set(lane, left);
      left.then(() => {
        if (this.#tails.get(lane) === left) this.#tails.delete(lane);
      });
    }
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (settle: () => void) => {
        if (done) return;
        done = true;
        this.#clock.clearTimeout(timer);
        leave();
        settle();
      };
      const timer = this.#clock.setTimeout(
        () => finish(() => reject(timeout())),
        Math.max(0, deadlineAt - this.#clock.now()),
      );
      const start = () => {
        if (done) return;
        let p: Promise<T>;
        try {
          p = work();
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(
          (v) => finish(() => resolve(v)),
          (err: unknown) => finish(() => reject(err)),
        );
      };
      if (prev === undefined) start();
      else prev.then(start);
    });
  }
}
