/**
 * /v1/events: server-sent events (WHATWG HTML, "Server-sent events") of MCU,
 * link and chair changes. Each event has an id; a client that reconnects with
 * `Last-Event-ID` gets what it missed from a bounded replay buffer. A client
 * that does not read (its socket buffer past a bound) is dropped rather than
 * buffered without end; comment lines keep idle proxies from closing the stream.
 */
import type { ServerResponse } from 'node:http';
import type { Clock, TimerHandle, TypedEmitter } from '../core/index.js';
import type { ApiEvents } from './context.js';

const REPLAY = 512; // events kept for Last-Event-ID
const HEARTBEAT_MS = 15_000;
const MAX_BUFFERED_BYTES = 1024 * 1024;
export const EVENT_TYPES = ['mcu', 'capabilities', 'link', 'chair'] as const satisfies readonly (keyof ApiEvents)[];

interface Client {
  readonly res: ServerResponse;
  readonly types: ReadonlySet<string>;
}

export interface EventHub {
  readonly clients: number;
  /** Start streaming to `res` (headers already written): replays after `lastId`, then live events. */
  attach(res: ServerResponse, types: ReadonlySet<string>, lastId: number | undefined): void;
  /** End every stream (before the server closes: a stream never goes idle by itself). */
  close(): void;
}

export function createEventHub(events: TypedEmitter<ApiEvents>, clock: Clock): EventHub {
  const clients = new Set<Client>();
  const replay: { id: number; type: string; frame: string }[] = [];
  let seq = 0;
  let heartbeat: TimerHandle | undefined;
  let closed = false;

  const drop = (c: Client) => {
    clients.delete(c);
    if (!c.res.writableEnded) c.res.end();
  };
  const write = (c: Client, frame: string) => {
    if (c.res.writableLength > MAX_BUFFERED_BYTES) {
      drop(c);
      return;
    }
    c.res.write(frame);
  };
  const beat = () => {
    heartbeat = undefined;
    for (const c of clients) write(c, ': keep-alive\n\n');
    if (clients.size > 0 && !closed) heartbeat = clock.setTimeout(beat, HEARTBEAT_MS);
  };

  const publish = (type: string, data: unknown) => {
    const id = ++seq;
    // JSON.stringify escapes newlines, so the data is one `data:` line.
    const frame = `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    replay.push({ id, type, frame });
    if (replay.length > REPLAY) replay.shift();
    for (const c of clients) if (c.types.has(type)) write(c, frame);
  };
  for (const t of EVENT_TYPES) events.on(t, (e: unknown) => publish(t, e));

  return {
    get clients() {
      return clients.size;
    },
    attach(res, types, lastId) {
      const c: Client = { res, types };
      clients.add(c);
      res.on('close', () => clients.delete(c));
      res.write(`retry: 2000\n\n`);
      if (lastId !== undefined) for (const e of replay) if (e.id > lastId && types.has(e.type)) write(c, e.frame);
      heartbeat ??= clock.setTimeout(beat, HEARTBEAT_MS);
    },
    close() {
      closed = true;
      clock.clearTimeout(heartbeat);
      for (const c of [...clients]) drop(c);
    },
  };
}
