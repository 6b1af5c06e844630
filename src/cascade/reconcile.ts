/**
 * The reconciler's decisions, as a pure function: the desired state of every
 * session, what the MCUs report (rooms and their rosters, MCU health) and the
 * reconciler's own bookkeeping (actions in flight, retry times, layouts
 * applied) in; the actions that move the observed state towards the desired
 * one out. No I/O, no clock, no randomness: the runtime (manager.ts) carries
 * the actions out and feeds the results back. Every action is idempotent, so
 * deciding again after a lost result or a restart is always safe.
 *
 * A link (child MCU -> parent MCU) is *up* only when both rooms are open and
 * neither end contradicts it: each end that reports its roster (the
 * conference event package) lists the link connected, and at least one end
 * lists it (an end without the package counts through its open control
 * dialog: the driver's own view). Both ends must agree on the Call-ID when
 * both give one. Links are dialled parents first: a link is dialled only once
 * its parent's own link is up.
 */
import type { DesiredSession, LayoutSpec, Ref } from './desired.js';

export type RoomState = 'closed' | 'opening' | 'open' | 'down';

export interface ObservedEntry {
  /** The participant as the MCU names it (normalised: scheme, user, host, port). */
  readonly entity: string;
  readonly kind: 'endpoint' | 'link';
  readonly status: 'connected' | 'dialing-out' | 'disconnected';
  readonly callId?: string;
  /** Counts this entity's (re)connections in this room as the runtime saw them: a new call, a new number. */
  readonly gen: number;
}

export interface ObservedRoom {
  readonly state: RoomState;
  /** True when the roster is the MCU's own (conference events); false when it is only what the driver did. */
  readonly reports: boolean;
  /** By entity. */
  readonly roster: ReadonlyMap<string, ObservedEntry>;
  /**
   * Changes whenever the state or the roster does. A pass then skips a room it saw with every participant
   * in, at this version (absent: never skipped).
   */
  readonly version?: number;
  /** The link entries of the roster alone, when the runtime keeps them apart (a pass walks links, not 11,000 endpoints). */
  readonly links?: ReadonlyMap<string, ObservedEntry>;
  /**
   * When the MCU last reported this room's roster, on the runtime's count of `ObservedEntry.gen` (so an entry
   * of another room whose `gen` is higher appeared after it). Absent: unknown.
   */
  readonly reportedAt?: number;
  /** Its control dialog is up (the room exists on the MCU), open or still waiting for its roster. */
  readonly established?: boolean;
  /**
   * Its MCU takes a link's REFER outside any dialog, to the conference URI: a fresh session's link is dialled
   * from the room as soon as its first open is under way, before its control dialog is up.
   */
  readonly dialsEarly?: boolean;
}

/** The link entries of a room. */
const linksOf = (room: ObservedRoom): Iterable<ObservedEntry> => (room.links ?? room.roster).values();

export interface ObservedMcu {
  readonly up: boolean;
  /** When it last went up or down (the runtime's monotonic clock). */
  readonly since: number;
}

export interface Observed {
  readonly now: number;
  readonly mcus: ReadonlyMap<string, ObservedMcu>;
  /** By room key (`roomKey` of the room URI). */
  readonly rooms: ReadonlyMap<string, ObservedRoom>;
}

export interface Retry {
  readonly failures: number;
  /** No new attempt before this time. */
  readonly nextAt: number;
  /** When the first failure of this run happened. */
  readonly since: number;
  readonly lastError?: string;
}

/** The reconciler's own bookkeeping, kept by the runtime. */
export interface Memory {
  /** Action key -> its pool, for every action in flight. */
  readonly inflight: ReadonlyMap<string, Pool>;
  /** Layout key -> the epoch of the layout in flight (what it will have applied when it succeeds). */
  readonly inflightEpochs?: ReadonlyMap<string, string>;
  /** Action key -> failures in a row. */
  readonly retries: ReadonlyMap<string, Retry>;
  /** Layout key -> the epoch it was applied at (see `epochOf`). */
  readonly applied: ReadonlyMap<string, string>;
  /** Room keys whose conference was opened (the driver supervises it from then on). */
  readonly opened: ReadonlySet<string>;
  /** Link key -> when it was first seen up at one end and gone at the other. */
  readonly halfSince: ReadonlyMap<string, number>;
  /** Probe key -> when the link was last probed (links between two MCUs without the event package). */
  readonly probedAt?: ReadonlyMap<string, number>;
  /**
   * Link key -> when its dial last succeeded (the parent MCU reported the call answered). The rosters may
   * tell a little later (an MCU paces its notifications): until `halfDeadGraceMs` has passed the link is
   * not dialled again.
   */
  readonly dialedAt?: ReadonlyMap<string, number>;
  /** Sessions whose every link was seen up once: their endpoints no longer wait for the cascade (`participantsOf`). */
  readonly cascaded?: ReadonlySet<string>;
  /**
   * Sessions admitted while this process runs, not yet cascaded: no link of theirs can be on an MCU but the ones
   * dialled here (the bookkeeping knows those), so a link is dialled once its parent's room exists (its control
   * dialog up, `ObservedRoom.established`), without waiting for that room's roster to say it is not there.
   */
  readonly fresh?: ReadonlySet<string>;
  /**
   * Link key -> the Call-ID both ends listed when the link was last seen up. An end that lists it no longer
   * while the other still does has ended that dialog (RFC 3261 15.1.1): its BYE is on its way to the other.
   */
  readonly upCalls?: ReadonlyMap<string, string>;
}

export interface ReconcileOptions {
  /** Link actions (dial, hang-up) in flight at once, over every session. */
  readonly linkConcurrency: number;
  readonly participantConcurrency: number;
  readonly layoutConcurrency: number;
  /**
   * The rooms' endpoints' screens being set at once (the session's view): a pool of their own, so that the
   * 11,000 screens of a national session never hold back a link's picture.
   */
  readonly viewConcurrency: number;
  /** How long a link may be up at one end and gone at the other before it is hung up and redialled, ms. */
  readonly halfDeadGraceMs: number;
  /** How long an MCU of a session may stay unusable (down, or its link failing) before a re-plan, ms. */
  readonly replanAfterMs: number;
  /** Links in a session's rooms that no session asked for: reported always, hung up only with 'hang-up'. */
  readonly unexpectedLinks: 'report' | 'hang-up';
  /** Dial every endpoint of a session, or only each MCU's main endpoint (the one its link shows). */
  readonly endpoints: 'all' | 'mains';
  /**
   * How often a link up between two MCUs that both lack the conference event package is probed, ms (0 or
   * absent: never). Neither MCU would tell of its drop; a probe asks both whether they still have it.
   */
  readonly linkProbeMs?: number;
}

