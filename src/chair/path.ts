/**
 * Path resolution for the chair (design section 3, step 1), as a pure
 * function: the session's cascade as planned (tree, rooms, where every
 * endpoint sits) and what the MCUs report now (health, room state, rosters)
 * in; the path from the endpoint to the chair and the steps that put it on
 * the chair's screen out, or the reason there is none. No I/O, no clock: the
 * engine (engine.ts) calls it at the start of a command and again after a
 * heal, and the preview returns its steps without sending them.
 *
 *   endpoint ─ its MCU ══link══> MCU ══link══> root ─ chair's screen
 *              show it on          put the       put the link
 *              the uplink          child link    on the chair's
 *              (+ its audio)       on the uplink screen
 *
 * A link (child -> parent) counts as up by the cascade manager's rule
 * (docs/cascade.md, "When a link is up"): both rooms open, at least one end
 * lists it connected, an end that reports its roster (RFC 4575) does not
 * contradict it, and both ends agree on the Call-ID when both give one.
 */
import type { LayoutName } from '../mcu/index.js';

/** How the chair's screen shows the endpoint brought to it. */
export type ChairLayout = 'full' | 'pip';

/** The layout name of each chair layout: `pip` is the speaker full-screen with the chair in a small inset. */
export const CHAIR_LAYOUTS: Readonly<Record<ChairLayout, LayoutName>> = { full: 'single', pip: 'pip' };

/** One session's cascade as planned (what the store holds), in the form the chair needs. */
export interface ChairSession {
  readonly id: string;
  readonly root: string;
  /** The chair endpoint (on the root), or null when the plan names none. */
  readonly chair: string | null;
  /** Child MCU -> parent MCU. */
  readonly parent: Readonly<Record<string, string>>;
  /** Parent MCU -> its child MCUs, in plan order. */
  readonly children: Readonly<Record<string, readonly string[]>>;
  /** MCU -> the conference URI of the session's room on it. */
  readonly rooms: Readonly<Record<string, string>>;
  /** MCU-connected endpoint -> its MCU. */
  readonly assignments: Readonly<Record<string, string>>;
  /** Relay endpoint -> the endpoint whose room the AV matrix relays it through. */
  readonly relays: Readonly<Record<string, string>>;
  readonly layout: ChairLayout;
  /** Mute the previous speaker when a new one is brought to the chair. */
  readonly mutePrevious: boolean;
  /** The chair's screen when nobody is brought to it (`returnToDefault`). */
  readonly defaultLayout: LayoutName;
}

export interface EntryView {
  /** The participant as this MCU names it: what commands must say. */
  readonly entity: string;
  readonly kind: 'endpoint' | 'link';
  readonly status: 'connected' | 'dialing-out' | 'disconnected';
  readonly audioMuted: boolean;
  readonly callId?: string;
}

export interface RoomView {
  readonly state: 'closed' | 'opening' | 'open' | 'down';
  /** The roster is the MCU's own (conference events); false: only what the driver did itself. */
  readonly reports: boolean;
  /** By entity. */
  readonly roster: ReadonlyMap<string, EntryView>;
}

/** What the MCUs report now. */
export interface ChairObserved {
  mcuUp(mcu: string): boolean;
  room(mcu: string): RoomView | undefined;
  /** An endpoint's SIP URI as MCUs name it (undefined: it has none). */
  uri(endpoint: string): string | undefined;
}

/** A hop that is down: a cascade link, or an MCU (or its room) that is not usable. */
export type BrokenHop =
  | { readonly child: string; readonly parent: string; readonly why: string }
  | { readonly mcu: string; readonly why: string };

interface StepBase {
  /** Unique within a command: kind and MCU. */
  readonly id: string;
  readonly mcu: string;
  /** The session's room on that MCU. */
  readonly room: string;
}

