/**
 * The session's live record of what the MCUs report (issue 13): each session
 * endpoint's own call coming and going, written to the store's events at
 * once (`session.endpoint.up`, `session.endpoint.down`), and the call quality
 * reports (RFC 6035), rolled up per call into windows written every
 * `flushMs` (`session.quality`): a national session's MCUs report about a
 * hundred calls a second, which the events table need not hold one by one.
 * A window holds counts, sums and extremes, so windows add up (the report
 * sums them) and a restart loses at most the window in progress.
 */
import type { Logger } from 'pino';
import type { QualityEvent } from '../cascade/index.js';
import type { Clock, TimerHandle } from '../core/index.js';
import type { NewEvent, Store } from '../store/index.js';

/** What the cascade manager says about an endpoint's call in its room (ParticipantEvent). */
export interface ParticipantInput {
  readonly session: string;
  readonly mcu: string;
  readonly room: string;
  readonly endpoint: string;
  readonly state: 'connected' | 'disconnected';
}

/**
 * What the recorder reads of a quality report of a session's call (the cascade manager's QualityEvent): an
 * endpoint's or a cascade link's, and the two directions' figures.
 */
export type QualityInput = Pick<QualityEvent, 'session' | 'mcu' | 'endpoint' | 'link'> & {
  readonly report: Pick<QualityEvent['report'], 'local' | 'remote'>;
};

/** The figures a window rolls up. */
type Figure = 'lossPercent' | 'jitterMs' | 'roundTripMs' | 'bitrateKbps';

/** A figure over a window: how many reports gave it, their sum and the worst. */
export interface FigureWindow {
  readonly n: number;
  readonly sum: number;
  /** The highest (loss, jitter, delay) or the lowest (bitrate): the worst seen. */
  readonly worst: number;
}

/** The data of a `session.quality` event. */
export interface QualityWindow {
  readonly mcu: string;
  readonly endpoint?: string;
  readonly link?: { readonly child: string; readonly parent: string };
  readonly reports: number;
  readonly lossPercent?: FigureWindow;
  readonly jitterMs?: FigureWindow;
  readonly roundTripMs?: FigureWindow;
  readonly bitrateKbps?: FigureWindow;
}

export interface LiveRecorderOptions {
  readonly store: Pick<Store, 'appendEvent' | 'appendEvents'>;
  readonly clock: Clock;
  /** How often the quality windows are written, ms (default 60 s). */
  readonly flushMs?: number;
  readonly logger?: Logger;
}

export interface LiveRecorder {
  participant(e: ParticipantInput): void;
  quality(e: QualityInput): void;
  /** Write the quality windows now. */
  flush(): Promise<void>;
  /** Write what is pending and stop; idempotent. Later inputs are ignored. */
  close(): Promise<void>;
}

const DEFAULT_FLUSH_MS = 60_000;
/**
 * Quality windows written per transaction. A national session's minute is about 3,000 windows: one insert
 * each, as before, was 0.3 s of CPU in one go every minute, the event loop held the while (the chair and the
 * API waited behind it); a batch is one commit of a few milliseconds, and the loop gets a turn between two.
 */
const FLUSH_BATCH = 500;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
type Worse = 'higher' | 'lower';

interface Acc {
  n: number;
  sum: number;
  worst: number;
}

interface Window {
  readonly session: string;
  readonly data: Omit<QualityWindow, 'reports' | 'lossPercent' | 'jitterMs' | 'roundTripMs' | 'bitrateKbps'>;
  reports: number;
  readonly figures: Partial<Record<Figure, Acc>>;
}

const FIGURES: readonly [Figure, Worse][] = [
  ['lossPercent', 'higher'],
  ['jitterMs', 'higher'],
  ['roundTripMs', 'higher'],
  ['bitrateKbps', 'lower'],
];

/**
 * One report's figure: the worse of its two directions (what the MCU
 * received, and what the participant received as it told the MCU), as a
 * call is as good as its worse half.
 */
function worse(a: number | undefined, b: number | undefined, w: Worse): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return w === 'higher' ? Math.max(a, b) : Math.min(a, b);
}

export function createLiveRecorder(o: LiveRecorderOptions): LiveRecorder {
  const flushMs = o.flushMs ?? DEFAULT_FLUSH_MS;
  const log = o.logger?.child({ module: 'session' });
  const windows = new Map<string, Window>();
  let writes: Promise<unknown> = Promise.resolve();
  let closed = false;
  let timer: TimerHandle | undefined;

  const write = (type: string, subject: string, data: unknown) => {
    writes = writes
      .then(() => o.store.appendEvent({ type, subject, data }))
      .catch((err: unknown) => log?.warn({ err, session: subject, type }, 'could not record a live event'));
  };

  const flush = (): Promise<void> => {
    const events: NewEvent[] = [];
    for (const w of windows.values()) {
      const data: Record<string, unknown> = { ...w.data, reports: w.reports };
      for (const [k, acc] of Object.entries(w.figures)) data[k] = { n: acc.n, sum: acc.sum, worst: acc.worst };
      events.push({ type: 'session.quality', subject: w.session, data });
    }
    windows.clear();
    for (let i = 0; i < events.length; i += FLUSH_BATCH) {
      const batch = events.slice(i, i + FLUSH_BATCH);
      writes = writes
        .then(i === 0 ? undefined : nextTurn)
        .then(() => o.store.appendEvents(batch))
        .catch((err: unknown) => log?.warn({ err, windows: batch.length }, 'could not record call quality windows'));
    }
    return writes.then(() => {});
  };

  const arm = () => {
    timer = o.clock.setTimeout(() => {
      flush().catch(() => {});
      if (!closed) arm();
    }, flushMs);
  };
  arm();

  return {
    participant(e) {
      if (closed) return;
      write(e.state === 'connected' ? 'session.endpoint.up' : 'session.endpoint.down', e.session, {
        endpoint: e.endpoint,
        mcu: e.mcu,
        room: e.room,
      });
    },
    quality(e) {
      if (closed || (e.endpoint === undefined && e.link === undefined)) return;
      const who = e.endpoint ?? `${e.link!.child}>${e.link!.parent}`;
      const key = `${e.session}|${e.mcu}|${who}`;
      let w = windows.get(key);
      if (w === undefined) {
        w = {
          session: e.session,
          data: {
            mcu: e.mcu,
            ...(e.endpoint === undefined ? {} : { endpoint: e.endpoint }),
            ...(e.link === undefined ? {} : { link: e.link }),
          },
          reports: 0,
          figures: {},
        };
        windows.set(key, w);
      }
      w.reports++;
      const { local, remote } = e.report;
      for (const [k, dir] of FIGURES) {
        const v = worse(local?.[k], remote?.[k], dir);
        if (v === undefined || !Number.isFinite(v)) continue;
        const acc = w.figures[k];
        if (acc === undefined) w.figures[k] = { n: 1, sum: v, worst: v };
        else {
          acc.n++;
          acc.sum += v;
          acc.worst = dir === 'higher' ? Math.max(acc.worst, v) : Math.min(acc.worst, v);
        }
      }
    },
    flush,
    async close() {
      if (closed) return writes.then(() => {});
      closed = true;
      o.clock.clearTimeout(timer);
      return flush();
    },
  };
}
