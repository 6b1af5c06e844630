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
  readonly inflightEpochs = new Map<string, string>();
  readonly retries = new Map<string, Retry>();
  readonly applied = new Map<string, string>();
  readonly opened = new Set<string>();
  readonly halfSince = new Map<string, number>();
  readonly probedAt = new Map<string, number>();
  readonly dialedAt = new Map<string, number>();
  readonly cascaded = new Set<string>();
  readonly fresh = new Set<string>();
  readonly upCalls = new Map<string, string>();

  constructor(
    readonly backoff: BackoffPolicy,
    /** In [0, 1): the jitter of retry delays. */
    readonly random: () => number,
  ) {}

  /** `now`: when it starts (a probe's next one is due an interval later). */
  started(action: Action, now: number): void {
    this.inflight.set(action.key, poolOf(action));
    if (action.kind === 'layout') this.inflightEpochs.set(action.key, action.epoch);
    if (action.kind === 'probe-link') this.probedAt.set(action.key, now);
  }

  succeeded(action: Action, now: number, openedRoomKey?: string): void {
    this.#settled(action);
    // A half-dead link replaced counts as a failure of the link until it is seen up (`sawUp`): a room whose
    // roster stays stale would otherwise have it replaced on every pass.
    if (action.kind === 'dial-link' && (action.replace !== undefined || action.replaceAtChild !== undefined))
      this.#fail(action.key, now, 'replaced a link up at one end only');
    else this.retries.delete(action.key);
    if (action.kind === 'dial-link') this.dialedAt.set(action.key, now);
    if (action.kind === 'layout') this.applied.set(action.key, action.epoch);
    if (action.kind === 'open' && openedRoomKey !== undefined) this.opened.add(openedRoomKey);
  }

  /** A failure: the next attempt waits (immediate first, then growing, capped, with jitter). */
  failed(action: Action, now: number, error: string): Retry {
    this.#settled(action);
    this.#unknown(action);
    this.dialedAt.delete(action.key);
    return this.#fail(action.key, now, error);
  }

  /** Given up without an outcome (a chair command that failed: its pictures were not applied). */
  abandoned(action: Action): void {
    this.#settled(action);
    this.#unknown(action);
  }

  /**
   * A layout that failed may still have been carried out: a request that timed out here can reach the MCU
   * on a retransmission (RFC 3261 17.1.2), or only its answer was lost. What the output shows is unknown
   * then, so nothing is taken as applied there: kept, a view that came back (the speaker pa, then pd failing,
   * then pa again) was taken as still shown while the MCU showed pd.
   */
  #unknown(action: Action): void {
    if (action.kind === 'layout') this.applied.delete(action.key);
  }

  #settled(action: Action): void {
    this.inflight.delete(action.key);
    this.inflightEpochs.delete(action.key);
  }

  #fail(key: string, now: number, error: string): Retry {
    const before = this.retries.get(key);
    const failures = (before?.failures ?? 0) + 1;
    const retry: Retry = {
      failures,
      nextAt: now + backoffDelay(failures, this.backoff, this.random()),
      since: before?.since ?? now,
      lastError: error,
    };
    this.retries.set(key, retry);
    return retry;
  }

  /** Links seen half-dead in this pass: keep when each was first seen, forget the others. */
  sawHalf(keys: readonly string[], now: number): void {
    const seen = new Set(keys);
    for (const k of this.halfSince.keys()) if (!seen.has(k)) this.halfSince.delete(k);
    for (const k of keys) if (!this.halfSince.has(k)) this.halfSince.set(k, now);
  }

  /**
   * Links seen up in this pass, with the Call-ID of those both ends named: a later drop of one is redialled at
   * once, not held back as still verifying. A session with every link up is cascaded from then on: its
   * endpoints never wait for its links again.
   */
  sawUp(links: readonly LinkView[], upCalls: ReadonlyMap<string, string>): void {
    for (const [k, call] of upCalls) this.upCalls.set(k, call);
    const notUp = new Set<string>();
    for (const l of links) {
      if (l.state !== 'up') {
        notUp.add(l.session);
        continue;
      }
      const key = linkKey(l.session, l.child);
      // Up after a dial: a run of replacements of a half-dead link (`succeeded`) is over too.
      if (this.dialedAt.delete(key)) this.retries.delete(key);
    }
    for (const l of links)
      if (!notUp.has(l.session)) {
        this.cascaded.add(l.session);
        this.fresh.delete(l.session);
      }
  }

  /** A room whose conference was closed: it must be opened again before it counts. */
  closedRoom(roomKey: string): void {
    this.opened.delete(roomKey);
  }

  /** Everything kept about a session that ended (its keys carry `|id|`). */
  forgetSession(id: string): void {
    this.cascaded.delete(id);
    this.fresh.delete(id);
    const mark = `|${id}|`;
    const ends = `|${id}`;
    for (const map of [this.retries, this.applied, this.halfSince, this.probedAt, this.dialedAt, this.upCalls] as Map<
      string,
      unknown
    >[])
      for (const k of map.keys()) if (k.includes(mark) || k.endsWith(ends)) map.delete(k);
  }
}
