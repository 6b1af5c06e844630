/**
 * Several conferences of one MCU through one sip-msml driver (issue 10),
 * against a hand-driven MCU on our stack that serves a lobby and rooms on one
 * address, each room selected by the Request-URI's user part: each conference
 * has its own control dialog and subscription, commands of different
 * conferences never wait for each other, and a conference re-opens after a
 * far-end BYE or an MCU restart. (The simulator's rooms are tested in
 * test/sim/conferences.test.ts; SIPp as a witness in test/interop/.)
 */
import t from 'tap';
import { FakeClock } from '../../src/core/index.js';
import {
  buildConferenceInfo,
  buildResult,
  CONFERENCE_INFO_CONTENT_TYPE,
  type ConferenceStateName,
  createSipMsmlDriver,
  type McuDriver,
  type McuHealth,
  MSML_CONTENT_TYPE,
  type RosterUpdate,
  type SipMsmlDriverOptions,
} from '../../src/mcu/index.js';
import {
  createUserAgent,
  type Dialog,
  type IncomingRefer,
  type IncomingRequest,
  type ServerSubscription,
  type UserAgent,
} from '../../src/sip/index.js';
import { FAST, HOST, type Tap, until } from './hand-mcu.js';

t.setTimeout(60_000);

const A = 'sip:a@endpoints.invalid';
const B = 'sip:b@endpoints.invalid';

interface Room {
  users: string[];
  controls: Dialog[];
  subs: ServerSubscription[];
  infos: IncomingRequest[];
  refers: IncomingRefer[];
  /** REFERs outside any dialog addressed to this room (RFC 4579 5.5), when the MCU takes them. */
  outside: IncomingRefer[];
  /** INFO in this room: default 200 with an MSML result 200. */
  info?: (req: IncomingRequest) => void;
  /** Answer OPTIONS in the control dialog with this status (481: the dialog is unknown). */
  optionsStatus?: number;
  /** OPTIONS in the control dialog: instead of the answer by optionsStatus. */
  options?: (req: IncomingRequest) => void;
}

/** An MCU with a lobby (`conf`) and rooms on one address: the Request-URI's user part picks the room. */
/**
 * `referOutside`: how REFERs outside a dialog are answered: absent, the stack's 405 (no listener); a status,
 * that refusal; 'accept', taken for the Request-URI's room (`hold` keeps each one's final NOTIFY back until
 * it returns false).
 */
