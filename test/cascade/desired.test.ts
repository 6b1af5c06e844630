/**
 * The desired state of a session (src/cascade/desired.ts): who is dialled
 * where, each MCU's main endpoint, and what every link carries, with and
 * without a chair selection; and the backoff of retries.
 */
import fc from 'fast-check';
import t from 'tap';
import {
  backoffDelay,
  DEFAULT_BACKOFF,
  desiredSession,
  mainEndpoint,
  reselect,
  roomKey,
} from '../../src/cascade/index.js';
import type { Plan } from '../../src/planner/index.js';
import { directory, fakePlan } from './world.js';

// root r (chair, a province room) <- p (province MCU: province room, district, commune) <- q (communes only)
//                                 <- t (transit: no endpoint of its own) <- u (one commune)
const plan = fakePlan(
  'r',
  { p: 'r', q: 'p', t: 'r', u: 't' },
  {
    r: ['chair-L0', 'gov-L0'],
    p: ['p-commune-L3', 'p-district-L2', 'p-room-L1', 'nouri-L0'],
    q: ['q-b-L3', 'q-a-L3'],
    u: ['u-L3'],
  },
  'chair-L0',
);
const rooms = { r: 'sip:1@r', p: 'sip:1@p', q: 'sip:1@q', t: 'sip:1@t', u: 'sip:1@u', gone: 'sip:1@gone' };
const uri = (id: string) => `sip:${id}@ep.invalid`;

t.test(
  'main endpoints: the session choice, else the highest level, then the smallest id; never one without a URI',
  async (t) => {
    t.equal(mainEndpoint('p', ['p-commune-L3', 'p-district-L2', 'p-room-L1', 'nouri-L0'], {}, directory), 'p-room-L1');
    t.equal(mainEndpoint('q', ['q-a-L3', 'q-b-L3'], {}, directory), 'q-a-L3');
    t.equal(mainEndpoint('q', ['q-a-L3', 'q-b-L3'], { q: 'q-b-L3' }, directory), 'q-b-L3');
    t.equal(
      mainEndpoint('q', ['q-a-L3'], { q: 'elsewhere' }, directory),
      'q-a-L3',
      'a choice not on that MCU is ignored',
    );
    t.equal(mainEndpoint('t', [], {}, directory), undefined);
  },
);

t.test('the base picture: mains up every link, the chair down every link', async (t) => {
  const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory);
  t.equal(d.root, 'r');
  t.same(d.mcus, ['r', 'p', 't', 'q', 'u']);
  t.same(d.formerRooms, { gone: 'sip:1@gone' }, 'a room of an MCU no longer in the plan');
  t.same(d.undialable, ['nouri-L0']);
  t.same(d.participants.p, [uri('p-room-L1'), uri('p-commune-L3'), uri('p-district-L2')], 'main first');
  t.same(d.participants.t, []);
  const by = (mcu: string, why: string) => d.layouts.filter((l) => l.mcu === mcu && l.why === why);
  t.same(by('p', 'uplink'), [
    { mcu: 'p', output: { link: 'r' }, source: { endpoint: uri('p-room-L1') }, why: 'uplink' },
  ]);
  t.same(by('t', 'uplink')[0]?.source, { link: 'u' }, 'a transit MCU sends up what comes from below');
  t.same(
    by('r', 'downlink').map((l) => [l.output, l.source]),
    [
      [{ link: 'p' }, { endpoint: uri('chair-L0') }],
      [{ link: 't' }, { endpoint: uri('chair-L0') }],
    ],
  );
  t.same(by('p', 'downlink')[0]?.source, { link: 'r' }, 'an intermediate MCU passes the chair down');
  t.same(by('r', 'chair'), [], 'no selection, nothing on the chair screen');
  t.notOk(
    d.layouts.some((l) => l.mcu === 'r' && l.why === 'uplink'),
    'the root has no uplink',
  );
});

