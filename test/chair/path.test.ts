/**
 * The chair's path resolution (src/chair/path.ts), property-tested against
 * an oracle written here: random cascade trees of up to 8 MCUs, MCUs down,
 * rooms not open, rosters from the MCU or only from the driver, links up at
 * both ends, at one, dialing, or naming different calls, links named by the
 * far room's URI or by another name on its address, stray links, endpoints
 * connected, gone or muted, relayed rooms, sessions without a chair.
 *
 * The oracle walks the link graph by brute force (every simple path between
 * the endpoint's MCU and the root over the plan's edges) and decides each
 * hop from the rosters itself. When the resolver finds a path, the oracle
 * does not compare step lists: it plays the steps on a model of the MCUs
 * (each output shows its region 1; a link shows what the far MCU sends on
 * it) and checks what the chair then sees and hears.
 */
import fc from 'fast-check';
import t from 'tap';
import {
  type ChairObserved,
  type ChairSession,
  type ChairStep,
  type EntryView,
  type Resolution,
  type RoomView,
  resolveDefault,
  resolvePath,
} from '../../src/chair/index.js';

t.setTimeout(120_000);

type LinkCase = 'both' | 'parent' | 'child' | 'none' | 'dialing' | 'mismatch' | 'gone-at-child';

interface Scenario {
  readonly n: number;
  readonly parentIdx: readonly number[];
  readonly mcuUp: readonly boolean[];
  readonly roomState: readonly ('open' | 'down' | 'closed')[];
  readonly reports: readonly boolean[];
  readonly alias: readonly boolean[];
  readonly links: readonly LinkCase[];
  readonly endpoints: readonly { mcu: number; status: 'connected' | 'disconnected' | 'absent'; muted: boolean }[];
  readonly linkMuted: readonly boolean[];
  readonly relays: readonly number[];
  readonly chair: 'root' | 'none' | 'elsewhere';
  readonly chairStatus: 'connected' | 'absent';
  readonly stray: boolean;
  readonly ask: number;
  readonly previous: number;
  readonly mutePrevious: boolean;
  readonly layout: 'full' | 'pip';
}

const scenario: fc.Arbitrary<Scenario> = fc.integer({ min: 1, max: 8 }).chain((n) => {
  const perMcu = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: n, maxLength: n });
  return fc.record({
    n: fc.constant(n),
    parentIdx: fc.tuple(...Array.from({ length: n - 1 }, (_, i) => fc.integer({ min: 0, max: i }))),
    mcuUp: perMcu(fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) })),
    roomState: perMcu(
      fc.oneof(
        { weight: 8, arbitrary: fc.constant('open' as const) },
        { weight: 1, arbitrary: fc.constant('down' as const) },
        { weight: 1, arbitrary: fc.constant('closed' as const) },
      ),
    ),
    reports: perMcu(fc.boolean()),
    alias: perMcu(fc.boolean()),
    links: perMcu(
      fc.oneof(
        { weight: 10, arbitrary: fc.constant('both' as const) },
        {
          weight: 1,
          arbitrary: fc.constantFrom<LinkCase>('parent', 'child', 'none', 'dialing', 'mismatch', 'gone-at-child'),
        },
      ),
    ),
    endpoints: fc.array(
      fc.record({
        mcu: fc.integer({ min: 0, max: n - 1 }),
        status: fc.oneof(
          { weight: 8, arbitrary: fc.constant('connected' as const) },
          { weight: 1, arbitrary: fc.constantFrom('disconnected' as const, 'absent' as const) },
        ),
        muted: fc.boolean(),
      }),
      { minLength: 1, maxLength: 8 },
    ),
    linkMuted: perMcu(
      fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    ),
    relays: fc.array(fc.nat(7), { maxLength: 3 }),
    chair: fc.oneof(
      { weight: 8, arbitrary: fc.constant('root' as const) },
      { weight: 1, arbitrary: fc.constantFrom('none' as const, 'elsewhere' as const) },
    ),
    chairStatus: fc.oneof(
      { weight: 9, arbitrary: fc.constant('connected' as const) },
      { weight: 1, arbitrary: fc.constant('absent' as const) },
    ),
    stray: fc.boolean(),
    ask: fc.nat(20),
    previous: fc.integer({ min: -1, max: 12 }),
    mutePrevious: fc.boolean(),
    layout: fc.constantFrom('full' as const, 'pip' as const),
  });
});