async function roomsMcu(
  t: Tap,
  rooms: string[],
  opts: {
    events?: boolean;
    referOutside?: 'accept' | number;
    hold?: () => boolean;
    /** Answer conference SUBSCRIBEs only once this is false. */
    holdSubscribe?: () => boolean;
  } = {},
) {
  const ua = await createUserAgent({
    listen: [{ transport: 'udp', host: HOST, port: 0 }],
    timers: FAST,
    user: 'conf',
    handlerTimeoutMs: 60_000,
  });
  t.teardown(() => ua.close());
  const port = ua.listening[0]!.port;
  const uri = (user: string) => `sip:${user}@${HOST}:${port}`;
  const state = new Map<string, Room>();
  for (const r of ['conf', ...rooms])
    state.set(r, { users: [], controls: [], subs: [], infos: [], refers: [], outside: [] });
  const roomOf = (req: IncomingRequest) => state.get(req.message.requestUri?.user ?? '');
  const full = (user: string, version = 1) => ({
    contentType: CONFERENCE_INFO_CONTENT_TYPE,
    body: buildConferenceInfo({
      entity: uri(user),
      version,
      state: 'full',
      users: state.get(user)!.users.map((entity) => ({
        entity,
        state: 'full' as const,
        kind: 'endpoint' as const,
        status: 'connected' as const,
        audioMuted: false,
      })),
    }),
  });
  ua.on('invite', (inv) => {
    const room = roomOf(inv);
    if (room === undefined) {
      inv.reject(404);
      return;
    }
    inv.accept().then(
      (d) => {
        room.controls.push(d);
        d.on('request', (req) => {
          if (req.method === 'INFO') {
            room.infos.push(req);
            if (room.info !== undefined) room.info(req);
            else req.respond(200, { contentType: MSML_CONTENT_TYPE, body: buildResult({ response: 200 }) });
          } else if (req.method === 'OPTIONS' && room.options !== undefined) room.options(req);
          else req.respond(req.method === 'OPTIONS' ? (room.optionsStatus ?? 200) : 405);
        });
        d.on('refer', (ref) => {
          room.refers.push(ref);
          ref.accept().then(
            (n) => n.done(200, 'OK'),
            () => {},
          );
        });
      },
      () => {},
    );
  });
  const outside = opts.referOutside;
  if (outside !== undefined)
    ua.on('refer', (ref) => {
      const room = roomOf(ref);
      if (room === undefined || outside !== 'accept') {
        ref.reject(room === undefined ? 404 : outside === 'accept' ? 500 : outside);
        return;
      }
      room.outside.push(ref);
      ref.accept().then(
        async (n) => {
          await until('the test lets the REFER finish', () => opts.hold?.() !== true);
          await n.done(200, 'OK');
        },
        () => {},
      );
    });
  ua.on('subscribe', async (s) => {
    const user = s.message.requestUri?.user ?? '';
    const room = state.get(user);
    if (room === undefined || opts.events === false) {
      s.reject(room === undefined ? 404 : 489);
      return;
    }
    if (opts.holdSubscribe !== undefined)
      await until('the test lets the SUBSCRIBE be answered', () => opts.holdSubscribe?.() !== true);
    s.accept({ ...full(user), expires: 600 }).then(
      (sub) => room.subs.push(sub),
      () => {},
    );
  });
  return { ua, uri, room: (user: string) => state.get(user)! };
}

async function controller(t: Tap): Promise<UserAgent> {
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: HOST, port: 0 }], timers: FAST });
  t.teardown(() => ua.close());
  return ua;
}

function driverFor(
  t: Tap,
  ua: UserAgent,
  lobby: string,
  extra: Partial<SipMsmlDriverOptions> = {},
  conferences?: string[],
): McuDriver {
  const d = createSipMsmlDriver({
    ua,
    mcu: { id: 'rooms', uri: lobby, ...(conferences === undefined ? {} : { conferences }) },
    requestTimeoutMs: 1_000,
    healthIntervalMs: 100,
    healthFailures: 3,
    ...extra,
  });
  t.teardown(() => d.close());
  return d;
}

