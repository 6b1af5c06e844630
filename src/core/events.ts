import { EventEmitter } from 'node:events';

/**
 * A typed event emitter: an event map of tuple arguments. A listener that
 * throws must not break the emitter (metrics and audit subscribe to events and
 * stay out of control flow), so `safeEmit` catches and reports through the
 * `listenerError` hook instead of unwinding into the emitting code.
 */
export type EventMap = { [event: string]: unknown[] };

export class TypedEmitter<E extends EventMap> {
  readonly #ee = new EventEmitter({ captureRejections: false });
  #onListenerError: (err: unknown, event: string) => void = () => {};

  constructor() {
    this.#ee.setMaxListeners(0);
  }

  /** Where errors thrown by listeners go (default: swallowed). */
  onListenerError(fn: (err: unknown, event: string) => void): void {
    this.#onListenerError = fn;
  }

  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#ee.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#ee.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#ee.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#ee.listenerCount(event);
  }

  removeAllListeners(): void {
    this.#ee.removeAllListeners();
  }

  /** Emit to every listener; a throwing listener is reported, the others still run. */
  safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const listeners = this.#ee.rawListeners(event);
    if (listeners.length === 0) return false;
    for (const l of listeners) {
      try {
        (l as (...a: unknown[]) => void).apply(this, args);
      } catch (err) {
        try {
          this.#onListenerError(err, event);
        } catch {
          // The error hook itself failed: nothing safe is left to do.
        }
      }
    }
    // rawListeners keeps `once` wrappers, which remove themselves when called.
    return true;
  }
}