export type Pool = 'link' | 'participant' | 'layout' | 'view' | 'control';

interface ActionBase {
  /** Identifies the work: at most one action per key is in flight. */
  readonly key: string;
  readonly session: string;
}

export type Action =
  | (ActionBase & { readonly kind: 'open'; readonly mcu: string; readonly room: string })
  | (ActionBase & {
      readonly kind: 'dial-link';
      readonly child: string;
      readonly parent: string;
      /** The parent's room, whose focus dials. */
      readonly room: string;
      /** The child's room. */
      readonly target: string;
      /** Hang up this stale entity in `room` first (a half-dead link). */
      readonly replace?: string;
      /**
       * Hang up this stale entity in the child's room `target` first: the link is up at the child, which
       * would refuse a new call from the same conference while it holds the old one (486).
       */
      readonly replaceAtChild?: string;
      /**
       * The end that ended the call both ends had (a drop whose BYE has not reached the other end yet): the
       * replacement is an ordinary heal. Absent: the ends disagree without such proof (after the grace).
       */
      readonly endedAt?: 'parent' | 'child';
    })
  | (ActionBase & {
      /** Ask both ends whether they still have the link (a layout naming it; 404 if not). */
      readonly kind: 'probe-link';
      readonly child: string;
      readonly parent: string;
      /** The parent's room and the link's entity there. */
      readonly room: string;
      readonly target: string;
      /** The child's room and the link's entity there. */
      readonly childRoom: string;
      readonly peer: string;
    })
  | (ActionBase & {
      readonly kind: 'hang-up-link';
      readonly mcu: string;
      readonly room: string;
      /** The link's entity in that room. */
      readonly target: string;
      readonly why: 'teardown' | 'stale' | 'unexpected';
      readonly child?: string;
    })
  | (ActionBase & {
      readonly kind: 'dial-participant' | 'hang-up-participant';
      readonly mcu: string;
      readonly room: string;
      readonly endpoint: string;
    })
  | (ActionBase & {
      readonly kind: 'layout';
      readonly mcu: string;
      readonly room: string;
      readonly output: string;
      readonly source: string;
      /** Layout `pip`: this inset small over the source (the chair's own picture). */
      readonly inset?: string;
      readonly epoch: string;
      /** `view`: an endpoint's screen, the session's view (pool `view`); else a link's picture or the chair's. */
      readonly why: LayoutSpec['why'] | 'view';
    })
  | (ActionBase & { readonly kind: 'replan'; readonly lost: readonly string[] })
  | (ActionBase & { readonly kind: 'finish' });

export type LinkStateName = 'planned' | 'dialing' | 'up' | 'failed';

/** One desired link as the reconciler sees it now. */
export interface LinkView {
  readonly session: string;
  readonly child: string;
  readonly parent: string;
  readonly state: LinkStateName;
  /** Why it is not up, when known (a failure, an MCU down, waiting for the parent). */
  readonly detail?: string;
}

export interface UnexpectedLink {
  readonly session: string;
  readonly mcu: string;
  readonly room: string;
  readonly entity: string;
}

export interface Decision {
  readonly actions: readonly Action[];
  readonly links: readonly LinkView[];
  /** Keys of links up at one end and gone at the other now (the runtime keeps when each was first seen). */
  readonly half: readonly string[];
  /** Link key -> Call-ID, for every link up now on one Call-ID both ends gave (the runtime keeps them: `upCalls`). */
  readonly upCalls: ReadonlyMap<string, string>;
  readonly unexpected: readonly UnexpectedLink[];
  /** Sessions whose tear-down is complete (also in `actions` as `finish` unless already in flight). */
  readonly finished: readonly string[];
  /**
   * Live sessions some of whose endpoints in their rooms do not see the session's view yet (being set,
   * waiting for a retry, or waiting for a room or a link).
   */
  readonly viewsPending: readonly string[];
  /**
   * Live sessions in their first dial whose endpoints wait for the cascade (`waitForCascade`): their rooms'
   * quality reports wait too (manager.ts).
   */
  readonly cascading: readonly string[];
  /** The next time something waiting (a retry, a grace period, a re-plan deadline) becomes due, if any. */
  readonly wakeAt?: number;
  /**
   * Work was held back: an action whose key is in flight (its result may be stale when it lands), or a pool's
   * budget spent. Only then does a result that frees a key or a slot need another pass; when nothing was held,
   * a layout applied changes nothing the next pass would act on.
   */
  readonly held: boolean;
  /** The pools whose budget was spent: a result in one of them frees a slot the next pass would fill. */
  readonly heldPools: ReadonlySet<Pool>;
  /**
   * The keys held back because they were in flight: only that key's own result may need another pass (the
   * pass wanted it, perhaps with another epoch). A result of any other key changes nothing held back.
   */
  readonly heldKeys: ReadonlySet<string>;
  /**
   * Keys of links whose children wait for them ("waiting for P's own link"): the success of such a link's dial
   * lets the next level go, so its pass need not wait for the pacing gap.
   */
  readonly awaited: ReadonlySet<string>;
}

/**
 * Keys of the URIs seen lately: a pass looks up every participant of every room (11,000 in a national
 * session), and a chair command brings two or three passes; parsing each URI again each time was most of
 * a pass. Bounded: cleared when full (URIs come from the inventory and the rosters, a few per endpoint).
 */
const keyCache = new Map<string, string>();
const KEYS_MAX = 100_000;

/**
 * A URI as rosters name participants: scheme, user, host and port, without
 * parameters or headers; lowercase scheme and host. Cheap and pure, so it
 * can run on every roster entry.
 */
export function roomKey(uri: string): string {
  const known = keyCache.get(uri);
  if (known !== undefined) return known;
  const key = parseRoomKey(uri);
  if (keyCache.size >= KEYS_MAX) keyCache.clear();
  keyCache.set(uri, key);
  return key;
}

function parseRoomKey(uri: string): string {
  let s = uri.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  const semi = s.search(/[;?]/);
  if (semi >= 0) s = s.slice(0, semi);
  const colon = s.indexOf(':');
  if (colon < 0) return s;
  const at = s.lastIndexOf('@');
  const scheme = s.slice(0, colon).toLowerCase();
  const user = at > colon ? s.slice(colon + 1, at + 1) : '';
  const hostport = s.slice(at > colon ? at + 1 : colon + 1).toLowerCase();
  return `${scheme}:${user}${hostport}`;
}