t.test('each conference has its own control dialog, subscription and roster; commands go to their room', async (t) => {
  const mcu = await roomsMcu(t, ['8001', '8002']);
  mcu.room('conf').users = [A];
  mcu.room('8001').users = [B];
  const ua = await controller(t);
  const rooms = [mcu.uri('8001'), mcu.uri('8002')];
  const d = driverFor(t, ua, mcu.uri('conf'), {}, rooms);
  await d.connect();
  t.equal(d.conference(d.uri), d.conference(d.uri), 'one handle per URI');
  t.equal(d.conferences.size, 1, 'the default conference only, until others are asked for');

  const r1 = d.conference(rooms[0]!);
  const r2 = d.conference(rooms[1]!);
  t.equal(d.conference(rooms[0]!), r1);
  t.equal(r1.state, 'closed');
  t.equal(r1.mcuId, 'rooms');
  const states: ConferenceStateName[] = [];
  r1.on('state', (s) => states.push(s));
  await Promise.all([r1.open(), r2.open(), r1.open()]);
  t.same(states, ['opening', 'open']);
  t.equal(r2.state, 'open');
  t.equal(mcu.room('8001').controls.length, 1, 'a control dialog to room 8001');
  t.equal(mcu.room('8002').controls.length, 1, 'and one to room 8002');
  t.equal(mcu.room('conf').controls.length, 1, 'the lobby keeps its own');
  await until('one subscription per room', () => mcu.room('8001').subs.length + mcu.room('8002').subs.length === 2);
  t.same([...r1.roster.keys()], [B], "room 8001's roster");
  t.same([...r2.roster.keys()], [], "room 8002's roster");
  t.same([...d.roster.keys()], [A], "the driver's own roster is the lobby's");
  t.same(r1.capabilities.conferenceEvents, 'available');

  await r1.setLayout(B, '2x2');
  await r2.requestKeyframe(A);
  t.equal(mcu.room('8001').infos.length, 1, 'the layout went to room 8001');
  t.equal(mcu.room('8002').infos.length, 1, 'the keyframe to room 8002');
  t.equal(mcu.room('conf').infos.length, 0);

  await r2.dialParticipant(A);
  const refer = mcu.room('8002').refers[0]!;
  t.equal(refer.referTo.uri.user, 'a', 'REFER with the participant as Refer-To, in the room dialog');
  await r2.hangUpParticipant(A);
  t.equal(mcu.room('8002').refers[1]?.referTo.uri.params.method, 'BYE', 'hang-up: Refer-To with method=BYE');
  await r1.dialLink(mcu.uri('9999'));
  t.equal(mcu.room('8001').refers.length, 1, 'a link from room 8001');

  // Roster changes of one room reach its handle only.
  const updates: RosterUpdate[] = [];
  r2.on('roster', (u) => updates.push(u));
  mcu.room('8002').users = [A, B];
  await mcu.room('8002').subs[0]!.notify(full(mcu, '8002', 2));
  await until('room 8002 roster updated', () => r2.roster.size === 2);
  t.equal(updates.length, 1);
  t.same([...r1.roster.keys()], [B], 'room 8001 unchanged');

  t.throws(() => d.conference(mcu.uri('7777')), { code: 'MCU_ERR_INVALID_ARGUMENT' }, 'not a room of this MCU');
  t.throws(() => d.conference('not a uri'), { code: 'MCU_ERR_INVALID_ARGUMENT' });
  await t.rejects(r1.dialParticipant('nope'), { code: 'MCU_ERR_INVALID_ARGUMENT' });
});

function full(mcu: { uri: (u: string) => string; room: (u: string) => Room }, user: string, version: number) {
  return {
    contentType: CONFERENCE_INFO_CONTENT_TYPE,
    body: buildConferenceInfo({
      entity: mcu.uri(user),
      version,
      state: 'full',
      users: mcu.room(user).users.map((entity) => ({
        entity,
        state: 'full' as const,
        kind: 'endpoint' as const,
        status: 'connected' as const,
        audioMuted: false,
      })),
    }),
  };
}

t.test(
  'REFERs go outside the control dialog to the room URI, each on a dialog of its own (RFC 4579 5.5)',
  async (t) => {
    let holding = true;
    const mcu = await roomsMcu(t, ['8001'], { referOutside: 'accept', hold: () => holding });
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri('conf'), {}, [mcu.uri('8001')]);
    await d.connect();
    const r1 = d.conference(mcu.uri('8001'));
    await r1.open();
    t.equal(r1.capabilities.refer, 'out-of-dialog', 'the default');
    // Five dials at once: the MCU finishes none until all five REFERs are in, so none may wait for another.
    const targets = [1, 2, 3, 4, 5].map((i) => `sip:ep${i}@endpoints.invalid`);
    const dials = targets.map((u) => r1.dialParticipant(u));
    await until('all five REFERs in before any finished', () => mcu.room('8001').outside.length === 5);
    holding = false;
    await Promise.all(dials);
    const refers = mcu.room('8001').outside;
    t.same(refers.map((r) => r.referTo.uri.user).sort(), ['ep1', 'ep2', 'ep3', 'ep4', 'ep5']);
    t.ok(
      refers.every((r) => r.dialog === undefined),
      'outside any dialog',
    );
    t.equal(new Set(refers.map((r) => r.message.callId)).size, 5, 'each its own Call-ID, so its own dialog');
    t.ok(
      refers.every((r) => r.message.requestUri?.user === '8001'),
      "to the room's URI",
    );
    t.equal(mcu.room('8001').refers.length, 0, 'none in the control dialog');
    await r1.dialLink(mcu.uri('9999'));
    await r1.hangUpLink(mcu.uri('9999'));
    t.equal(refers.length, 7, 'links and hang-ups too');
    t.equal(refers[6]!.referTo.uri.params.method, 'BYE');
    t.equal(r1.capabilities.refer, 'out-of-dialog', 'still');
  },
);

