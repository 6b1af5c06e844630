/**
 * The cascade manager's runtime: it keeps the desired state of every live
 * session (read from the store, reloaded when another process changes it),
 * the observed state of every room of those sessions (from the drivers'
 * conference events and MCU health), asks the pure reconciler what to do,
 * and carries it out through the drivers: bounded, retried with backoff,
 * every outcome fed back. Progress goes to the log, to the store (link
 * states, session events) and to listeners of its events.
 */
import type { Logger } from 'pino';
import type { CascadeSettings } from '../config/index.js';
import { type Clock, isCascadedError, onceClose, realClock, type TimerHandle, TypedEmitter } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import type { Conference, McuDriver, McuPool, QualityReport, RosterEntry, RosterUpdate } from '../mcu/index.js';
import type { Plan } from '../planner/index.js';
import type { CascadeHead, LinkStateRecord, NewEvent, Store } from '../store/index.js';
import {
  type AdmitOptions,
  admitSession,
  endSession,
  replanSession,
  type SessionRequest,
  selectForChair,
} from './admission.js';
import {
  type DesiredSession,
  desiredSession,
  type EndpointDirectory,
  reselect,
  type SessionSpec,
  type SessionView,
} from './desired.js';
import { CascadeError } from './errors.js';
import { Bookkeeping, poolOf } from './memory.js';
import { PassPacer } from './pacer.js';
import {
  type Action,
  decide,
  decideLayouts,
  endpointsWithoutView,
  type LinkStateName,
  type LinkView,
  linkKey,
  linkUp,
  type Observed,
  type ObservedEntry,
  type ObservedMcu,
  type ObservedRoom,
  type Pool,
  prepareSession,
  type ReconcileOptions,
  type RoomState,
  roomKey,
} from './reconcile.js';

export interface CascadeManagerOptions {
  readonly store: Store;
  readonly inventory: Inventory;
  readonly mcus: McuPool;
  readonly settings: CascadeSettings;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** In [0, 1): the jitter of retries (default Math.random). */
  readonly random?: () => number;
  /** The chair's screen of a session that does not choose (`daemon.chair.layout`; default full). */
  readonly chairLayout?: 'full' | 'pip';
}

/** A link changed state. */
export interface LinkEvent {
  readonly session: string;
  readonly child: string;
  readonly parent: string;
  readonly state: LinkStateName;
  readonly previous: LinkStateName | undefined;
  readonly detail?: string;
  /** The manager's clock (monotonic ms). */
  readonly at: number;
}

/** A layout was applied (a link's picture, the chair's screen, or an endpoint's screen: the session's view). */
export interface LayoutEvent {
  readonly session: string;
  readonly mcu: string;
  readonly output: string;
  readonly source: string;
  readonly why: 'uplink' | 'downlink' | 'chair' | 'view';
  readonly at: number;
}

export interface SessionEvent {
  readonly session: string;
  /**
   * admitted: planned and stored by this manager's `admit` (its dial starts at once, before `admit` returns; a
   * session another process admitted is first seen by a poll); up: every link of the plan up (again);
   * replanned; ended: torn down and closed.
   */
  readonly kind: 'admitted' | 'up' | 'replanned' | 'ended';
  readonly at: number;
  readonly data?: unknown;
}

/**
 * A session endpoint's own call in its room came up or went away (not by the manager's doing: an endpoint
 * it no longer wants there is not reported), as the room's roster shows it.
 */
export interface ParticipantEvent {
  readonly session: string;
  readonly mcu: string;
  readonly room: string;
  readonly endpoint: string;
  readonly state: 'connected' | 'disconnected';
  /** Wall-clock ms. */
  readonly at: number;
}

/** A call quality report (RFC 6035) from a session's room: an endpoint's call or a cascade link of the plan. */
export interface QualityEvent {
  readonly session: string;
  readonly mcu: string;
  readonly endpoint?: string;
  readonly link?: { readonly child: string; readonly parent: string };
  readonly report: QualityReport;
}

export type CascadeManagerEvents = {
  link: [LinkEvent];
  layout: [LayoutEvent];
  session: [SessionEvent];
  participant: [ParticipantEvent];
  quality: [QualityEvent];
};

/** See `CascadeManager.claimChair`. */
export interface ChairClaim {
  done(ok: boolean): void;
}

const NO_CLAIM: ChairClaim = { done: () => {} };
const NOTHING_HELD = { pools: new Set<Pool>(), keys: new Set<string>() } as const;

/** Counts of a session's links by state, and the links themselves. */
export interface CascadeProgress {
  readonly session: string;
  readonly phase: 'live' | 'ending';
  readonly root: string;
  readonly counts: Readonly<Record<LinkStateName, number>>;
  readonly links: readonly LinkView[];
  /** The session's dialable endpoints, and how many are in their rooms (as last counted, about once a second). */
  readonly endpoints: { readonly wanted: number; readonly in: number };
  /** Every endpoint in its room sees the session's view (as of the last pass; docs/cascade.md). */
  readonly viewsApplied: boolean;
}

export interface CascadeManager extends TypedEmitter<CascadeManagerEvents> {
  /** Progress of every session the manager reconciles (or one). */
  progress(sessionId?: string): CascadeProgress[];
  /**
   * How many endpoints of a live session, in their rooms, do not see its view yet (the chair excepted; docs/
   * cascade.md, "What everyone sees"): 0 once `viewsApplied`, else counted now (a walk of its endpoints);
   * undefined for a session the manager does not hold live.
   */
  endpointsWithoutView(sessionId: string): number | undefined;
  /** Admit a session (docs/cascade.md, "Sessions") and start dialing it at once. */
  admit(request: SessionRequest, options?: AdmitOptions): Promise<CascadeHead>;
  /** End a session: tear-down starts at once. Idempotent. */
  end(sessionId: string): Promise<CascadeHead>;
  /**
   * Record the endpoint on the chair's screen (or none). The chair module switches itself; the manager keeps
   * the selection applied, and re-applies it after a redial.
   */
  select(sessionId: string, endpoint: string | null): Promise<CascadeHead>;
  /**
   * A chair command takes over the pictures of its path (docs/chair.md): the selection is recorded at once
   * (in memory now, one store row written behind), so a redial under way applies it and not the previous
   * one, and the path's layouts count as in flight until `done`. `done(true)`: they were applied on the
   * calls they ride on now (not sent again; applied again after a redial). `done(false)`: the command
   * failed, the previous selection comes back unless a newer claim came since.
   */
  claimChair(sessionId: string, endpoint: string | null): ChairClaim;
  /** A live or ending session as the manager holds it: its head (rooms, selection, request) and its plan. */
  session(sessionId: string): { readonly head: CascadeHead; readonly plan: Plan } | undefined;
  /** Dial a link of the session again now, past its backoff (a chair command is waiting for it). */
  healNow(sessionId: string, child: string): void;
  /** Read the store now (the daemon also polls it). */
  sync(): Promise<void>;
  /** Reconcile passes run since start (each walks every session): what a command or an event costs in passes. */
  readonly passes: number;
  close(): Promise<void>;
}