/** Switch one output: its layout, the source of each region, then a keyframe request (RFC 5168). */
export interface SwitchStep extends StepBase {
  readonly kind: 'switch';
  /** source: the endpoint's own MCU; relay: an intermediate MCU; root: the chair's screen. */
  readonly role: 'source' | 'relay' | 'root';
  readonly output: string;
  readonly layout: LayoutName;
  readonly sources: readonly string[];
}

/** A source's audio into (unmute) or out of (mute) its MCU's mix. */
export interface AudioStep extends StepBase {
  readonly kind: 'unmute' | 'mute';
  readonly source: string;
  /** The endpoint id for the previous speaker muted; absent for a hop's own source. */
  readonly endpoint?: string;
}

export type ChairStep = SwitchStep | AudioStep;

export interface ChairPath {
  readonly session: string;
  /** The endpoint asked for. */
  readonly endpoint: string;
  /** The endpoint whose picture is shown: itself, or the one its room is relayed through. */
  readonly shown: string;
  /** Its MCU. */
  readonly mcu: string;
  /** MCUs from the endpoint's to the root. */
  readonly mcus: readonly string[];
  readonly steps: readonly ChairStep[];
}

export type Resolution =
  | { readonly ok: true; readonly path: ChairPath }
  | {
      readonly ok: false;
      readonly code:
        | 'CHAIR_ERR_NOT_IN_SESSION'
        | 'CHAIR_ERR_NO_CHAIR'
        | 'CHAIR_ERR_NOT_CONNECTED'
        | 'CHAIR_ERR_PATH_DOWN';
      readonly message: string;
      /** Every broken hop, nearest the endpoint first (CHAIR_ERR_PATH_DOWN). */
      readonly broken?: readonly BrokenHop[];
      readonly details?: Readonly<Record<string, unknown>>;
    };

/** scheme:user@host:port, host lowercased, parameters and headers dropped: how two URIs name one participant. */
export function participantKey(uri: string): string {
  let s = uri.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  const cut = s.search(/[;?>]/);
  if (cut >= 0) s = s.slice(0, cut);
  const colon = s.indexOf(':');
  if (colon < 0) return s.toLowerCase();
  const at = s.lastIndexOf('@');
  const user = at > colon ? s.slice(colon + 1, at + 1) : '';
  return `${s.slice(0, colon).toLowerCase()}:${user}${s.slice(at > colon ? at + 1 : colon + 1).toLowerCase()}`;
}

/** host:port of a participant key. */
function addressOf(key: string): string {
  const at = key.lastIndexOf('@');
  return at >= 0 ? key.slice(at + 1) : key.slice(key.indexOf(':') + 1);
}

/** The roster entry naming `uri`: by the exact entity first (the common case, one lookup), else by key. */
function entryFor(room: RoomView, uri: string): EntryView | undefined {
  const direct = room.roster.get(uri);
  if (direct !== undefined) return direct;
  const key = participantKey(uri);
  for (const e of room.roster.values()) if (participantKey(e.entity) === key) return e;
  return undefined;
}

/**
 * The entry of `room` for its link to the room `peer`: by the room's URI,
 * else the link from the peer MCU's address carrying `callId`, else the only
 * link from that address (an MCU may name the far end by its address of
 * record rather than by the room). One walk over the links alone: a room's
 * roster is mostly endpoints (a province room lists a few hundred), and the
 * child end of every link of a path misses the direct lookup.
 */
function linkEntry(room: RoomView | undefined, peer: string, callId: string | undefined): EntryView | undefined {
  if (room === undefined) return undefined;
  const direct = room.roster.get(peer);
  if (direct !== undefined && direct.kind === 'link') return direct;
  const key = participantKey(peer);
  const address = addressOf(key);
  let onCall: EntryView | undefined;
  let only: EntryView | undefined;
  let count = 0;
  for (const e of room.roster.values()) {
    if (e.kind !== 'link') continue;
    const k = participantKey(e.entity);
    if (k === key) return e;
    if (e.status === 'disconnected' || addressOf(k) !== address) continue;
    if (callId !== undefined && e.callId === callId) onCall ??= e;
    only = e;
    count++;
  }
  return onCall ?? (count === 1 ? only : undefined);
}