t.test(
  'a cascade link is dialled once the control dialog is up, before the roster; other commands wait for open',
  async (t) => {
    let holding = false;
    const mcu = await roomsMcu(t, ['8001'], { referOutside: 'accept', holdSubscribe: () => holding });
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri('conf'), {}, [mcu.uri('8001')]);
    await d.connect();
    holding = true;
    const r1 = d.conference(mcu.uri('8001'));
    let established = false;
    r1.once('established', () => {
      established = true;
    });
    const opened = r1.open();
    await until('the control dialog is up', () => established);
    t.equal(r1.state, 'opening', 'still opening: the SUBSCRIBE is not answered');
    t.match(await r1.dialLink(mcu.uri('9999')), { state: 'connected' }, 'the link dialled meanwhile');
    t.equal(mcu.room('8001').outside.length, 1, 'its REFER went to the room');
    await t.rejects(
      r1.dialParticipant(A),
      { code: 'MCU_ERR_DOWN' },
      'an endpoint waits for open, as other commands do',
    );
    holding = false;
    await opened;
    t.equal(r1.state, 'open');
    await r1.dialParticipant(A);
  },
);

for (const status of [403, 405, 481, 501])
  t.test(`a REFER outside a dialog refused ${status}: sent in the control dialog, and every later one`, async (t) => {
    const mcu = await roomsMcu(t, ['8001'], { referOutside: status });
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri('conf'), {}, [mcu.uri('8001')]);
    await d.connect();
    const r1 = d.conference(mcu.uri('8001'));
    await r1.open();
    const seen: string[] = [];
    r1.on('capabilities', (c) => seen.push(c.refer));
    d.on('capabilities', (c) => seen.push(`lobby ${c.refer}`));
    const ua2 = ua as UserAgent & { refer: UserAgent['refer'] };
    let outside = 0;
    const refer = ua2.refer.bind(ua2);
    ua2.refer = (...args) => {
      outside++;
      return refer(...args);
    };
    await r1.dialParticipant(A);
    t.equal(mcu.room('8001').refers.length, 1, 'the refused REFER sent again in the control dialog');
    t.equal(outside, 1, 'one attempt outside');
    t.match(r1.capabilities, {
      refer: 'in-dialog',
      lacks: [{ feature: 'out-of-dialog-refer', sipStatus: status }],
    });
    t.match(d.capabilities, { refer: 'in-dialog', lacks: [{ feature: 'out-of-dialog-refer' }] }, 'the MCU learned it');
    t.same(seen.sort(), ['in-dialog', 'lobby in-dialog'], 'one capabilities event per conference');
    await r1.dialLink(mcu.uri('9999'));
    await d.dialLink(mcu.uri('8001'));
    t.equal(outside, 1, 'no REFER outside a dialog any more');
    t.equal(mcu.room('8001').refers.length, 2);
    t.equal(mcu.room('conf').refers.length, 1, 'the lobby too');
    t.equal(mcu.room('8001').controls.length, 1, 'not taken for a restart: the same control dialog');
    t.equal(r1.state, 'open');
    t.equal(d.health.up, true);
  });

t.test("control.refer 'in-dialog': no REFER outside a dialog is tried", async (t) => {
  const mcu = await roomsMcu(t, ['8001'], { referOutside: 'accept' });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri('conf'), { refer: 'in-dialog' }, [mcu.uri('8001')]);
  await d.connect();
  const r1 = d.conference(mcu.uri('8001'));
  await r1.open();
  await r1.dialParticipant(A);
  t.equal(mcu.room('8001').refers.length, 1);
  t.equal(mcu.room('8001').outside.length, 0);
  t.same(r1.capabilities, { conferenceEvents: 'available', refer: 'in-dialog', lacks: [] });
});

