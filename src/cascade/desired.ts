/**
 * The desired state of one session, computed from what the store holds (its
 * plan, its rooms, its main-endpoint choices and the chair selection). Pure.
 *
 * Picture routing (docs/cascade.md, "Layouts"):
 * - up every link, the child MCU shows one endpoint full-screen: the unit's
 *   main endpoint (the session's choice for that MCU, else the MCU's endpoint
 *   of the highest level, then the smallest id), or, for an MCU with no
 *   endpoint of its own in the session, its first child link;
 * - down every link, the parent shows what its own parent sends it, and the
 *   root shows the chair (else its main endpoint): everyone sees the chair;
 * - a chair selection (an endpoint brought to the chair) replaces, along its
 *   path, each uplink's picture with the selected endpoint (on its own MCU)
 *   or the child link towards it, and puts that on the chair's screen: full
 *   screen, or in a `pip` session large with the chair's own picture inset
 *   (as the chair command shows it, docs/chair.md);
 * - what everyone else sees (the session's `view`, docs/cascade.md "What
 *   everyone sees"): every endpoint of a room but the chair watches what
 *   comes down its MCU's link, and on the root what the root sends down:
 *   the chair (`chair`, the default), or in a `speaker` session the endpoint
 *   brought to the chair large with the chair inset. One picture comes down
 *   each link, so everyone below the root sees the same, the speaker too.
 */
import type { Plan } from '../planner/index.js';

/** A participant of one room, named by what it is rather than by the entity an MCU gives it. */
export type Ref = { readonly link: string } | { readonly endpoint: string };

export interface LayoutSpec {
  readonly mcu: string;
  /** Whose screen (an endpoint) or which link's outgoing picture. */
  readonly output: Ref;
  /** Shown full-screen (layout `single`, region 1). */
  readonly source: Ref;
  /** Shown small over the source (layout `pip`, region 2): the chair's own picture in a `pip` session. */
  readonly inset?: Ref;
  readonly why: 'uplink' | 'downlink' | 'chair';
}

/**
 * What everyone in a session sees but the chair: `chair` (the chair full-screen) or `speaker` (the endpoint
 * brought to the chair large, the chair inset; the chair alone while nobody is brought to it).
 */
export type SessionView = 'chair' | 'speaker';
export const SESSION_VIEWS: readonly SessionView[] = ['chair', 'speaker'];

/**
 * The picture every endpoint of one room is shown (its screen), but the chair's: O(MCUs) specs for a
 * session's 11,000 screens, each applied to whoever of the room's endpoints is in.
 */
export interface ViewSpec {
  readonly mcu: string;
  /** Full-screen (layout `single`), or large under the inset (layout `pip`). */
  readonly source: Ref;
  readonly inset?: Ref;
}

/** What the store holds for a session, as the reconciler reads it. */
export interface SessionSpec {
  readonly id: string;
  readonly phase: 'live' | 'ending';
  readonly plan: Plan;
  /** Every room the session holds, MCU -> conference URI (MCUs a re-plan dropped keep theirs until the end). */
  readonly rooms: Readonly<Record<string, string>>;
  /** Main endpoint chosen by the session for an MCU (endpoint id). */
  readonly mains: Readonly<Record<string, string>>;
  /** The endpoint currently brought to the chair, if any. */
  readonly selection: string | null;
  /** How the chair's screen shows the selection (the session's choice, else the daemon's; default full). */
  readonly chairLayout?: 'full' | 'pip';
  /** What everyone else sees (default `chair`). */
  readonly view?: SessionView;
}

/** How the reconciler reaches endpoints: their SIP URI, and their level's rank (0: the top level). */
export interface EndpointDirectory {
  uri(endpointId: string): string | undefined;
  levelRank(endpointId: string): number;
}