const mcuId = (i: number) => `m${i}`;
const host = (i: number) => `10.0.0.${i + 1}:5060`;
const roomUri = (i: number) => `sip:7001@${host(i)}`;
/** How MCU `at` names its link to MCU `peer`: the far room, or (alias) another user on the far MCU's address. */
const linkName = (s: Scenario, at: number, peer: number) =>
  s.alias[at] ? `sip:mcu${peer}@${host(peer)}` : roomUri(peer);
const epUri = (j: number) => `sip:e${j}@endpoints.invalid`;
const CHAIR_URI = 'sip:chair@endpoints.invalid';

interface Built {
  readonly session: ChairSession;
  readonly observed: ChairObserved;
  readonly rooms: Map<string, RoomView>;
  readonly asked: string;
  readonly previous: string | null;
}

function build(s: Scenario): Built {
  const parent: Record<string, string> = {};
  const children: Record<string, string[]> = {};
  const rooms: Record<string, string> = {};
  for (let i = 0; i < s.n; i++) {
    rooms[mcuId(i)] = roomUri(i);
    children[mcuId(i)] = [];
  }
  for (let i = 1; i < s.n; i++) {
    parent[mcuId(i)] = mcuId(s.parentIdx[i - 1]!);
    children[mcuId(s.parentIdx[i - 1]!)]!.push(mcuId(i));
  }
  const assignments: Record<string, string> = {};
  const uris = new Map<string, string>();
  const rosters = Array.from({ length: s.n }, () => new Map<string, EntryView>());
  s.endpoints.forEach((e, j) => {
    assignments[`e${j}`] = mcuId(e.mcu);
    uris.set(`e${j}`, epUri(j));
    if (e.status !== 'absent')
      rosters[e.mcu]!.set(epUri(j), { entity: epUri(j), kind: 'endpoint', status: e.status, audioMuted: e.muted });
  });
  const chairMcu = s.chair === 'root' ? 0 : s.chair === 'elsewhere' && s.n > 1 ? s.n - 1 : undefined;
  if (s.chair !== 'none') {
    assignments.chair = mcuId(chairMcu ?? 0);
    uris.set('chair', CHAIR_URI);
    if (s.chairStatus === 'connected')
      rosters[chairMcu ?? 0]!.set(CHAIR_URI, {
        entity: CHAIR_URI,
        kind: 'endpoint',
        status: 'connected',
        audioMuted: false,
      });
  }
  const relays: Record<string, string> = {};
  s.relays.forEach((v, k) => {
    if (v < s.endpoints.length) relays[`r${k}`] = `e${v}`;
  });
  for (let i = 1; i < s.n; i++) {
    const p = s.parentIdx[i - 1]!;
    const c = s.links[i]!;
    const call = `call-${i}`;
    const atParent = (status: EntryView['status'], callId: string) =>
      rosters[p]!.set(linkName(s, p, i), {
        entity: linkName(s, p, i),
        kind: 'link',
        status,
        callId,
        audioMuted: s.linkMuted[i]!,
      });
    const atChild = (status: EntryView['status'], callId: string) =>
      rosters[i]!.set(linkName(s, i, p), {
        entity: linkName(s, i, p),
        kind: 'link',
        status,
        callId,
        audioMuted: false,
      });
    if (c === 'both' || c === 'parent' || c === 'mismatch' || c === 'gone-at-child') atParent('connected', call);
    if (c === 'both' || c === 'child') atChild('connected', call);
    if (c === 'mismatch') atChild('connected', `${call}-other`);
    if (c === 'gone-at-child') atChild('disconnected', call);
    if (c === 'dialing') atParent('dialing-out', call);
  }
  if (s.stray)
    rosters[0]!.set('sip:x@192.0.2.9:5060', {
      entity: 'sip:x@192.0.2.9:5060',
      kind: 'link',
      status: 'connected',
      audioMuted: false,
    });
  const views = new Map<string, RoomView>();
  for (let i = 0; i < s.n; i++)
    views.set(mcuId(i), { state: s.roomState[i]!, reports: s.reports[i]!, roster: rosters[i]! });
  const session: ChairSession = {
    id: 'S',
    root: 'm0',
    chair: s.chair === 'none' ? null : 'chair',
    parent,
    children,
    rooms,
    assignments,
    relays,
    layout: s.layout,
    mutePrevious: s.mutePrevious,
    defaultLayout: '2x2',
  };
  const observed: ChairObserved = {
    mcuUp: (m) => s.mcuUp[Number(m.slice(1))] === true,
    room: (m) => views.get(m),
    uri: (e) => uris.get(e),
  };
  const names = [...Object.keys(assignments), ...Object.keys(relays), 'stranger'];
  const asked = names[s.ask % names.length]!;
  const previous = s.previous < 0 ? null : (names[s.previous % names.length] ?? null);
  return { session, observed, rooms: views, asked, previous };
}