t.test('commands of different conferences never wait for each other', async (t) => {
  const mcu = await roomsMcu(t, ['8001', '8002']);
  const held: IncomingRequest[] = [];
  mcu.room('8001').info = (req) => held.push(req); // room 8001 never answers an INFO
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri('conf'), { requestTimeoutMs: 1_500, healthFailures: 100 });
  await d.connect();
  const r1 = d.conference(mcu.uri('8001'));
  const r2 = d.conference(mcu.uri('8002'));
  await Promise.all([r1.open(), r2.open()]);
  const stuck = r1.setLayout(A, 'single');
  stuck.catch(() => {});
  await until('the stuck INFO reached room 8001', () => held.length === 1);
  // The same output name in another room and in the lobby: other lanes, other dialogs.
  const t0 = Date.now();
  await r2.setLayout(A, 'single');
  await d.setLayout(A, '2x2');
  await r2.showSource(A, 1, B);
  const elapsed = Date.now() - t0;
  t.ok(elapsed < 1_500, `room 8002 and the lobby answered in ${elapsed} ms while room 8001 held its INFO`);
  await t.rejects(stuck, { code: 'MCU_ERR_TIMEOUT', details: { conference: mcu.uri('8001') } });
  t.equal(r1.state, 'open', 'a command timing out does not take the conference down');
});

t.test('a far-end BYE takes one conference down and it re-opens with its full roster', async (t) => {
  const mcu = await roomsMcu(t, ['8001']);
  mcu.room('8001').users = [A];
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri('conf'));
  const health: McuHealth[] = [];
  d.on('health', (h) => health.push(h));
  await d.connect();
  const r1 = d.conference(mcu.uri('8001'));
  await r1.open();
  const states: ConferenceStateName[] = [];
  r1.on('state', (s) => states.push(s));
  const rosters: RosterUpdate[] = [];
  r1.on('roster', (u) => rosters.push(u));
  mcu.room('8001').users = [A, B];
  await mcu.room('8001').controls[0]!.bye();
  await until('down, then open again', () => states.join() === 'down,open', 5_000);
  t.equal(mcu.room('8001').controls.length, 2, 'a new control dialog to the room');
  t.same([...r1.roster.keys()].sort(), [A, B], 'the roster re-read in full');
  t.ok(rosters.some((u) => u.full));
  t.same(
    health.map((h) => h.up),
    [true],
    'the MCU stayed up: only the lobby is its health channel',
  );
  await t.rejects(
    (async () => {
      mcu
        .room('8001')
        .controls[1]!.bye()
        .catch(() => {});
      await until('down', () => r1.state === 'down');
      return r1.setLayout(A, 'single');
    })(),
    { code: 'MCU_ERR_DOWN', details: { conference: mcu.uri('8001') } },
    'nothing is sent to a conference while it is down',
  );
  await until('open again', () => r1.state === 'open');
});

t.test('a restart (481) re-opens every conference of the MCU', async (t) => {
  const mcu = await roomsMcu(t, ['8001', '8002']);
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri('conf'));
  await d.connect();
  const r1 = d.conference(mcu.uri('8001'));
  const r2 = d.conference(mcu.uri('8002'));
  await Promise.all([r1.open(), r2.open()]);
  const downs: string[] = [];
  r1.on('state', (s) => s === 'down' && downs.push('8001'));
  r2.on('state', (s) => s === 'down' && downs.push('8002'));
  // The lobby hears 481 first: the MCU forgot its dialogs. Rooms still answer 200, yet are re-opened.
  mcu.room('conf').optionsStatus = 481;
  await until('the MCU down', () => !d.health.up, 5_000);
  mcu.room('conf').optionsStatus = 200;
  await until('every conference re-opened', () => d.health.up && r1.state === 'open' && r2.state === 'open', 5_000);
  t.same(downs.sort(), ['8001', '8002'], 'both rooms went down with the MCU');
  t.equal(mcu.room('8001').controls.length, 2);
  t.equal(mcu.room('8002').controls.length, 2);
});

