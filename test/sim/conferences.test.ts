/**
 * Several conferences per simulated MCU (issue 10), over real sockets and
 * driven only through sip-msml drivers: rooms selected by the Request-URI,
 * endpoints dialled out of the lobby (on any MCU) into a session's room by
 * REFER, cascade links between rooms of different MCUs, what everyone sees
 * and hears per conference through the display model, the control interface
 * listing conferences, session timers on cascade links noticing a half-dead
 * link at both ends, and every simulator profile per conference.
 */
import t from 'tap';
import type { Inventory, Mcu } from '../../src/inventory/index.js';
import { type Conference, createSipMsmlDriver, type McuDriver } from '../../src/mcu/index.js';
import {
  createSimMcu,
  createSimNetwork,
  type SimMcu,
  type SimNetwork,
  startSimControlServer,
} from '../../src/sim/index.js';
import { createUserAgent, type UserAgent } from '../../src/sip/index.js';
import { waitFor } from './helpers.js';

t.setTimeout(90_000);

const FAST = { t1: 50, t2: 400, t4: 500 }; // ms: short SIP timers keep failure paths quick
const HOST = '127.0.0.1';
type Tap = { teardown(fn: () => unknown): void };

const mcu = (id: string, rooms: number, extra: Partial<Mcu> = {}): Mcu => ({
  id,
  name: `MCU ${id}`,
  operator: 'op',
  role: id === 'M' ? 'master' : 'slave',
  driver: 'sip-msml',
  sip: [`sip:conf@${HOST}:0`],
  conferences: { template: `sip:{room}@${HOST}:0`, rooms: { from: 8001, to: 8000 + rooms } },
  vendor: 'sim',
  capacity: { ports: 10, cascadePorts: 2 },
  parents: id === 'M' ? [] : ['M'],
  ...extra,
});
const ep = (id: string, on: string) => ({
  id,
  name: `room ${id}`,
  level: 'x',
  mcus: [on],
  connection: 'direct' as const,
  vcs: 'sim',
});

function inventory(mcus: Mcu[], endpoints: ReturnType<typeof ep>[]): Inventory {
  return {
    levels: [{ id: 'x', name: 'x' }],
    provinces: [],
    operators: [{ id: 'op', name: 'op', kind: 'central' }],
    mcus,
    endpoints,
  };
}

async function controller(t: Tap): Promise<UserAgent> {
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: HOST, port: 0 },
      { transport: 'tcp', host: HOST, port: 0 },
    ],
    timers: FAST,
  });
  t.teardown(() => ua.close());
  return ua;
}

/** A driver for a simulated MCU that knows its rooms (as the pool passes conferenceUris). */
function driverFor(t: Tap, ua: UserAgent, m: SimMcu, extra: Record<string, unknown> = {}): McuDriver {
  const rooms = m.rooms.map((r) => m.roomUri(r));
  const d = createSipMsmlDriver({
    ua,
    mcu: { id: m.id, uri: m.uri, conferences: rooms.length > 0 ? rooms : [m.uri] },
    healthIntervalMs: 500,
    requestTimeoutMs: 3_000,
    ...extra,
  });
  t.teardown(() => d.close());
  return d;
}

