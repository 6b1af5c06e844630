/**
 * The reconciler's bookkeeping (`Memory` of reconcile.ts) and how results
 * change it. Plain data and synchronous, so the runtime and the property
 * tests share the very same rules.
 */
import { type BackoffPolicy, backoffDelay } from './backoff.js';
import { type Action, type LinkView, linkKey, type Memory, type Pool, type Retry } from './reconcile.js';

export function poolOf(action: Action): Pool {
  switch (action.kind) {
    case 'dial-link':
    case 'hang-up-link':
      return 'link';
    case 'dial-participant':
    case 'hang-up-participant':
      return 'participant';
    case 'layout':
      return action.why === 'view' ? 'view' : 'layout';
    default:
      return 'control';
  }
}

export class Bookkeeping implements Memory {
  readonly inflight = new Map<string, Pool>();
  readonly retries = new Map<string, Retry>();
  readonly applied = new Map<string, string>();
  readonly opened = new Set<string>();
  readonly halfSince = new Map<string, number>();
  readonly probedAt = new Map<string, number>();
  readonly dialedAt = new Map<string, number>();
  readonly cascaded = new Set<string>();

  constructor(
    readonly backoff: BackoffPolicy,
    /** In [0, 1): the jitter of retry delays. */
    readonly random: () => number,
  ) {}

  /** `now`: when it starts (a probe's next one is due an interval later). */
  started(action: Action, now: number): void {
    this.inflight.set(action.key, poolOf(action));
    if (action.kind === 'probe-link') this.probedAt.set(action.key, now);
  }

  succeeded(action: Action, now: number, openedRoomKey?: string): void {
    this.inflight.delete(action.key);
    this.retries.delete(action.key);
    if (action.kind === 'dial-link') this.dialedAt.set(action.key, now);
    if (action.kind === 'layout') this.applied.set(action.key, action.epoch);
    if (action.kind === 'open' && openedRoomKey !== undefined) this.opened.add(openedRoomKey);
  }

  /** A failure: the next attempt waits (immediate first, then growing, capped, with jitter). */
  failed(action: Action, now: number, error: string): Retry {
    this.inflight.delete(action.key);
    this.dialedAt.delete(action.key);
    const before = this.retries.get(action.key);
    const failures = (before?.failures ?? 0) + 1;
    const retry: Retry = {
      failures,
      nextAt: now + backoffDelay(failures, this.backoff, this.random()),
      since: before?.since ?? now,
      lastError: error,
    };
    this.retries.set(action.key, retry);
    return retry;
  }

  /** Links seen half-dead in this pass: keep when each was first seen, forget the others. */
  sawHalf(keys: readonly string[], now: number): void {
    const seen = new Set(keys);
    for (const k of this.halfSince.keys()) if (!seen.has(k)) this.halfSince.delete(k);
    for (const k of keys) if (!this.halfSince.has(k)) this.halfSince.set(k, now);
  }

  /**
   * Links seen up in this pass: a later drop of one is redialled at once, not held back as still verifying.
   * A session with every link up is cascaded from then on: its endpoints never wait for its links again.
   */
  sawUp(links: readonly LinkView[]): void {
    const notUp = new Set<string>();
    for (const l of links) {
      if (l.state === 'up') this.dialedAt.delete(linkKey(l.session, l.child));
      else notUp.add(l.session);
    }
    for (const l of links) if (!notUp.has(l.session)) this.cascaded.add(l.session);
  }

  /** A room whose conference was closed: it must be opened again before it counts. */
  closedRoom(roomKey: string): void {
    this.opened.delete(roomKey);
  }

  /** Everything kept about a session that ended (its keys carry `|id|`). */
  forgetSession(id: string): void {
    this.cascaded.delete(id);
    const mark = `|${id}|`;
    const ends = `|${id}`;
    for (const map of [this.retries, this.applied, this.halfSince, this.probedAt, this.dialedAt] as Map<
      string,
      unknown
    >[])
      for (const k of map.keys()) if (k.includes(mark) || k.endsWith(ends)) map.delete(k);
  }
}
