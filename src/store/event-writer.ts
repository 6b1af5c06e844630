/**
 * Events written behind, several to a transaction: what the daemon records
 * on a hot path and nobody reads back at once (a chair command's
 * `chair.command` event, read by the session report). One insert is one
 * commit: events appended within `delayMs` of the first go out together, in
 * order, one commit for a burst (50 commands in flight) instead of one each.
 * The default is 0: written on this turn of the event loop once its I/O is
 * handled (`clock.setImmediate`, not a 0 ms timer, which costs a sleep and a
 * wake-up per command); a crash loses at most what that turn appended (a
 * second's wait was tried, issue 11, and lost a second of records to
 * kill -9); `close` writes what is pending.
 */
import type { Logger } from 'pino';
import { type Clock, onceClose, type TimerHandle } from '../core/index.js';
import type { NewEvent, Store } from './types.js';

export interface EventWriterOptions {
  readonly store: Pick<Store, 'appendEvents'>;
  readonly clock: Clock;
  /** How long an event may wait for others before it is written, ms (default 0: this turn of the loop, once its I/O is handled). */
  readonly delayMs?: number;
  readonly logger?: Logger;
}

export interface EventWriter {
  /** Record `e` (written within `delayMs`, with the others appended meanwhile). Ignored once closed. */
  append(e: NewEvent): void;
  /** Write what is pending now; resolves once the store has it. */
  flush(): Promise<void>;
  /** Write what is pending and stop; idempotent. */
  close(): Promise<void>;
}

const DEFAULT_DELAY_MS = 0;

export function createEventWriter(o: EventWriterOptions): EventWriter {
  const delayMs = o.delayMs ?? DEFAULT_DELAY_MS;
  const log = o.logger?.child({ module: 'store' });
  let queue: NewEvent[] = [];
  let writes: Promise<void> = Promise.resolve();
  let timer: TimerHandle | undefined;
  let closed = false;

  const flush = (): Promise<void> => {
    o.clock.clearTimeout(timer);
    timer = undefined;
    if (queue.length > 0) {
      const batch = queue;
      queue = [];
      writes = writes
        .then(() => o.store.appendEvents(batch))
        .then(
          () => {},
          (err: unknown) => log?.warn({ err, events: batch.length }, 'could not record events'),
        );
    }
    return writes;
  };

  return {
    append(e) {
      if (closed) return;
      queue.push(e);
      timer ??=
        delayMs === 0 ? o.clock.setImmediate(() => void flush()) : o.clock.setTimeout(() => void flush(), delayMs);
    },
    flush,
    close: onceClose(async () => {
      closed = true;
      await flush();
    }),
  };
}