// ---- the oracle ---------------------------------------------------------------------

const norm = (u: string) => u.replace(/^<|>$/g, '').split(/[;?]/)[0]!.toLowerCase();
const addr = (u: string) => norm(u).split('@').pop()!;

/** Every simple path from `from` to `to` over the plan's edges (undirected), by exhaustive search. */
function allPaths(edges: readonly [string, string][], from: string, to: string): string[][] {
  const out: string[][] = [];
  const walk = (at: string, seen: string[]) => {
    if (at === to) {
      out.push(seen);
      return;
    }
    for (const [a, b] of edges) {
      const next = a === at ? b : b === at ? a : undefined;
      if (next !== undefined && !seen.includes(next)) walk(next, [...seen, next]);
    }
  };
  walk(from, [from]);
  return out;
}

/** The link entry at `room` for the peer room, read from the roster as a list. */
function oracleLinkEntry(room: RoomView | undefined, peerRoom: string, callId?: string): EntryView | undefined {
  if (room === undefined) return undefined;
  const links = [...room.roster.values()].filter((e) => e.kind === 'link');
  const exact = links.find((e) => norm(e.entity) === norm(peerRoom));
  if (exact !== undefined) return exact;
  const same = links.filter((e) => e.status !== 'disconnected' && addr(e.entity) === addr(peerRoom));
  const byCall = callId === undefined ? undefined : same.find((e) => e.callId === callId);
  return byCall ?? (same.length === 1 ? same[0] : undefined);
}

function oracleLinkUp(b: Built, child: string, parent: string): boolean {
  const pr = b.rooms.get(parent);
  const cr = b.rooms.get(child);
  if (pr?.state !== 'open' || cr?.state !== 'open') return false;
  const atP = oracleLinkEntry(pr, b.session.rooms[child]!);
  const atC = oracleLinkEntry(cr, b.session.rooms[parent]!, atP?.callId);
  const listed = (r: RoomView, e?: EntryView) => e?.status === 'connected' || (!r.reports ? undefined : false);
  const p = listed(pr, atP);
  const c = listed(cr, atC);
  if (p === false || c === false) return false;
  if (p !== true && c !== true) return false;
  return atP?.callId === undefined || atC?.callId === undefined || atP.callId === atC.callId;
}

type Expected =
  | { kind: 'error'; code: string; hop?: unknown }
  | { kind: 'ok'; path: string[]; shownUri: string; shownMcu: string };