export interface DesiredSession {
  readonly id: string;
  readonly phase: 'live' | 'ending';
  readonly root: string;
  /**
   * MCUs of the plan, root first, then by depth; within a depth those with the deepest subtree below them first
   * (their links start the longest chains: an MCU dials a burst of links one after another), then by id.
   */
  readonly mcus: readonly string[];
  readonly depth: Readonly<Record<string, number>>;
  /** Child MCU -> parent MCU. */
  readonly parent: Readonly<Record<string, string>>;
  /** Parent MCU -> its child MCUs, sorted. */
  readonly children: Readonly<Record<string, readonly string[]>>;
  /** Rooms of the plan's MCUs. */
  readonly rooms: Readonly<Record<string, string>>;
  /** Rooms the session holds on MCUs that left the plan. */
  readonly formerRooms: Readonly<Record<string, string>>;
  /** MCU -> endpoint URIs to dial into its room, the main endpoint first. */
  readonly participants: Readonly<Record<string, readonly string[]>>;
  /** MCU -> its main endpoint's URI (absent for an MCU with no dialable endpoint). */
  readonly mains: Readonly<Record<string, string>>;
  readonly layouts: readonly LayoutSpec[];
  readonly chairLayout: 'full' | 'pip';
  readonly view: SessionView;
  /** The screens of every room's endpoints, one spec per MCU of the plan (none in a session without any picture). */
  readonly views: readonly ViewSpec[];
  /** The chair's URI when it sits on the root: its screen is the chair command's, never a view. */
  readonly chair?: string;
  /** Session endpoints without a SIP URI: they cannot be dialled (reported once). */
  readonly undialable: readonly string[];
}

/** The main endpoint of an MCU in a plan: the session's choice, else the highest level, then the smallest id. */
export function mainEndpoint(
  mcu: string,
  onMcu: readonly string[],
  mains: Readonly<Record<string, string>>,
  dir: EndpointDirectory,
): string | undefined {
  const chosen = mains[mcu];
  if (chosen !== undefined && onMcu.includes(chosen)) return chosen;
  let best: string | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  // `onMcu` is sorted by id, so the first of the best rank is the smallest id.
  for (const e of onMcu) {
    if (dir.uri(e) === undefined) continue;
    const rank = dir.levelRank(e);
    if (rank < bestRank) {
      best = e;
      bestRank = rank;
    }
  }
  return best;
}

/** The plan's MCUs by depth, the tallest subtrees first within a depth (`DesiredSession.mcus`). */
function criticalFirst(plan: Plan): string[] {
  const byId = new Map(plan.mcus.map((m) => [m.id, m]));
  const height = new Map<string, number>();
  const heightOf = (id: string): number => {
    let h = height.get(id);
    if (h === undefined) {
      h = 0;
      for (const c of byId.get(id)?.children ?? []) h = Math.max(h, 1 + heightOf(c));
      height.set(id, h);
    }
    return h;
  };
  return plan.mcus
    .map((m, i) => ({ m, i, h: heightOf(m.id) }))
    .sort((a, b) => a.m.depth - b.m.depth || b.h - a.h || a.i - b.i)
    .map((x) => x.m.id);
}

