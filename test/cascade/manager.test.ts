/**
 * The cascade manager against simulated MCUs over real sockets (the
 * simulator in this process; the end-to-end tests run it as its own
 * process), each session in rooms of its own: a cascade of depth 2 dialled
 * parents first and verified from both MCUs, the endpoints dialled out of
 * the lobbies into the session's rooms, each slave showing its main endpoint
 * up its link; links dropped at random all healed with their pictures; a link
 * someone else dialled into a session's room reported and left alone; the
 * tear-down. Everything is checked on the simulator (its conferences and its
 * display model), not on the manager's own view.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { LinkEvent, SessionEvent } from '../../src/cascade/index.js';
import { roomKey } from '../../src/cascade/index.js';
import { createSipMsmlDriver } from '../../src/mcu/index.js';
import { createSimNetwork } from '../../src/sim/index.js';
import { ep, linkPair, loopbackBase, type NetMcu, network, simView, startParts, until } from './helpers.js';

t.setTimeout(180_000);

t.test('a depth-2 cascade in rooms: parents first, verified, endpoints in, pictures set, torn down', async (t) => {
  const inv = network(
    loopbackBase(),
    [
      { id: 'm', rooms: 4 },
      { id: 'p', parents: ['m'], rooms: 4 },
      { id: 'v', parents: ['p'], rooms: 4 },
    ],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      { id: 'p-room', level: 'province', mcus: ['p'] },
      { id: 'p-x1', mcus: ['p'] },
      { id: 'v-x1', mcus: ['v'] },
      { id: 'v-h2', level: 'district', mcus: ['v'] },
    ],
  );
  const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  const parts = await startParts(inv, t.testdir());
  t.teardown(() => parts.close());
  const links: LinkEvent[] = [];
  parts.manager.on('link', (e) => links.push(e));
  const sessions: SessionEvent[] = [];
  parts.manager.on('session', (e) => sessions.push(e));
  // Parents first: v's link to p is dialled once p's dial has been answered, which the manager may learn before
  // both rosters show p's link up (its urgent pass on the dial's success). So the simulator is read when that link
  // first moves: m, the parent's MCU, must hold p's call connected by then. What both MCUs held then is kept for
  // the assertion's diagnostics.
  let whenVMoved: { pAnswered: boolean; links: LinkEvent[]; calls: Record<string, unknown> } | undefined;
  const linkCalls = (id: string) =>
    [...sim.mcu(id).conferences.values()].flatMap((c) =>
      [...c.participants.values()]
        .filter((x) => x.kind === 'link')
        .map((x) => ({ room: c.uri, entity: x.entity, status: x.status, callId: x.callId })),
    );
  parts.manager.on('link', (e) => {
    if (e.child !== 'v' || e.parent !== 'p' || e.state === 'planned' || whenVMoved !== undefined) return;
    const pRooms = new Set(sim.mcu('p').conferences.keys());
    const atM = linkCalls('m');
    whenVMoved = {
      pAnswered: atM.some((x) => pRooms.has(x.entity) && x.status === 'connected'),
      links: [...links],
      calls: { m: atM, p: linkCalls('p') },
    };
  });

  const head = await parts.manager.admit({ title: 'depth 2', endpoints: 'all', chair: 'chair' });
  t.equal(head.state, 'live');
  t.same(
    sessions.map((e) => [e.session, e.kind]),
    [[head.sessionId, 'admitted']],
    'the admission is announced, once',
  );
  t.ok(
    Object.values(head.rooms).every((r) => /sip:70\d\d@/.test(r)),
    'the session has rooms, not the lobbies',
  );
  const v = simView(sim, head);
  await until('both links up', () => parts.manager.progress(head.sessionId)[0]?.counts.up === 2);
  t.ok(v.linked('p', 'm'), 'p -> m at both MCUs, one Call-ID');
  t.ok(v.linked('v', 'p'), 'v -> p at both MCUs, one Call-ID');
  const upOrder = links.filter((e) => e.state === 'up').map((e) => e.child);
  t.same(upOrder, ['p', 'v'], 'the parent link came up first');
  const firstMove = links.findIndex((e) => e.child === 'v' && e.parent === 'p' && e.state !== 'planned');
  t.ok(firstMove > links.findIndex((e) => e.child === 'p' && e.state === 'dialing'), 'v moved after p was dialled');
  t.equal(whenVMoved?.pAnswered, true, "v moved only once p's call was answered at m", { whenVMoved });

  await until('every endpoint dialled into its room', () =>
    [
      ['chair', 'm'],
      ['p-room', 'p'],
      ['p-x1', 'p'],
      ['v-x1', 'v'],
      ['v-h2', 'v'],
    ].every(([id, m]) => v.seated(id!, m!)),
  );
  t.pass('every endpoint left its lobby for the session room');

  await until('the pictures', () => v.shows('p', 'm')?.[0] === ep('p-room') && v.shows('v', 'p')?.[0] === ep('v-h2'));
  t.same(v.shows('p', 'm'), [ep('p-room')], 'p shows its province room up (its main endpoint)');
  t.same(v.shows('v', 'p'), [ep('v-h2')], 'v shows its district room up (highest level on v)');
  await until('the chair down', () => v.shows('m', 'p')?.[0] === ep('chair') && v.shows('p', 'v')?.[0] === v.room('m'));
  t.same(v.shows('m', 'p'), [ep('chair')], 'the master sends the chair down to p');
  t.same(v.shows('p', 'v'), [v.room('m')], 'p passes down what the master sends');
  // The session's view (default `chair`) is the manager's too: every endpoint's screen, set after the links.
  await until('the session view applied', () => parts.manager.progress(head.sessionId)[0]?.viewsApplied === true);
  t.same(sim.endpointView('v-x1').seesIds, ['chair'], 'a commune endpoint two levels down sees the chair');

  await parts.manager.end(head.sessionId);
  await until('the session ended', async () => (await parts.store.getCascade(head.sessionId))?.state === 'ended');
  t.equal(v.linkAt('p', 'v'), undefined, 'no link left on p');
  t.equal(v.linkAt('m', 'p'), undefined, 'no link left on m');
  t.equal(sim.whereIs('v-x1')?.conference, sim.mcu('v').uri, 'the endpoints went back to their lobby');
  const events = (await parts.store.listEvents({ subject: head.sessionId, limit: 1000 })).map((e) => e.type);
  t.ok(events.includes('cascade.session.up') && events.includes('cascade.session.ended'), 'session events recorded');
  t.same(parts.manager.progress(), [], 'nothing left to reconcile');
});

t.test('every profile in one cascade: links dropped at random are all healed, each with its picture', async (t) => {
  // master <- 4 provinces <- one second MCU each: 8 links, the MCUs of every simulator profile among them
  // (never two without the event package on one link here: such links are found only by probes, tested below).
  const dir = t.testdir();
  const secret = join(dir, 'mcu.secret');
  writeFileSync(secret, 'profiles-test-secret\n');
  const provinces = ['a', 'b', 'c', 'd'];
  const profiles: Record<string, NetMcu['profile']> = {
    a: 'full',
    b: 'no-conference-events',
    c: 'full-state-only',
    d: 'challenging',
    a2: 'challenging',
    b2: 'full-state-only',
    c2: 'no-conference-events',
    d2: 'full',
  };
  const mcu = (id: string, parent: string): NetMcu => ({
    id,
    parents: [parent],
    rooms: 2,
    profile: profiles[id]!,
    ...(profiles[id] === 'challenging' ? { secretFile: secret } : {}),
  });
  const inv = network(
    loopbackBase(),
    [{ id: 'm', rooms: 2 }, ...provinces.map((p) => mcu(p, 'm')), ...provinces.map((p) => mcu(`${p}2`, p))],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      ...provinces.flatMap((p) => [
        { id: `${p}-room`, level: 'province', mcus: [p] },
        { id: `${p}2-x`, mcus: [`${p}2`] },
      ]),
    ],
  );
  const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  const parts = await startParts(inv, dir);
  t.teardown(() => parts.close());
  const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });
  const v = simView(sim, head);
  const pairs = provinces.flatMap((p) => [
    [p, 'm'],
    [`${p}2`, p],
  ]) as [string, string][];
  const main = (m: string) => ep(m.endsWith('2') ? `${m}-x` : `${m}-room`);
  // Up every link its main endpoint; down every link the chair (from the master) or what the master sends.
  const down = (p: string) => (p === 'm' ? ep('chair') : v.room('m'));
  const healthy = () =>
    pairs.every(([c, p]) => v.linked(c, p) && v.shows(c, p)?.[0] === main(c) && v.shows(p, c)?.[0] === down(p));
  await until('the cascade up with its pictures', healthy, 30_000).catch((err) => {
    for (const [c, p] of pairs)
      t.comment(`${c} -> ${p}: linked ${v.linked(c, p)}, up ${v.shows(c, p)}, down ${v.shows(p, c)}`);
    throw err;
  });

  let seed = 7;
  const rnd = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  for (let round = 0; round < 4; round++) {
    // Two or three links at once, dropped by either end.
    const victims = pairs.filter(() => rnd() < 0.35).slice(0, 3);
    if (victims.length === 0) victims.push(pairs[round]!);
    await Promise.all(
      victims.map(([c, p]) =>
        rnd() < 0.5 ? sim.mcu(p).dropLink(v.room(c), v.room(p)) : sim.mcu(c).dropLink(v.room(p), v.room(c)),
      ),
    );
    t.ok(!victims.some(([c, p]) => v.linked(c, p)), `round ${round}: ${victims.map(([c]) => c).join(', ')} dropped`);
    await until(`round ${round}: every link and picture back`, healthy, 30_000);
  }
  t.pass('all healed');
  const events = (await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.link.down', limit: 1000 }))
    .length;
  t.ok(events >= 4, `${events} drops recorded`);
});

t.test(
  'a link between two MCUs without the conference event package: its drop is found by probes and healed',
  async (t) => {
    // Neither MCU reports its roster (RFC 4575 refused with 489): the only sign of a drop is an MCU that no
    // longer knows the link. The manager probes such a link (helpers' linkProbeMs: 500) at both ends.
    const { sim, parts, head, v, links, healthy } = await linkPair(t, { profile: 'no-conference-events' });
    await until('the link up with both pictures', healthy);
    t.equal(parts.pool.drivers.get('m')?.capabilities.conferenceEvents, 'missing', 'm reports no roster');
    t.equal(parts.pool.drivers.get('p')?.capabilities.conferenceEvents, 'missing', 'p reports no roster');

    for (const by of ['parent', 'child'] as const) {
      const mark = links.length;
      const t0 = performance.now();
      if (by === 'parent') await sim.mcu('m').dropLink(v.room('p'), v.room('m'));
      else await sim.mcu('p').dropLink(v.room('m'), v.room('p'));
      t.notOk(v.linked('p', 'm'), `dropped by the ${by} (a BYE between the MCUs: the daemon sees no SIP of it)`);
      await until(`the drop by the ${by} detected`, () =>
        links.slice(mark).some((e) => e.child === 'p' && e.previous === 'up'),
      );
      const detectMs = performance.now() - t0;
      // Healed: the link up again at both MCUs on one call, both its pictures applied on the new call.
      await until(`the drop by the ${by} healed`, healthy);
      const healMs = performance.now() - t0;
      t.comment(`dropped by the ${by}: detected in ${Math.round(detectMs)} ms, healed in ${Math.round(healMs)} ms`);
      // The targets (detection 2 s, healed 5 s): the probe interval (500 ms) plus a round trip, then a redial.
      t.ok(detectMs <= 2_000, `detected within 2 s (${Math.round(detectMs)} ms)`);
      t.ok(healMs <= 5_000, `healed within 5 s (${Math.round(healMs)} ms)`);
    }
    const downs = await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.link.down', limit: 100 });
    t.equal(downs.length, 2, 'each drop recorded as cascade.link.down');

    // Gone at the child only: p crashes and comes back without its calls, while m still has the link (its
    // session timer would notice only after 90 s). The probe finds p without it: hung up at m, dialled again.
    const mark = links.length;
    await sim.mcu('p').restart(0);
    await until('the half-dead link seen down', () =>
      links.slice(mark).some((e) => e.child === 'p' && e.previous === 'up'),
    );
    await until('the link back with both pictures after the restart', healthy);
    t.pass('a link gone at the child only is hung up at the parent and dialled again');
  },
);

t.test(
  'a link up at the child only (the parent restarted without its calls) is hung up there and dialled again',
  async (t) => {
    // m crashes and comes back empty; p still holds the link's call (m was its caller and its refresh is 45 s
    // away), so p refuses a new call from m's room (486) while it does. The manager must hang the old call up at
    // p, not only at m, before it dials again; else the link stays down until p's session timer (60 s).
    const { sim, v, healthy } = await linkPair(t);
    await until('the link up with both pictures', healthy);
    const before = v.linkAt('p', 'm')?.callId;
    await sim.mcu('m').restart(0);
    t.equal(v.linkAt('p', 'm')?.callId, before, 'p still holds the old call');
    await until(
      'the link back with both pictures, on a new call',
      () => healthy() && v.linkAt('p', 'm')?.callId !== before,
    );
    t.pass('healed well before the session timer');
  },
);

t.test("a link someone else dialled into a session's room is reported and left alone", async (t) => {
  const { sim, parts, head, v } = await linkPair(t, { more: [{ id: 'x', parents: ['m'], rooms: 2 }] });
  await until('the link up', () => v.linked('p', 'm'));
  // A technician has x's lobby dial into the session's room on m, by hand.
  const x = createSipMsmlDriver({ ua: parts.ua, mcu: { id: 'x', uri: sim.mcu('x').uri } });
  t.teardown(() => x.close());
  await x.connect();
  await x.dialLink(v.room('m'));
  await until(
    'reported',
    async () => (await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.link.unexpected' })).length > 0,
  );
  const [e] = await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.link.unexpected' });
  t.match(e?.data, { mcu: 'm', entity: roomKey(sim.mcu('x').uri) }, 'the event names the room and the link');
  // Still there after more passes (the manager keeps reconciling: let a drop and heal happen meanwhile).
  await sim.mcu('p').dropLink(v.room('m'), v.room('p'));
  await until('healed', () => v.linked('p', 'm'));
  t.equal(v.conf('m')?.participants.get(roomKey(sim.mcu('x').uri))?.status, 'connected', 'the foreign link stays');
});

t.test(
  'an MCU that answers 486, then one that stops answering: each re-planned around after the set time',
  async (t) => {
    const inv = network(
      loopbackBase(),
      [
        { id: 'm', rooms: 2 },
        { id: 'p', parents: ['m'], rooms: 2, ports: 6 },
        { id: 'q', parents: ['m'], rooms: 2 },
        { id: 'r', parents: ['m'], rooms: 2 },
      ],
      [
        { id: 'chair', level: 'central', mcus: ['m'] },
        { id: 'x1', mcus: ['p', 'q', 'r'] },
        { id: 'x2', level: 'district', mcus: ['p', 'q', 'r'] },
      ],
    );
    const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
    t.teardown(() => sim.close());
    // p is busy with calls the daemon does not know of: its ports are all taken, so it answers 486.
    for (let i = 0; i < 6; i++) sim.mcu('p').join(`sip:walk-in-${i}@endpoints.invalid`);
    const parts = await startParts(inv, t.testdir(), { replanAfterMs: 2_000 });
    t.teardown(() => parts.close());
    const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });
    t.match((await parts.store.getCascade(head.sessionId))?.plan, { links: { p: 'm' } }, 'planned on p first');

    const t0 = performance.now();
    await until('the first re-plan', async () => (await parts.store.getCascade(head.sessionId))?.planVersion === 2);
    t.ok(performance.now() - t0 >= 1_500, 'not before the configured time (2 s, less the jitter of the first tries)');
    const [first] = await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.replan' });
    t.match(
      first?.data,
      { lost: ['p'], droppedMcus: ['p'], addedMcus: ['q'], movedEndpoints: 2 },
      'the outcome, stored',
    );
    let now = (await parts.store.getCascade(head.sessionId))!;
    let v = simView(sim, now);
    await until('the cascade on q', () => v.linked('q', 'm') && v.seated('x1', 'q') && v.seated('x2', 'q'));
    t.pass('x1 and x2 dialled into the session room on q');
    await until('q shows its main endpoint up', () => v.shows('q', 'm')?.[0] === ep('x2'));

    // q stops answering altogether: down after the failed health checks, then re-planned around.
    sim.mcu('q').setFaults({ silent: true });
    await until('the second re-plan', async () => (await parts.store.getCascade(head.sessionId))?.planVersion === 3);
    const replans = await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.replan' });
    t.match(replans[1]?.data, { lost: ['q'], addedMcus: ['r'], movedEndpoints: 2 });
    now = (await parts.store.getCascade(head.sessionId))!;
    v = simView(sim, now);
    await until('the cascade on r', () => v.linked('r', 'm') && v.seated('x1', 'r') && v.seated('x2', 'r'));
    t.pass('x1 and x2 moved on to r');
    // The stale link of ours towards q's room is hung up at m (q cannot answer, m can).
    await until('the stale link gone from m', () => v.conf('m')?.participants.get(v.room('q')) === undefined);
    t.pass('the link to the lost MCU is hung up at the master');
  },
);

t.test('a provincial session rooted at a province MCU runs while the national session runs, sharing it', async (t) => {
  // m <- p <- p2, m <- q. The national session takes the central and province rooms; the province of p runs its
  // own session with its districts and communes on p (its root) and p2, in rooms of their own.
  const inv = network(
    loopbackBase(),
    [
      { id: 'm', rooms: 2 },
      { id: 'p', parents: ['m'], rooms: 2, ports: 8, cascadePorts: 2 },
      { id: 'p2', parents: ['p'], rooms: 2 },
      { id: 'q', parents: ['m'], rooms: 2 },
    ],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      { id: 'p-ubnd', level: 'province', mcus: ['p'] },
      { id: 'q-ubnd', level: 'province', mcus: ['q'] },
      { id: 'p-h1', level: 'district', mcus: ['p'] },
      { id: 'p-h2', level: 'district', mcus: ['p'] },
      { id: 'p-x1', mcus: ['p'] },
      { id: 'p2-x1', mcus: ['p2'] },
      { id: 'p2-x2', mcus: ['p2'] },
      { id: 'p-x2', mcus: ['p'] },
      { id: 'p-x3', mcus: ['p'] },
      { id: 'p-x4', mcus: ['p'] },
    ],
  );
  const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  const parts = await startParts(inv, t.testdir());
  t.teardown(() => parts.close());
  const national = await parts.manager.admit({ id: 'national', endpoints: ['p-ubnd', 'q-ubnd'], chair: 'chair' });
  const provincial = await parts.manager.admit({
    id: 'province-p',
    root: 'p',
    endpoints: ['p-h2', 'p-x1', 'p2-x1', 'p2-x2'],
    chair: 'p-h1',
  });
  t.equal(provincial.root, 'p');
  t.not(provincial.rooms.p, national.rooms.p, 'p hosts one room per session');
  const n = simView(sim, national);
  const pv = simView(sim, provincial);
  await until('both cascades up', () => n.linked('p', 'm') && n.linked('q', 'm') && pv.linked('p2', 'p'));
  await until('every endpoint in its session room', () =>
    [
      n.seated('p-ubnd', 'p'),
      n.seated('q-ubnd', 'q'),
      pv.seated('p-h1', 'p'),
      pv.seated('p2-x1', 'p2'),
      pv.seated('p-x1', 'p'),
    ].every(Boolean),
  );
  t.pass('two sessions, two rooms on p, each with its own endpoints and links');
  t.same(
    [...(pv.conf('p')?.participants.values() ?? [])].filter((x) => x.kind === 'link').map((x) => x.entity),
    [pv.room('p2')],
    "the provincial room's only link is to p2: it is not cascaded to the master",
  );
  await until(
    'the provincial pictures',
    () => pv.shows('p2', 'p')?.[0] === ep('p2-x1') && pv.shows('p', 'p2')?.[0] === ep('p-h1'),
  );
  t.pass("p2 shows its commune up to the province's room; the province's chair goes down");
  await until('the national pictures', () => n.shows('p', 'm')?.[0] === ep('p-ubnd'));

  // Capacity is shared: p has 8 ports, the national session holds 2 (p-ubnd, its link), the provincial 4 (three
  // endpoints, the link to p2): a third session needing 4 more on p is refused, naming both.
  const short = await parts.manager
    .admit({ id: 'third', endpoints: ['p-x2', 'p-x3', 'p-x4'], chair: 'q-ubnd' })
    .catch((e: unknown) => e);
  t.match(
    short,
    { code: 'PLAN_ERR_INFEASIBLE', details: { heldBy: ['national', 'province-p'] } },
    'refused: p is short',
  );
  const held = (await parts.manager
    .admit({ id: 'fifth', root: 'p', endpoints: ['p-h1'] })
    .catch((e: unknown) => e)) as {
    code: string;
  };
  t.match(
    held,
    { code: 'CASCADE_ERR_ENDPOINT_BUSY', details: { sessions: ['province-p'] } },
    'p-h1 chairs the province',
  );
  const full = await parts.manager
    .admit({ id: 'fourth', endpoints: ['chair'], chair: 'chair', mains: [] })
    .catch((e: unknown) => e);
  t.match(full, { code: 'CASCADE_ERR_ENDPOINT_BUSY', details: { sessions: ['national'] } });
  t.equal(parts.manager.progress().length, 2, 'two sessions reconciled side by side');
});