t.test('rooms of one MCU linked to rooms of two others: per-conference rosters and what everyone sees', async (t) => {
  const net: SimNetwork = await createSimNetwork({
    inventory: inventory(
      [mcu('M', 2), mcu('P', 1), mcu('Q', 1)],
      [ep('m1', 'M'), ep('m2', 'M'), ep('m3', 'M'), ep('p1', 'P'), ep('p2', 'P'), ep('q1', 'Q')],
    ),
    infoDelayMs: 0,
    timers: FAST,
  });
  t.teardown(() => net.close());
  const [M, P, Q] = ['M', 'P', 'Q'].map((id) => net.mcu(id)) as [SimMcu, SimMcu, SimMcu];
  // Rooms exist from the inventory; endpoints sit idle in their MCU's lobby.
  const roomsOf = (m: SimMcu) => [...m.conferences.values()].map((c) => c.room);
  t.same(roomsOf(M), ['conf'], 'a room costs nothing until used');
  t.equal(M.roomUri('8002'), M.uri.replace('sip:conf@', 'sip:8002@'));
  t.throws(() => M.roomUri('8003'), { code: 'SIM_ERR_UNKNOWN_CONFERENCE' });
  t.same(net.whereIs('m1'), { mcu: 'M', conference: M.uri });

  const ua = await controller(t);
  const [dm, dp, dq] = [M, P, Q].map((m) => driverFor(t, ua, m)) as [McuDriver, McuDriver, McuDriver];
  await Promise.all([dm, dp, dq].map((d) => d.connect()));
  const m8001 = dm.conference(M.roomUri('8001'));
  const m8002 = dm.conference(M.roomUri('8002'));
  const p8001 = dp.conference(P.roomUri('8001'));
  const q8001 = dq.conference(Q.roomUri('8001'));
  await Promise.all([m8001, m8002, p8001, q8001].map((c) => c.open()));
  t.same(roomsOf(M), ['conf', '8001', '8002']);
  t.equal(M.conferences.get(M.roomUri('8001'))?.controlDialogs, 1, 'a control dialog per room');
  await waitFor('a subscription per room', () =>
    M.conferences.get(M.roomUri('8001'))?.subscribers === 1 ? true : undefined,
  );

  // Two sessions: s1 = M/8001 + P/8001, s2 = M/8002 + Q/8001.
  await m8001.dialLink(P.roomUri('8001'));
  await m8002.dialLink(Q.roomUri('8001'));
  await waitFor('the far rooms see the links, named by the dialing room', () =>
    p8001.roster.get(M.roomUri('8001'))?.kind === 'link' && q8001.roster.get(M.roomUri('8002'))?.kind === 'link'
      ? true
      : undefined,
  );
  t.notOk(dp.roster.has(M.uri), "the link is not in P's lobby");
  const uri = (id: string) => net.endpointUri(id);
  await m8001.dialParticipant(uri('m1'));
  await m8002.dialParticipant(uri('m2'));
  await p8001.dialParticipant(uri('p1'));
  await q8001.dialParticipant(uri('q1'));
  // p2 sits in P's lobby: dialled out by M's room 8001, it leaves P and takes a port of M.
  await m8001.dialParticipant(uri('p2'));
  t.same(net.whereIs('p2'), { mcu: 'M', conference: M.roomUri('8001') });
  t.notOk(P.participants.has(uri('p2')), 'it left P');
  await m8001.dialParticipant(uri('m1'));
  t.same(net.whereIs('m1'), { mcu: 'M', conference: M.roomUri('8001') }, 'dialling one already in is a no-op');
  await waitFor('rosters follow', () =>
    m8001.roster.has(uri('p2')) && !dm.roster.has(uri('m1')) && !dp.roster.has(uri('p2')) ? true : undefined,
  );
  t.same([...dm.roster.keys()], [uri('m3')], 'only m3 is left idle in the lobby of M');

  // Layouts: each slave room shows its endpoint on its link; M's endpoints watch the link.
  await p8001.showSource(M.roomUri('8001'), 1, uri('p1'));
  await q8001.showSource(M.roomUri('8002'), 1, uri('q1'));
  await m8001.showSource(uri('m1'), 1, P.roomUri('8001'));
  await m8002.showSource(uri('m2'), 1, Q.roomUri('8001'));
  await m8002.requestKeyframe(uri('m2'));

  const m1 = net.endpointView('m1');
  t.equal(m1.conference, M.roomUri('8001'));
  t.same(m1.seesIds, ['p1'], 'm1 sees p1 through the link of session 1');
  t.same(m1.hearsIds, ['p1', 'p2'], 'and hears session 1 only');
  t.same(net.endpointView('m2').seesIds, ['q1'], 'm2 sees q1 through the link of session 2');
  t.same(net.endpointView('m2').hearsIds, ['q1']);
  t.same(net.endpointView('q1').hearsIds, ['m2'], 'q1 hears nothing of session 1');
  t.same(net.endpointView('p1').hearsIds, ['m1', 'p2']);
  t.same(net.endpointView('m3').hearsIds, [], 'the idle lobby hears no session');
  t.match(net.screen('M', uri('m2')), { conference: M.roomUri('8002'), regions: [{ via: { mcu: 'Q' } }] });
  t.equal(M.conferences.get(M.roomUri('8002'))?.outputs.get(uri('m2'))?.keyframes, 1);

  // The control interface lists the conferences.
  const sim = await startSimulatorFor(t, net);
  const listed = (await (await fetch(`${sim}/v1/mcus/M/conferences`)).json()) as {
    uri: string;
    room: string;
    lobby: boolean;
    participants: { entity: string }[];
  }[];
  t.same(
    listed.map((c) => [c.room, c.lobby, c.participants.length]),
    [
      ['conf', true, 1],
      ['8001', false, 3],
      ['8002', false, 2],
    ],
  );
  const summary = (await (await fetch(`${sim}/v1/mcus/M`)).json()) as { conferences: unknown[]; links: number };
  t.equal(summary.conferences.length, 3);
  t.equal(summary.links, 2);
  const dropped = await fetch(`${sim}/v1/mcus/M/drop-link`, {
    method: 'POST',
    body: JSON.stringify({ target: Q.roomUri('8001'), conference: '8001' }),
  });
  t.equal(dropped.status, 404, 'the link to Q is in room 8002, not 8001');
  t.equal(((await dropped.json()) as { code: string }).code, 'SIM_ERR_UNKNOWN_PARTICIPANT');

  // Hanging up a simulated endpoint sends it back, idle, to the lobby of the MCU that hung it up.
  await m8001.hangUpParticipant(uri('p2'));
  t.same(net.whereIs('p2'), { mcu: 'M', conference: M.uri });
  // A link dropped by the far room: both ends lose it, the other session is untouched.
  await Q.dropLink(M.roomUri('8002'));
  await waitFor('M room 8002 lost its link', () => (!m8002.roster.has(Q.roomUri('8001')) ? true : undefined));
  t.same(net.endpointView('m2').seesIds, [], 'the picture of session 2 is gone');
  t.same(net.endpointView('m1').seesIds, ['p1'], 'session 1 still shows');
});