export function desiredSession(spec: SessionSpec, dir: EndpointDirectory): DesiredSession {
  const plan = spec.plan;
  const rootUsage = plan.mcus.find((m) => m.parent === null);
  if (rootUsage === undefined) throw new TypeError(`session ${spec.id}: plan without a root`);
  const root = rootUsage.id;
  const mcus = criticalFirst(plan);
  const inPlan = new Set(mcus);
  const depth: Record<string, number> = {};
  const parent: Record<string, string> = {};
  const children: Record<string, readonly string[]> = {};
  const rooms: Record<string, string> = {};
  const formerRooms: Record<string, string> = {};
  const participants: Record<string, readonly string[]> = {};
  const mains: Record<string, string> = {};
  const mainId: Record<string, string> = {};
  const undialable: string[] = [];

  for (const [m, uri] of Object.entries(spec.rooms)) (inPlan.has(m) ? rooms : formerRooms)[m] = uri;
  for (const m of plan.mcus) {
    depth[m.id] = m.depth;
    if (m.parent !== null) parent[m.id] = m.parent;
    children[m.id] = m.children;
    // The root's main endpoint is the chair when the chair sits there: what the root sends down every link.
    const chairHere =
      m.id === root && spec.mains[root] === undefined && plan.chair !== null && plan.assignments[plan.chair] === root;
    const main =
      chairHere && dir.uri(plan.chair!) !== undefined ? plan.chair! : mainEndpoint(m.id, m.endpoints, spec.mains, dir);
    const uris: string[] = [];
    if (main !== undefined) {
      mainId[m.id] = main;
      const uri = dir.uri(main)!;
      mains[m.id] = uri;
      uris.push(uri);
    }
    for (const e of m.endpoints) {
      if (e === main) continue;
      const uri = dir.uri(e);
      if (uri === undefined) undialable.push(e);
      else uris.push(uri);
    }
    participants[m.id] = uris;
  }

  const chairLayout = spec.chairLayout ?? 'full';
  const view = spec.view ?? 'chair';
  const { layouts, views } = picturesFor(
    { root, mcus, parent, children, mains, chairLayout, view },
    plan,
    spec.selection,
    dir,
  );
  const chair = chairOnRoot(plan, root, dir);

  return {
    id: spec.id,
    phase: spec.phase,
    root,
    mcus,
    depth,
    parent,
    children,
    rooms,
    formerRooms,
    participants,
    mains,
    layouts,
    chairLayout,
    view,
    views,
    ...(chair === undefined ? {} : { chair }),
    undialable,
  };
}

/** The chair's URI when it sits on the root (and can be dialled). */
function chairOnRoot(plan: Plan, root: string, dir: EndpointDirectory): string | undefined {
  if (plan.chair === null || plan.assignments[plan.chair] !== root) return undefined;
  return dir.uri(plan.chair);
}

/**
 * The pictures of a session for a chair selection: mains up every link, the
 * chair (or the speaker, by the session's view) down, the selection along
 * its path, and what each room's endpoints see. Recomputed alone when only
 * the selection of a speaker session changes (`reselect`): O(MCUs), where the
 * whole desired state of a national session walks its 11,000 endpoints.
 */
function picturesFor(
  d: Pick<DesiredSession, 'root' | 'mcus' | 'parent' | 'children' | 'mains' | 'chairLayout' | 'view'>,
  plan: Plan,
  selection: string | null,
  dir: EndpointDirectory,
): { layouts: LayoutSpec[]; views: ViewSpec[] } {
  const { root, mcus, parent, children, mains } = d;
  // Base pictures: mains up, the chair down.
  const up = new Map<string, Ref>();
  for (const m of mcus) {
    if (m === root) continue;
    const base = baseUplink({ mains, children }, m);
    if (base !== undefined) up.set(m, base);
  }
  const chairUri = chairOnRoot(plan, root, dir);
  const chair: Ref | undefined = chairUri === undefined ? undefined : { endpoint: chairUri };
  const rootMain = mains[root];
  const base: Ref | undefined = chair ?? (rootMain === undefined ? undefined : { endpoint: rootMain });

  // The chair selection, along its path.
  const layouts: LayoutSpec[] = [];
  const selected = selectionMcu(selection, plan, dir);
  /** What the root shows of the selection: the endpoint itself (on the root) or its child link towards it. */
  let shown: Ref | undefined;
  if (selected !== undefined) {
    const { mcu: at, uri } = selected;
    shown = { endpoint: uri };
    let m = at;
    while (m !== root) {
      up.set(m, shown);
      shown = { link: m };
      m = parent[m]!;
    }
    if (chair !== undefined)
      layouts.push({
        mcu: root,
        output: chair,
        source: shown,
        ...(d.chairLayout === 'pip' ? { inset: chair } : {}),
        why: 'chair',
      });
  }
  // What the root sends down every link and shows its own endpoints: the chair, or the speaker large with the
  // chair inset (a speaker session, while somebody is brought to the chair).
  const speaking = d.view === 'speaker' && shown !== undefined && !sameRef(shown, base);
  const fromRoot: Omit<ViewSpec, 'mcu'> | undefined = speaking
    ? base === undefined
      ? { source: shown! }
      : { source: shown!, inset: base }
    : base === undefined
      ? undefined
      : { source: base };

  const views: ViewSpec[] = [];
  for (const m of mcus) {
    const source = up.get(m);
    if (m !== root && source !== undefined)
      layouts.push({ mcu: m, output: { link: parent[m]! }, source, why: 'uplink' });
    const down = m === root ? fromRoot : { source: { link: parent[m]! } };
    if (down === undefined) continue;
    views.push({ mcu: m, ...down });
    for (const c of children[m] ?? []) layouts.push({ mcu: m, output: { link: c }, ...down, why: 'downlink' });
  }
  return { layouts, views };
}