t.test('a chair selection reroutes its path and shows on the chair screen', async (t) => {
  const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: 'q-b-L3' }, directory);
  const up = (m: string) => d.layouts.find((l) => l.mcu === m && l.why === 'uplink')?.source;
  t.same(up('q'), { endpoint: uri('q-b-L3') });
  t.same(up('p'), { link: 'q' });
  t.same(up('u'), { endpoint: uri('u-L3') }, 'other paths unchanged');
  t.same(
    d.layouts.filter((l) => l.why === 'chair'),
    [{ mcu: 'r', output: { endpoint: uri('chair-L0') }, source: { link: 'p' }, why: 'chair' }],
  );
  const onRoot = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: 'gov-L0' }, directory);
  t.same(onRoot.layouts.find((l) => l.why === 'chair')?.source, { endpoint: uri('gov-L0') });
  const relayed = { ...plan, relays: { 'relayed-x': 'q-a-L3' } } as Plan;
  const viaRelay = desiredSession(
    { id: 's', phase: 'live', plan: relayed, rooms, mains: {}, selection: 'relayed-x' },
    directory,
  );
  t.same(
    viaRelay.layouts.find((l) => l.mcu === 'q' && l.why === 'uplink')?.source,
    { endpoint: uri('q-a-L3') },
    'a relayed room shows through the room relaying it',
  );
  const pip = desiredSession(
    { id: 's', phase: 'live', plan, rooms, mains: {}, selection: 'q-b-L3', chairLayout: 'pip' },
    directory,
  );
  t.same(
    pip.layouts.filter((l) => l.why === 'chair'),
    [
      {
        mcu: 'r',
        output: { endpoint: uri('chair-L0') },
        source: { link: 'p' },
        inset: { endpoint: uri('chair-L0') },
        why: 'chair',
      },
    ],
    'a pip session: the selection large, the chair inset',
  );
  t.same(reselect(pip, plan, 'u-L3', directory).layouts.find((l) => l.why === 'chair')?.inset, {
    endpoint: uri('chair-L0'),
  });
});

t.test(
  'what everyone sees: the chair by default; in a speaker session the speaker large, the chair inset',
  async (t) => {
    const d = desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: 'q-b-L3' }, directory);
    t.equal(d.view, 'chair', 'the default');
    t.equal(d.chair, uri('chair-L0'), "the chair's screen is the chair command's, never a view");
    t.same(
      d.views,
      [
        { mcu: 'r', source: { endpoint: uri('chair-L0') } },
        { mcu: 'p', source: { link: 'r' } },
        { mcu: 't', source: { link: 'r' } },
        { mcu: 'q', source: { link: 'p' } },
        { mcu: 'u', source: { link: 't' } },
      ],
      "the root's endpoints see the chair, every other room what comes down its link, the speaker changing nothing",
    );
    const down = (x: typeof d) => x.layouts.filter((l) => l.why === 'downlink' && l.mcu === 'r');
    t.ok(
      down(d).every((l) => 'endpoint' in l.source && l.source.endpoint === uri('chair-L0') && l.inset === undefined),
      'the chair down every link',
    );

    const quiet = desiredSession(
      { id: 's', phase: 'live', plan, rooms, mains: {}, selection: null, view: 'speaker' },
      directory,
    );
    t.same(quiet.views[0], { mcu: 'r', source: { endpoint: uri('chair-L0') } }, 'nobody speaking: the chair alone');
    const speaking = reselect(quiet, plan, 'q-b-L3', directory);
    t.same(
      speaking.views[0],
      { mcu: 'r', source: { link: 'p' }, inset: { endpoint: uri('chair-L0') } },
      'on the root: the link the speaker comes over, large, the chair inset',
    );
    t.same(
      down(speaking).map((l) => [l.output, l.source, l.inset]),
      [
        [{ link: 'p' }, { link: 'p' }, { endpoint: uri('chair-L0') }],
        [{ link: 't' }, { link: 'p' }, { endpoint: uri('chair-L0') }],
      ],
      "and down every link, the speaker's own too: one picture for everyone",
    );
    t.same(speaking.views.slice(1), d.views.slice(1), 'below the root nothing changes: they watch their link');
    const onRoot = reselect(quiet, plan, 'gov-L0', directory);
    t.same(onRoot.views[0], { mcu: 'r', source: { endpoint: uri('gov-L0') }, inset: { endpoint: uri('chair-L0') } });
    t.same(reselect(speaking, plan, null, directory).views, quiet.views, 'back to the chair alone');

    const noChair = fakePlan('r', { p: 'r' }, { r: ['gov-L0'], p: ['p-room-L1'] }, null);
    const nc = desiredSession(
      { id: 's', phase: 'live', plan: noChair, rooms, mains: {}, selection: null, view: 'speaker' },
      directory,
    );
    t.equal(nc.chair, undefined);
    t.same(nc.views[0], { mcu: 'r', source: { endpoint: uri('gov-L0') } }, "no chair: the root's main endpoint");
  },
);

t.test('room keys name a URI as rosters do', async (t) => {
  t.equal(roomKey('sip:7001@127.0.1.5:5060;transport=tcp'), 'sip:7001@127.0.1.5:5060');
  t.equal(roomKey('<SIP:Conf@HOST.example>'), 'sip:Conf@host.example');
  t.equal(roomKey('sip:host.example?subject=x'), 'sip:host.example');
});