/**
 * Rooms seen with every participant of a session's list connected, at the room's version: a national
 * session's pass would otherwise look up 11,000 endpoints each time (several passes per chair command).
 * A memo of a pure result: the same room version and list give the same answer.
 */
const complete = new WeakMap<ObservedRoom, { readonly version: number; readonly list: readonly string[] }>();

/**
 * Rooms seen with every endpoint in showing the session's view, per bookkeeping (`Memory`), at the room's
 * version and the view's sources (`base`: their entities and calls): a pass then skips the room's endpoints.
 * A success sets `applied` and a failure clears it, each only for a screen in flight, and a room with a screen
 * in flight is never memoised, so what was seen applied stays so while neither changes.
 */
const viewed = new WeakMap<
  Memory,
  WeakMap<ObservedRoom, { readonly version: number; readonly list: readonly string[]; readonly base: string }>
>();

/** A room's participant list by room key: built once per list (a desired session's lists do not change). */
interface ListIndex {
  /** Room key -> the URI as the list has it. */
  readonly byKey: ReadonlyMap<string, string>;
}
const indexes = new WeakMap<readonly string[], ListIndex>();
function indexOf(list: readonly string[], keys?: ReadonlyMap<string, string>): ListIndex {
  let ix = indexes.get(list);
  if (ix === undefined) {
    const byKey = new Map<string, string>();
    for (const uri of list) byKey.set(keys?.get(uri) ?? roomKey(uri), uri);
    ix = { byKey };
    indexes.set(list, ix);
  }
  return ix;
}

/**
 * Build the participant indexes the passes use, once a session is loaded: the first pass after an admission
 * otherwise computed 11,000 room keys (about 3 ms) before it sent the root room's INVITE. `keys` holds room
 * keys computed before (the inventory's endpoints, when the manager starts): looked up rather than parsing
 * 11,000 URIs again. The manager builds them right after the first pass (its rooms list nobody yet, so it
 * needs none): 2 to 3 ms that no longer delay the first REFERs.
 */
export function prepareSession(d: DesiredSession, keys?: ReadonlyMap<string, string>): void {
  for (const list of Object.values(d.participants)) indexOf(list, keys);
}

/**
 * The entries of `room` that are participants of `list`, as [key, uri, entry]: walks the smaller of the
 * roster and the list. While a national session dials only its main endpoints a room holds one or two of
 * its 150 endpoints, and a pass walking all 11,000 for each room was the largest part of its cost.
 */
function* inRoom(room: ObservedRoom, list: readonly string[]): Generator<[string, string, ObservedEntry]> {
  // A room still opening lists nobody: its list's index is not needed yet (`prepareSession`).
  if (room.roster.size === 0) return;
  const { byKey } = indexOf(list);
  if (room.roster.size < byKey.size) {
    for (const [key, e] of room.roster) {
      const uri = byKey.get(key);
      if (uri !== undefined) yield [key, uri, e];
    }
    return;
  }
  for (const [key, uri] of byKey) {
    const e = room.roster.get(key);
    if (e !== undefined) yield [key, uri, e];
  }
}

/** host:port of a room key (the MCU's address). */
function addressOf(key: string): string {
  const at = key.lastIndexOf('@');
  return at >= 0 ? key.slice(at + 1) : key.slice(key.indexOf(':') + 1);
}

export const linkKey = (session: string, child: string) => `K|${session}|${child}`;
export const layoutKey = (session: string, mcu: string, output: Ref) =>
  `L|${session}|${mcu}|${'link' in output ? `link:${output.link}` : `ep:${output.endpoint}`}`;
const participantKey = (session: string, mcu: string, uri: string) => `P|${session}|${mcu}|${uri}`;
const strayKey = (session: string, mcu: string, entity: string) => `H|${session}|${mcu}|${entity}`;
const openKey = (room: string) => `O|${room}`;
/** How many times `halfDeadGraceMs` a half-dead link waits for an end that has told nothing since (`liveLinks`). */
export const QUIET_GRACE_FACTOR = 4;

const probeKey = (session: string, child: string) => `V|${session}|${child}`;

type EndSays = 'yes' | 'dialing' | 'no' | 'unknown';

interface LinkEnds {
  readonly parentRoom?: ObservedRoom;
  readonly childRoom?: ObservedRoom;
  readonly atParent?: ObservedEntry;
  readonly atChild?: ObservedEntry;
  readonly parentSays: EndSays;
  readonly childSays: EndSays;
  readonly up: boolean;
  /** One end lists it connected, the other (reporting, open) does not. */
  readonly half: boolean;
}

/** Link entries of a room, by the address (host:port) of their far end. */
function linksByAddress(room: ObservedRoom | undefined): Map<string, ObservedEntry[]> {
  const out = new Map<string, ObservedEntry[]>();
  if (room === undefined) return out;
  for (const e of linksOf(room)) {
    if (e.kind !== 'link' || e.status === 'disconnected') continue;
    const a = addressOf(e.entity);
    const list = out.get(a);
    if (list === undefined) out.set(a, [e]);
    else list.push(e);
  }
  return out;
}

/**
 * The entry of `room` for its link to the room `peerKey`: by entity, else by
 * the Call-ID the other end gave, else the only link from the peer MCU's
 * address (an MCU may name the far end by its address of record rather than
 * by the room).
 */
function findLink(
  room: ObservedRoom | undefined,
  byAddress: () => Map<string, ObservedEntry[]>,
  peerKey: string,
  callId: string | undefined,
): ObservedEntry | undefined {
  if (room === undefined) return undefined;
  const direct = room.roster.get(peerKey);
  if (direct !== undefined && direct.kind === 'link') return direct;
  const candidates = byAddress().get(addressOf(peerKey));
  if (candidates === undefined) return undefined;
  if (callId !== undefined) {
    const same = candidates.find((e) => e.callId === callId);
    if (same !== undefined) return same;
  }
  return candidates.length === 1 ? candidates[0] : undefined;
}

/**
 * The call both ends had (`call`, seen up on both) is still listed connected at one end and no longer at the
 * other, whose roster is the MCU's own: that end ended it.
 */
function endedAtOneEnd(l: LinkEnds, call: string | undefined): 'parent' | 'child' | undefined {
  if (call === undefined) return undefined;
  if (l.childSays === 'yes' && l.parentSays === 'no' && l.atChild?.callId === call) return 'parent';
  if (l.parentSays === 'yes' && l.childSays === 'no' && l.atParent?.callId === call) return 'child';
  return undefined;
}

function says(room: ObservedRoom | undefined, entry: ObservedEntry | undefined): EndSays {
  if (room === undefined || room.state !== 'open') return 'unknown';
  if (entry?.status === 'connected') return 'yes';
  if (!room.reports) return 'unknown';
  return entry?.status === 'dialing-out' ? 'dialing' : 'no';
}