const NO_COUNTS: Record<LinkStateName, number> = { planned: 0, dialing: 0, up: 0, failed: 0 };
/** How often the endpoints in their rooms are counted for progress (a pass over every session endpoint). */
const ENDPOINT_COUNT_MS = 1_000;
/** How often the endpoint count is logged while it changes. */
const ENDPOINT_LOG_MS = 5_000;
/** Hang-up answers that mean "already gone" (RFC 4579 5.6: the focus does not know that participant). */
const GONE = new Set([404, 481]);

export async function startCascadeManager(options: CascadeManagerOptions): Promise<CascadeManager> {
  const m = new Manager(options);
  await m.start();
  return m;
}

interface SessionState {
  head: CascadeHead;
  plan: Plan;
  desired: DesiredSession;
  /** When the manager started to dial it (its clock), for the "all up in N ms" line. */
  startedAt: number;
  allUp: boolean;
  /** Was every link up once already (since the manager started)? */
  wasUp: boolean;
  endpoints: { wanted: number; in: number; allInLogged: boolean; lastLogAt: number };
  viewsApplied: boolean;
  /**
   * Its rooms open without their quality subscriptions until its first dial is over (the reconciler's
   * `cascading`): 74 SUBSCRIBEs and their reports at both ends took CPU from the links' dial (docs/cascade.md).
   */
  qualityHeld: boolean;
}

/** One room of a session as the manager watches it. */
class RoomWatch implements ObservedRoom {
  state: RoomState;
  reports: boolean;
  established: boolean;
  readonly roster = new Map<string, ObservedEntry>();
  readonly links = new Map<string, ObservedEntry>();
  version = 0;
  reportedAt?: number;
  readonly #off: () => void;
  /** Checks to run after every change (see `until`). */
  readonly #waiters = new Set<(gone: boolean) => void>();

  get dialsEarly(): boolean {
    return this.conference.capabilities.refer === 'out-of-dialog';
  }

  constructor(
    readonly mcu: string,
    readonly uri: string,
    readonly conference: Conference,
    nextGen: () => number,
    changed: () => void,
    observer?: {
      participant(entity: string, state: 'connected' | 'disconnected'): void;
      quality(report: QualityReport): void;
    },
  ) {
    this.state = conference.state;
    this.established = conference.state === 'open';
    // An endpoint's call coming and going, as the roster shows it (not the state found when the watch began).
    let watching = false;
    const saw = (key: string, was: ObservedEntry | undefined, now: ObservedEntry | undefined) => {
      if (!watching || observer === undefined || (was ?? now)?.kind !== 'endpoint') return;
      const before = was?.status === 'connected';
      const after = now?.status === 'connected';
      if (before !== after) observer.participant(key, after ? 'connected' : 'disconnected');
    };
    this.reports = conference.capabilities.conferenceEvents === 'available';
    const apply = (e: RosterEntry) => {
      const key = roomKey(e.entity);
      const was = this.roster.get(key);
      const sameCall =
        was !== undefined && was.status === 'connected' && e.status === 'connected' && was.callId === e.callId;
      const entry: ObservedEntry = {
        entity: key,
        kind: e.kind,
        status: e.status,
        ...(e.callId === undefined ? {} : { callId: e.callId }),
        gen: sameCall ? was.gen : nextGen(),
      };
      this.roster.set(key, entry);
      saw(key, was, entry);
      if (e.kind === 'link') this.links.set(key, entry);
      else this.links.delete(key);
    };
    const remove = (key: string) => {
      saw(key, this.roster.get(key), undefined);
      this.roster.delete(key);
      this.links.delete(key);
    };
    const onRoster = (u: RosterUpdate) => {
      if (u.full) {
        const keep = new Set(u.changed.map((e) => roomKey(e.entity)));
        for (const k of [...this.roster.keys()]) if (!keep.has(k)) remove(k);
      }
      for (const e of u.changed) apply(e);
      for (const r of u.removed) remove(roomKey(r));
      this.version++;
      this.reportedAt = nextGen();
      for (const w of this.#waiters) w(false);
      changed();
    };
    const onState = (s: RoomState) => {
      this.state = s;
      // Open, or still opening with its control dialog up; lost (down) or closed, not until it comes back.
      this.established = s === 'open' || (s === 'opening' && this.established);
      this.version++;
      changed();
    };
    const onEstablished = () => {
      this.established = true;
      this.version++;
      changed();
    };
    const onCapabilities = () => {
      this.reports = conference.capabilities.conferenceEvents === 'available';
      this.version++;
      changed();
    };
    const onQuality = (q: QualityReport) => observer?.quality(q);
    for (const e of conference.roster.values()) apply(e);
    watching = true;
    conference.on('roster', onRoster);
    conference.on('state', onState);
    conference.on('established', onEstablished);
    conference.on('capabilities', onCapabilities);
    conference.on('quality', onQuality);
    this.#off = () => {
      conference.off('roster', onRoster);
      conference.off('state', onState);
      conference.off('established', onEstablished);
      conference.off('capabilities', onCapabilities);
      conference.off('quality', onQuality);
    };
  }

  detach(): void {
    this.#off();
    for (const w of this.#waiters) w(true);
  }

  /** Resolves true once `test()` holds after a roster change (or now), false after `ms` or when detached. */
  until(test: () => boolean, ms: number, clock: Clock): Promise<boolean> {
    if (test()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        this.#waiters.delete(check);
        clock.clearTimeout(timer);
        resolve(v);
      };
      const check = (gone: boolean) => {
        if (gone) done(false);
        else if (test()) done(true);
      };
      const timer = clock.setTimeout(() => done(false), ms);
      this.#waiters.add(check);
    });
  }

  #counted?: { readonly version: number; readonly list: readonly string[]; readonly n: number };

  /** How many of `list` (URIs) are connected here; remembered until the room changes (counted every second). */
  connectedOf(list: readonly string[]): number {
    const c = this.#counted;
    if (c !== undefined && c.version === this.version && c.list === list) return c.n;
    let n = 0;
    for (const ep of list) if (this.roster.get(roomKey(ep))?.status === 'connected') n++;
    this.#counted = { version: this.version, list, n };
    return n;
  }
}