type Says = 'yes' | 'dialing' | 'no' | 'unknown';

function says(room: RoomView | undefined, e: EntryView | undefined): Says {
  if (room === undefined || room.state !== 'open') return 'unknown';
  if (e?.status === 'connected') return 'yes';
  if (!room.reports) return 'unknown';
  return e?.status === 'dialing-out' ? 'dialing' : 'no';
}

interface LinkSeen {
  readonly up: boolean;
  readonly why: string;
  /** How the child names the link (its uplink output). */
  readonly atChild: string;
  /** How the parent names the link (the source it shows). */
  readonly atParent: string;
  readonly parentEntry?: EntryView;
}

function seeLink(s: ChairSession, o: ChairObserved, child: string, parent: string): LinkSeen {
  const childRoom = o.room(child);
  const parentRoom = o.room(parent);
  const childUri = s.rooms[child]!;
  const parentUri = s.rooms[parent]!;
  const atParent = linkEntry(parentRoom, childUri, undefined);
  const atChild = linkEntry(childRoom, parentUri, atParent?.callId);
  const p = says(parentRoom, atParent);
  const c = says(childRoom, atChild);
  const agree = atParent?.callId === undefined || atChild?.callId === undefined || atParent.callId === atChild.callId;
  const ok = (x: Says) => x === 'yes' || x === 'unknown';
  const up = ok(p) && ok(c) && (p === 'yes' || c === 'yes') && agree;
  const why = up
    ? 'up'
    : !agree
      ? 'the two ends name different calls'
      : p === 'dialing' || c === 'dialing'
        ? 'being dialled'
        : p === 'no' || c === 'no'
          ? `not connected at ${p === 'no' ? parent : child}`
          : 'listed by neither end';
  return {
    up,
    why,
    // Without an entry, the driver's own name: the room URI it dialled (parent side) or was called from.
    atChild: atChild?.entity ?? parentUri,
    atParent: atParent?.entity ?? childUri,
    ...(atParent === undefined ? {} : { parentEntry: atParent }),
  };
}

/** Where an endpoint is in its room: its entry, `absent` (the room reports and does not list it), or unknown. */
function locate(room: RoomView, uri: string): EntryView | 'absent' | 'down' | undefined {
  const e = entryFor(room, uri);
  if (e !== undefined) return e.status === 'connected' ? e : 'down';
  return room.reports ? 'absent' : undefined;
}

/** The MCUs from `mcu` up to the root, or undefined when the tree does not lead there. */
function chainOf(s: ChairSession, mcu: string): string[] | undefined {
  const chain = [mcu];
  let m = mcu;
  while (m !== s.root) {
    const p = s.parent[m];
    if (p === undefined || chain.length > 64 || chain.includes(p)) return undefined;
    chain.push(p);
    m = p;
  }
  return chain;
}

/**
 * Resolve the path that brings `endpoint` to the chair of session `s` and
 * the steps that do it, from what is observed now. `previous`: the endpoint
 * on the chair's screen before (for muting the previous speaker).
 */