/** Everything one pass needs about a session, computed once. */
class SessionView {
  readonly keys: Record<string, string> = {};
  readonly links = new Map<string, LinkEnds>();
  /** Link entries by far address, per MCU: built only for a room that names a link otherwise than by its room. */
  readonly #byAddress = new Map<string, Map<string, ObservedEntry[]>>();
  /** Room keys of every room the session holds (current and former). */
  readonly allRooms = new Set<string>();

  constructor(
    readonly d: DesiredSession,
    readonly obs: Observed,
  ) {
    for (const [m, uri] of Object.entries(d.rooms)) {
      const k = roomKey(uri);
      this.keys[m] = k;
      this.allRooms.add(k);
    }
    for (const uri of Object.values(d.formerRooms)) this.allRooms.add(roomKey(uri));
    for (const child of d.mcus) {
      const parent = d.parent[child];
      if (parent !== undefined) this.links.set(child, this.#ends(child, parent));
    }
  }

  room(m: string): ObservedRoom | undefined {
    const k = this.keys[m];
    return k === undefined ? undefined : this.obs.rooms.get(k);
  }

  #addresses(m: string): Map<string, ObservedEntry[]> {
    let a = this.#byAddress.get(m);
    if (a === undefined) {
      a = linksByAddress(this.room(m));
      this.#byAddress.set(m, a);
    }
    return a;
  }

  #ends(child: string, parent: string): LinkEnds {
    const pk = this.keys[parent];
    const ck = this.keys[child];
    const parentRoom = this.room(parent);
    const childRoom = this.room(child);
    // The parent's focus dialled the child's room, so it names the link by that URI; only the child, called,
    // may name it otherwise (by the caller's address of record).
    const direct = ck === undefined ? undefined : parentRoom?.roster.get(ck);
    const atParent = direct?.kind === 'link' ? direct : undefined;
    const atChild =
      pk === undefined ? undefined : findLink(childRoom, () => this.#addresses(child), pk, atParent?.callId);
    const parentSays = says(parentRoom, atParent);
    const childSays = says(childRoom, atChild);
    const open = parentRoom?.state === 'open' && childRoom?.state === 'open';
    const agree = atParent?.callId === undefined || atChild?.callId === undefined || atParent.callId === atChild.callId;
    const ok = (s: EndSays) => s === 'yes' || s === 'unknown';
    const up = open && ok(parentSays) && ok(childSays) && (parentSays === 'yes' || childSays === 'yes') && agree;
    const half =
      open &&
      !up &&
      ((parentSays === 'yes' && childSays === 'no') ||
        (childSays === 'yes' && parentSays === 'no') ||
        (parentSays === 'yes' && childSays === 'yes' && !agree));
    return { parentRoom, childRoom, atParent, atChild, parentSays, childSays, up, half };
  }

  isUp(child: string): boolean {
    return this.links.get(child)?.up === true;
  }

  /** A link present at either end (for tear-down: anything to hang up). */
  present(child: string): boolean {
    const l = this.links.get(child);
    if (l === undefined) return false;
    const here = (s: EndSays) => s === 'yes' || s === 'dialing';
    return here(l.parentSays) || here(l.childSays);
  }

  /** The entity of `m`'s link to `peer`, with the epoch of that call, when the link is up. */
  linkRef(m: string, peer: string): { entity: string; epoch: string } | undefined {
    const child = this.d.parent[m] === peer ? m : peer;
    const l = this.links.get(child);
    if (l === undefined || !l.up) return undefined;
    const here = child === m ? l.atChild : l.atParent;
    const there = child === m ? l.atParent : l.atChild;
    const entity = here?.entity ?? this.keys[peer];
    if (entity === undefined) return undefined;
    return { entity, epoch: `${here?.gen ?? '-'}/${there?.gen ?? '-'}` };
  }
}

/** Whether the rosters show a session's link (named by its child MCU) up at both ends, as a pass would see it. */
export function linkUp(d: DesiredSession, obs: Observed, child: string): boolean {
  return new SessionView(d, obs).isUp(child);
}

/** A layout's source (an endpoint's or a link's current call in an MCU's room of the session); undefined: not there. */
function resolveRef(v: SessionView, m: string, ref: Ref): Source | undefined {
  if ('link' in ref) return v.linkRef(m, ref.link);
  const entity = roomKey(ref.endpoint);
  const e = v.room(m)?.roster.get(entity);
  return e?.status === 'connected' ? { entity, epoch: String(e.gen) } : undefined;
}

interface Source {
  readonly entity: string;
  readonly epoch: string;
}

/**
 * What an endpoint's screen shows of its room's view, and the epoch of that layout on its current call;
 * undefined when it has nothing to be shown: an endpoint never sees itself large, so the speaker sees the
 * inset (the chair) alone, and nothing without an inset.
 */
function viewOf(
  entity: string,
  gen: number,
  src: Source,
  inset: Source | undefined,
): { source: Source; small: Source | undefined; epoch: string } | undefined {
  const self = entity === src.entity;
  if (self && inset === undefined) return undefined;
  const source = self ? inset! : src;
  const small = self ? undefined : inset;
  const epoch =
    `${entity}#${gen}>${source.entity}#${source.epoch}` +
    (small === undefined ? '' : `+${small.entity}#${small.epoch}`);
  return { source, small, epoch };
}

/**
 * How many endpoints of a live session, connected in their rooms (the chair excepted), do not see the
 * session's view on their current call (docs/cascade.md, "What everyone sees"): not set yet, in flight, or
 * nothing to show yet (the room, the link or the chair not there). A full walk of the session's endpoints,
 * for a question asked now and then (the session lifecycle's readiness check), never part of a pass.
 */
export function endpointsWithoutView(d: DesiredSession, obs: Observed, mem: Memory): number {
  const v = new SessionView(d, obs);
  let n = 0;
  for (const spec of d.views) {
    const room = v.room(spec.mcu);
    if (room === undefined) continue;
    const src = room.state === 'open' ? resolveRef(v, spec.mcu, spec.source) : undefined;
    const inset = spec.inset === undefined || src === undefined ? undefined : resolveRef(v, spec.mcu, spec.inset);
    const nothing = src === undefined || (spec.inset !== undefined && inset === undefined);
    for (const ep of d.participants[spec.mcu] ?? []) {
      if (ep === d.chair) continue;
      const entity = roomKey(ep);
      const e = room.roster.get(entity);
      if (e?.status !== 'connected') continue;
      if (nothing) {
        n++;
        continue;
      }
      const target = viewOf(entity, e.gen, src!, inset);
      if (target === undefined) continue;
      const key = layoutKey(d.id, spec.mcu, { endpoint: ep });
      if (mem.inflight.has(key) || mem.applied.get(key) !== target.epoch) n++;
    }
  }
  return n;
}