t.test(
  'close(): dialogs end, the conference stays on the MCU; open() again; the lobby stays while connected',
  async (t) => {
    const mcu = await roomsMcu(t, ['8001']);
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri('conf'));
    await d.connect();
    const r1 = d.conference(mcu.uri('8001'));
    await r1.open();
    await Promise.all([r1.close(), r1.close()]);
    t.equal(r1.state, 'closed');
    await until('the control dialog ended', () => mcu.room('8001').controls[0]!.state === 'terminated');
    await until('the subscription ended', () => mcu.room('8001').subs[0]!.state === 'terminated');
    await t.rejects(r1.setLayout(A, 'single'), { code: 'MCU_ERR_CLOSED' });
    await r1.open();
    t.equal(r1.state, 'open', 'opened again (another session in the same room)');
    t.equal(mcu.room('8001').controls.length, 2);

    await d.conference(d.uri).close();
    t.equal(d.conference(d.uri).state, 'open', 'the lobby stays open while the driver is connected');
    t.ok(d.health.up);

    await d.close();
    t.equal(r1.state, 'closed');
    t.equal(d.conference(d.uri).state, 'closed');
    await t.rejects(r1.open(), { code: 'MCU_ERR_CLOSED' });
    await t.rejects(r1.dialLink(mcu.uri('9')), { code: 'MCU_ERR_CLOSED' });
  },
);

t.test('without the conference event package each room keeps the roster the driver set up', async (t) => {
  const mcu = await roomsMcu(t, ['8001'], { events: false });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri('conf'));
  await d.connect();
  const r1 = d.conference(mcu.uri('8001'));
  await r1.open();
  t.equal(r1.capabilities.conferenceEvents, 'missing');
  const updates: RosterUpdate[] = [];
  r1.on('roster', (u) => updates.push(u));
  await r1.dialParticipant(A);
  await r1.dialLink(mcu.uri('9999'));
  t.match(r1.roster.get(A), { kind: 'endpoint', status: 'connected' });
  t.match(r1.roster.get(mcu.uri('9999')), { kind: 'link', status: 'connected' });
  t.equal(d.roster.size, 0, "the lobby's roster is its own");
  await r1.hangUpParticipant(A);
  t.notOk(r1.roster.has(A));
  t.ok(updates.every((u) => u.source === 'driver'));
});

t.test(
  'supervision on the FakeClock: a room whose check hangs skips ticks, the lobby is checked on every one',
  async (t) => {
    const mcu = await roomsMcu(t, ['8001']);
    const ua = await controller(t);
    const clock = new FakeClock();
    const d = driverFor(t, ua, mcu.uri('conf'), { clock, healthIntervalMs: 1_000, requestTimeoutMs: 10_000 });
    await d.connect();
    const r1 = d.conference(mcu.uri('8001'));
    await r1.open();
    // Room 8001 never answers an OPTIONS from now on (a hung conference); the lobby always does.
    const held: IncomingRequest[] = [];
    const lobbyOptions: IncomingRequest[] = [];
    mcu.room('8001').options = (req) => held.push(req);
    mcu.room('conf').options = (req) => {
      lobbyOptions.push(req);
      req.respond(200);
    };
    let answered = 0;
    ua.on('transaction', (rec) => {
      if (rec.role === 'uac' && rec.method === 'OPTIONS' && rec.status === 200) answered++;
    });
    /** One health tick: the lobby's OPTIONS answered, and the driver's next tick timed from there. */
    const tick = async (ms: number) => {
      const before = answered;
      clock.advance(ms);
      await until("the lobby's OPTIONS answered", () => answered === before + 1);
      await new Promise((r) => setImmediate(r));
    };
    for (let n = 0; n < 3; n++) await tick(1_000);
    t.equal(lobbyOptions.length, 3, 'the lobby was checked on every tick');
    t.equal(held.length, 1, "the room's first check still runs: the room skipped the next two ticks");
    t.equal(r1.state, 'open', 'a check still inside its deadline takes nothing down');
    t.ok(d.health.up);
    // Its deadline (10 s) passes: one failure counted; the room checks again at the next tick.
    await tick(10_000);
    t.equal(held.length, 1);
    await tick(1_000);
    await until('the room checked again', () => held.length === 2);
    t.equal(r1.state, 'open', 'one failure of three');
  },
);
