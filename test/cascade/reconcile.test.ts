/**
 * The reconciler's decisions (src/cascade/reconcile.ts), property-tested
 * against a model of MCUs (world.ts): from any starting point (links already
 * up after a restart, half of them, stale links of an earlier plan, someone
 * else's link, endpoints already in), with commands finishing in any order
 * and links dropping at random, it converges to the plan: every link up at
 * both MCUs on one call, every endpoint in, every picture set, nothing of
 * ours left over, someone else's link untouched; dialing parents before
 * children and within the concurrency bounds, tearing down children first.
 */
import fc from 'fast-check';
import t from 'tap';
import {
  type Action,
  Bookkeeping,
  DEFAULT_BACKOFF,
  type DesiredSession,
  decide,
  decideLayouts,
  desiredSession,
  endpointsWithoutView,
  linkKey,
  type ObservedEntry,
  type ReconcileOptions,
  reselect,
  roomKey,
} from '../../src/cascade/index.js';
import { directory, fakePlan, World } from './world.js';

t.setTimeout(120_000);

const OPTS: ReconcileOptions = {
  linkConcurrency: 3,
  participantConcurrency: 4,
  layoutConcurrency: 2,
  viewConcurrency: 3,
  halfDeadGraceMs: 300,
  replanAfterMs: Number.POSITIVE_INFINITY,
  unexpectedLinks: 'report',
  endpoints: 'all',
};
const STEP_MS = 100;

interface Scenario {
  readonly n: number;
  readonly parentIdx: readonly number[];
  readonly endpoints: readonly number[];
  readonly flags: readonly { reports: boolean; namesByAddress: boolean }[];
  readonly preLinked: readonly boolean[];
  readonly preEndpoints: boolean;
  readonly stray: boolean;
  readonly foreign: boolean;
  readonly twoSessions: boolean;
  readonly seed: number;
}

const scenario = fc.integer({ min: 2, max: 7 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    // MCU i > 0 cascades into an earlier one: a tree rooted at m0.
    parentIdx: fc.tuple(...Array.from({ length: n - 1 }, (_, i) => fc.integer({ min: 0, max: i }))),
    endpoints: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: n, maxLength: n }),
    flags: fc.array(fc.record({ reports: fc.boolean(), namesByAddress: fc.boolean() }), {
      minLength: n,
      maxLength: n,
    }),
    preLinked: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    preEndpoints: fc.boolean(),
    stray: fc.boolean(),
    foreign: fc.boolean(),
    twoSessions: fc.boolean(),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  }),
);

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const mcuId = (i: number) => `m${i}`;
const roomOf = (s: string, i: number) => `sip:${s}-${mcuId(i)}@10.0.0.${i + 1}:5060;transport=udp`;