export function decide(
  sessions: readonly DesiredSession[],
  obs: Observed,
  mem: Memory,
  opts: ReconcileOptions,
): Decision {
  return decideWith(sessions, obs, mem, opts, false);
}

const UNBOUNDED: ReconcileOptions = {
  linkConcurrency: 0,
  participantConcurrency: 0,
  layoutConcurrency: Number.POSITIVE_INFINITY,
  viewConcurrency: 0,
  halfDeadGraceMs: 0,
  replanAfterMs: Number.POSITIVE_INFINITY,
  unexpectedLinks: 'report',
  endpoints: 'mains',
};

/**
 * The link and chair pictures of one session on the MCUs `on` (every MCU when absent), as `decide` would offer
 * them with a layout pool without bound: no rooms opened, no links, strays, endpoints or screens looked at, no
 * downlink. A chair command decides its two paths so (manager.claimChair): O(path), where a pass over the
 * national session is O(MCUs and links).
 */
export function decideLayouts(
  d: DesiredSession,
  on: ReadonlySet<string> | undefined,
  obs: Observed,
  mem: Memory,
): readonly LayoutAction[] {
  const mine = d.layouts.filter((l) => l.why !== 'downlink' && (on === undefined || on.has(l.mcu)));
  if (on === undefined) return layoutsIn(decideWith([{ ...d, layouts: mine }], obs, mem, UNBOUNDED, true));
  // The rooms those pictures name: their MCUs and the far ends of the links they show (an uplink may show the
  // first child link of an MCU on neither path).
  const seen = new Set(on);
  for (const l of mine)
    for (const r of [l.output, l.source, l.inset]) if (r !== undefined && 'link' in r) seen.add(r.link);
  const rooms: Record<string, string> = {};
  for (const m of seen) if (d.rooms[m] !== undefined) rooms[m] = d.rooms[m];
  const part: DesiredSession = {
    ...d,
    mcus: d.mcus.filter((m) => seen.has(m)),
    rooms,
    formerRooms: {},
    layouts: mine,
    views: [],
  };
  return layoutsIn(decideWith([part], obs, mem, UNBOUNDED, true));
}

export type LayoutAction = Extract<Action, { readonly kind: 'layout' }>;

const layoutsIn = (d: Decision): LayoutAction[] => d.actions.filter((a): a is LayoutAction => a.kind === 'layout');