export function resolvePath(
  s: ChairSession,
  o: ChairObserved,
  endpoint: string,
  previous: string | null = null,
): Resolution {
  const shown = s.relays[endpoint] ?? endpoint;
  const mcu = s.assignments[shown];
  if (mcu === undefined || s.rooms[mcu] === undefined)
    return {
      ok: false,
      code: 'CHAIR_ERR_NOT_IN_SESSION',
      message: `endpoint ${endpoint} is not in session ${s.id}`,
      details: { endpoint, session: s.id },
    };
  if (s.chair === null || s.assignments[s.chair] !== s.root || s.rooms[s.root] === undefined)
    return {
      ok: false,
      code: 'CHAIR_ERR_NO_CHAIR',
      message: `session ${s.id} has no chair on its root MCU ${s.root}`,
      details: { session: s.id, root: s.root },
    };
  const mcus = chainOf(s, mcu);
  if (mcus === undefined)
    return {
      ok: false,
      code: 'CHAIR_ERR_NOT_IN_SESSION',
      message: `endpoint ${endpoint}: MCU ${mcu} does not lead to the root ${s.root} in session ${s.id}`,
      details: { endpoint, session: s.id, mcu },
    };

  // Every MCU and room of the path usable, every link up; all broken hops reported, nearest the endpoint first.
  const broken: BrokenHop[] = [];
  for (const m of mcus) {
    if (!o.mcuUp(m)) broken.push({ mcu: m, why: `MCU ${m} is down` });
    else if (o.room(m)?.state !== 'open') broken.push({ mcu: m, why: `room ${s.rooms[m]} of MCU ${m} is not open` });
  }
  const links: LinkSeen[] = [];
  for (let i = 0; i + 1 < mcus.length; i++) {
    const l = seeLink(s, o, mcus[i]!, mcus[i + 1]!);
    links.push(l);
    if (!l.up && broken.every((b) => !('mcu' in b) || (b.mcu !== mcus[i] && b.mcu !== mcus[i + 1])))
      broken.push({ child: mcus[i]!, parent: mcus[i + 1]!, why: l.why });
  }
  if (broken.length > 0) {
    const rank = (b: BrokenHop) => mcus.indexOf('mcu' in b ? b.mcu : b.child) * 2 + ('mcu' in b ? 0 : 1);
    broken.sort((a, b) => rank(a) - rank(b));
    const first = broken[0]!;
    const hop = 'mcu' in first ? `MCU ${first.mcu}` : `link ${first.child} -> ${first.parent}`;
    return {
      ok: false,
      code: 'CHAIR_ERR_PATH_DOWN',
      message: `the path of ${endpoint} to the chair is down at ${hop}: ${first.why}`,
      broken,
      details: { endpoint, session: s.id, hop: first },
    };
  }

  const at = (role: 'endpoint' | 'chair', id: string, m: string): EntryView | string | Resolution => {
    const uri = o.uri(id);
    const found = uri === undefined ? 'absent' : locate(o.room(m)!, uri);
    if (typeof found === 'object') return found;
    if (found === undefined) return uri!;
    return {
      ok: false,
      code: 'CHAIR_ERR_NOT_CONNECTED',
      message: `${role === 'chair' ? 'the chair' : 'endpoint'} ${id} is not connected to ${m}${uri === undefined ? ' (it has no SIP URI)' : ''}`,
      details: { endpoint: id, role, mcu: m, session: s.id },
    };
  };
  const source = at('endpoint', shown, mcu);
  if (typeof source === 'object' && 'ok' in source) return source;
  const chair = at('chair', s.chair, s.root);
  if (typeof chair === 'object' && 'ok' in chair) return chair;
  const entity = (x: EntryView | string) => (typeof x === 'string' ? x : x.entity);
  const muted = (x: EntryView | string | undefined) => typeof x === 'object' && x.audioMuted;

  const steps: ChairStep[] = [];
  // Up the tree: each MCU shows what comes from below on its link towards its parent, with that source's audio.
  let below: { entity: string; entry: EntryView | string | undefined } = { entity: entity(source), entry: source };
  for (let i = 0; i < mcus.length; i++) {
    const m = mcus[i]!;
    const room = s.rooms[m]!;
    const isRoot = i === mcus.length - 1;
    if (muted(below.entry)) steps.push({ id: `unmute:${m}`, kind: 'unmute', mcu: m, room, source: below.entity });
    if (isRoot) {
      const chairEntity = entity(chair);
      steps.push({
        id: `switch:${m}`,
        kind: 'switch',
        role: 'root',
        mcu: m,
        room,
        output: chairEntity,
        layout: CHAIR_LAYOUTS[s.layout],
        sources: s.layout === 'pip' ? [below.entity, chairEntity] : [below.entity],
      });
      break;
    }
    const l = links[i]!;
    steps.push({
      id: `switch:${m}`,
      kind: 'switch',
      role: i === 0 ? 'source' : 'relay',
      mcu: m,
      room,
      output: l.atChild,
      layout: 'single',
      sources: [below.entity],
    });
    below = { entity: l.atParent, entry: l.parentEntry };
  }

  const mute = previous === null || !s.mutePrevious ? undefined : mutePrevious(s, o, previous, shown);
  if (mute !== undefined) steps.push(mute);
  return { ok: true, path: { session: s.id, endpoint, shown, mcu, mcus, steps } };
}