function oracle(b: Built): Expected {
  const s = b.session;
  const shown = s.relays[b.asked] ?? b.asked;
  const mcu = s.assignments[shown];
  if (mcu === undefined) return { kind: 'error', code: 'CHAIR_ERR_NOT_IN_SESSION' };
  if (s.chair === null || s.assignments[s.chair] !== s.root) return { kind: 'error', code: 'CHAIR_ERR_NO_CHAIR' };
  const edges = Object.entries(s.parent) as [string, string][];
  const paths = allPaths(edges, mcu, s.root);
  if (paths.length !== 1) throw new Error(`a tree has exactly one path, found ${paths.length}`);
  const path = paths[0]!;
  const mcuBad = (m: string) => !b.observed.mcuUp(m) || b.rooms.get(m)?.state !== 'open';
  for (let i = 0; i < path.length; i++) {
    if (mcuBad(path[i]!)) return { kind: 'error', code: 'CHAIR_ERR_PATH_DOWN', hop: { mcu: path[i] } };
    if (i + 1 < path.length && !mcuBad(path[i + 1]!) && !oracleLinkUp(b, path[i]!, path[i + 1]!))
      return { kind: 'error', code: 'CHAIR_ERR_PATH_DOWN', hop: { child: path[i], parent: path[i + 1] } };
  }
  const presence = (m: string, uri: string) => {
    const r = b.rooms.get(m)!;
    const e = [...r.roster.values()].find((x) => norm(x.entity) === norm(uri));
    if (e !== undefined) return e.status === 'connected';
    return !r.reports;
  };
  const shownUri = b.observed.uri(shown);
  if (shownUri === undefined || !presence(mcu, shownUri)) return { kind: 'error', code: 'CHAIR_ERR_NOT_CONNECTED' };
  if (!presence(s.root, CHAIR_URI)) return { kind: 'error', code: 'CHAIR_ERR_NOT_CONNECTED' };
  return { kind: 'ok', path, shownUri, shownMcu: mcu };
}

/**
 * Play the steps on a model of the MCUs and return what the chair sees in
 * region 1, following links by the rosters, plus the muted state after the
 * audio steps of every source on the way.
 */
function play(b: Built, steps: readonly ChairStep[]): { sees: string | undefined; silentOnPath: string[] } {
  const outputs = new Map<string, readonly string[]>();
  const muted = new Map<string, boolean>();
  for (const st of steps) {
    if (st.kind === 'switch') outputs.set(`${st.mcu}|${norm(st.output)}`, st.sources);
    else muted.set(`${st.mcu}|${norm(st.source)}`, st.kind === 'mute');
  }
  const isMuted = (m: string, entity: string) => {
    const k = `${m}|${norm(entity)}`;
    if (muted.has(k)) return muted.get(k)!;
    return [...b.rooms.get(m)!.roster.values()].find((e) => norm(e.entity) === norm(entity))?.audioMuted === true;
  };
  const silent: string[] = [];
  // Which MCU is at the other end of `entity` in `m`'s room: a plan neighbour whose room the entry names.
  const peerOf = (m: string, entity: string): string | undefined => {
    const neighbours = [
      ...(b.session.parent[m] === undefined ? [] : [b.session.parent[m]!]),
      ...(b.session.children[m] ?? []),
    ];
    return neighbours.find((n) => {
      const e = oracleLinkEntry(b.rooms.get(m), b.session.rooms[n]!);
      return e !== undefined ? norm(e.entity) === norm(entity) : norm(entity) === norm(b.session.rooms[n]!);
    });
  };
  let m = b.session.root;
  let output = CHAIR_URI;
  for (let hops = 0; hops < 16; hops++) {
    const shows = outputs.get(`${m}|${norm(output)}`)?.[0];
    if (shows === undefined) return { sees: undefined, silentOnPath: silent };
    if (isMuted(m, shows)) silent.push(`${m}:${shows}`);
    const peer = peerOf(m, shows);
    if (peer === undefined) return { sees: shows, silentOnPath: silent };
    // The peer sends on its link towards m: how the peer names that link.
    const e = oracleLinkEntry(b.rooms.get(peer), b.session.rooms[m]!);
    output = e?.entity ?? b.session.rooms[m]!;
    m = peer;
  }
  return { sees: undefined, silentOnPath: silent };
}