class Manager extends TypedEmitter<CascadeManagerEvents> implements CascadeManager {
  readonly #store: Store;
  readonly #inventory: Inventory;
  readonly #pool: McuPool;
  readonly #settings: CascadeSettings;
  readonly #chairLayout: 'full' | 'pip';
  readonly #log?: Logger;
  readonly #clock: Clock;
  readonly #book: Bookkeeping;
  readonly #opts: ReconcileOptions;
  readonly #dir: EndpointDirectory;
  /** Endpoint ids by the room key of their SIP URI: who a roster entry or a quality report is about. */
  readonly #endpointByKey = new Map<string, string>();
  /** The inventory's endpoint URIs and their room keys, computed once (`prepareSession`). */
  readonly #keyOfSip = new Map<string, string>();
  readonly #sessions = new Map<string, SessionState>();
  readonly #rooms = new Map<string, RoomWatch>();
  readonly #mcus = new Map<string, ObservedMcu>();
  /** Each session's links as the last pass saw them (child -> view), and how many are in each state. */
  readonly #links = new Map<
    string,
    { readonly views: Map<string, LinkView>; readonly counts: Record<LinkStateName, number> }
  >();
  readonly #reported = new Set<string>();
  /** The chair command holding each session's selection path (claimChair). */
  readonly #claims = new Map<string, ChairClaim>();
  /** Rooms (`session|mcu`) whose endpoints' screens failed since one last succeeded: logged once. */
  readonly #viewFailing = new Set<string>();
  readonly #unsubscribe: (() => void)[] = [];
  #gen = 0;
  #closed = false;
  /** When passes run (pacer.ts). */
  readonly #pacer: PassPacer;
  /**
   * What the last pass held back (Decision.heldPools, heldKeys): a result asks for a pass only if it frees a
   * slot of a pool that was full or is the result of a key that was held (a chair command's own steps finishing
   * beside an unrelated held key, say an endpoint being dialled, ask for none).
   */
  #held: { readonly pools: ReadonlySet<Pool>; readonly keys: ReadonlySet<string> } = NOTHING_HELD;
  /** Links the last pass held children back for (`Decision.awaited`): their dial's success asks for a pass at once. */
  #awaited: ReadonlySet<string> = new Set();
  #passes = 0;
  /** The store's sessions were read once: a session first seen after that was admitted while we run (`fresh`). */
  #loadedOnce = false;
  #wakeTimer?: TimerHandle;
  #lastCount = Number.NEGATIVE_INFINITY;
  #countTimer?: TimerHandle;
  #pollTimer?: TimerHandle;
  #dataVersion = -1;
  #syncing?: Promise<void>;
  /** Plans this manager just stored (`admit`): its next load dials from them rather than reading them back. */
  readonly #admitted = new Map<string, { readonly planVersion: number; readonly plan: Plan }>();
  #resync = false;
  /** Store writes, one after another (link states and events), so close() can wait for the last. */
  #writes: Promise<void> = Promise.resolve();
  /**
   * Chair selections recorded in memory and not yet in the store, the latest per session: written once the
   * event loop has handled the I/O of its turn (`clock.setImmediate`), so the commands of one burst (50 in
   * flight) write one commit, not one each (issue 11). Not later: a selection lost to a crash is not only a
   * missing record, the restarted daemon would put the selection before back on the MCUs, over the one the
   * chair was shown (a second's wait was tried in session 6 for a tenth of a lone command's CPU; the row is in
   * the store long before the command's result, a round trip later). Not a 0 ms timer either: that is a
   * sleep and a wake-up of its own per command (docs/chair.md, "CPU (session 8)").
   */
  readonly #unwritten = new Map<string, string | null>();
  #selectionTimer?: TimerHandle;
  /**
   * Events not written yet: those of one pass go in one transaction (a national dial's 62 `cascade.link.up`
   * were 62 transactions, each blocking the event loop for its commit).
   */
  #events: NewEvent[] = [];
  /** Per session, the plan's links as last given to the store to keep (a save names them only when they change). */
  readonly #keptLinks = new Map<string, string>();
  readonly close: () => Promise<void>;

  constructor(o: CascadeManagerOptions) {
    super();
    this.#store = o.store;
    this.#inventory = o.inventory;
    this.#pool = o.mcus;
    this.#settings = o.settings;
    this.#chairLayout = o.chairLayout ?? 'full';
    this.#log = o.logger?.child({ module: 'cascade' });
    this.#clock = o.clock ?? realClock;
    this.#pacer = new PassPacer(this.#clock, () => this.#pass());
    this.#book = new Bookkeeping(o.settings.retry, o.random ?? Math.random);
    this.#opts = {
      linkConcurrency: o.settings.linkConcurrency,
      participantConcurrency: o.settings.endpointConcurrency,
      layoutConcurrency: o.settings.layoutConcurrency,
      viewConcurrency: o.settings.layoutConcurrency,
      halfDeadGraceMs: o.settings.halfDeadGraceMs,
      replanAfterMs: o.settings.replanAfterMs,
      unexpectedLinks: o.settings.unexpectedLinks,
      endpoints: o.settings.dialEndpoints ? 'all' : 'mains',
      linkProbeMs: o.settings.linkProbeMs,
    };
    const levels = new Map(o.inventory.levels.map((l, i) => [l.id, i]));
    // Looked up for each of a national session's 11,000 endpoints when it is loaded, before its first pass.
    const sips = new Map<string, string | undefined>();
    const ranks = new Map<string, number>();
    for (const e of o.inventory.endpoints) {
      sips.set(e.id, e.sip);
      ranks.set(e.id, levels.get(e.level) ?? levels.size);
      if (e.sip === undefined) continue;
      const key = roomKey(e.sip);
      this.#endpointByKey.set(key, e.id);
      this.#keyOfSip.set(e.sip, key);
    }
    this.#dir = { uri: (id) => sips.get(id), levelRank: (id) => ranks.get(id) ?? levels.size };
    this.onListenerError((err, event) => this.#log?.error({ err, event }, 'cascade listener threw'));
    this.close = onceClose(() => this.#close());
  }

  async start(): Promise<void> {
    const now = this.#clock.now();
    for (const [id, d] of this.#pool.drivers) {
      this.#mcus.set(id, { up: d.health.up, since: now });
      const onHealth = () => {
        const was = this.#mcus.get(id);
        if (was?.up !== d.health.up) this.#mcus.set(id, { up: d.health.up, since: this.#clock.now() });
        this.#kick();
      };
      d.on('health', onHealth);
      this.#unsubscribe.push(() => d.off('health', onHealth));
    }
    this.#dataVersion = await this.#store.externalChanges();
    await this.sync();
    this.#schedulePoll();
    this.#kick();
  }

  // ---- desired state ---------------------------------------------------------

  sync(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#syncing !== undefined) {
      this.#resync = true;
      return this.#syncing;
    }
    this.#syncing = this.#load()
      .catch((err: unknown) => this.#log?.error({ err }, 'could not read sessions from the store'))
      .finally(() => {
        this.#syncing = undefined;
        if (this.#resync && !this.#closed) {
          this.#resync = false;
          void this.sync();
        }
      });
    return this.#syncing;
  }

  async #load(): Promise<void> {
    const heads = await this.#store.listCascades();
    const seen = new Set<string>();
    for (const stored of heads) {
      seen.add(stored.sessionId);
      const known = this.#sessions.get(stored.sessionId);
      // A chair command's selection is in memory first, its row written behind: the store may not have it yet.
      const head =
        known !== undefined && (this.#claims.has(stored.sessionId) || this.#unwritten.has(stored.sessionId))
          ? { ...stored, selection: known.head.selection }
          : stored;
      let plan = known?.plan;
      const admitted = this.#admitted.get(head.sessionId);
      this.#admitted.delete(head.sessionId);
      if (known === undefined || known.head.planVersion !== head.planVersion) {
        if (admitted?.planVersion === head.planVersion) plan = admitted.plan;
        else {
          const record = await this.#store.getCascade(head.sessionId);
          if (record === undefined) continue;
          plan = record.plan as Plan;
        }
      }
      if (
        known !== undefined &&
        plan === known.plan &&
        known.head.state === head.state &&
        known.head.selection === head.selection &&
        Object.keys(known.head.rooms).length === Object.keys(head.rooms).length
      ) {
        known.head = head;
        continue;
      }
      const spec: SessionSpec = {
        id: head.sessionId,
        phase: head.state === 'ending' ? 'ending' : 'live',
        plan: plan!,
        rooms: head.rooms,
        mains: mainsOf(plan!, head.request),
        selection: head.selection,
        chairLayout: chairLayoutOf(head.request) ?? this.#chairLayout,
        view: viewOf(head.request),
      };
      const desired = desiredSession(spec, this.#dir);
      // After this tick's pass (which sends the first REFERs), before the rooms' rosters can come in.
      this.#clock.setImmediate(() => prepareSession(desired, this.#keyOfSip));
      // Admitted since this process started reading the store (here or by the CLI): nobody else dialled it.
      if (known === undefined && this.#loadedOnce && head.state === 'live') this.#book.fresh.add(head.sessionId);
      if (known === undefined) {
        this.#log?.info(
          { session: head.sessionId, title: head.title, root: desired.root, links: Object.keys(desired.parent).length },
          `session ${head.sessionId} (${head.title}): ${head.state === 'ending' ? 'tearing down' : 'dialing'} ${Object.keys(desired.parent).length} cascade links from ${desired.root}`,
        );
        if (desired.undialable.length > 0)
          this.#log?.warn(
            { session: head.sessionId, count: desired.undialable.length, first: desired.undialable.slice(0, 5) },
            'session endpoints without a SIP URI in the inventory: not dialled',
          );
      } else if (known.head.state !== head.state && head.state === 'ending')
        this.#log?.info({ session: head.sessionId }, `session ${head.sessionId}: ending, tearing the cascade down`);
      this.#sessions.set(head.sessionId, {
        head,
        plan: plan!,
        desired,
        startedAt: known?.startedAt ?? this.#clock.now(),
        allUp: known?.allUp ?? false,
        wasUp: known?.wasUp ?? false,
        endpoints: known?.endpoints ?? { wanted: 0, in: 0, allInLogged: false, lastLogAt: 0 },
        viewsApplied: false,
        qualityHeld: known?.qualityHeld ?? true,
      });
      for (const [mcu, uri] of Object.entries(desired.rooms)) this.#watch(mcu, uri);
    }
    for (const id of [...this.#sessions.keys()]) if (!seen.has(id)) this.#forget(id, false);
    this.#loadedOnce = true;
    this.#kick();
  }

  #watch(mcu: string, uri: string): void {
    const key = roomKey(uri);
    if (this.#rooms.has(key)) return;
    const driver: McuDriver | undefined = this.#pool.drivers.get(mcu);
    if (driver === undefined) {
      this.#log?.warn({ mcu }, `MCU ${mcu} has no driver: its rooms cannot be reached`);
      return;
    }
    let conference: Conference;
    try {
      conference = driver.conference(uri);
    } catch (err) {
      this.#log?.error({ err, mcu, uri }, `room ${uri} of MCU ${mcu} cannot be used`);
      return;
    }
    this.#rooms.set(
      key,
      new RoomWatch(
        mcu,
        uri,
        conference,
        () => ++this.#gen,
        () => this.#kick(),
        {
          participant: (entity, state) => this.#participant(mcu, uri, entity, state),
          quality: (report) => this.#quality(mcu, uri, report),
        },
      ),
    );
  }