/** Build the world and the sessions of a scenario. */
function setUp(sc: Scenario): { world: World; sessions: DesiredSession[] } {
  const world = new World();
  for (let i = 0; i < sc.n; i++) world.addMcu(mcuId(i), sc.flags[i]);
  const names = sc.twoSessions ? ['s1', 's2'] : ['s1'];
  const sessions = names.map((s, si) => {
    const parent: Record<string, string> = {};
    sc.parentIdx.forEach((p, i) => {
      parent[mcuId(i + 1)] = mcuId(p);
    });
    const on: Record<string, string[]> = {};
    for (let i = 0; i < sc.n; i++)
      on[mcuId(i)] = Array.from({ length: sc.endpoints[i]! }, (_, k) => `${s}-e${i}${k}-L${(i + k) % 4}`);
    // The chair sits on the root.
    on.m0 = [...(on.m0 ?? []), `${s}-chair-L0`];
    const rooms: Record<string, string> = {};
    for (let i = 0; i < sc.n; i++) {
      rooms[mcuId(i)] = roomOf(s, i);
      world.addRoom(mcuId(i), roomOf(s, i));
    }
    const plan = fakePlan('m0', parent, on, `${s}-chair-L0`);
    const d = desiredSession({ id: s, phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
    if (si === 0) {
      // A restart finds some links already up, some endpoints in, maybe a stale link of ours.
      for (const [c, p] of Object.entries(parent))
        if (sc.preLinked[Number(c.slice(1))]) world.link(rooms[p]!, rooms[c]!);
      if (sc.preEndpoints)
        for (const [m, eps] of Object.entries(d.participants))
          for (const ep of eps.slice(0, 1)) world.joinEndpoint(rooms[m]!, ep);
      // A stale link of ours, where an MCU shows it under the room's URI. Between two MCUs without the
      // conference event package it is invisible; an MCU naming it by its address of record makes it
      // indistinguishable from someone else's (reported, left alone): docs/cascade.md.
      const [f1, f2] = [sc.flags[1], sc.flags[2]];
      if (sc.stray && sc.n >= 3 && (f1!.reports || (f2!.reports && !f2!.namesByAddress))) {
        const [a, b] = [rooms.m1!, rooms.m2!];
        if (!world.linked(a, b) && !world.linked(b, a) && parent.m2 !== 'm1' && parent.m1 !== 'm2') world.link(a, b);
      }
    }
    return d;
  });
  if (sc.foreign) {
    world.addMcu('x');
    world.addRoom('x', 'sip:foreign@10.9.9.9:5060');
    world.link('sip:foreign@10.9.9.9:5060', roomOf('s1', 0));
  }
  return { world, sessions };
}

/** What the plan wants, checked on the world (the MCUs), not on the reconciler's view. */
function converged(world: World, sessions: readonly DesiredSession[]): string[] {
  const problems: string[] = [];
  for (const d of sessions) {
    for (const [c, p] of Object.entries(d.parent))
      if (!world.linked(d.rooms[p]!, d.rooms[c]!)) problems.push(`${d.id}: link ${c} -> ${p} not up`);
    for (const [m, eps] of Object.entries(d.participants))
      for (const ep of eps)
        if (!world.room(d.rooms[m]!).entries.has(roomKey(ep))) problems.push(`${d.id}: ${ep} not in ${m}`);
    for (const m of d.mcus) {
      const r = world.room(d.rooms[m]!);
      const ours = [...r.entries.entries()].filter(([k, e]) => e.kind === 'link' && !k.includes('10.9.9.9'));
      const want = (d.children[m]?.length ?? 0) + (d.parent[m] === undefined ? 0 : 1);
      if (ours.length !== want) problems.push(`${d.id}: ${m} has ${ours.length} links, wants ${want}`);
    }
    for (const spec of d.layouts) {
      if (!('link' in spec.output) || spec.why !== 'uplink') continue;
      const screens = world.screens.get(roomKey(d.rooms[spec.mcu]!));
      const want = 'endpoint' in spec.source ? roomKey(spec.source.endpoint) : undefined;
      const shown = screens === undefined ? [] : [...screens.values()];
      if (want !== undefined && !shown.includes(want)) problems.push(`${d.id}: ${spec.mcu} does not show ${want} up`);
    }
    // Every endpoint but the chair watches the chair: on the root itself, elsewhere what comes down the link.
    for (const m of d.mcus) {
      const room = world.room(d.rooms[m]!);
      const parent = d.parent[m];
      const want = parent === undefined ? d.chair && roomKey(d.chair) : linkEntity(world, d.rooms[parent]!, room.key);
      for (const ep of d.participants[m] ?? []) {
        if (ep === d.chair) continue;
        const shows = world.screens.get(room.key)?.get(roomKey(ep));
        if (shows !== want) problems.push(`${d.id}: ${ep} on ${m} sees ${shows}, not ${want}`);
      }
    }
  }
  return problems;
}

const isLink = (e: ObservedEntry) => e.kind === 'link';

/** How the child's room names its link to the parent's room (the entry on the parent's call). */
function linkEntity(world: World, parentUri: string, childUri: string): string | undefined {
  const atParent = world.room(parentUri).entries.get(world.room(childUri).key);
  for (const [k, e] of world.room(childUri).entries) if (e.callId === atParent?.callId) return k;
  return undefined;
}

interface RunResult {
  readonly rounds: number;
  readonly problems: readonly string[];
  readonly violations: readonly string[];
  readonly quiet: boolean;
}

/**
 * Decide, start, finish a random part of what is in flight (in any order), repeat. `disturb` may change
 * the world before a round (drops). Invariants are checked on every decision against the world.
 */
function run(
  world: World,
  sessions: DesiredSession[],
  seed: number,
  maxRounds: number,
  disturb?: (round: number, r: () => number) => void,
): RunResult {
  const r = rng(seed);
  const book = new Bookkeeping(DEFAULT_BACKOFF, r);
  // Sessions with no link of theirs on any MCU yet are as the manager's admitted ones (Memory.fresh): their links
  // are dialled once the parent's room is there, before its roster; they must never dial a link already there.
  for (const d of sessions)
    if (d.phase === 'live' && d.mcus.every((m) => ![...world.room(d.rooms[m]!).entries.values()].some(isLink)))
      book.fresh.add(d.id);
  const pending: Action[] = [];
  const violations: string[] = [];
  let now = 0;
  let quietRounds = 0;
  for (let round = 0; round < maxRounds; round++) {
    disturb?.(round, r);
    const obs = world.observed(now);
    const dec = decide(sessions, obs, book, OPTS);
    const keys = new Set<string>();
    const inPool = { link: 0, participant: 0, layout: 0, view: 0, control: 0 };
    for (const p of book.inflight.values()) inPool[p]++;
    for (const a of dec.actions) {
      if (keys.has(a.key)) violations.push(`round ${round}: key ${a.key} twice`);
      if (book.inflight.has(a.key)) violations.push(`round ${round}: ${a.key} already in flight`);
      keys.add(a.key);
      if (a.kind === 'dial-link') {
        const d = sessions.find((s) => s.id === a.session)!;
        // Parents before children: the parent's own link up, or its dial answered (succeeded) and not yet
        // shown by the rosters (docs/cascade.md, "Order and bounds").
        const gp = d.parent[a.parent];
        const answered = book.dialedAt.has(linkKey(d.id, a.parent));
        if (gp !== undefined && !world.linked(d.rooms[gp]!, d.rooms[a.parent]!) && !answered)
          violations.push(`round ${round}: dialled ${a.child} before its parent ${a.parent} was up or answered`);
        if (book.fresh.has(d.id) && a.replace === undefined && world.room(a.room).entries.has(roomKey(a.target)))
          violations.push(`round ${round}: dialled ${a.child} of a fresh session, already up at its parent`);
      }
      if (a.kind === 'hang-up-link' && a.why === 'teardown') {
        const d = sessions.find((s) => s.id === a.session)!;
        const below = (d.children[a.child!] ?? []).some((c) => world.linked(d.rooms[a.child!]!, d.rooms[c]!));
        if (below) violations.push(`round ${round}: tore down ${a.child} before its children`);
      }
      if (a.kind === 'hang-up-link' && a.target.startsWith('sip:foreign'))
        violations.push(`round ${round}: hung up someone else's link`);
    }
    for (const a of dec.actions) {
      const pool =
        a.kind === 'dial-link' || a.kind === 'hang-up-link'
          ? 'link'
          : a.kind.endsWith('participant')
            ? 'participant'
            : a.kind === 'layout'
              ? a.why === 'view'
                ? 'view'
                : 'layout'
              : 'control';
      inPool[pool]++;
    }
    if (inPool.link > OPTS.linkConcurrency) violations.push(`round ${round}: ${inPool.link} link actions at once`);
    if (inPool.participant > OPTS.participantConcurrency)
      violations.push(`round ${round}: ${inPool.participant} participant actions at once`);
    if (inPool.layout > OPTS.layoutConcurrency) violations.push(`round ${round}: ${inPool.layout} layouts at once`);
    if (inPool.view > OPTS.viewConcurrency) violations.push(`round ${round}: ${inPool.view} screens at once`);

    book.sawHalf(dec.half, now);
    book.sawUp(dec.links, dec.upCalls);
    for (const a of dec.actions) {
      book.started(a, now);
      world.start(a);
      pending.push(a);
    }
    // Commands finish in any order; some take several rounds.
    for (let i = pending.length - 1; i >= 0; i--) {
      if (r() < 0.4) continue;
      const [a] = pending.splice(i, 1);
      try {
        world.apply(a!);
        book.succeeded(a!, now, a!.kind === 'open' ? roomKey(a!.room) : undefined);
      } catch (err) {
        book.failed(a!, now, (err as Error).message);
      }
    }
    now += STEP_MS;
    const idle = dec.actions.length === 0 && pending.length === 0 && dec.half.length === 0;
    quietRounds = idle ? quietRounds + 1 : 0;
    // Quiet for longer than any retry delay: nothing more will happen.
    if (quietRounds * STEP_MS > DEFAULT_BACKOFF.maxMs + OPTS.halfDeadGraceMs)
      return { rounds: round, problems: converged(world, sessions), violations, quiet: true };
  }
  return { rounds: maxRounds, problems: converged(world, sessions), violations, quiet: false };
}

t.test('from any starting point, the cascade converges to the plan and stays quiet', async (t) => {
  fc.assert(
    fc.property(scenario, (sc) => {
      const { world, sessions } = setUp(sc);
      const res = run(world, sessions, sc.seed, 600);
      if (res.violations.length > 0) throw new Error(res.violations.join('\n'));
      if (!res.quiet) throw new Error(`still acting after ${res.rounds} rounds: ${res.problems.join('; ')}`);
      if (res.problems.length > 0) throw new Error(res.problems.join('\n'));
      // Someone else's link is reported and left alone.
      if (sc.foreign && world.linkCount('sip:foreign@10.9.9.9:5060') !== 1) throw new Error('foreign link touched');
    }),
    { numRuns: 300 },
  );
  t.pass('300 scenarios converged');
});

t.test('links dropping at random are all healed, pictures restored', async (t) => {
  fc.assert(
    fc.property(scenario, (sc) => {
      const { world, sessions } = setUp(sc);
      const d = sessions[0]!;
      // Drop only links an MCU would report: a link dropped between two MCUs without the conference event
      // package goes unnoticed (docs/cascade.md, limits).
      const droppable = Object.entries(d.parent).filter(
        ([c, p]) => world.mcus.get(c)!.reports || world.mcus.get(p)!.reports,
      );
      let drops = 0;
      const res = run(world, sessions, sc.seed, 1_500, (round, r) => {
        if (round < 20 || round > 300 || droppable.length === 0 || r() > 0.1) return;
        const [c, p] = droppable[Math.floor(r() * droppable.length)]!;
        if (world.drop(d.rooms[p]!, d.rooms[c]!)) drops++;
      });
      if (res.violations.length > 0) throw new Error(res.violations.join('\n'));
      if (!res.quiet || res.problems.length > 0)
        throw new Error(`after ${drops} drops: ${res.problems.join('; ') || 'still acting'}`);
    }),
    { numRuns: 200 },
  );
  t.pass('200 scenarios healed');
});

t.test('a session that ends is torn down children first, then its endpoints leave', async (t) => {
  fc.assert(
    fc.property(scenario, (sc) => {
      const { world, sessions } = setUp({ ...sc, twoSessions: false, foreign: false });
      const up = run(world, sessions, sc.seed, 600);
      if (!up.quiet || up.problems.length > 0) throw new Error(`not up: ${up.problems.join('; ')}`);
      const ending = sessions.map((d) => ({ ...d, phase: 'ending' as const }));
      const res = run(world, ending, sc.seed + 1, 600);
      if (res.violations.length > 0) throw new Error(res.violations.join('\n'));
      const d = ending[0]!;
      for (const m of d.mcus) {
        const r = world.room(d.rooms[m]!);
        if ([...r.entries.values()].some((e) => e.kind === 'link')) throw new Error(`${m} still has links`);
        if (r.entries.size > 0) throw new Error(`${m} still has endpoints`);
      }
      if (!world.finished.has('s1')) throw new Error('never finished');
    }),
    { numRuns: 150 },
  );
  t.pass('150 sessions torn down');
});

t.test('a room seen with everyone in is skipped until its version changes', async (t) => {
  const plan = fakePlan('r', {}, { r: ['chair-L0', 'a-L3', 'b-L3'] }, 'chair-L0');
  const d = desiredSession(
    { id: 's', phase: 'live', plan, rooms: { r: 'sip:1@r' }, mains: {}, selection: null },
    directory,
  );
  const entry = (id: string) => ({
    entity: roomKey(directory.uri(id)!),
    kind: 'endpoint' as const,
    status: 'connected' as const,
    gen: 1,
  });
  const roster = new Map(['chair-L0', 'a-L3', 'b-L3'].map((id) => [entry(id).entity, entry(id)]));
  const room = { state: 'open' as const, reports: true, roster, version: 1 };
  const obs = { now: 0, mcus: new Map([['r', { up: true, since: 0 }]]), rooms: new Map([[roomKey('sip:1@r'), room]]) };
  const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  const dials = () =>
    decide([d], obs, mem, OPTS)
      .actions.filter((a) => a.kind === 'dial-participant')
      .map((a) => (a as { endpoint: string }).endpoint);
  t.same(dials(), [], 'everyone in: nothing to dial');
  roster.delete(entry('b-L3').entity);
  room.version = 2;
  t.same(dials(), [directory.uri('b-L3')], 'one gone, the version changed: dialled again');
  roster.set(entry('b-L3').entity, entry('b-L3'));
  room.version = 3;
  t.same(dials(), [], 'back in');
  t.same(dials(), [], 'and the same version again: skipped');
});

t.test(
  'a link whose dial succeeded is not dialled again while the rosters catch up, for the grace period',
  async (t) => {
    const plan = fakePlan('r', { c: 'r' }, {}, null);
    const d = desiredSession(
      { id: 's', phase: 'live', plan, rooms: { r: 'sip:1@r', c: 'sip:1@c' }, mains: {}, selection: null },
      directory,
    );
    const room = () => ({ state: 'open' as const, reports: true, roster: new Map(), version: 1 });
    const obs = (now: number) => ({
      now,
      mcus: new Map([
        ['r', { up: true, since: 0 }],
        ['c', { up: true, since: 0 }],
      ]),
      rooms: new Map([
        [roomKey('sip:1@r'), room()],
        [roomKey('sip:1@c'), room()],
      ]),
    });
    const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
    const first = decide([d], obs(0), mem, OPTS);
    const dial = first.actions.find((a) => a.kind === 'dial-link');
    t.ok(dial, 'dialled');
    mem.started(dial!, 0);
    mem.succeeded(dial!, 10);
    // The parent answered 2xx, but neither roster shows the link yet (an MCU paces its notifications).
    const waiting = decide([d], obs(100), mem, OPTS);
    t.notOk(
      waiting.actions.some((a) => a.kind === 'dial-link'),
      'not dialled again inside the grace',
    );
    t.equal(waiting.links[0]?.state, 'dialing', 'shown as dialing meanwhile');
    t.equal(waiting.wakeAt, 10 + OPTS.halfDeadGraceMs, 'and woken when the grace ends');
    const later = decide([d], obs(10 + OPTS.halfDeadGraceMs), mem, OPTS);
    t.ok(
      later.actions.some((a) => a.kind === 'dial-link'),
      'still not there after the grace: dialled again',
    );

    // Seen up once, a drop inside the grace is redialled at once: the grace is for the rosters to catch up only.
    const mem2 = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
    mem2.started(dial!, 0);
    mem2.succeeded(dial!, 10);
    const link = (entity: string) => ({ entity, kind: 'link' as const, status: 'connected' as const, gen: 1 });
    const up = obs(50);
    up.rooms.get(roomKey('sip:1@r'))!.roster.set(roomKey('sip:1@c'), link(roomKey('sip:1@c')));
    up.rooms.get(roomKey('sip:1@c'))!.roster.set(roomKey('sip:1@r'), link(roomKey('sip:1@r')));
    const seen = decide([d], up, mem2, OPTS);
    t.equal(seen.links[0]?.state, 'up');
    mem2.sawUp(seen.links, seen.upCalls);
    const dropped = decide([d], obs(60), mem2, OPTS);
    t.ok(
      dropped.actions.some((a) => a.kind === 'dial-link'),
      'dropped after it was up: dialled again at once',
    );
  },
);

t.test('a decision says when it held work back: an action in flight, a pool out of budget', async (t) => {
  const plan = fakePlan('r', {}, { r: ['chair-L0', 'a-L3', 'b-L3'] }, 'chair-L0');
  const d = desiredSession(
    { id: 's', phase: 'live', plan, rooms: { r: 'sip:1@r' }, mains: {}, selection: null },
    directory,
  );
  const roster = new Map<string, ObservedEntry>();
  const room = { state: 'open' as const, reports: true, roster, version: 1 };
  const obs = { now: 0, mcus: new Map([['r', { up: true, since: 0 }]]), rooms: new Map([[roomKey('sip:1@r'), room]]) };
  const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  mem.opened.add(roomKey('sip:1@r'));
  const first = decide([d], obs, mem, OPTS);
  const dials = first.actions.filter((a) => a.kind === 'dial-participant');
  t.equal(dials.length, 3, 'every endpoint to dial');
  t.equal(first.held, false, 'nothing in flight, budget enough: nothing held');
  t.equal(first.heldKeys.size + first.heldPools.size, 0, 'no key, no pool');
  mem.started(dials[0]!, 0);
  const again = decide([d], obs, mem, OPTS);
  t.equal(again.held, true, 'one in flight: held');
  t.same(
    [...again.heldKeys],
    [dials[0]!.key],
    'the key in flight is the one held: only its own result asks for a pass',
  );
  t.same([...again.heldPools], [], 'no pool out of budget');
  t.equal(again.actions.filter((a) => a.kind === 'dial-participant').length, 2, 'the other two offered again');
  const full = decide([d], obs, mem, { ...OPTS, participantConcurrency: 2 });
  t.equal(full.held, true, 'out of budget: held');
  t.same([...full.heldPools], ['participant'], 'the pool out of budget: a result of any of its actions frees a slot');
  mem.succeeded(dials[0]!, 0);
  for (const id of ['chair-L0', 'a-L3', 'b-L3']) {
    const entity = roomKey(directory.uri(id)!);
    roster.set(entity, { entity, kind: 'endpoint', status: 'connected', gen: 1 });
  }
  room.version = 2;
  const screens = decide([d], obs, mem, OPTS);
  t.same(
    screens.actions.map((a) => a.kind === 'layout' && a.why),
    ['view', 'view'],
    'everyone in: nothing to dial, their screens to set',
  );
  t.equal(screens.held, false, 'within the budget: nothing held');
  for (const a of screens.actions) mem.succeeded(a, 0);
  const settled = decide([d], obs, mem, OPTS);
  t.same(settled.actions, [], 'everyone in and shown the chair: nothing to do');
  t.equal(settled.held, false, 'and nothing held');
});

t.test(
  "the rooms' screens: once each, again when the endpoint or the source is a new call; the speaker never sees itself",
  async (t) => {
    const plan = fakePlan('r', {}, { r: ['chair-L0', 'a-L3', 'b-L3'] }, 'chair-L0');
    const quiet = desiredSession(
      { id: 's', phase: 'live', plan, rooms: { r: 'sip:1@r' }, mains: {}, selection: null, view: 'speaker' },
      directory,
    );
    const entry = (id: string, gen = 1) => ({
      entity: roomKey(directory.uri(id)!),
      kind: 'endpoint' as const,
      status: 'connected' as const,
      gen,
    });
    const roster = new Map(['chair-L0', 'a-L3', 'b-L3'].map((id) => [entry(id).entity, entry(id)]));
    const room = { state: 'open' as const, reports: true, roster, version: 1 };
    const obs = {
      now: 0,
      mcus: new Map([['r', { up: true, since: 0 }]]),
      rooms: new Map([[roomKey('sip:1@r'), room]]),
    };
    const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
    const u = (id: string) => roomKey(directory.uri(id)!);
    /** Decide, carry every screen out at once; the screens set, as [output, source, inset]. */
    const pass = (d: DesiredSession) => {
      const dec = decide([d], obs, mem, OPTS);
      const screens = dec.actions.filter((a) => a.kind === 'layout' && a.why === 'view');
      for (const a of screens) mem.succeeded(a, 0);
      return {
        pending: dec.viewsPending.includes('s'),
        set: screens.map((a) => (a.kind === 'layout' ? [a.output, a.source, a.inset ?? null] : [])),
      };
    };
    t.equal(endpointsWithoutView(quiet, obs, mem), 2, 'nobody shown the view yet: everyone but the chair');
    t.same(
      pass(quiet),
      {
        pending: true,
        set: [
          [u('a-L3'), u('chair-L0'), null],
          [u('b-L3'), u('chair-L0'), null],
        ],
      },
      'everyone but the chair sees the chair',
    );
    t.same(pass(quiet), { pending: false, set: [] }, 'applied: nothing more, and nothing pending');
    const speaking = reselect(quiet, plan, 'a-L3', directory);
    t.equal(endpointsWithoutView(quiet, obs, mem), 0, 'every screen set');
    t.equal(
      endpointsWithoutView(speaking, obs, mem),
      1,
      'a speaking: b does not see it yet (a sees the chair, as it did)',
    );
    t.same(
      pass(speaking).set,
      [[u('b-L3'), u('a-L3'), u('chair-L0')]],
      'the speaker large with the chair inset; the speaker itself still sees the chair alone (not sent again)',
    );
    t.equal(endpointsWithoutView(speaking, obs, mem), 0, 'b sees the speaker now');
    roster.set(u('b-L3'), entry('b-L3', 2));
    room.version = 2;
    t.same(
      pass(speaking).set,
      [[u('b-L3'), u('a-L3'), u('chair-L0')]],
      'an endpoint that called again: its screen again',
    );
    roster.set(u('chair-L0'), entry('chair-L0', 3));
    room.version = 3;
    t.equal(pass(speaking).set.length, 2, 'the chair called again (a new inset): every screen again');
    t.same(pass(speaking), { pending: false, set: [] });
    const few = decide([reselect(speaking, plan, null, directory)], obs, mem, { ...OPTS, viewConcurrency: 1 });
    t.same(
      few.actions.filter((a) => a.kind === 'layout').map((a) => (a as { output: string }).output),
      [u('b-L3')],
      'within the pool of its own; only the screen that changes',
    );
    t.ok(few.viewsPending.includes('s'));
  },
);

t.test('a screen still in flight with an earlier view is set again once it lands', async (t) => {
  const plan = fakePlan('r', {}, { r: ['chair-L0', 'a-L3', 'b-L3'] }, 'chair-L0');
  const quiet = desiredSession(
    { id: 's', phase: 'live', plan, rooms: { r: 'sip:1@r' }, mains: {}, selection: null, view: 'speaker' },
    directory,
  );
  const speaking = reselect(quiet, plan, 'a-L3', directory);
  const entry = (id: string) => ({
    entity: roomKey(directory.uri(id)!),
    kind: 'endpoint' as const,
    status: 'connected' as const,
    gen: 1,
  });
  const roster = new Map(['chair-L0', 'a-L3', 'b-L3'].map((id) => [entry(id).entity, entry(id)]));
  const room = { state: 'open' as const, reports: true, roster, version: 1 };
  const obs = { now: 0, mcus: new Map([['r', { up: true, since: 0 }]]), rooms: new Map([[roomKey('sip:1@r'), room]]) };
  const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  const screens = (d: DesiredSession) => {
    const out = decide([d], obs, mem, OPTS).actions.filter((a) => a.kind === 'layout' && a.why === 'view');
    for (const a of out) mem.started(a, 0);
    return out;
  };
  for (const a of screens(quiet)) mem.succeeded(a, 0);
  const [toSpeaker] = screens(speaking);
  t.ok(toSpeaker, "b's screen to the speaker, in flight");
  t.equal(endpointsWithoutView(speaking, obs, mem), 1, 'in flight: b does not see the speaker yet');
  t.same(screens(quiet), [], 'the speaker gone again: b is still in flight');
  mem.succeeded(toSpeaker!, 0);
  const [back] = screens(quiet);
  t.equal(back?.kind === 'layout' && back.source, roomKey(directory.uri('chair-L0')!), 'b back to the chair');
  t.same(screens(speaking), [], 'the speaker again while that is in flight');
  mem.succeeded(back!, 0);
  const again = screens(speaking);
  t.equal(again.length, 1, 'once it landed, b is set to the speaker again (not left on the chair)');
  mem.succeeded(again[0]!, 0);
  t.same(screens(speaking), [], 'and then quiet');
  t.equal(endpointsWithoutView(speaking, obs, mem), 0, 'landed: everyone sees the view');
  roster.set(entry('a-L3').entity, { ...entry('a-L3'), status: 'disconnected' as never });
  room.version = 2;
  t.equal(endpointsWithoutView(speaking, obs, mem), 1, 'the speaker gone: b has nothing to be shown');
});

/**
 * One speaker-view room r (chair, a, b, c all in), fresh bookkeeping, and `decideViews(d, now)`: decide, start
 * the screens decided; with the desired sessions of a and of c speaking.
 */
function speakerRoom() {
  const plan = fakePlan('r', {}, { r: ['chair-L0', 'a-L3', 'b-L3', 'c-L3'] }, 'chair-L0');
  const quiet = desiredSession(
    { id: 's', phase: 'live', plan, rooms: { r: 'sip:1@r' }, mains: {}, selection: null, view: 'speaker' },
    directory,
  );
  const entry = (id: string) => ({
    entity: roomKey(directory.uri(id)!),
    kind: 'endpoint' as const,
    status: 'connected' as const,
    gen: 1,
  });
  const roster = new Map(['chair-L0', 'a-L3', 'b-L3', 'c-L3'].map((id) => [entry(id).entity, entry(id)]));
  const room = { state: 'open' as const, reports: true, roster, version: 1 };
  const obs = { now: 0, mcus: new Map([['r', { up: true, since: 0 }]]), rooms: new Map([[roomKey('sip:1@r'), room]]) };
  const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  const decideViews = (d: DesiredSession, now = 0) => {
    const dec = decide([d], { ...obs, now }, mem, OPTS);
    const out = dec.actions.filter((a) => a.kind === 'layout' && a.why === 'view');
    for (const a of out) mem.started(a, now);
    return { out, pending: dec.viewsPending.includes('s') };
  };
  const a = reselect(quiet, plan, 'a-L3', directory);
  const c = reselect(quiet, plan, 'c-L3', directory);
  return { obs, mem, decideViews, a, c };
}

t.test('a view that comes back while an earlier one is in flight is not taken for done', async (t) => {
  const { mem, decideViews, a, c } = speakerRoom();
  for (const x of decideViews(a).out) mem.succeeded(x, 0);
  t.same(decideViews(a), { out: [], pending: false }, 'a speaking: every screen set, the room done');
  const toC = decideViews(c).out;
  t.ok(toC.length > 0, 'c speaking: screens on their way');
  t.equal(decideViews(a).pending, true, 'a again while those are in flight: not done');
  for (const x of toC) mem.succeeded(x, 0);
  const back = decideViews(a);
  t.ok(back.out.length > 0 && back.pending, 'once they landed (showing c), set to a again');
  for (const x of back.out) mem.succeeded(x, 0);
  t.same(decideViews(a), { out: [], pending: false });
});

t.test('a screen whose command failed shows what nobody knows: a view that comes back is set again', async (t) => {
  const { obs, mem, decideViews, a, c } = speakerRoom();
  for (const x of decideViews(a, 0).out) mem.succeeded(x, 0);
  t.same(decideViews(a, 0), { out: [], pending: false }, 'a speaking: every screen set');
  // c speaking: the screens' commands time out here (under loss the MCU may still carry them out).
  const toC = decideViews(c, 0).out;
  t.ok(toC.length > 0);
  for (const x of toC) mem.failed(x, 0, 'MCU_ERR_TIMEOUT');
  t.equal(endpointsWithoutView(a, obs, mem), toC.length, 'a again: those screens are not known to show a');
  const back = decideViews(a, 60_000);
  t.same(
    back.out.map((x) => x.key).sort(),
    toC.map((x) => x.key).sort(),
    'once their retry is due, set to a again (not taken as still showing it)',
  );
  for (const x of back.out) mem.succeeded(x, 60_000);
  t.same(decideViews(a, 60_000), { out: [], pending: false });
});

t.test(
  'decideLayouts: the pictures decide offers, and on a path alone (a chair claim) those of its MCUs',
  async (t) => {
    fc.assert(
      fc.property(scenario, fc.integer({ min: 0, max: 40 }), fc.nat(), (sc, rounds, pick) => {
        const { world, sessions } = setUp(sc);
        // Part way to the plan (or there): some links up, some endpoints in, some pictures to set.
        run(world, sessions, sc.seed, rounds);
        const d = sessions[0]!;
        const obs = world.observed(0);
        const book = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
        const pictures = (a: Action) => a.kind === 'layout' && a.why !== 'view' && a.why !== 'downlink';
        const all = decide([d], obs, book, { ...OPTS, layoutConcurrency: Number.POSITIVE_INFINITY }).actions.filter(
          pictures,
        );
        t.same(decideLayouts(d, undefined, obs, book), all);
        // The path of an MCU up to the root, as manager.claimChair decides it.
        const path = new Set<string>();
        for (let m: string | undefined = d.mcus[pick % d.mcus.length]; m !== undefined; m = d.parent[m]) path.add(m);
        const alone = decideLayouts(d, path, obs, book);
        t.same(
          alone,
          all.filter((a) => a.kind === 'layout' && a.why !== 'downlink' && path.has(a.mcu)),
        );
        // One of them in flight: held by key, not offered again.
        const first = alone[0];
        if (first === undefined) return;
        book.started(first, 0);
        t.notOk(
          decideLayouts(d, path, obs, book).some((a) => a.key === first.key),
          'an action in flight is not offered again',
        );
        // A pass that meets it midway wants the same picture: its result needs no pass (a chair command's
        // pictures met by a pass made every later command's result ask for one). At another epoch it does.
        const every = { ...OPTS, layoutConcurrency: Number.POSITIVE_INFINITY };
        t.notOk(decide([d], obs, book, every).heldKeys.has(first.key), 'in flight at the wanted epoch: not held');
        book.abandoned(first);
        book.started({ ...first, epoch: `${first.epoch}~before` }, 0);
        t.ok(decide([d], obs, book, every).heldKeys.has(first.key), 'in flight at another epoch: held');
      }),
      { numRuns: 30 },
    );
  },
);

t.test("a live session opens every room at once, the root's first", async (t) => {
  const plan = fakePlan('r', { a: 'r', b: 'a' }, {}, null);
  const rooms = { r: 'sip:1@r', a: 'sip:1@a', b: 'sip:1@b' };
  const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
  const obs = (up: Record<string, boolean>) => ({
    now: 0,
    mcus: new Map(Object.keys(rooms).map((m) => [m, { up: up[m] ?? true, since: 0 }])),
    rooms: new Map(),
  });
  const opens = (mem: Bookkeeping, o = obs({})) =>
    decide([d], o, mem, OPTS)
      .actions.filter((a) => a.kind === 'open')
      .map((a) => (a as { mcu: string }).mcu);
  const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  t.same(opens(mem), ['r', 'a', 'b'], "every room, the root first: its INVITE leads both ends' queues");
  const [open] = decide([d], obs({}), mem, OPTS).actions;
  mem.started(open!, 0);
  t.same(opens(mem), ['a', 'b'], 'the root in flight: not opened twice');
  mem.succeeded(open!, 10, roomKey(rooms.r));
  t.same(opens(mem), ['a', 'b'], 'opened: the others still wanted');
  t.same(
    opens(new Bookkeeping(DEFAULT_BACKOFF, () => 0.5), obs({ r: false })),
    ['a', 'b'],
    'its MCU down: the others at once',
  );
  const ending = desiredSession({ id: 's', phase: 'ending', plan, rooms, mains: {}, selection: null }, directory);
  t.same(
    decide([ending], obs({}), new Bookkeeping(DEFAULT_BACKOFF, () => 0.5), OPTS)
      .actions.filter((a) => a.kind === 'open')
      .map((a) => (a as { mcu: string }).mcu),
    ['r', 'a', 'b'],
    'a session being torn down opens every room at once',
  );
});

t.test("parents before children: a child's link once its parent's is up or answered, not before", async (t) => {
  const plan = fakePlan('r', { a: 'r', b: 'a' }, {}, null);
  const rooms = { r: 'sip:1@r', a: 'sip:1@a', b: 'sip:1@b' };
  const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
  const open = () => ({ state: 'open' as const, reports: true, roster: new Map<string, ObservedEntry>(), version: 1 });
  const obs = (now: number) => ({
    now,
    mcus: new Map(Object.keys(rooms).map((m) => [m, { up: true, since: 0 }])),
    rooms: new Map(Object.values(rooms).map((u) => [roomKey(u), open()])),
  });
  const dials = (mem: Bookkeeping, now: number) =>
    decide([d], obs(now), mem, OPTS).actions.filter(
      (a): a is Extract<Action, { kind: 'dial-link' }> => a.kind === 'dial-link',
    );
  const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  const first = dials(mem, 0);
  t.same(
    first.map((a) => a.child),
    ['a'],
    'the first level alone',
  );
  t.same(
    [...decide([d], obs(0), mem, OPTS).awaited],
    [first[0]!.key],
    "a's link is awaited by its child: its dial's success asks for a pass at once",
  );
  mem.started(first[0]!, 0);
  t.same(dials(mem, 5), [], 'its dial in flight: b waits');
  mem.succeeded(first[0]!, 10);
  // The REFER's final NOTIFY said 200: the link's call is set up; the rosters that verify it come later.
  t.same(
    dials(mem, 12).map((a) => a.child),
    ['b'],
    'answered, not yet in the rosters: b is dialled',
  );
  const failed = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  failed.started(first[0]!, 0);
  failed.failed(first[0]!, 10, '486 Busy Here');
  t.notOk(
    dials(failed, 12).some((a) => a.child === 'b'),
    'refused: b waits for a link that is there',
  );
  t.notOk(
    dials(mem, 10 + OPTS.halfDeadGraceMs).some((a) => a.child === 'b'),
    'answered but never seen by the rosters within the grace: b waits again',
  );
});

t.test("a fresh session's link is dialled once its parent's room exists, before its roster; others wait", async (t) => {
  const plan = fakePlan('r', { c: 'r' }, {}, null);
  const rooms = { r: 'sip:1@r', c: 'sip:1@c' };
  const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
  const opening = { state: 'opening' as const, reports: false, roster: new Map(), established: true };
  const obs = {
    now: 0,
    mcus: new Map(Object.keys(rooms).map((m) => [m, { up: true, since: 0 }])),
    rooms: new Map([
      [roomKey(rooms.r), opening],
      [roomKey(rooms.c), { ...opening, established: false }],
    ]),
  };
  const dials = (mem: Bookkeeping) => decide([d], obs, mem, OPTS).actions.filter((a) => a.kind === 'dial-link');
  const restarted = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  t.same(dials(restarted), [], 'not known fresh (read at start): its rooms must say the link is not there first');
  const fresh = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
  fresh.fresh.add('s');
  t.equal(dials(fresh).length, 1, 'admitted while we run: dialled with the parent room still opening');
  obs.rooms.set(roomKey(rooms.r), { ...opening, established: false });
  t.same(dials(fresh), [], 'its control dialog not up yet: the room may not exist, nothing to REFER to');
  fresh.sawUp([{ session: 's', child: 'c', parent: 'r', state: 'up' }], new Map());
  t.notOk(fresh.fresh.has('s'), 'cascaded once: fresh no more');
});

t.test(
  "where the MCU takes REFERs outside dialogs, a fresh session's links leave with their parent room's open",
  async (t) => {
    // r -> {p -> {c}, l}: p has a child, l is a leaf.
    const plan = fakePlan('r', { p: 'r', l: 'r', c: 'p' }, {}, null);
    const rooms = { r: 'sip:1@r', p: 'sip:1@p', l: 'sip:1@l', c: 'sip:1@c' };
    const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
    const closed = (dialsEarly: boolean, state: 'closed' | 'opening' = 'closed') => ({
      state,
      reports: false,
      roster: new Map(),
      dialsEarly,
    });
    const obs = (dialsEarly: boolean) => ({
      now: 0,
      mcus: new Map(Object.keys(rooms).map((m) => [m, { up: true, since: 0 }])),
      rooms: new Map(Object.values(rooms).map((u) => [roomKey(u), closed(dialsEarly)])),
    });
    const fresh = () => {
      const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
      mem.fresh.add('s');
      return mem;
    };
    const order = (a: Action) =>
      a.kind === 'open' ? `open ${a.mcu}` : a.kind === 'dial-link' ? `dial ${a.child}` : a.kind;
    t.same(
      decide([d], obs(true), fresh(), OPTS).actions.map(order),
      ['open r', 'open p', 'dial p', 'dial l', 'open l', 'open c'],
      "one pass: the rooms links are dialled from, the root's first, then the links, then the leaves' rooms",
    );
    t.same(
      decide([d], obs(false), fresh(), OPTS).actions.map(order),
      ['open r', 'open p', 'open l', 'open c'],
      'REFERs in the control dialog only: the links wait for it',
    );
    const opening = obs(true);
    opening.rooms.set(roomKey(rooms.r), closed(true, 'opening'));
    const mem = fresh();
    const openR = decide([d], obs(true), mem, OPTS).actions.find((a) => a.kind === 'open' && a.mcu === 'r')!;
    mem.started(openR, 0);
    t.ok(
      decide([d], opening, mem, OPTS).actions.some((a) => a.kind === 'dial-link' && a.child === 'p'),
      'a later pass, the room still opening without its control dialog: dialled',
    );
    t.same(
      decide([d], obs(true), new Bookkeeping(DEFAULT_BACKOFF, () => 0.5), OPTS).actions.filter(
        (a) => a.kind === 'dial-link',
      ),
      [],
      'not known fresh (read at start): its rooms must say the link is not there first',
    );
  },
);

t.test("a session's first dial: its endpoints wait for its links, unless one is stuck", async (t) => {
  const plan = fakePlan('r', { c: 'r' }, { r: ['chair-L0'], c: ['e-L1'] }, 'chair-L0');
  const rooms = { r: 'sip:1@r', c: 'sip:1@c' };
  const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
  const link = (entity: string) => ({ entity, kind: 'link' as const, status: 'connected' as const, gen: 1 });
  const world = (linked: boolean, cUp = true) => {
    const room = (peer: string, open = true) => ({
      state: open ? ('open' as const) : ('down' as const),
      reports: true,
      roster: new Map<string, ObservedEntry>(linked ? [[roomKey(peer), link(roomKey(peer))]] : []),
      version: 1,
    });
    return {
      now: 0,
      mcus: new Map([
        ['r', { up: true, since: 0 }],
        ['c', { up: cUp, since: 0 }],
      ]),
      rooms: new Map([
        [roomKey(rooms.r), room(rooms.c)],
        [roomKey(rooms.c), room(rooms.r, cUp)],
      ]),
    };
  };
  const fresh = () => {
    const mem = new Bookkeeping(DEFAULT_BACKOFF, () => 0.5);
    for (const uri of Object.values(rooms)) mem.opened.add(roomKey(uri));
    return mem;
  };
  const dials = (mem: Bookkeeping, obs: ReturnType<typeof world>) => {
    const dec = decide([d], obs, mem, OPTS);
    mem.sawUp(dec.links, dec.upCalls);
    return dec.actions.filter((a) => a.kind === 'dial-participant').length;
  };
  const mem = fresh();
  t.equal(dials(mem, world(false)), 0, 'the link dialing: no endpoint dialled yet');
  t.equal(dials(mem, world(true)), 2, 'every link up: the endpoints, main endpoints first');
  t.equal(dials(mem, world(false)), 2, 'cascaded once: a link that drops later holds nothing back');

  const failed = fresh();
  const dial = decide([d], world(false), failed, OPTS).actions.find((a) => a.kind === 'dial-link')!;
  failed.started(dial, 0);
  failed.failed(dial, 10, 'busy');
  t.equal(dials(failed, world(false)), 2, 'its dial failed: the endpoints do not wait for its retries');
  t.equal(dials(fresh(), world(false, false)), 1, 'an MCU of the link down: the endpoints of the other room');
});