/** The step muting the previous speaker, when there is one to mute (not the new one's room, not the chair). */
function mutePrevious(s: ChairSession, o: ChairObserved, previous: string, shown: string): AudioStep | undefined {
  const prevShown = s.relays[previous] ?? previous;
  if (prevShown === shown || prevShown === s.chair) return undefined;
  const m = s.assignments[prevShown];
  const uri = o.uri(prevShown);
  if (m === undefined || uri === undefined || !o.mcuUp(m)) return undefined;
  const room = o.room(m);
  if (room?.state !== 'open') return undefined;
  const e = entryFor(room, uri);
  if (e === undefined || e.status !== 'connected' || e.audioMuted) return undefined;
  return { id: `mute:${m}`, kind: 'mute', mcu: m, room: s.rooms[m]!, source: e.entity, endpoint: previous };
}

/**
 * The step that returns the chair's screen to the session's default layout:
 * the root's child links that are up, in plan order, then the root's other
 * connected endpoints, as many as the layout has regions.
 */
export function resolveDefault(
  s: ChairSession,
  o: ChairObserved,
  regions: number,
): { ok: true; step: SwitchStep } | Extract<Resolution, { ok: false }> {
  if (s.chair === null || s.assignments[s.chair] !== s.root || s.rooms[s.root] === undefined)
    return {
      ok: false,
      code: 'CHAIR_ERR_NO_CHAIR',
      message: `session ${s.id} has no chair on its root MCU ${s.root}`,
      details: { session: s.id, root: s.root },
    };
  const rootRoom = o.room(s.root);
  if (!o.mcuUp(s.root) || rootRoom?.state !== 'open') {
    const hop = { mcu: s.root, why: `the root MCU ${s.root} or its room is not usable` };
    return {
      ok: false,
      code: 'CHAIR_ERR_PATH_DOWN',
      message: hop.why,
      broken: [hop],
      details: { session: s.id, hop },
    };
  }
  const chairUri = o.uri(s.chair);
  const chair = chairUri === undefined ? 'absent' : locate(rootRoom, chairUri);
  if (chair === 'absent' || chair === 'down')
    return {
      ok: false,
      code: 'CHAIR_ERR_NOT_CONNECTED',
      message: `the chair ${s.chair} is not connected to ${s.root}`,
      details: { endpoint: s.chair, role: 'chair', mcu: s.root, session: s.id },
    };
  const chairEntity = chair === undefined ? chairUri! : chair.entity;
  const sources: string[] = [];
  for (const c of s.children[s.root] ?? []) {
    if (sources.length >= regions) break;
    if (o.mcuUp(c) && seeLink(s, o, c, s.root).up) sources.push(seeLink(s, o, c, s.root).atParent);
  }
  for (const e of rootRoom.roster.values()) {
    if (sources.length >= regions) break;
    if (e.kind === 'endpoint' && e.status === 'connected' && e.entity !== chairEntity) sources.push(e.entity);
  }
  return {
    ok: true,
    step: {
      id: `switch:${s.root}`,
      kind: 'switch',
      role: 'root',
      mcu: s.root,
      room: s.rooms[s.root]!,
      output: chairEntity,
      layout: s.defaultLayout,
      sources,
    },
  };
}