async function startSimulatorFor(t: Tap, net: SimNetwork): Promise<string> {
  const control = await startSimControlServer(net, HOST, 0);
  t.teardown(() => control.close());
  return control.url;
}

t.test('a room that does not exist: INVITE and SUBSCRIBE answered 404', async (t) => {
  const m = await createSimMcu({ id: 'r', uri: `sip:conf@${HOST}:0`, ports: 4, rooms: ['8001'], timers: FAST });
  t.teardown(() => m.close());
  const ua = await controller(t);
  const d = createSipMsmlDriver({ ua, mcu: { id: 'r', uri: m.uri }, connectTimeoutMs: 3_000 });
  t.teardown(() => d.close());
  await d.connect();
  await t.rejects(d.conference(m.uri.replace('sip:conf@', 'sip:9999@')).open(), {
    code: 'MCU_ERR_REJECTED',
    details: { sipStatus: 404 },
  });
  const room = d.conference(m.roomUri('8001'));
  await room.open();
  t.equal(room.state, 'open');
  await t.rejects(ua.subscribe(m.uri.replace('sip:conf@', 'sip:7@'), { event: 'conference' }), {
    code: 'SIP_ERR_RESPONSE',
    sipStatus: 404,
  } as never);
});

t.test(
  'endpoints seated by the network hold no port: a room of the MCU they fill takes one from elsewhere',
  async (t) => {
    // P has 4 ports, one kept for its link (the placement's reserve): p1..p3 are seated on P, p4 (P or Q) on Q.
    // The planner may put p4 on P; the seated ones are in no call, so P has the port (it had none before).
    const net = await createSimNetwork({
      inventory: inventory(
        [mcu('M', 1), mcu('P', 1, { capacity: { ports: 4, cascadePorts: 0 } }), mcu('Q', 1)],
        [ep('p1', 'P'), ep('p2', 'P'), ep('p3', 'P'), { ...ep('p4', 'P'), mcus: ['P', 'Q'] }],
      ),
      infoDelayMs: 0,
      timers: FAST,
    });
    t.teardown(() => net.close());
    const [M, P] = ['M', 'P'].map((id) => net.mcu(id)) as [SimMcu, SimMcu];
    t.same(net.whereIs('p4'), { mcu: 'Q', conference: net.mcu('Q').uri }, 'P full of seats: p4 seated on Q');
    const ua = await controller(t);
    const [dm, dp] = [M, P].map((m) => driverFor(t, ua, m)) as [McuDriver, McuDriver];
    await Promise.all([dm, dp].map((d) => d.connect()));
    const m8001 = dm.conference(M.roomUri('8001'));
    const p8001 = dp.conference(P.roomUri('8001'));
    await Promise.all([m8001, p8001].map((c) => c.open()));
    await m8001.dialLink(P.roomUri('8001'));
    const uri = (id: string) => net.endpointUri(id);
    await p8001.dialParticipant(uri('p4'));
    t.same(net.whereIs('p4'), { mcu: 'P', conference: P.roomUri('8001') }, 'p4 in the room on P');
    // Ports are the calls': the link, p4, and now p1 and p2 out of the lobby. P is full.
    await p8001.dialParticipant(uri('p1'));
    await p8001.dialParticipant(uri('p2'));
    await t.rejects(p8001.dialParticipant(uri('p3')), { code: 'MCU_ERR_BUSY', details: { sipStatus: 503 } }, 'full');
    t.throws(() => P.join('sip:walk-in@endpoints.invalid'), { code: 'SIM_ERR_FULL' }, 'a walk-in call too');
    await p8001.hangUpParticipant(uri('p1'));
    t.same(net.whereIs('p1'), { mcu: 'P', conference: P.uri }, 'p1 back at rest in the lobby');
    await p8001.dialParticipant(uri('p3'));
    t.same(net.whereIs('p3'), { mcu: 'P', conference: P.roomUri('8001') }, "p1's port freed: p3 in");
  },
);