t.test('retries: immediate first, then growing, capped, with jitter', async (t) => {
  const p = DEFAULT_BACKOFF;
  t.equal(backoffDelay(0, p, 0.5), 0, 'the first attempt does not wait');
  const at = (n: number, r: number) => backoffDelay(n, p, r);
  t.equal(at(1, 0), p.baseMs);
  t.equal(at(2, 0), 2 * p.baseMs);
  t.equal(at(3, 0), 4 * p.baseMs);
  t.equal(at(60, 0), p.maxMs, 'capped');
  t.ok(at(60, 0.999) >= p.maxMs * (1 - p.jitter) && at(60, 0.999) < p.maxMs, 'jitter takes off up to its share');
  for (let n = 1; n < 40; n++) t.ok(at(n + 1, 0) >= at(n, 0), `non-decreasing at ${n}`);
});

t.test('MCUs by depth, the deepest subtree first within a depth: its links start the longest chains', async (t) => {
  // r <- a (leaf), r <- b (leaf), r <- c <- d <- e, r <- f <- g
  const deep = fakePlan('r', { a: 'r', b: 'r', c: 'r', d: 'c', e: 'd', f: 'r', g: 'f' }, {}, null);
  const d = desiredSession({ id: 's', phase: 'live', plan: deep, rooms: {}, mains: {}, selection: null }, directory);
  t.same(d.mcus, ['r', 'c', 'f', 'a', 'b', 'd', 'g', 'e'], 'root, then c (height 2), f (1), the leaves by id');
  t.same(
    desiredSession({ id: 's', phase: 'live', plan, rooms, mains: {}, selection: null }, directory).mcus,
    ['r', 'p', 't', 'q', 'u'],
    'equal heights keep the plan order',
  );
});

t.test('property: a reselect is the desired state built afresh for that selection, whatever came before', async (t) => {
  // Random trees of up to 8 MCUs, endpoints with and without URIs, relays, any chair layout and view; a run of
  // selections applied one after another by `reselect` must give what `desiredSession` gives for the last one.
  const scenario = fc.integer({ min: 1, max: 8 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      parentIdx: fc.tuple(...Array.from({ length: n - 1 }, (_, i) => fc.integer({ min: 0, max: i }))),
      endpoints: fc.array(fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.boolean(), fc.integer({ min: 0, max: 3 })), {
        maxLength: 12,
      }),
      chair: fc.option(fc.nat(), { nil: undefined }),
      relay: fc.option(fc.nat(), { nil: undefined }),
      pip: fc.boolean(),
      speaker: fc.boolean(),
      picks: fc.array(fc.option(fc.nat(), { nil: null }), { minLength: 1, maxLength: 6 }),
    }),
  );
  fc.assert(
    fc.property(scenario, (s) => {
      const ids = Array.from({ length: s.n }, (_, i) => `m${i}`);
      const parent: Record<string, string> = {};
      s.parentIdx.forEach((p, i) => {
        parent[ids[i + 1]!] = ids[p]!;
      });
      const on: Record<string, string[]> = {};
      const all: string[] = [];
      s.endpoints.forEach(([m, dialable, level], i) => {
        const e = `${dialable ? '' : 'nouri-'}e${i}-L${level}`;
        const mcu = ids[m]!;
        on[mcu] = [...(on[mcu] ?? []), e];
        all.push(e);
      });
      const chair = s.chair === undefined || all.length === 0 ? null : all[s.chair % all.length]!;
      let plan = fakePlan('m0', parent, on, chair);
      if (s.relay !== undefined && all.length > 0)
        plan = { ...plan, relays: { 'relayed-x': all[s.relay % all.length]! } } as Plan;
      const pool = [...all, 'relayed-x', 'not-in-plan'];
      const spec = (selection: string | null) => ({
        id: 's',
        phase: 'live' as const,
        plan,
        rooms: Object.fromEntries(ids.map((m) => [m, `sip:1@${m}`])),
        mains: {},
        selection,
        chairLayout: s.pip ? ('pip' as const) : ('full' as const),
        view: s.speaker ? ('speaker' as const) : ('chair' as const),
      });
      let d = desiredSession(spec(null), directory);
      for (const pick of s.picks) {
        const selection = pick === null ? null : pool[pick % pool.length]!;
        d = reselect(d, plan, selection, directory);
        const fresh = desiredSession(spec(selection), directory);
        if (JSON.stringify(d.layouts) !== JSON.stringify(fresh.layouts)) return false;
        if (JSON.stringify(d.views) !== JSON.stringify(fresh.views)) return false;
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('500 scenarios');
});