t.test('path resolution agrees with a brute-force walk of the link graph', async (t) => {
  let oks = 0;
  let downs = 0;
  const codes = new Set<string>();
  fc.assert(
    fc.property(scenario, (s) => {
      const b = build(s);
      const before = JSON.stringify([...b.rooms].map(([k, v]) => [k, v.state, [...v.roster.values()]]));
      const r: Resolution = resolvePath(b.session, b.observed, b.asked, b.previous);
      const again = resolvePath(b.session, b.observed, b.asked, b.previous);
      if (JSON.stringify(r) !== JSON.stringify(again)) throw new Error('not deterministic');
      if (JSON.stringify([...b.rooms].map(([k, v]) => [k, v.state, [...v.roster.values()]])) !== before)
        throw new Error('the observed state was changed');
      const want = oracle(b);
      codes.add(r.ok ? 'ok' : r.code);
      if (want.kind === 'error') {
        if (r.ok || r.code !== want.code)
          throw new Error(`expected ${want.code}, got ${r.ok ? 'a path' : `${r.code}: ${r.message}`}`);
        if (want.hop !== undefined) {
          downs++;
          const hop = (r.details as { hop: Record<string, unknown> }).hop;
          const { why: _, ...named } = hop;
          if (JSON.stringify(named) !== JSON.stringify(want.hop))
            throw new Error(`broken hop ${JSON.stringify(named)}, oracle ${JSON.stringify(want.hop)}`);
        }
        return;
      }
      if (!r.ok) throw new Error(`oracle found a path, resolver said ${r.code}: ${r.message}`);
      oks++;
      if (JSON.stringify(r.path.mcus) !== JSON.stringify(want.path)) throw new Error('another path than the oracle');
      const seen = play(b, r.path.steps);
      if (seen.sees === undefined || norm(seen.sees) !== norm(want.shownUri))
        throw new Error(`the chair would see ${seen.sees}, not ${want.shownUri}`);
      if (seen.silentOnPath.length > 0) throw new Error(`muted on the way: ${seen.silentOnPath.join(', ')}`);
      const root = r.path.steps.find((st) => st.kind === 'switch' && st.role === 'root');
      if (root?.kind !== 'switch') throw new Error('no step on the chair screen');
      const wantSources = s.layout === 'pip' ? 2 : 1;
      if (root.layout !== (s.layout === 'pip' ? 'pip' : 'single') || root.sources.length !== wantSources)
        throw new Error(`chair layout ${root.layout} with ${root.sources.length} sources`);
      if (s.layout === 'pip' && norm(root.sources[1]!) !== norm(CHAIR_URI))
        throw new Error('pip inset is not the chair');
      // One switch per MCU of the path, each on that MCU's session room.
      const switches = r.path.steps.filter((st) => st.kind === 'switch');
      if (switches.length !== want.path.length) throw new Error('not one switch per MCU');
      for (const st of r.path.steps)
        if (st.room !== b.session.rooms[st.mcu]) throw new Error(`step ${st.id} not in the session's room`);
      // The previous speaker: muted when asked, unless it is the one shown now or the chair.
      const mutes = r.path.steps.filter((st) => st.kind === 'mute');
      if (mutes.length > 0 && (!s.mutePrevious || b.previous === null)) throw new Error('muted without being asked');
      for (const st of mutes)
        if (st.kind === 'mute' && (norm(st.source) === norm(want.shownUri) || norm(st.source) === norm(CHAIR_URI)))
          throw new Error('muted the new speaker or the chair');
    }),
    { numRuns: 3000, seed: 1594 },
  );
  t.ok(oks > 500, `${oks} scenarios with a path, checked by playing their steps`);
  t.ok(downs > 100, `${downs} scenarios with a broken hop, named as the oracle names it`);
  for (const code of [
    'ok',
    'CHAIR_ERR_PATH_DOWN',
    'CHAIR_ERR_NOT_IN_SESSION',
    'CHAIR_ERR_NO_CHAIR',
    'CHAIR_ERR_NOT_CONNECTED',
  ])
    t.ok(codes.has(code), `${code} reached`);
});