  /** The session whose room on `mcu` is `uri`. */
  #sessionOfRoom(mcu: string, uri: string): SessionState | undefined {
    const key = roomKey(uri);
    for (const s of this.#sessions.values()) {
      const room = s.desired.rooms[mcu];
      if (room !== undefined && roomKey(room) === key) return s;
    }
    return undefined;
  }

  #participant(mcu: string, uri: string, key: string, state: 'connected' | 'disconnected'): void {
    const s = this.#sessionOfRoom(mcu, uri);
    const endpoint = this.#endpointByKey.get(key);
    if (s === undefined || endpoint === undefined || s.desired.phase !== 'live') return;
    // Only an endpoint the session wants in this room: one the manager hung up or moved is no drop.
    const sip = this.#dir.uri(endpoint);
    if (sip === undefined || !(s.desired.participants[mcu]?.includes(sip) ?? false)) return;
    this.safeEmit('participant', {
      session: s.head.sessionId,
      mcu,
      room: uri,
      endpoint,
      state,
      at: this.#clock.wallNow(),
    });
  }

  #quality(mcu: string, uri: string, report: QualityReport): void {
    const s = this.#sessionOfRoom(mcu, uri);
    if (s === undefined) return;
    const key = roomKey(report.entity);
    const endpoint = this.#endpointByKey.get(key);
    if (endpoint !== undefined) {
      this.safeEmit('quality', { session: s.head.sessionId, mcu, endpoint, report });
      return;
    }
    // A link: the far end is the room of another MCU of the plan, its parent or one of its children.
    const parent = s.desired.parent[mcu];
    const far = Object.entries(s.desired.rooms).find(([, r]) => roomKey(r) === key)?.[0];
    if (far === undefined) return;
    const link =
      parent === far
        ? { child: mcu, parent: far }
        : s.desired.parent[far] === mcu
          ? { child: far, parent: mcu }
          : undefined;
    if (link !== undefined) this.safeEmit('quality', { session: s.head.sessionId, mcu, link, report });
  }

  /** A session gone from the reconciler: its rooms are closed (control dialogs only; nothing on the MCU changes). */
  #forget(id: string, closeRooms: boolean): Promise<void> {
    const s = this.#sessions.get(id);
    this.#sessions.delete(id);
    this.#keptLinks.delete(id);
    this.#book.forgetSession(id);
    this.#links.delete(id);
    for (const k of [...this.#viewFailing]) if (k.startsWith(`${id}|`)) this.#viewFailing.delete(k);
    if (s === undefined) return Promise.resolve();
    const closing: Promise<void>[] = [];
    for (const uri of Object.values(s.head.rooms)) {
      const key = roomKey(uri);
      const w = this.#rooms.get(key);
      if (w === undefined) continue;
      w.detach();
      this.#rooms.delete(key);
      this.#book.closedRoom(key);
      if (closeRooms) closing.push(w.conference.close().catch(() => {}));
    }
    return Promise.all(closing).then(() => {});
  }

  // ---- the reconcile loop --------------------------------------------------------

  #kick(urgent = false): void {
    this.#pacer.kick(urgent);
  }

  #observed(): Observed {
    return { now: this.#clock.now(), mcus: this.#mcus, rooms: this.#rooms };
  }

  /** One pass; returns the time spent starting its actions (the pacer leaves it out of the gap). */
  #pass(): number {
    if (this.#closed) return 0;
    this.#passes++;
    const now = this.#clock.now();
    const sessions = [...this.#sessions.values()].map((s) => s.desired);
    const decision = decide(sessions, this.#observed(), this.#book, this.#opts);
    this.#held = { pools: decision.heldPools, keys: decision.heldKeys };
    this.#awaited = decision.awaited;
    this.#book.sawHalf(decision.half, now);
    this.#book.sawUp(decision.links, decision.upCalls);
    // What the pass decided leaves first: its progress (events, store rows) waits the few ms that costs.
    const acting = this.#clock.now();
    for (const a of decision.actions) this.#start(a);
    const acted = this.#clock.now() - acting;
    this.#track(decision.links, now);
    const pending = new Set(decision.viewsPending);
    for (const [id, s] of this.#sessions) s.viewsApplied = s.desired.phase === 'live' && !pending.has(id);
    for (const s of this.#sessions.values())
      if (s.qualityHeld && s.desired.phase === 'live' && !decision.cascading.includes(s.desired.id))
        this.#releaseQuality(s);
    if (now - this.#lastCount >= ENDPOINT_COUNT_MS) {
      this.#lastCount = now;
      this.#countEndpoints(now);
    } else if (this.#countTimer === undefined)
      // A count is due later: one pass then, even if nothing else happens.
      this.#countTimer = this.#clock.setTimeout(
        () => {
          this.#countTimer = undefined;
          this.#kick();
        },
        this.#lastCount + ENDPOINT_COUNT_MS - now,
      );
    this.#report(decision.unexpected);
    this.#clock.clearTimeout(this.#wakeTimer);
    if (decision.wakeAt !== undefined)
      this.#wakeTimer = this.#clock.setTimeout(() => this.#kick(), Math.max(0, decision.wakeAt - now));
    return acted;
  }

  /** The session's first dial is over: its rooms' quality reports may come. */
  #releaseQuality(s: SessionState): void {
    s.qualityHeld = false;
    for (const uri of Object.values(s.desired.rooms)) this.#rooms.get(roomKey(uri))?.conference.reportQuality();
  }

  #start(a: Action): void {
    this.#book.started(a, this.#clock.now());
    this.#effect(a).then(
      () => {
        if (this.#closed) return;
        this.#book.succeeded(a, this.#clock.now(), a.kind === 'open' ? roomKey(a.room) : undefined);
        this.#succeeded(a);
        // A picture applied opens nothing new (a link up or a room open may): a pass only if one was held back,
        // or, for a screen, while its session's view is not all applied yet (a pass then finds it done).
        if (
          a.kind !== 'layout' ||
          this.#wantedAgain(a) ||
          (a.why === 'view' && this.#sessions.get(a.session)?.viewsApplied === false)
        )
          this.#kick(a.kind === 'dial-link' && this.#awaited.has(a.key));
      },
      (err: unknown) => {
        if (this.#closed) return;
        const retry = this.#book.failed(a, this.#clock.now(), describe(err));
        this.#failedAction(a, err, retry.failures, retry.nextAt - this.#clock.now());
        this.#kick();
      },
    );
  }

  /** The last pass held back this action's key or a slot of its pool: its result may need another pass. */
  #wantedAgain(a: Action): boolean {
    return this.#held.keys.has(a.key) || this.#held.pools.has(poolOf(a));
  }

  #conference(room: string): Conference {
    const w = this.#rooms.get(roomKey(room));
    if (w === undefined) throw new Error(`room ${room} is not watched`);
    return w.conference;
  }

  async #effect(a: Action): Promise<void> {
    switch (a.kind) {
      case 'open':
        await this.#conference(a.room).open({ holdQuality: this.#sessions.get(a.session)?.qualityHeld === true });
        return;
      case 'dial-link': {
        const c = this.#conference(a.room);
        if (a.replace !== undefined || a.replaceAtChild !== undefined) {
          // The first replacement of a run is news; the next ones (the link still half-dead after the last:
          // a roster stale for good, say) are debug detail, each after a growing wait (memory.ts `succeeded`).
          const failures = this.#book.retries.get(a.key)?.failures ?? 0;
          const fields = { session: a.session, child: a.child, parent: a.parent, failures };
          // A drop whose BYE has not reached the other end yet is an ordinary heal: info, not a warning.
          if (a.endedAt !== undefined && failures === 0)
            this.#log?.info(
              fields,
              `link ${a.child} -> ${a.parent}: the call ended at the ${a.endedAt}, hanging it up at the other end and dialing it again`,
            );
          else {
            const msg = `link ${a.child} -> ${a.parent} is up at one end only: hanging it up and dialing it again`;
            if (failures === 0) this.#log?.warn(fields, msg);
            else this.#log?.debug(fields, msg);
          }
          // Half-dead again after a replacement: one end's roster may be the stale one (a notification lost
          // for good), so each end that reports its roster is asked for its full state, as for an endpoint's
          // dial (`#confirm`). Not on the first: a drop's heal would pay two full states, racing its redial.
          // This replacement was decided on those rosters: it waits for the full states (at most the grace)
          // and takes a last look. A link they show up at both ends is left alone: hanging it up took down
          // a link that had just come up (the loss test, session 12: a dead subscription's roster, stale for
          // seconds, came back with the link up while its replacement's hang-up was on its way).
          if (failures > 0) {
            const upAfterAll = await this.#upOnFullRosters(a);
            // Closed meanwhile: no hang-up may leave after close() (it would drop a link a restart keeps).
            if (this.#closed) return;
            if (upAfterAll) {
              this.#log?.info(fields, `link ${a.child} -> ${a.parent} is up on both ends' full rosters: left as it is`);
              return;
            }
          }
          if (a.replace !== undefined) await hangUp(() => c.hangUpLink(a.replace!));
          // Left at the child, the old call would make it refuse the new one (486) until its session timer.
          if (a.replaceAtChild !== undefined)
            await hangUp(() => this.#conference(a.target).hangUpLink(a.replaceAtChild!));
        }
        await c.dialLink(a.target);
        return;
      }
      case 'hang-up-link':
        await hangUp(() => this.#conference(a.room).hangUpLink(a.target));
        return;
      case 'probe-link':
        await this.#probe(a);
        return;
      case 'dial-participant':
        await this.#conference(a.room).dialParticipant(a.endpoint);
        await this.#confirm(a);
        return;
      case 'hang-up-participant':
        await hangUp(() => this.#conference(a.room).hangUpParticipant(a.endpoint));
        return;
      case 'layout':
        // Layout, sources and keyframe request in one round trip (docs/mcu.md, "switchOutput").
        if (a.inset === undefined) await this.#conference(a.room).switchOutput(a.output, 'single', [a.source]);
        else await this.#conference(a.room).switchOutput(a.output, 'pip', [a.source, a.inset]);
        return;
      case 'replan':
        await this.#replan(a.session, a.lost);
        return;
      case 'finish':
        await this.#finish(a.session);
        return;
    }
  }

  /** Asks both ends of a half-dead link for their full rosters; true when these show the link up after all. */
  async #upOnFullRosters(a: Extract<Action, { kind: 'dial-link' }>): Promise<boolean> {
    const since = this.#gen;
    const asked: RoomWatch[] = [];
    for (const room of [a.room, a.target]) {
      const w = this.#rooms.get(roomKey(room));
      if (w?.reports !== true) continue;
      w.conference.refreshRoster();
      asked.push(w);
    }
    const grace = this.#settings.halfDeadGraceMs;
    await Promise.all(asked.map((w) => w.until(() => (w.reportedAt ?? 0) > since, grace, this.#clock)));
    const s = this.#sessions.get(a.session);
    return s !== undefined && linkUp(s.desired, this.#observed(), a.child);
  }

  /**
   * An MCU that reports its roster accepted a dial: the participant must show up in that roster (its
   * notification may come a little after the REFER's outcome, on another dialog). Until then the dial stays
   * in flight, so it is not sent again. A roster that does not list it within the grace contradicts the MCU's
   * own answer: a notification was lost for good (an MCU that dropped our subscription, or a simulator that
   * once sent a change to nobody, docs/cascade.md "The benchmark"). The full roster is asked for and the dial
   * fails, to be logged and tried again with backoff, instead of being sent again and again unnoticed.
   */
  async #confirm(a: { readonly mcu: string; readonly room: string; readonly endpoint: string }): Promise<void> {
    const w = this.#rooms.get(roomKey(a.room));
    if (w === undefined || !w.reports) return;
    const entity = roomKey(a.endpoint);
    const listed = () => w.roster.get(entity)?.status === 'connected';
    if (await w.until(listed, this.#settings.halfDeadGraceMs, this.#clock)) return;
    w.conference.refreshRoster();
    throw new CascadeError(
      'CASCADE_ERR_UNCONFIRMED',
      `MCU ${a.mcu} accepted the dial of ${a.endpoint} but its roster does not list it: asking for its full roster`,
      { details: { mcu: a.mcu, room: a.room, participant: a.endpoint } },
    );
  }

  /**
   * A link between two MCUs without the conference event package: each end is asked whether it still has it
   * by re-sending the layout of the output the link is (single, as the reconciler set it: nothing changes on
   * screen). An MCU that lost it answers 404 (no such connection): the parent's driver then forgets it, and
   * the reconciler sees the link down and dials it again; gone at the child only (a half-dead link), it is
   * hung up at the parent. Any other outcome (a timeout, a refusal) is no verdict: the next probe asks again.
   */
  async #probe(a: Extract<Action, { kind: 'probe-link' }>): Promise<void> {
    const parent = this.#conference(a.room);
    const child = this.#conference(a.childRoom);
    const has = (c: Conference, entity: string) =>
      c.setLayout(entity, 'single').then(
        () => true,
        (err: unknown) =>
          !(
            isCascadedError(err, 'MCU_ERR_REJECTED') &&
            (err.details as { msmlResponse?: number } | undefined)?.msmlResponse === 404
          ),
      );
    const [atParent, atChild] = await Promise.all([has(parent, a.target), has(child, a.peer)]);
    if (atParent && atChild) return;
    this.#log?.warn(
      { session: a.session, child: a.child, parent: a.parent, atParent, atChild },
      `link ${a.child} -> ${a.parent} is gone at ${atParent ? a.child : atChild ? a.parent : 'both ends'} (probe)`,
    );
    if (atParent) await hangUp(() => parent.hangUpLink(a.target));
  }

  async #replan(id: string, lost: readonly string[]): Promise<void> {
    this.#log?.warn(
      { session: id, lost },
      `session ${id}: MCUs unusable for too long (${lost.join(', ')}): re-planning`,
    );
    const out = await replanSession(this.#store, this.#inventory, id, { lostMcus: lost });
    const changes = out.plan.changes;
    const data = {
      lost,
      planVersion: out.record.planVersion,
      droppedMcus: changes?.droppedMcus ?? [],
      addedMcus: changes?.addedMcus ?? [],
      relinkedMcus: changes?.relinkedMcus ?? [],
      movedEndpoints: changes?.movedEndpoints.length ?? 0,
      droppedEndpoints: changes?.droppedEndpoints ?? [],
    };
    this.#log?.info(
      { session: id, ...data, movedEndpoints: data.movedEndpoints },
      `session ${id} re-planned without ${lost.join(', ')}: ${data.movedEndpoints} endpoints moved, ${data.droppedEndpoints.length} left out`,
    );
    this.#event('cascade.replan', id, data);
    this.safeEmit('session', { session: id, kind: 'replanned', at: this.#clock.now(), data });
    await this.sync();
  }

  async #finish(id: string): Promise<void> {
    await this.#forget(id, true);
    await this.#store.setCascadeState(id, 'ended');
    this.#log?.info({ session: id }, `session ${id} ended: cascade torn down, rooms released`);
    this.#event('cascade.session.ended', id, {});
    this.safeEmit('session', { session: id, kind: 'ended', at: this.#clock.now() });
  }

  #succeeded(a: Action): void {
    if (a.kind === 'layout' && a.why === 'view') this.#viewFailing.delete(`${a.session}|${a.mcu}`);
    if (a.kind === 'layout')
      this.safeEmit('layout', {
        session: a.session,
        mcu: a.mcu,
        output: a.output,
        source: a.source,
        why: a.why,
        at: this.#clock.now(),
      });
    else if (a.kind === 'hang-up-link' && a.why !== 'teardown') {
      this.#log?.info({ session: a.session, mcu: a.mcu, target: a.target, why: a.why }, `hung up ${a.why} link`);
      this.#event('cascade.link.hung-up', a.session, { mcu: a.mcu, target: a.target, why: a.why });
    }
  }

  #failedAction(a: Action, err: unknown, failures: number, waitMs: number): void {
    const code = isCascadedError(err) ? err.code : undefined;
    const msg = describe(err);
    const what =
      a.kind === 'dial-link'
        ? `dialing link ${a.child} -> ${a.parent}`
        : a.kind === 'layout'
          ? `layout of ${a.output} on ${a.mcu}`
          : a.kind.endsWith('participant')
            ? `${a.kind} ${'endpoint' in a ? a.endpoint : ''}`
            : a.kind;
    const fields = { session: a.session, code, failures, retryInMs: Math.round(waitMs) };
    // An MCU refusing the screens of its room refuses a few hundred at once: the first is news for the room.
    const room = `${a.session}|${'mcu' in a ? a.mcu : ''}`;
    const news = a.kind === 'layout' && a.why === 'view' ? !this.#viewFailing.has(room) : failures === 1;
    if (a.kind === 'layout' && a.why === 'view') this.#viewFailing.add(room);
    // The first failure of a run is news; the rest of it is debug detail.
    if (news || a.kind === 'replan') this.#log?.warn({ ...fields, err: msg }, `${what} failed: ${msg}`);
    else this.#log?.debug({ ...fields, err: msg }, `${what} failed again`);
    if (a.kind === 'replan' && failures === 1) this.#event('cascade.replan.failed', a.session, { error: msg, code });
  }

  // ---- progress ------------------------------------------------------------------

  #track(views: readonly LinkView[], now: number): void {
    const changed = new Map<string, LinkStateRecord[]>();
    const wall = new Date(this.#clock.wallNow()).toISOString();
    const totals = new Map<string, number>();
    for (const v of views) totals.set(v.session, (totals.get(v.session) ?? 0) + 1);
    for (const v of views) {
      let held = this.#links.get(v.session);
      if (held === undefined) {
        held = { views: new Map(), counts: { ...NO_COUNTS } };
        this.#links.set(v.session, held);
      }
      const was = held.views.get(v.child);
      if (was?.state === v.state && was.detail === v.detail && was.parent === v.parent) continue;
      held.views.set(v.child, v);
      if (was !== undefined) held.counts[was.state]--;
      held.counts[v.state]++;
      const retry = this.#book.retries.get(`K|${v.session}|${v.child}`);
      const rows = changed.get(v.session) ?? [];
      rows.push({
        child: v.child,
        parent: v.parent,
        state: v.state,
        detail: v.detail ?? null,
        since: wall,
        attempts: retry?.failures ?? 0,
      });
      changed.set(v.session, rows);
      if (was?.state === v.state) continue;
      this.safeEmit('link', {
        session: v.session,
        child: v.child,
        parent: v.parent,
        state: v.state,
        previous: was?.state,
        ...(v.detail === undefined ? {} : { detail: v.detail }),
        at: now,
      });
      const s = this.#sessions.get(v.session);
      const counts = { ...held.counts };
      const line = `${counts.up} of ${totals.get(v.session)} up`;
      if (v.state === 'up') {
        this.#log?.info(
          { session: v.session, child: v.child, parent: v.parent, ...counts },
          `link ${v.child} -> ${v.parent} up (${line})`,
        );
        this.#event('cascade.link.up', v.session, { child: v.child, parent: v.parent });
      } else if (was?.state === 'up' && s?.desired.phase === 'live') {
        this.#log?.warn(
          { session: v.session, child: v.child, parent: v.parent, ...counts },
          `link ${v.child} -> ${v.parent} dropped (${line})`,
        );
        this.#event('cascade.link.down', v.session, { child: v.child, parent: v.parent, detail: v.detail });
        if (s !== undefined) s.allUp = false;
      } else if (v.state === 'failed' && s?.desired.phase === 'live')
        this.#event('cascade.link.failed', v.session, { child: v.child, parent: v.parent, detail: v.detail });
    }
    for (const [session, rows] of changed) {
      const s = this.#sessions.get(session);
      // Rows of links the plan no longer has are deleted when the plan's links change (a re-plan, a restart).
      const all = s === undefined ? undefined : Object.keys(s.desired.parent);
      const kept = all?.join(' ');
      const keep = kept !== undefined && this.#keptLinks.get(session) === kept ? undefined : all;
      this.#write(() =>
        this.#store.saveLinkStates(session, rows, keep).then(() => {
          if (kept !== undefined && this.#sessions.has(session)) this.#keptLinks.set(session, kept);
        }),
      );
    }
    for (const s of this.#sessions.values()) {
      if (s.allUp || s.desired.phase !== 'live') continue;
      const c = this.#counts(s.desired.id);
      const total = Object.keys(s.desired.parent).length;
      if (c.up !== total) continue;
      s.allUp = true;
      const ms = Math.round(now - s.startedAt);
      const again = s.wasUp;
      s.wasUp = true;
      this.#log?.info(
        { session: s.desired.id, links: total, ms, again },
        again
          ? `session ${s.desired.id}: all ${total} cascade links up again`
          : `session ${s.desired.id}: all ${total} cascade links up (${ms} ms)`,
      );
      this.#event('cascade.session.up', s.desired.id, { links: total, ms });
      this.safeEmit('session', { session: s.desired.id, kind: 'up', at: now, data: { links: total, ms } });
    }
  }

  /** Endpoints in their rooms per live session: logged while they come in, and once when all are. */
  #countEndpoints(now: number): void {
    for (const s of this.#sessions.values()) {
      if (s.desired.phase !== 'live') continue;
      let wanted = 0;
      let present = 0;
      for (const [m, all] of Object.entries(s.desired.participants)) {
        const main = s.desired.mains[m];
        const eps = this.#settings.dialEndpoints ? all : main === undefined ? [] : [main];
        const room = this.#rooms.get(roomKey(s.desired.rooms[m] ?? ''));
        wanted += eps.length;
        if (room === undefined) continue;
        present += room.connectedOf(eps);
      }
      const e = s.endpoints;
      const changed = present !== e.in;
      e.wanted = wanted;
      e.in = present;
      const id = s.desired.id;
      if (present === wanted && wanted > 0 && !e.allInLogged) {
        e.allInLogged = true;
        const ms = Math.round(now - s.startedAt);
        this.#log?.info(
          { session: id, endpoints: wanted, ms },
          `session ${id}: all ${wanted} endpoints in their rooms (${ms} ms)`,
        );
        this.#event('cascade.session.endpoints', id, { endpoints: wanted, ms });
      } else if (present < wanted) {
        if (e.allInLogged) e.allInLogged = false;
        if (changed && now - e.lastLogAt >= ENDPOINT_LOG_MS) {
          e.lastLogAt = now;
          this.#log?.info(
            { session: id, in: present, wanted },
            `session ${id}: ${present} of ${wanted} endpoints in their rooms`,
          );
        }
      }
    }
  }

  #counts(session: string): Record<LinkStateName, number> {
    return { ...(this.#links.get(session)?.counts ?? NO_COUNTS) };
  }

  #report(unexpected: readonly { session: string; mcu: string; room: string; entity: string }[]): void {
    const now = new Set<string>();
    for (const u of unexpected) {
      const key = `${u.session}|${u.room}|${u.entity}`;
      now.add(key);
      if (this.#reported.has(key)) continue;
      this.#reported.add(key);
      this.#log?.warn(
        { ...u, policy: this.#settings.unexpectedLinks },
        `unexpected link ${u.entity} in room ${u.room} of MCU ${u.mcu}: ${this.#settings.unexpectedLinks === 'report' ? 'left alone' : 'hanging it up'}`,
      );
      this.#event('cascade.link.unexpected', u.session, { mcu: u.mcu, room: u.room, entity: u.entity });
    }
    for (const k of this.#reported) if (!now.has(k)) this.#reported.delete(k);
  }

  #event(type: string, session: string, data: unknown): void {
    this.#events.push({ type, subject: session, data });
    if (this.#events.length > 1) return;
    // Written once the pass (or handler) that recorded it is over, with whatever else it recorded.
    this.#write(() => {
      const batch = this.#events;
      this.#events = [];
      return this.#store.appendEvents(batch).then(() => {});
    });
  }

  #write(op: () => Promise<void>): void {
    this.#writes = this.#writes.then(op).catch((err: unknown) => {
      this.#log?.warn({ err }, 'could not record cascade progress in the store');
    });
  }

  endpointsWithoutView(sessionId: string): number | undefined {
    const s = this.#sessions.get(sessionId);
    if (s === undefined || s.desired.phase !== 'live') return undefined;
    return s.viewsApplied ? 0 : endpointsWithoutView(s.desired, this.#observed(), this.#book);
  }

  get passes(): number {
    return this.#passes;
  }

  progress(sessionId?: string): CascadeProgress[] {
    const out: CascadeProgress[] = [];
    for (const s of this.#sessions.values()) {
      if (sessionId !== undefined && s.desired.id !== sessionId) continue;
      const links = [...(this.#links.get(s.desired.id)?.views.values() ?? [])];
      out.push({
        session: s.desired.id,
        phase: s.desired.phase,
        root: s.desired.root,
        counts: this.#counts(s.desired.id),
        links,
        endpoints: { wanted: s.endpoints.wanted, in: s.endpoints.in },
        viewsApplied: s.viewsApplied,
      });
    }
    return out;
  }

  // ---- commands ------------------------------------------------------------------

  async admit(request: SessionRequest, options?: AdmitOptions): Promise<CascadeHead> {
    const record = await admitSession(this.#store, this.#inventory, request, options);
    this.#log?.info(
      { session: record.sessionId, root: record.root, planVersion: record.planVersion },
      `session ${record.sessionId} admitted`,
    );
    this.safeEmit('session', { session: record.sessionId, kind: 'admitted', at: this.#clock.now() });
    this.#admitted.set(record.sessionId, { planVersion: record.planVersion, plan: record.plan as Plan });
    await this.sync();
    return record;
  }

  async end(sessionId: string): Promise<CascadeHead> {
    const head = await endSession(this.#store, sessionId);
    await this.sync();
    return head;
  }

  async select(sessionId: string, endpoint: string | null): Promise<CascadeHead> {
    // This selection is newer than a chair command's not yet written: that one must not overwrite it.
    this.#unwritten.delete(sessionId);
    await this.#writes;
    const head = await selectForChair(this.#store, this.#inventory, sessionId, endpoint);
    await this.sync();
    return head;
  }

  claimChair(sessionId: string, endpoint: string | null): ChairClaim {
    const s = this.#sessions.get(sessionId);
    if (s === undefined || s.head.state !== 'live') return NO_CLAIM;
    const previous = s.head.selection;
    const claim: ChairClaim = {
      done: (ok) => {
        for (const a of taken) {
          if (ok) this.#book.succeeded(a, this.#clock.now());
          else this.#book.abandoned(a);
        }
        const now = this.#sessions.get(sessionId);
        if (!ok && now !== undefined && this.#claims.get(sessionId) === claim) this.#setSelection(now, previous);
        if (this.#claims.get(sessionId) === claim) this.#claims.delete(sessionId);
        // Done well, the path's pictures count as applied at the calls they were decided on: a pass only if
        // one held something back meanwhile (a redial under way, a change that made them stale).
        if (!ok || taken.some((a) => this.#wantedAgain(a))) this.#kick();
      },
    };
    this.#claims.set(sessionId, claim);
    const onPath = this.#pathOf(s, endpoint);
    const before = this.#pathOf(s, previous);
    // A selection changes the pictures along two paths only (desired.ts, layoutsFor): the new one and the
    // previous one, whose uplinks show their main endpoints again. Both are decided here, on those MCUs
    // alone (O(path), where a pass over the national session is O(MCUs and links) and cost about 0.5 ms), so
    // a command costs no pass: the new path's pictures are the command's (in flight, the reconciler leaves
    // them alone, until it is done), the previous path's are sent back now, as a pass would.
    this.#setSelection(s, endpoint, false);
    // A speaker session's view changes with the selection (what the root sends down and shows its own
    // endpoints): a pass sends it, after this command's own steps (docs/cascade.md, "What everyone sees").
    if (s.desired.view === 'speaker') this.#kick();
    const both = new Set([...onPath, ...before]);
    const taken: Action[] = [];
    const now = this.#clock.now();
    // What everyone else sees (downlinks, screens) follows through the reconciler, off the command's deadline.
    for (const a of decideLayouts(s.desired, both, this.#observed(), this.#book)) {
      if (onPath.has(a.mcu)) {
        taken.push(a);
        this.#book.started(a, now);
      } else this.#start(a);
    }
    return claim;
  }

  /** The MCUs from the one showing `endpoint` (a relayed room: the room relaying it) up to the root. */
  #pathOf(s: SessionState, endpoint: string | null): Set<string> {
    const out = new Set<string>();
    const shown = endpoint === null ? undefined : (s.plan.relays[endpoint] ?? endpoint);
    for (let m = shown === undefined ? undefined : s.plan.assignments[shown]; m !== undefined; m = s.desired.parent[m])
      out.add(m);
    return out;
  }

  /** `kick`: false when the caller applies what the new selection changes itself (claimChair). */
  #setSelection(s: SessionState, selection: string | null, kick = true): void {
    if (s.head.selection === selection) return;
    s.head = { ...s.head, selection };
    s.desired = reselect(s.desired, s.plan, selection, this.#dir);
    this.#unwritten.set(s.head.sessionId, selection);
    this.#selectionTimer ??= this.#clock.setImmediate(() => this.#writeSelections());
    if (kick) this.#kick();
  }

  /** The selections not yet written, to the store (the latest of each session). */
  #writeSelections(): void {
    this.#clock.clearTimeout(this.#selectionTimer);
    this.#selectionTimer = undefined;
    if (this.#unwritten.size === 0) return;
    const rows = [...this.#unwritten];
    this.#unwritten.clear();
    this.#write(async () => {
      for (const [id, selection] of rows) await this.#store.setCascadeSelection(id, selection);
    });
  }

  session(sessionId: string): { readonly head: CascadeHead; readonly plan: Plan } | undefined {
    const s = this.#sessions.get(sessionId);
    return s === undefined ? undefined : { head: s.head, plan: s.plan };
  }

  healNow(sessionId: string, child: string): void {
    const key = linkKey(sessionId, child);
    const r = this.#book.retries.get(key);
    if (r === undefined || r.nextAt <= this.#clock.now()) return;
    this.#book.retries.set(key, { ...r, nextAt: this.#clock.now() });
    this.#log?.info(
      { session: sessionId, child },
      `link ${child} of ${sessionId}: dialing again now (a chair command waits)`,
    );
    this.#kick();
  }

  // ---- polling and closing -------------------------------------------------------

  #schedulePoll(): void {
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#poll().finally(() => {
        if (!this.#closed) this.#schedulePoll();
      });
    }, this.#settings.pollMs);
  }

  async #poll(): Promise<void> {
    try {
      const v = await this.#store.externalChanges();
      if (v === this.#dataVersion) return;
      this.#dataVersion = v;
      await this.sync();
    } catch (err) {
      if (!this.#closed) this.#log?.warn({ err }, 'could not poll the store for session changes');
    }
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#pacer.close();
    this.#clock.clearTimeout(this.#pollTimer);
    this.#clock.clearTimeout(this.#wakeTimer);
    this.#clock.clearTimeout(this.#countTimer);
    for (const off of this.#unsubscribe) off();
    for (const w of this.#rooms.values()) w.detach();
    await this.#syncing;
    this.#writeSelections();
    // Nothing on the MCUs is undone: links run MCU to MCU and the rooms' control dialogs close with the drivers.
    await this.#writes;
  }
}

/** The session's own choice of the chair's screen (`cascaded session create --chair-layout`). */
function chairLayoutOf(request: unknown): 'full' | 'pip' | undefined {
  const l = (request as { chairLayout?: unknown } | null)?.chairLayout;
  return l === 'full' || l === 'pip' ? l : undefined;
}

/** What everyone else sees (`cascaded session create --view`; default the chair). */
function viewOf(request: unknown): SessionView {
  return (request as { view?: unknown } | null)?.view === 'speaker' ? 'speaker' : 'chair';
}

/** The session's main endpoints by MCU, from the endpoints its request names. */
function mainsOf(plan: Plan, request: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const mains = (request as { mains?: unknown } | null)?.mains;
  if (!Array.isArray(mains)) return out;
  for (const e of mains) {
    const m = typeof e === 'string' ? plan.assignments[e] : undefined;
    if (m !== undefined && out[m] === undefined) out[m] = e;
  }
  return out;
}

/** A hang-up of something already gone is done. */
async function hangUp(op: () => Promise<void>): Promise<void> {
  try {
    await op();
  } catch (err) {
    const status =
      (isCascadedError(err) ? (err.details as { sipStatus?: number } | undefined)?.sipStatus : undefined) ?? 0;
    if (!GONE.has(status)) throw err;
  }
}

function describe(err: unknown): string {
  if (isCascadedError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