t.test('dial-out on one MCU: a port taken only from elsewhere, busy when full, 200 when already in', async (t) => {
  const m = await createSimMcu({ id: 'one', uri: `sip:conf@${HOST}:0`, ports: 2, rooms: ['8001'], timers: FAST });
  t.teardown(() => m.close());
  const a = 'sip:a@endpoints.invalid';
  const b = 'sip:b@endpoints.invalid';
  const c = 'sip:c@endpoints.invalid';
  m.join(a, 'A');
  m.join(b);
  const ua = await controller(t);
  const d = createSipMsmlDriver({ ua, mcu: { id: 'one', uri: m.uri } });
  t.teardown(() => d.close());
  await d.connect();
  const room = d.conference(m.roomUri('8001'));
  await room.open();
  await room.dialParticipant(a);
  t.equal(m.locate(a), m.roomUri('8001'), 'moved from the lobby: no new port needed on a full MCU');
  await waitFor('the room lists it', () => room.roster.get(a));
  t.match(room.roster.get(a), { kind: 'endpoint', displayText: 'A' }, 'it keeps its name');
  await t.rejects(room.dialParticipant(c), { code: 'MCU_ERR_BUSY', details: { sipStatus: 503 } }, 'no port for c');
  await room.dialParticipant(a);
  await room.hangUpParticipant(a);
  t.equal(m.locate(a), m.uri, 'back in the lobby, idle');
  await t.rejects(room.hangUpParticipant(a), { code: 'MCU_ERR_REJECTED', details: { sipStatus: 404 } });
  m.join(b, undefined, '8001');
  t.equal(m.locate(b), m.roomUri('8001'), 'join() into a room moves it too');
  t.throws(() => m.join(c, undefined, '8002'), { code: 'SIM_ERR_UNKNOWN_CONFERENCE' });
});