t.test('the previous speaker is muted once, not when it is the new one or already muted', async (t) => {
  const s: Scenario = {
    n: 2,
    parentIdx: [0],
    mcuUp: [true, true],
    roomState: ['open', 'open'],
    reports: [true, true],
    alias: [false, false],
    links: ['both', 'both'],
    endpoints: [
      { mcu: 1, status: 'connected', muted: false },
      { mcu: 1, status: 'connected', muted: true },
      { mcu: 0, status: 'connected', muted: false },
    ],
    linkMuted: [false, false],
    relays: [0],
    chair: 'root',
    chairStatus: 'connected',
    stray: false,
    ask: 0,
    previous: -1,
    mutePrevious: true,
    layout: 'full',
  };
  const b = build(s);
  const steps = (asked: string, previous: string | null) => {
    const r = resolvePath(b.session, b.observed, asked, previous);
    if (!r.ok) throw new Error(r.message);
    return r.path.steps.map((st) => (st.kind === 'switch' ? `${st.id}` : `${st.id}=${st.source}`));
  };
  t.same(steps('e0', 'e2'), ['switch:m1', 'switch:m0', `mute:m0=${epUri(2)}`], 'the previous speaker muted on its MCU');
  t.same(steps('e2', 'e1'), ['switch:m0'], 'an already muted previous speaker is left alone');
  t.same(steps('e1', 'e0'), [`unmute:m1=${epUri(1)}`, 'switch:m1', 'switch:m0', `mute:m1=${epUri(0)}`]);
  t.same(steps('e0', 'r0'), ['switch:m1', 'switch:m0'], 'a relayed room shown through the same endpoint: no mute');
  t.same(steps('e0', 'chair'), ['switch:m1', 'switch:m0'], 'the chair is never muted');
  t.same(steps('r0', null), ['switch:m1', 'switch:m0'], 'a relay endpoint resolves to the endpoint relaying it');
});

t.test('the default layout: child links that are up, then the root endpoints, as many as fit', async (t) => {
  const s: Scenario = {
    n: 4,
    parentIdx: [0, 0, 0],
    mcuUp: [true, true, true, true],
    roomState: ['open', 'open', 'open', 'open'],
    reports: [true, true, true, true],
    alias: [false, false, false, false],
    links: ['both', 'both', 'none', 'both'],
    endpoints: [
      { mcu: 0, status: 'connected', muted: false },
      { mcu: 0, status: 'connected', muted: false },
      { mcu: 0, status: 'connected', muted: false },
    ],
    linkMuted: [false, false, false, false],
    relays: [],
    chair: 'root',
    chairStatus: 'connected',
    stray: false,
    ask: 0,
    previous: -1,
    mutePrevious: false,
    layout: 'full',
  };
  const b = build(s);
  const d = resolveDefault(b.session, b.observed, 4);
  t.ok(d.ok);
  if (d.ok) {
    t.equal(d.step.output, CHAIR_URI);
    t.equal(d.step.layout, '2x2');
    t.same(d.step.sources, [roomUri(1), roomUri(3), epUri(0), epUri(1)], 'm2 (its link down) left out');
  }
  const noChair = resolveDefault({ ...b.session, chair: null }, b.observed, 4);
  t.equal(noChair.ok ? 'ok' : noChair.code, 'CHAIR_ERR_NO_CHAIR');
});