function sameRef(a: Ref, b: Ref | undefined): boolean {
  if (b === undefined) return false;
  return 'link' in a ? 'link' in b && a.link === b.link : 'endpoint' in b && a.endpoint === b.endpoint;
}

/**
 * The same desired state with another chair selection (the chair module switched it already). A speaker
 * session's pictures follow the selection everywhere and are built again; otherwise a selection changes the
 * chair's screen and the uplinks of two paths only (the previous and the new): the other specs are kept, the
 * same objects, and only those few are built (a chair command paid about 40 µs and 24 KB for the national
 * session's 200 specs each time).
 */
export function reselect(
  d: DesiredSession,
  plan: Plan,
  selection: string | null,
  dir: EndpointDirectory,
): DesiredSession {
  if (d.view === 'speaker') return { ...d, ...picturesFor(d, plan, selection, dir) };
  const up = new Map<string, Ref>();
  const layouts: LayoutSpec[] = [];
  const selected = selectionMcu(selection, plan, dir);
  if (selected !== undefined) {
    let shown: Ref = { endpoint: selected.uri };
    for (let m = selected.mcu; m !== d.root; m = d.parent[m]!) {
      up.set(m, shown);
      shown = { link: m };
    }
    const chairUri = chairOnRoot(plan, d.root, dir);
    if (chairUri !== undefined) {
      const chair: Ref = { endpoint: chairUri };
      layouts.push({
        mcu: d.root,
        output: chair,
        source: shown,
        ...(d.chairLayout === 'pip' ? { inset: chair } : {}),
        why: 'chair',
      });
    }
  }
  for (const l of d.layouts) {
    if (l.why === 'chair') continue;
    if (l.why !== 'uplink') {
      layouts.push(l);
      continue;
    }
    // An MCU on a selection's path always has an uplink of its own: an endpoint there, or a child link.
    const source = up.get(l.mcu) ?? baseUplink(d, l.mcu)!;
    layouts.push(sameRef(source, l.source) ? l : { ...l, source });
  }
  return { ...d, layouts };
}

/** What an MCU sends up its link with no selection through it: its main endpoint, else its first child link. */
function baseUplink(d: Pick<DesiredSession, 'mains' | 'children'>, m: string): Ref | undefined {
  const main = d.mains[m];
  if (main !== undefined) return { endpoint: main };
  const firstChild = d.children[m]?.[0];
  return firstChild === undefined ? undefined : { link: firstChild };
}

/** The MCU and URI of the selected endpoint (a relayed room shows through the room relaying it). */
function selectionMcu(
  selection: string | null,
  plan: Plan,
  dir: EndpointDirectory,
): { mcu: string; uri: string } | undefined {
  if (selection === null) return undefined;
  const shown = plan.relays[selection] ?? selection;
  const mcu = plan.assignments[shown];
  const uri = dir.uri(shown);
  return mcu === undefined || uri === undefined ? undefined : { mcu, uri };
}