t.test('a restart empties every room; the driver re-opens them and a session dials again', async (t) => {
  const m = await createSimMcu({ id: 're', uri: `sip:conf@${HOST}:0`, ports: 4, rooms: ['8001'], timers: FAST });
  t.teardown(() => m.close());
  const a = 'sip:a@endpoints.invalid';
  m.join(a);
  const ua = await controller(t);
  const d = createSipMsmlDriver({ ua, mcu: { id: 're', uri: m.uri }, healthIntervalMs: 200, requestTimeoutMs: 1_000 });
  t.teardown(() => d.close());
  await d.connect();
  const room = d.conference(m.roomUri('8001'));
  await room.open();
  await room.dialParticipant(a);
  await waitFor('the room lists a', () => room.roster.get(a));
  const states: string[] = [];
  room.on('state', (s) => states.push(s));
  await m.restart(100);
  t.equal(m.locate(a), undefined, 'the restarted MCU lost every call, in every conference');
  await waitFor('the room down, then open again', () => (states.join() === 'down,open' ? true : undefined), 8_000);
  t.equal(room.roster.size, 0, 'its roster read afresh: empty');
  t.equal(m.conferences.get(m.roomUri('8001'))?.controlDialogs, 1, 'a new control dialog to the room');
  await room.dialParticipant(a);
  t.equal(m.locate(a), m.roomUri('8001'), 'the endpoint dialled in again: it sat nowhere, a port was free');
});

for (const who of ['callee', 'caller'] as const)
  t.test(`session timers on a cascade link: the ${who} is cut off, both ends drop the link (RFC 4028)`, async (t) => {
    // A 2 s session interval: the caller refreshes every second; the callee ends the call at 2 - 2/3 s without one.
    const timer = { expires: 2, minSE: 1 };
    const opts = { ports: 4, rooms: ['8001'], timers: FAST, sessionTimer: timer };
    const a = await createSimMcu({ id: 'a', uri: `sip:conf@${HOST}:0`, ...opts });
    t.teardown(() => a.close());
    const b = await createSimMcu({ id: 'b', uri: `sip:conf@${HOST}:0`, ...opts });
    t.teardown(() => b.close());
    const ua = await controller(t);
    const d = createSipMsmlDriver({ ua, mcu: { id: 'a', uri: a.uri }, healthFailures: 100 });
    t.teardown(() => d.close());
    await d.connect();
    const room = d.conference(a.roomUri('8001'));
    await room.open();
    await room.dialLink(b.roomUri('8001'));
    await waitFor('the callee has the link', () => (b.participants.has(a.roomUri('8001')) ? true : undefined));
    // Refreshes keep a healthy link up past several intervals.
    await waitFor('three refreshes', () => (b.counters.sessionRefreshes >= 3 ? true : undefined), 10_000);
    t.ok(b.participants.has(a.roomUri('8001')) && a.participants.has(b.roomUri('8001')), 'refreshed, still up');
    t.equal(a.counters.sessionExpiries + b.counters.sessionExpiries, 0);
    // Cut off (a cable pulled): nothing in, nothing out, not even a BYE: each end must find out on its own.
    (who === 'callee' ? b : a).setImpairment({ deaf: true, mute: true });
    await waitFor(
      'both ends dropped the half-dead link',
      () => (!a.participants.has(b.roomUri('8001')) && !b.participants.has(a.roomUri('8001')) ? true : undefined),
      15_000,
    );
    t.equal(a.counters.sessionExpiries, 1, 'the caller: its refresh went unanswered');
    t.equal(b.counters.sessionExpiries, 1, 'the callee: no refresh came before the interval ran out');
  });