function decideWith(
  sessions: readonly DesiredSession[],
  obs: Observed,
  mem: Memory,
  opts: ReconcileOptions,
  layoutsOnly: boolean,
): Decision {
  const now = obs.now;
  const actions: Action[] = [];
  /** Room keys this pass starts opening. */
  const openedNow = new Set<string>();
  const links: LinkView[] = [];
  const half: string[] = [];
  const upCalls = new Map<string, string>();
  const unexpected: UnexpectedLink[] = [];
  const finished: string[] = [];
  const viewsPending: string[] = [];
  const cascading: string[] = [];
  let wakeAt: number | undefined;
  const heldPools = new Set<Pool>();
  const heldKeys = new Set<string>();
  const awaited = new Set<string>();
  const holdPool = (pool: Pool) => heldPools.add(pool);
  const holdKey = (key: string) => heldKeys.add(key);
  const wake = (t: number) => {
    if (t > now && (wakeAt === undefined || t < wakeAt)) wakeAt = t;
  };
  // Bounded concurrency per pool. Candidates are offered in priority order (sessions in order, each
  // plan root first and by depth), so the first ones offered are the ones taken.
  const budget: Record<Pool, number> = {
    link: opts.linkConcurrency,
    participant: opts.participantConcurrency,
    layout: opts.layoutConcurrency,
    view: opts.viewConcurrency,
    control: Number.POSITIVE_INFINITY,
  };
  for (const pool of mem.inflight.values()) budget[pool]--;
  /** Not in flight and not waiting for a retry (then its time is a wake-up time). */
  const ready = (key: string): boolean => {
    if (mem.inflight.has(key)) return false;
    const r = mem.retries.get(key);
    if (r !== undefined && r.nextAt > now) {
      wake(r.nextAt);
      return false;
    }
    return true;
  };
  /** Whether the action was taken (false: held for its pool's budget, in flight, or waiting for its retry). */
  const offer = (pool: Pool, action: Action): boolean => {
    if (budget[pool] <= 0) {
      holdPool(pool);
      return false;
    }
    if (!ready(action.key)) {
      // Held only if what is in flight is not already what this pass wants: a layout in flight at the same
      // epoch (a chair command's picture that a pass meets midway) needs no pass when it lands, and holding
      // it made every later command's result ask for one, a pass over the whole session per command.
      if (
        mem.inflight.has(action.key) &&
        !(action.kind === 'layout' && mem.inflightEpochs?.get(action.key) === action.epoch)
      )
        holdKey(action.key);
      return false;
    }
    budget[pool]--;
    actions.push(action);
    return true;
  };
  const mcuUp = (m: string) => obs.mcus.get(m)?.up === true;
  const failedToOpen = (v: SessionView, m: string) => (mem.retries.get(openKey(v.keys[m] ?? ''))?.failures ?? 0) > 0;

  /** The decision as it stands; `wakeAt` only where the pass looked at what waits. */
  const decision = (held: boolean, wakeAt?: number): Decision => {
    const base = {
      actions,
      links,
      half,
      upCalls,
      unexpected,
      finished,
      held,
      heldPools,
      heldKeys,
      awaited,
      viewsPending,
      cascading,
    };
    return wakeAt === undefined ? base : { ...base, wakeAt };
  };

  const views = sessions.map((d) => new SessionView(d, obs));
  if (layoutsOnly) {
    for (const v of views) if (v.d.phase === 'live') layoutsOf(v);
    return decision(heldKeys.size > 0);
  }
  // The rooms links are dialled from first, then the links (every session), then the other rooms, layouts,
  // endpoints: the cascade before what rides on it. Every room opens at once, the root's first (`mcus` starts
  // with it, parents before children): its control INVITE leads both ends' queues. Where its MCU takes REFERs
  // outside dialogs, a fresh session's links leave in the same pass, right behind it (`dialsFrom`), and the
  // leaves' rooms after them.
  const openRooms = (v: SessionView, parents: boolean) => {
    const d = v.d;
    for (const m of d.mcus) {
      if (d.children[m]!.length > 0 !== parents) continue;
      const uri = d.rooms[m];
      if (uri === undefined || mem.opened.has(roomKey(uri)) || !mcuUp(m)) continue;
      if (offer('control', { kind: 'open', key: openKey(roomKey(uri)), session: d.id, mcu: m, room: uri }))
        openedNow.add(roomKey(uri));
    }
  };
  for (const v of views) openRooms(v, true);
  for (const v of views) if (v.d.phase === 'live') liveLinks(v);
  for (const v of views) openRooms(v, false);
  for (const v of views) if (v.d.phase === 'live') layoutsOf(v);
  for (const v of views) if (v.d.phase === 'live') participantsOf(v);
  let seenViews = viewed.get(mem);
  if (seenViews === undefined) {
    seenViews = new WeakMap();
    viewed.set(mem, seenViews);
  }
  for (const v of views) if (v.d.phase === 'live' && !viewsOf(v, seenViews)) viewsPending.push(v.d.id);
  for (const v of views) if (v.d.phase === 'ending') ending(v);

  /**
   * The link's dial succeeded (the MCU reported the INVITE's 200, RFC 3515's final NOTIFY) less than
   * `halfDeadGraceMs` ago: the rosters that verify it may still be on their way.
   */
  function answered(linkKeyOf: string): boolean {
    const at = mem.dialedAt?.get(linkKeyOf);
    return at !== undefined && now - at < opts.halfDeadGraceMs;
  }

  /**
   * A fresh session's link may be dialled from this room (its parent's): the room exists on the MCU, its control
   * dialog up; or its MCU takes REFERs outside dialogs (to the conference URI, RFC 4579 5.5: the room need not
   * be ours yet) and its first open is under way, or starts in this very pass.
   */
  function dialsFrom(room: ObservedRoom | undefined, uri: string): boolean {
    if (room === undefined) return false;
    if (room.established === true) return true;
    return room.dialsEarly === true && (room.state === 'opening' || openedNow.has(roomKey(uri)));
  }

  function liveLinks(v: SessionView): void {
    const d = v.d;
    const fresh = mem.fresh?.has(d.id) === true;
    const lost: string[] = [];
    for (const child of d.mcus) {
      const parent = d.parent[child];
      if (parent === undefined) continue;
      const key = linkKey(d.id, child);
      const l = v.links.get(child)!;
      const retry = mem.retries.get(key);
      const dialedAt = mem.dialedAt?.get(key);
      const verifying = answered(key);
      // Parents before children: the parent's own link up, or answered while the rosters that verify it are on
      // their way. Its setup is over then; the rosters come a notification later (the child's after the ACK), a
      // level's worth of time.
      const parentReady = parent === d.root || v.isUp(parent) || answered(linkKey(d.id, parent));
      const dial = (replace?: string, replaceAtChild?: string, endedAt?: 'parent' | 'child'): Action => ({
        kind: 'dial-link',
        key,
        session: d.id,
        child,
        parent,
        room: d.rooms[parent]!,
        target: d.rooms[child]!,
        ...(replace === undefined ? {} : { replace }),
        ...(replaceAtChild === undefined ? {} : { replaceAtChild }),
        ...(endedAt === undefined ? {} : { endedAt }),
      });
      let detail: string | undefined;

      const call = l.atParent?.callId;
      if (l.up && call !== undefined && l.atChild?.callId === call) upCalls.set(key, call);
      if (l.half) {
        half.push(key);
        // Up at one end, gone at the other: once the grace has passed (a notification may be on its
        // way), hang up what is left and dial again. No grace where the call both ends had is gone at one
        // of them: that end ended the dialog (RFC 3261 15.1.1), its BYE is on its way to the other, which
        // would refuse a new call while it holds the old one. A redial that replaced a half-dead link waits
        // the grace too (its own notifications may be on their way) and its backoff (memory.ts): a roster
        // stale for good must not make a redial every pass.
        //
        // An end that has not reported its roster since the call it lacks appeared at the other end may only be
        // slow to tell: a notifier sends its NOTIFYs one at a time (a later one would be refused for its lower
        // CSeq, RFC 3261 12.2.2), so one whose answer was lost holds the next one (the new call) back by its
        // retransmissions, 0.5, 1.5, 3.5 s. Such an end is given `QUIET_GRACE_FACTOR` times the grace; an end
        // that reported since and still does not list the call is believed after the grace.
        const since = mem.halfSince.get(key) ?? now;
        const listed = l.parentSays === 'yes' ? l.atParent : l.atChild;
        const other =
          l.parentSays === 'yes' && l.childSays === 'no'
            ? l.childRoom
            : l.childSays === 'yes' && l.parentSays === 'no'
              ? l.parentRoom
              : undefined;
        const quiet = other?.reportedAt !== undefined && listed !== undefined && other.reportedAt < listed.gen;
        const grace = quiet ? opts.halfDeadGraceMs * QUIET_GRACE_FACTOR : opts.halfDeadGraceMs;
        if (verifying) wake(dialedAt! + opts.halfDeadGraceMs);
        else {
          const endedAt = endedAtOneEnd(l, mem.upCalls?.get(key));
          if (endedAt === undefined && now - since < grace) wake(since + grace);
          else if (parentReady)
            offer(
              'link',
              dial(
                l.atParent?.entity ?? v.keys[child]!,
                l.childSays === 'yes' ? l.atChild?.entity : undefined,
                endedAt,
              ),
            );
        }
      } else if (!l.up) {
        if (!mcuUp(parent)) detail = `MCU ${parent} is down`;
        else if (!mcuUp(child)) detail = `MCU ${child} is down`;
        // The parent's room dials: it must be open. The child's is a standing room the INVITE reaches open or
        // not; its roster verifies the link but is not needed to dial it, unless the parent's roster cannot
        // say whether the link is there already (an MCU without the event package, after a restart).
        // A fresh session's link (`Memory.fresh`) goes once the parent's room exists, on its first attempt only:
        // a later one (the first failed, or was not confirmed in time) may find the link there after all (a
        // REFER whose outcome was lost), which only the room's roster can tell.
        else if (
          l.parentRoom?.state === 'open'
            ? l.childRoom?.state !== 'open' && !l.parentRoom.reports
            : !(fresh && dialsFrom(l.parentRoom, d.rooms[parent]!) && dialedAt === undefined && retry === undefined)
        )
          detail = 'rooms opening';
        // The parent's roster lists the call and the child's room cannot say yet (still opening): wait for it
        // rather than have the parent's MCU call the child a second time.
        else if (l.parentSays === 'yes' && l.childRoom?.state !== 'open') detail = 'rooms opening';
        else if (!parentReady) {
          detail = `waiting for ${parent}'s own link`;
          awaited.add(linkKey(d.id, parent));
        } else if (verifying) wake(dialedAt! + opts.halfDeadGraceMs);
        else if (l.parentSays !== 'dialing' && l.childSays !== 'dialing') offer('link', dial());
      }

      // Up between two MCUs that both lack the conference event package: neither would report its drop, so it
      // is probed now and then (docs/cascade.md, "What is not seen").
      const probeMs = opts.linkProbeMs ?? 0;
      if (l.up && probeMs > 0 && l.parentRoom?.reports === false && l.childRoom?.reports === false) {
        const pk = probeKey(d.id, child);
        const due = (mem.probedAt?.get(pk) ?? Number.NEGATIVE_INFINITY) + probeMs;
        if (due > now) wake(due);
        else
          offer('control', {
            kind: 'probe-link',
            key: pk,
            session: d.id,
            child,
            parent,
            room: d.rooms[parent]!,
            target: l.atParent?.entity ?? v.keys[child]!,
            childRoom: d.rooms[child]!,
            peer: l.atChild?.entity ?? v.keys[parent]!,
          });
      }

      const dialing =
        mem.inflight.has(key) || (!l.up && verifying) || l.parentSays === 'dialing' || l.childSays === 'dialing';
      const failures = retry?.failures ?? 0;
      const state: LinkStateName = l.up ? 'up' : dialing ? 'dialing' : failures > 0 ? 'failed' : 'planned';
      const why = state === 'failed' ? retry?.lastError : state === 'planned' ? detail : undefined;
      links.push(
        why === undefined
          ? { session: d.id, child, parent, state }
          : { session: d.id, child, parent, state, detail: why },
      );

      // An MCU unusable for this session for too long (down, or its link failing) is planned around.
      if (!l.up) {
        const health = obs.mcus.get(child);
        const since = health !== undefined && !health.up ? health.since : failures > 0 ? retry?.since : undefined;
        if (since !== undefined) {
          if (now - since >= opts.replanAfterMs) lost.push(child);
          else wake(since + opts.replanAfterMs);
        }
      }
    }
    if (lost.length > 0) offer('control', { kind: 'replan', key: `R|${d.id}`, session: d.id, lost });
    straysOf(v);
  }

  /** Links in the session's rooms that the plan does not have: ours from an earlier plan, or someone else's. */
  function straysOf(v: SessionView): void {
    const d = v.d;
    for (const m of d.mcus) {
      const room = v.room(m);
      if (room?.state !== 'open') continue;
      const expected = new Set<ObservedEntry>();
      const up = d.parent[m] === undefined ? undefined : v.links.get(m);
      if (up?.atChild !== undefined) expected.add(up.atChild);
      for (const c of d.children[m] ?? []) {
        const down = v.links.get(c);
        if (down?.atParent !== undefined) expected.add(down.atParent);
      }
      for (const e of linksOf(room)) {
        if (e.kind !== 'link' || e.status === 'disconnected' || expected.has(e)) continue;
        const ours = v.allRooms.has(e.entity);
        if (!ours) unexpected.push({ session: d.id, mcu: m, room: d.rooms[m]!, entity: e.entity });
        if (ours || opts.unexpectedLinks === 'hang-up')
          offer('link', {
            kind: 'hang-up-link',
            key: strayKey(d.id, m, e.entity),
            session: d.id,
            mcu: m,
            room: d.rooms[m]!,
            target: e.entity,
            why: ours ? 'stale' : 'unexpected',
          });
      }
    }
  }

  function layoutsOf(v: SessionView): void {
    const d = v.d;
    for (const spec of d.layouts) {
      if (budget.layout <= 0) {
        holdPool('layout');
        return;
      }
      if (v.room(spec.mcu)?.state !== 'open') continue;
      const out = resolveRef(v, spec.mcu, spec.output);
      const src = resolveRef(v, spec.mcu, spec.source);
      if (out === undefined || src === undefined) continue;
      const inset = spec.inset === undefined ? undefined : resolveRef(v, spec.mcu, spec.inset);
      if (spec.inset !== undefined && inset === undefined) continue;
      const key = layoutKey(d.id, spec.mcu, spec.output);
      const epoch =
        `${out.entity}#${out.epoch}>${src.entity}#${src.epoch}` +
        (inset === undefined ? '' : `+${inset.entity}#${inset.epoch}`);
      if (mem.applied.get(key) === epoch) continue;
      offer('layout', {
        kind: 'layout',
        key,
        session: d.id,
        mcu: spec.mcu,
        room: d.rooms[spec.mcu]!,
        output: out.entity,
        source: src.entity,
        ...(inset === undefined ? {} : { inset: inset.entity }),
        epoch,
        why: spec.why,
      });
    }
  }

  /**
   * Every endpoint of each room (but the chair) shown the room's view; false when some are not yet. An
   * endpoint never sees itself large: the speaker on the root sees the chair alone.
   */
  function viewsOf(
    v: SessionView,
    seen: WeakMap<ObservedRoom, { version: number; list: readonly string[]; base: string }>,
  ): boolean {
    const d = v.d;
    let settled = true;
    for (const spec of d.views) {
      const room = v.room(spec.mcu);
      const list = d.participants[spec.mcu] ?? [];
      if (list.length === 0) continue;
      const src = room?.state === 'open' ? resolveRef(v, spec.mcu, spec.source) : undefined;
      const inset = spec.inset === undefined || src === undefined ? undefined : resolveRef(v, spec.mcu, spec.inset);
      if (room === undefined || src === undefined || (spec.inset !== undefined && inset === undefined)) {
        // Nothing to show yet (the room opening, the link or the chair not there): pending if anyone waits.
        if (room === undefined) settled = false;
        else
          for (const [, , e] of inRoom(room, list))
            if (e.status === 'connected') {
              settled = false;
              break;
            }
        continue;
      }
      const base = `${src.entity}#${src.epoch}` + (inset === undefined ? '' : `+${inset.entity}#${inset.epoch}`);
      const memo = seen.get(room);
      if (memo !== undefined && memo.version === room.version && memo.list === list && memo.base === base) continue;
      // Walked again: the room counts as done only once a walk finds every screen set, none in flight (a view
      // that comes back, say the speaker changing twice, must not find a memo of the time it was last set).
      seen.delete(room);
      if (budget.view <= 0) {
        holdPool('view');
        return false;
      }
      let missing = false;
      for (const [entity, ep, e] of inRoom(room, list)) {
        if (ep === d.chair || e.status !== 'connected') continue;
        const target = viewOf(entity, e.gen, src, inset);
        if (target === undefined) continue;
        const { source, small, epoch } = target;
        const key = layoutKey(d.id, spec.mcu, { endpoint: ep });
        // One in flight may carry an earlier view (the speaker changed meanwhile): its success will not be
        // this one, so the room is not done until it is back.
        const busy = mem.inflight.has(key);
        if (!busy && mem.applied.get(key) === epoch) continue;
        missing = true;
        if (busy) {
          holdKey(key);
          continue;
        }
        if (budget.view <= 0) {
          holdPool('view');
          return false;
        }
        offer('view', {
          kind: 'layout',
          key,
          session: d.id,
          mcu: spec.mcu,
          room: d.rooms[spec.mcu]!,
          output: entity,
          source: source.entity,
          ...(small === undefined ? {} : { inset: small.entity }),
          epoch,
          why: 'view',
        });
      }
      if (missing) settled = false;
      else if (room.version !== undefined) seen.set(room, { version: room.version, list, base });
    }
    return settled;
  }

  /**
   * A session's first dial: its endpoints wait until every link is up, so the 62 links of a national
   * session do not share both ends' CPU with 74 endpoint dials and the lobby notifications they bring (the
   * cascade is what the procedure wants up first; an endpoint is seen only through it). Not while a link is
   * stuck: a failed dial, an MCU down or a room that did not open lets them go. (A link up at one end only is
   * no reason: every link is, between its two rooms' notifications; past the grace it is dialled again.)
   */
  function waitForCascade(v: SessionView): boolean {
    const d = v.d;
    if (mem.cascaded?.has(d.id) === true) return false;
    let pending = false;
    for (const [child, l] of v.links) {
      if (l.up) continue;
      const parent = d.parent[child]!;
      if (!mcuUp(child) || !mcuUp(parent) || failedToOpen(v, child) || failedToOpen(v, parent)) return false;
      if ((mem.retries.get(linkKey(d.id, child))?.failures ?? 0) > 0) return false;
      pending = true;
    }
    return pending;
  }

  function participantsOf(v: SessionView): void {
    const d = v.d;
    if (waitForCascade(v)) {
      cascading.push(d.id);
      return;
    }
    const dialOne = (m: string, ep: string) =>
      offer('participant', {
        kind: 'dial-participant',
        key: participantKey(d.id, m, ep),
        session: d.id,
        mcu: m,
        room: d.rooms[m]!,
        endpoint: ep,
      });
    const absent = (room: ObservedRoom, ep: string) => room.roster.get(roomKey(ep))?.status !== 'connected';
    // Main endpoints at once (the picture up each link needs them) ...
    for (const m of d.mcus) {
      const main = d.mains[m];
      const room = v.room(m);
      if (budget.participant <= 0) {
        holdPool('participant');
        return;
      }
      if (main !== undefined && room?.state === 'open' && absent(room, main)) dialOne(m, main);
    }
    if (opts.endpoints === 'mains') return;
    // ... the others once their MCU is cascaded, one room after another (round robin): a room's commands
    // share its control dialog, so spreading them over the rooms keeps every dialog busy at once.
    const cursors: { m: string; room: ObservedRoom; list: readonly string[]; i: number; missing: boolean }[] = [];
    for (const m of d.mcus) {
      const room = v.room(m);
      if (room?.state !== 'open' || (m !== d.root && !v.isUp(m))) continue;
      const list = d.participants[m] ?? [];
      const seen = complete.get(room);
      if (seen !== undefined && seen.version === room.version && seen.list === list) continue;
      cursors.push({ m, room, list, i: 0, missing: false });
    }
    while (cursors.length > 0) {
      for (let k = 0; k < cursors.length; ) {
        if (budget.participant <= 0) {
          holdPool('participant');
          return;
        }
        const c = cursors[k]!;
        const main = d.mains[c.m];
        let offered = false;
        while (!offered && c.i < c.list.length) {
          const ep = c.list[c.i++]!;
          if (!absent(c.room, ep)) continue;
          c.missing = true;
          if (ep === main) continue;
          const before = actions.length;
          dialOne(c.m, ep);
          offered = actions.length > before;
        }
        if (c.i >= c.list.length) {
          if (!c.missing && c.room.version !== undefined)
            complete.set(c.room, { version: c.room.version, list: c.list });
          cursors.splice(k, 1);
        } else k++;
      }
    }
  }

  function ending(v: SessionView): void {
    const d = v.d;
    let remaining = 0;
    // Deepest first: a link goes only once nothing hangs below its child.
    const order = d.mcus.filter((m) => d.parent[m] !== undefined).reverse();
    for (const child of order) {
      const parent = d.parent[child]!;
      const present = v.present(child);
      links.push({ session: d.id, child, parent, state: present ? 'up' : 'planned' });
      if (!present) continue;
      remaining++;
      if ((d.children[child] ?? []).some((c) => v.present(c))) continue;
      const l = v.links.get(child)!;
      const atParent = l.parentSays === 'yes' || l.parentSays === 'dialing';
      const mcu = atParent ? parent : child;
      const target = atParent ? l.atParent?.entity : l.atChild?.entity;
      if (target === undefined) continue;
      offer('link', {
        kind: 'hang-up-link',
        key: linkKey(d.id, child),
        session: d.id,
        mcu,
        room: d.rooms[mcu]!,
        target,
        why: 'teardown',
        child,
      });
    }
    for (const m of d.mcus) {
      const room = v.room(m);
      if (room?.state !== 'open') {
        // A room not seen yet holds the end back, unless its MCU is down or the room failed to open.
        if (mcuUp(m) && !failedToOpen(v, m)) remaining++;
        continue;
      }
      // Endpoints leave once their MCU is cut off from the cascade (children first).
      const cutOff = !v.present(m) && (d.children[m] ?? []).every((c) => !v.present(c));
      for (const ep of d.participants[m] ?? []) {
        if (room.roster.get(roomKey(ep)) === undefined) continue;
        remaining++;
        if (cutOff)
          offer('participant', {
            kind: 'hang-up-participant',
            key: participantKey(d.id, m, ep),
            session: d.id,
            mcu: m,
            room: d.rooms[m]!,
            endpoint: ep,
          });
      }
    }
    if (remaining === 0) {
      finished.push(d.id);
      offer('control', { kind: 'finish', key: `F|${d.id}`, session: d.id });
    }
  }

  return decision(heldPools.size > 0 || heldKeys.size > 0, wakeAt);
}