t.test('session timers: a restarted far end loses the link without a word, the near end notices', async (t) => {
  const timer = { expires: 2, minSE: 1 };
  const a = await createSimMcu({ id: 'a', uri: `sip:conf@${HOST}:0`, ports: 4, timers: FAST, sessionTimer: timer });
  t.teardown(() => a.close());
  const b = await createSimMcu({ id: 'b', uri: `sip:conf@${HOST}:0`, ports: 4, timers: FAST, sessionTimer: timer });
  t.teardown(() => b.close());
  const ua = await controller(t);
  const d = createSipMsmlDriver({ ua, mcu: { id: 'a', uri: a.uri } });
  t.teardown(() => d.close());
  await d.connect();
  await d.dialLink(b.uri);
  await waitFor('the callee has the link', () => (b.participants.has(a.uri) ? true : undefined));
  await b.restart(0);
  await waitFor(
    'the caller dropped the link (its refresh got 481)',
    () => (!a.participants.has(b.uri) ? true : undefined),
    10_000,
  );
  t.equal(a.counters.sessionExpiries, 1, 'ended by its session timer');
  t.equal(b.participants.size, 0);
});

for (const profile of ['full', 'no-conference-events', 'full-state-only', 'challenging'] as const)
  t.test(`profile ${profile}, per conference: a room opens, dials an endpoint in and a link out`, async (t) => {
    const net = await createSimNetwork({
      inventory: inventory(
        [
          mcu('M', 1),
          mcu('X', 2, {
            sim: { profile },
            ...(profile === 'challenging' ? { auth: { username: 'cascaded', passwordEnv: 'X_SECRET' } } : {}),
          }),
        ],
        [ep('x1', 'X'), ep('m1', 'M')],
      ),
      env: { X_SECRET: 'not-a-real-secret' },
      infoDelayMs: 0,
      timers: FAST,
    });
    t.teardown(() => net.close());
    const X = net.mcu('X');
    const M = net.mcu('M');
    const ua = await controller(t);
    const dx = driverFor(
      t,
      ua,
      X,
      profile === 'challenging' ? { credentials: { username: 'cascaded', password: 'not-a-real-secret' } } : {},
    );
    const dm = driverFor(t, ua, M);
    await Promise.all([dx.connect(), dm.connect()]);
    const room: Conference = dx.conference(X.roomUri('8002'));
    const full: boolean[] = [];
    room.on('roster', (u) => full.push(u.full));
    await room.open();
    const mRoom = dm.conference(M.roomUri('8001'));
    await mRoom.open();
    t.equal(room.capabilities.conferenceEvents, profile === 'no-conference-events' ? 'missing' : 'available');
    await room.dialParticipant(net.endpointUri('x1'));
    await room.dialLink(M.roomUri('8001'));
    await waitFor('the room lists the endpoint and the link', () =>
      room.roster.get(net.endpointUri('x1'))?.kind === 'endpoint' &&
      room.roster.get(M.roomUri('8001'))?.status === 'connected'
        ? true
        : undefined,
    );
    await waitFor('the far room lists the link by this room', () =>
      mRoom.roster.get(X.roomUri('8002'))?.kind === 'link' ? true : undefined,
    );
    await mRoom.dialParticipant(net.endpointUri('m1'));
    await mRoom.showSource(X.roomUri('8002'), 1, net.endpointUri('m1'));
    await room.showSource(net.endpointUri('x1'), 1, M.roomUri('8001'));
    t.same(net.endpointView('x1').seesIds, ['m1'], 'x1 sees m1 across the link between the two rooms');
    if (profile === 'full-state-only') t.ok(full.length > 1 && full.every(Boolean), 'every notification full state');
    if (profile === 'full')
      t.ok(
        full.slice(1).some((f) => !f),
        'partial notifications after the first',
      );
    if (profile === 'challenging') t.ok(X.counters.challenges > 0, `${X.counters.challenges} challenges answered`);
    if (profile === 'no-conference-events') t.ok(X.counters.subscribesRefused >= 2, 'the lobby and the room refused');
  });
