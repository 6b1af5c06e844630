/**
 * The sip-msml driver against MCUs as they are, each played by a hand-driven
 * MCU on our stack over real loopback sockets: no conference event package,
 * a far-end BYE at any moment, a command that is never answered, 500 after a
 * reordered CSeq, URIs with parameters, per-MCU settings from the inventory.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import t from 'tap';
import { FakeClock } from '../../src/core/index.js';
import type { Mcu } from '../../src/inventory/index.js';
import {
  createSipMsmlDriver,
  type LinkState,
  type McuCapabilities,
  type McuDriver,
  type McuHealth,
  type RosterUpdate,
  type SipMsmlDriverOptions,
  startMcuPool,
} from '../../src/mcu/index.js';
import {
  createChallenge,
  createUserAgent,
  type DigestAlgorithm,
  type IncomingRequest,
  parseSdp,
  type UserAgent,
  verifyAuthorization,
} from '../../src/sip/index.js';
import { FAST, type HandMcu, HOST, handMcu, okInfo, type Tap, until } from './hand-mcu.js';

t.setTimeout(90_000);

const A = 'sip:a@endpoints.invalid';
const B = 'sip:b@endpoints.invalid';

async function controller(t: Tap, tcp = false, timers = FAST): Promise<UserAgent> {
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: HOST, port: 0 },
      ...(tcp ? [{ transport: 'tcp' as const, host: HOST, port: 0 }] : []),
    ],
    timers,
    user: 'cascaded',
  });
  t.teardown(() => ua.close());
  return ua;
}

function driverFor(t: Tap, ua: UserAgent, uri: string, extra: Partial<SipMsmlDriverOptions> = {}): McuDriver {
  const d = createSipMsmlDriver({
    ua,
    mcu: { id: 'hand', uri },
    requestTimeoutMs: 1_000,
    healthIntervalMs: 100,
    healthFailures: 3,
    ...extra,
  });
  t.teardown(() => d.close());
  return d;
}

function record(d: McuDriver) {
  const health: McuHealth[] = [];
  const capabilities: McuCapabilities[] = [];
  const roster: RosterUpdate[] = [];
  const links: LinkState[] = [];
  d.on('health', (h) => health.push(h));
  d.on('capabilities', (c) => capabilities.push(c));
  d.on('roster', (u) => roster.push(u));
  d.on('link', (l) => links.push(l));
  return { health, capabilities, roster, links };
}

for (const status of [489, 405, 501]) {
  t.test(`SUBSCRIBE answered ${status}: up, capabilities say what is missing, roster from the driver`, async (t) => {
    const mcu = await handMcu(t, { subscribe: (s) => s.reject(status) });
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri, { resubscribeIntervalMs: 60_000 });
    const seen = record(d);
    t.same(
      d.capabilities,
      { conferenceEvents: 'unknown', refer: 'out-of-dialog', lacks: [] },
      'unknown before the first attempt',
    );
    await d.connect();
    t.equal(d.health.up, true, 'only the control dialog decides up or down');
    t.match(d.capabilities, {
      conferenceEvents: 'missing',
      lacks: [{ feature: 'conference-events', sipStatus: status, reason: new RegExp(`SUBSCRIBE: ${status}`) }],
    });
    t.same(seen.capabilities.length, 1, 'one capabilities event');
    t.equal(d.roster.size, 0);

    await d.setLayout(A, '2x2');
    await d.showSource(A, 1, B);
    await d.mute(B);
    t.same([...d.roster.keys()].sort(), [A, B], 'participants the MCU accepted commands for');
    t.match(d.roster.get(B), { kind: 'endpoint', status: 'connected', audioMuted: true });
    const target = `sip:conf@${HOST}:9`;
    t.same(await d.dialLink(target), { target, state: 'connected' });
    t.match(d.roster.get(target), { kind: 'link', status: 'connected' }, 'a link it dialled');
    await d.hangUpLink(target);
    t.notOk(d.roster.has(target), 'a link it hung up');
    t.ok(
      seen.roster.every((u) => u.source === 'driver' && !u.full),
      'every roster update says it comes from the driver',
    );
    t.same(
      seen.links.map((l) => l.state),
      ['dialing', 'connected', 'disconnected'],
    );
    await until('a few health checks', () => mcu.count('OPTIONS') >= 2);
    t.equal(d.health.up, true, 'health keeps working');
    t.equal(mcu.count('SUBSCRIBE'), 1, 'no re-subscribe before its interval');
  });
}

t.test('an unanswered SUBSCRIBE: up at the request deadline; a later re-subscribe brings the roster', async (t) => {
  const mcu = await handMcu(t, {
    // The first SUBSCRIBE is never answered; the next ones are.
    subscribe: (s, n) => {
      if (n > 0) s.accept({ ...mcu.fullState(), expires: 600 }).then((x) => mcu.subscriptions.push(x));
    },
  });
  mcu.users = [A, B];
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { requestTimeoutMs: 300, resubscribeIntervalMs: 400 });
  const seen = record(d);
  await d.connect();
  t.match(d.capabilities, {
    conferenceEvents: 'missing',
    lacks: [{ feature: 'conference-events', reason: /no answer within \d+ ms/ }],
  });
  t.equal(d.capabilities.lacks[0]!.sipStatus, undefined, 'it never answered');
  await until('re-subscribed', () => d.capabilities.conferenceEvents === 'available');
  t.same([...d.roster.keys()].sort(), [A, B], "the MCU's own roster");
  t.match(seen.roster.at(-1), { source: 'conference-events', full: true, version: 1 });
  t.same(
    seen.capabilities.map((c) => c.conferenceEvents),
    ['missing', 'available'],
  );
  t.same(
    seen.health.map((h) => h.up),
    [true],
    'up all along',
  );
});

t.test(
  'unanswered SUBSCRIBEs are asked again after the request deadline, doubling; a refusal at the interval',
  async (t) => {
    const clock = new FakeClock();
    // When each SUBSCRIBE reached the MCU, on the driver's clock. The first three are never answered, the fourth
    // is refused (489).
    const arrivals: number[] = [];
    const mcu = await handMcu(t, {
      subscribe: (s, n) => {
        arrivals.push(clock.now());
        if (n === 3) s.reject(489);
      },
    });
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri, {
      clock,
      requestTimeoutMs: 1_000,
      healthIntervalMs: 500,
      resubscribeIntervalMs: 60_000,
    });
    // SUBSCRIBEs the driver sent: time stands still while one is on its way (its deadline is on the fake clock).
    let sent = 0;
    const subscribe = ua.subscribe.bind(ua);
    ua.subscribe = (...args) => {
      sent++;
      return subscribe(...args);
    };
    // Time moves from health tick to health tick: each step waits until the previous tick is done, its SUBSCRIBE
    // (if any) reached the MCU and the next tick is on the clock (at most 500 ms ahead), then fires it.
    const step = async () => {
      await until(
        'the next tick on the clock',
        () => arrivals.length === sent && (clock.nextAt ?? Number.POSITIVE_INFINITY) <= clock.now() + 500,
      );
      clock.advance(clock.nextAt! - clock.now());
    };
    const connecting = d.connect();
    await until('the first SUBSCRIBE', () => arrivals.length === 1);
    clock.advance(1_000);
    await connecting;
    t.match(d.capabilities, { conferenceEvents: 'missing', lacks: [{ reason: /no answer within 1000 ms/ }] });
    while (arrivals.length < 4 && clock.now() < 30_000) await step();
    await until('the refusal', () => d.capabilities.lacks[0]?.sipStatus === 489);
    const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]!);
    // The k-th gives up 1 s after it went out and is asked again 1 s, 2 s, 4 s later (at a tick, so maybe later).
    t.ok(gaps[0]! >= 2_000 && gaps[0]! < 8_000, `second SUBSCRIBE ${gaps[0]} ms after the first`);
    t.ok(gaps[1]! >= 3_000 && gaps[1]! < 9_000, `third ${gaps[1]} ms after the second`);
    t.ok(gaps[2]! >= 5_000 && gaps[2]! < 11_000, `fourth ${gaps[2]} ms after the third`);
    const refusedAt = arrivals[3]!;
    while (clock.now() < refusedAt + 59_000) await step();
    t.equal(arrivals.length, 4, 'a refusal waits the whole interval (60 s)');
    while (arrivals.length < 5 && clock.now() < refusedAt + 70_000) await step();
    t.equal(arrivals.length, 5, 'then it is asked again');
    t.equal(d.health.up, true, 'up all along');
  },
);

t.test('a SUBSCRIBE accepted after its deadline is taken, not ended (a slow MCU, a loaded machine)', async (t) => {
  let held: import('../../src/sip/index.js').IncomingSubscribe | undefined;
  const mcu = await handMcu(t, {
    subscribe: (s) => {
      held = s;
    },
  });
  mcu.users = [A];
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { requestTimeoutMs: 300, resubscribeIntervalMs: 60_000 });
  await d.connect();
  t.equal(d.capabilities.conferenceEvents, 'missing', 'no answer within the deadline');
  held!.accept({ ...mcu.fullState(), expires: 600 }).then((x) => mcu.subscriptions.push(x));
  await until('the late subscription brought the roster', () => d.capabilities.conferenceEvents === 'available');
  t.same([...d.roster.keys()], [A]);
  t.equal(mcu.count('SUBSCRIBE'), 1, 'neither ended nor asked again');
  t.equal(d.health.up, true);
});

t.test('the subscription ending later does not take the MCU down; it is asked again', async (t) => {
  const mcu = await handMcu(t);
  mcu.users = [A];
  const ua = await controller(t);
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
  const d = driverFor(t, ua, mcu.uri, { resubscribeIntervalMs: 60_000, logger });
  const seen = record(d);
  await d.connect();
  t.equal(d.capabilities.conferenceEvents, 'available');
  await until('the MCU has the subscription', () => mcu.subscriptions.length === 1);
  await mcu.subscriptions[0]!.terminate('noresource');
  await until(
    'subscribed again',
    () => mcu.count('SUBSCRIBE') === 2 && d.capabilities.conferenceEvents === 'available',
  );
  t.same(
    seen.capabilities.map((c) => c.conferenceEvents),
    ['available', 'missing', 'available'],
  );
  t.match(seen.capabilities[1]!.lacks, [{ reason: /conference subscription ended \(noresource\)/ }]);
  // The MCU has the package: the log must not tell the technician it lacks it (nor that it waits a minute).
  t.same(warnings, [
    'conference subscription ended: subscribing again, with the roster from what the driver sets up meanwhile',
  ]);
  t.same(
    seen.health.map((h) => h.up),
    [true],
  );
});

t.test('a far-end BYE during connect: the attempt fails, the MCU is down, the next attempt brings it up', async (t) => {
  const mcu = await handMcu(t, {
    invite: (inv, n) => {
      inv.accept().then((d) => {
        mcu.adopt(d);
        // The first control dialog is ended by the MCU as soon as it is set up.
        if (n === 0) d.bye().catch(() => {});
      });
    },
    // Answer SUBSCRIBEs only once the first control dialog is over, so the BYE lands mid-connect.
    subscribe: (s, n) => {
      const answer = () => s.accept({ ...mcu.fullState(), expires: 600 }).then((x) => mcu.subscriptions.push(x));
      if (n === 0) until('BYE sent', () => mcu.controls[0]?.state === 'terminated').then(answer);
      else answer();
    },
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { healthIntervalMs: 200 });
  const seen = record(d);
  await t.rejects(d.connect(), {
    code: 'MCU_ERR_DOWN',
    message: /control dialog ended during connect \(bye-received\)/,
  });
  t.equal(d.health.up, false);
  await until('up on the next attempt', () => d.health.up);
  t.equal(mcu.controls.length, 2);
  t.notOk(
    seen.health.slice(0, -1).some((h) => h.up),
    'never up on the dead dialog',
  );
});

t.test('a far-end BYE while up: down at once, then reconnected', async (t) => {
  const mcu = await handMcu(t);
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { healthIntervalMs: 200 });
  const seen = record(d);
  await d.connect();
  await mcu.controls[0]!.bye();
  t.equal(d.health.up, false, 'down as soon as the BYE is in');
  t.match(d.health.reason, /control dialog ended \(bye-received\)/);
  await t.rejects(d.setLayout(A, 'single'), { code: 'MCU_ERR_DOWN' });
  await until('reconnected', () => d.health.up);
  t.equal(mcu.controls.length, 2);
  t.same(
    seen.health.map((h) => h.up),
    [true, false, true],
  );
});

t.test('no head-of-line blocking: an unanswered command holds only its own lane, until its deadline', async (t) => {
  const STUCK = 'sip:stuck@endpoints.invalid';
  const held: IncomingRequest[] = [];
  const mcu = await handMcu(t, {
    info: (req) => {
      if (req.message.body.toString().includes(STUCK)) held.push(req);
      else okInfo(req);
    },
  });
  // Long SIP timers: the unanswered INFO's transaction outlives the test (Timer F would end the dialog, RFC 3261 12.2.1.2).
  const ua = await controller(t, false, { t1: 500, t2: 4_000, t4: 5_000 });
  const d = driverFor(t, ua, mcu.uri, { requestTimeoutMs: 1_500, healthIntervalMs: 100 });
  await d.connect();
  const issued = Date.now();
  const stuck = t.rejects(d.setLayout(STUCK, '2x2'), { code: 'MCU_ERR_TIMEOUT', details: { timeoutMs: 1_500 } });
  await until('the stuck INFO reached the MCU', () => held.length === 1);
  const options = mcu.count('OPTIONS');
  await d.setLayout(A, '2x2');
  await d.mute(B);
  t.pass('commands for other outputs and audio complete meanwhile');
  // Same output: waits for the stuck one to leave the lane, under its own deadline counted from now.
  const behind = t.rejects(d.setLayout(STUCK, 'single'), { code: 'MCU_ERR_TIMEOUT' });
  await until('health checks go on meanwhile', () => mcu.count('OPTIONS') >= options + 3);
  t.equal(d.health.up, true);
  t.equal(held.length, 1, 'the second command for the stuck output was not sent yet');
  await stuck;
  await until('the queued command went out when the first left the lane', () => held.length === 2);
  t.ok(Date.now() - issued >= 1_400, 'not before the first deadline');
  await behind;
  for (const r of held) r.respond(200);
});

t.test('commands for the same output stay ordered; different outputs run concurrently', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const perOutput = new Map<string, number>();
  let maxPerOutput = 0;
  const order: string[] = [];
  const held: (() => void)[] = [];
  let overlapped = false;
  const mcu = await handMcu(t, {
    info: (req) => {
      const body = req.message.body.toString();
      const out = /conn:(sip:[a-z]+@endpoints\.invalid)"/.exec(body)?.[1] ?? '?';
      order.push(`${out} ${/type="text\/msml-basic-layout"/.test(body) ? 'layout' : 'show'}`);
      inFlight++;
      perOutput.set(out, (perOutput.get(out) ?? 0) + 1);
      maxInFlight = Math.max(maxInFlight, inFlight);
      maxPerOutput = Math.max(maxPerOutput, perOutput.get(out)!);
      const finish = () => {
        inFlight--;
        perOutput.set(out, perOutput.get(out)! - 1);
        okInfo(req);
      };
      // Hold every answer until both outputs had a command in flight at once (a driver that runs them
      // side by side gets there whatever the load; one that serialises them is let go after 2 s).
      held.push(finish);
      if (inFlight >= 2) overlapped = true;
      if (overlapped) for (const f of held.splice(0)) f();
      else
        setTimeout(() => {
          const i = held.indexOf(finish);
          if (i >= 0) held.splice(i, 1)[0]!();
        }, 2_000);
    },
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { requestTimeoutMs: 3_000 });
  await d.connect();
  await Promise.all([d.setLayout(A, '2x2'), d.showSource(A, 1, B), d.setLayout(B, '1+5'), d.showSource(B, 2, A)]);
  t.equal(maxPerOutput, 1, 'one command at a time per output');
  t.equal(maxInFlight, 2, 'the two outputs ran side by side');
  t.ok(order.indexOf(`${A} layout`) < order.indexOf(`${A} show`), 'layout before show on A');
  t.ok(order.indexOf(`${B} layout`) < order.indexOf(`${B} show`), 'layout before show on B');
});

t.test('500 to a request a later one of ours overtook is retried, boundedly; a lone 500 is not', async (t) => {
  let first: IncomingRequest | undefined;
  let mode: 'overtaken' | 'lone' | 'always' = 'overtaken';
  let infos = 0;
  const mcu = await handMcu(t, {
    info: (req) => {
      infos++;
      if (mode !== 'overtaken') {
        req.respond(500);
        return;
      }
      // As if the second INFO (a higher CSeq) had arrived first: the first is refused 500 (RFC 3261 12.2.2).
      if (first === undefined) {
        first = req;
        return;
      }
      if (!first.responded) first.respond(500);
      okInfo(req);
    },
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { requestTimeoutMs: 3_000, healthIntervalMs: 60_000 });
  await d.connect();
  await Promise.all([d.setLayout(A, '2x2'), d.setLayout(B, 'single')]);
  t.equal(infos, 3, 'the refused INFO was sent again once');
  mode = 'lone';
  infos = 0;
  await t.rejects(d.setLayout(A, 'single'), { code: 'MCU_ERR_REJECTED', details: { sipStatus: 500 } });
  t.equal(infos, 1, 'no retry without a later request in flight');
  // Two pipelined requests the MCU refuses 500 for its own reasons: each one's retry is "a later request" for
  // the other, so without a bound they would ping-pong until the deadline.
  mode = 'always';
  infos = 0;
  const both = await Promise.allSettled([d.setLayout(A, '2x2'), d.setLayout(B, '2x2')]);
  for (const r of both) t.match(r, { status: 'rejected', reason: { code: 'MCU_ERR_REJECTED' } });
  t.ok(infos <= 8, `each request sent at most 1 + 3 times (${infos} INFOs)`);
});

t.test('URIs are built through the model: a transport parameter is never doubled', async (t) => {
  const mcu = await handMcu(t, {}, { tcp: true });
  const ua = await controller(t, true);
  const uri = `${mcu.uri};transport=tcp`;
  const d = driverFor(t, ua, uri, { sessionExpires: 600 });
  await d.connect();
  const invite = mcu.requests.find((r) => r.method === 'INVITE')!;
  const subscribe = mcu.requests.find((r) => r.method === 'SUBSCRIBE')!;
  t.equal(invite.message.uri, uri);
  t.equal(invite.transport, 'tcp');
  t.equal(subscribe.message.uri, uri, 'the subscription over TCP keeps one transport parameter');
  t.equal(invite.message.headers.get('session-expires')?.split(';')[0], '600', 'sessionExpires asked for');
  t.match(invite.message.headers.get('accept'), /application\/sdp/, 'Accept lists SDP');
  const target = `sip:conf@${HOST}:9;transport=tcp`;
  await d.dialLink(target);
  await d.hangUpLink(target);
  const refers = mcu.requests.filter((r) => r.method === 'REFER').map((r) => r.message.headers.get('refer-to'));
  t.same(refers, [`<${target}>`, `<${target};method=BYE>`]);

  const udpOnly = driverFor(t, ua, mcu.uri, { transport: 'tcp' });
  await udpOnly.connect();
  const second = mcu.requests.filter((r) => r.method === 'INVITE')[1]!;
  t.equal(second.message.uri, `${mcu.uri};transport=tcp`, 'control.transport sets the parameter');
  t.equal(second.transport, 'tcp');
});

t.test('the pool gives each MCU its control settings over daemon.mcu, and reads its secret', async (t) => {
  const one = await handMcu(t, {}, { tcp: true });
  const two = await handMcu(t);
  const ua = await controller(t, true);
  const mcu = (id: string, uri: string, extra: Partial<Mcu> = {}): Mcu => ({
    id,
    name: id,
    operator: 'op',
    role: 'slave',
    driver: 'sip-msml',
    sip: [uri],
    vendor: 'generic',
    capacity: { ports: 10, cascadePorts: 0 },
    parents: [],
    ...extra,
  });
  const pool = await startMcuPool({
    ua,
    mcus: [mcu('one', one.uri, { control: { transport: 'tcp', sessionExpires: 300 } }), mcu('two', two.uri)],
    driver: { sessionExpires: 1800, requestTimeoutMs: 1_000 },
  });
  t.teardown(() => pool.close());
  t.same(await pool.firstAttempts, { up: 2, down: 0 });
  const inviteOf = (m: HandMcu) => m.requests.find((r) => r.method === 'INVITE')!;
  t.equal(inviteOf(one).transport, 'tcp');
  t.equal(inviteOf(one).message.headers.get('session-expires')?.split(';')[0], '300');
  t.equal(inviteOf(two).transport, 'udp');
  t.equal(inviteOf(two).message.headers.get('session-expires')?.split(';')[0], '1800');

  const dir = t.testdir();
  await t.rejects(
    startMcuPool({ ua, mcus: [mcu('three', two.uri, { auth: { username: 'u', passwordFile: `${dir}/gone` } })] }),
    { code: 'CFG_ERR_SECRET', details: { path: `${dir}/gone` } },
  );
});

/** A hand MCU that challenges every request outside and inside its dialogs (401 or 407). */
function challenging(mcu: HandMcu, opts: { status: 401 | 407; algorithm: DigestAlgorithm; password: string }) {
  const [challengeHeader, authHeader] =
    opts.status === 401 ? ['WWW-Authenticate', 'authorization'] : ['Proxy-Authenticate', 'proxy-authorization'];
  const authorized = (r: IncomingRequest) => {
    const h = r.message.headers.get(authHeader);
    return h !== undefined && verifyAuthorization(h, r.method, (u) => (u === 'cascaded' ? opts.password : undefined));
  };
  const challenge = () => ({ headers: { [challengeHeader]: createChallenge('hand-mcu', opts.algorithm).header } });
  const refused: string[] = [];
  mcu.behaviour.invite = (inv) => {
    if (!authorized(inv)) {
      refused.push('INVITE');
      inv.reject(opts.status, challenge());
      return;
    }
    inv.accept().then((d) => mcu.adopt(d));
  };
  mcu.behaviour.subscribe = (s) => {
    if (!authorized(s)) {
      refused.push('SUBSCRIBE');
      s.reject(opts.status, challenge());
      return;
    }
    s.accept({ ...mcu.fullState(), expires: 600 }).then((x) => mcu.subscriptions.push(x));
  };
  mcu.behaviour.info = (r) => {
    if (!authorized(r)) {
      refused.push('INFO');
      r.respond(opts.status, challenge());
      return;
    }
    okInfo(r);
  };
  return { refused: () => [...refused] };
}

for (const [status, algorithm] of [
  [401, 'SHA-256'],
  [401, 'MD5'],
  [407, 'SHA-256'],
] as const) {
  t.test(`an MCU that challenges (${status}, ${algorithm}) takes its per-MCU credentials`, async (t) => {
    const mcu = await handMcu(t);
    mcu.users = [A];
    const peer = challenging(mcu, { status, algorithm, password: 's3cret' });
    const ua = await controller(t);
    const d = driverFor(t, ua, mcu.uri, { credentials: { username: 'cascaded', password: 's3cret' } });
    await d.connect();
    t.equal(d.capabilities.conferenceEvents, 'available', 'the SUBSCRIBE got through the challenge too');
    t.same([...d.roster.keys()], [A]);
    await d.setLayout(A, '2x2');
    // The SUBSCRIBE goes out of dialog to the hop that challenged the INVITE: with credentials at once (this
    // MCU takes any nonce of its own); the INFO, inside the dialog, only once challenged (docs/sip.md).
    t.same(peer.refused(), ['INVITE', 'INFO'], 'the INVITE and the INFO were challenged, the SUBSCRIBE went answered');

    const none = driverFor(t, ua, mcu.uri);
    await t.rejects(none.connect(), { code: 'MCU_ERR_AUTH', details: { sipStatus: status } }, 'no credentials');
    const wrong = driverFor(t, ua, mcu.uri, { credentials: { username: 'cascaded', password: 'guess' } });
    await t.rejects(wrong.connect(), { code: 'MCU_ERR_AUTH' }, 'credentials refused');
    t.equal(wrong.health.up, false);
  });
}

/** A pool of one MCU at `uri` whose secret is read from `passwordFile`. */
async function secretPool(t: Tap, ua: UserAgent, uri: string, passwordFile: string) {
  const pool = await startMcuPool({
    ua,
    mcus: [
      {
        id: 'hand',
        name: 'hand',
        operator: 'op',
        role: 'master',
        driver: 'sip-msml',
        sip: [uri],
        vendor: 'generic',
        capacity: { ports: 10, cascadePorts: 0 },
        parents: [],
        auth: { username: 'cascaded', passwordFile },
      },
    ],
    driver: { requestTimeoutMs: 1_000 },
  });
  t.teardown(() => pool.close());
  return pool;
}

t.test('the pool answers a challenging MCU with the secret of its auth', async (t) => {
  const mcu = await handMcu(t);
  challenging(mcu, { status: 401, algorithm: 'SHA-256', password: 'from-a-file' });
  const dir = t.testdir({ 'mcu.secret': 'from-a-file\n' });
  const ua = await controller(t);
  const pool = await secretPool(t, ua, mcu.uri, `${dir}/mcu.secret`);
  t.same(await pool.firstAttempts, { up: 1, down: 0 });
});

t.test('a rotated secret is read again (SIGHUP): the control dialog answers its next challenge with it', async (t) => {
  const mcu = await handMcu(t);
  mcu.users = [A];
  const secret = { status: 401 as const, algorithm: 'SHA-256' as const, password: 'before' };
  challenging(mcu, secret);
  const dir = t.testdir({ 'mcu.secret': 'before\n' });
  const ua = await controller(t);
  const pool = await secretPool(t, ua, mcu.uri, `${dir}/mcu.secret`);
  t.same(await pool.firstAttempts, { up: 1, down: 0 });
  const d = pool.driver('hand');
  await d.setLayout(A, '2x2');

  // The MCU's password changes, and so does the file.
  secret.password = 'after';
  await t.rejects(d.setLayout(A, '3x3'), { code: 'MCU_ERR_AUTH' }, 'the old secret is refused');
  writeFileSync(`${dir}/mcu.secret`, 'after\n');
  t.same(pool.reloadSecrets(), { reloaded: ['hand'], failed: [] });
  await d.setLayout(A, '3x3');
  t.pass('the INFO in the existing control dialog got through with the new secret');

  // A secret that cannot be read keeps the credentials in use.
  rmSync(`${dir}/mcu.secret`);
  t.match(pool.reloadSecrets(), { reloaded: [], failed: [{ mcu: 'hand', code: 'CFG_ERR_SECRET' }] });
  await d.setLayout(A, '2x2');
  t.pass('still authenticated with the last good secret');
});

t.test('an offer in the MCU 2xx is answered in the ACK: inactive audio and video', async (t) => {
  const offer = [
    'v=0',
    'o=mcu 1 1 IN IP4 127.0.0.1',
    's=conference',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    'm=audio 40000 RTP/AVP 8 0',
    'a=rtpmap:8 PCMA/8000',
    'm=video 40002 RTP/AVP 97',
    'a=rtpmap:97 H264/90000',
    'm=application 5060 TCP/BFCP *',
    '',
  ].join('\r\n');
  const mcu = await handMcu(t, {
    invite: (inv) => inv.accept({ contentType: 'application/sdp', body: offer }).then((d) => mcu.adopt(d)),
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri);
  await d.connect();
  const invite = mcu.requests.find((r) => r.method === 'INVITE')!;
  t.equal(invite.message.body.length, 0, 'the INVITE carries no SDP by default');
  const control = mcu.controls[0]!;
  t.equal(control.remoteContentType, 'application/sdp', 'the ACK carries a session description');
  const answer = parseSdp(control.remoteBody);
  t.same(
    answer.media.map((m) => [m.media, m.port === 0 ? 'rejected' : 'taken', m.formats]),
    [
      ['audio', 'taken', ['8']],
      ['video', 'taken', ['97']],
      ['application', 'rejected', ['*']],
    ],
    'one answer line per offered line, in order (RFC 3264 6)',
  );
  for (const m of answer.media.filter((x) => x.port !== 0))
    t.ok(
      m.attributes.some((a) => a.name === 'inactive'),
      `${m.media} inactive`,
    );
  t.equal(d.health.up, true);
});

t.test('an MCU refusing one SDP form is asked once with the other, which is kept', async (t) => {
  let refuse: 'body' | 'no-body' = 'no-body';
  const mcu = await handMcu(t, {
    invite: (inv) => {
      const hasBody = inv.message.body.length > 0;
      if ((refuse === 'no-body' && !hasBody) || (refuse === 'body' && hasBody)) {
        inv.reject(refuse === 'no-body' ? 488 : 415);
        return;
      }
      inv.accept().then((d) => mcu.adopt(d));
    },
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { healthIntervalMs: 150 });
  await d.connect();
  const invites = () => mcu.requests.filter((r) => r.method === 'INVITE');
  t.same(
    invites().map((r) => r.message.body.length > 0),
    [false, true],
    '488 to the body-less INVITE, then an offer',
  );
  const offer = parseSdp(invites()[1]!.message.body);
  t.same(
    offer.media.map((m) => m.media),
    ['audio', 'video'],
  );
  t.ok(offer.media.every((m) => m.attributes.some((a) => a.name === 'inactive')));
  await mcu.controls[0]!.bye();
  await until('reconnected', () => d.health.up);
  t.same(
    invites().map((r) => r.message.body.length > 0),
    [false, true, true],
    'the form that worked is used from then on',
  );

  refuse = 'body';
  const o = driverFor(t, ua, mcu.uri, { sdp: 'offer' });
  await o.connect();
  t.same(
    invites()
      .slice(3)
      .map((r) => r.message.body.length > 0),
    [true, false],
    'sdp: offer, refused 415, then without a body',
  );

  const both = await handMcu(t, { invite: (inv) => inv.reject(606) });
  const b = driverFor(t, ua, both.uri);
  await t.rejects(b.connect(), { code: 'MCU_ERR_REJECTED', details: { sipStatus: 606 } });
  t.equal(both.count('INVITE'), 2, 'only one retry');
});

t.test('491 to an INFO is retried after the RFC 3261 14.1 wait, inside the deadline (FakeClock)', async (t) => {
  let pending = 1;
  const mcu = await handMcu(t, {
    info: (r) => {
      if (pending-- > 0) r.respond(491);
      else okInfo(r);
    },
  });
  const ua = await controller(t);
  const clock = new FakeClock();
  const d = driverFor(t, ua, mcu.uri, { clock, requestTimeoutMs: 10_000, healthIntervalMs: 600_000 });
  await d.connect();
  const timers = clock.pending;
  const done = d.setLayout(A, 'single');
  await until('the 491 came back and the wait is on the clock', () => clock.pending === timers + 2);
  t.equal(mcu.count('INFO'), 1);
  clock.advance(2_099);
  await new Promise((r) => setImmediate(r));
  t.equal(mcu.count('INFO'), 1, 'not retried before 2.1 s: we own the Call-ID');
  clock.advance(1_901);
  await done;
  t.equal(mcu.count('INFO'), 2, 'retried once the wait (at most 4 s) ended');

  pending = 1;
  const short = driverFor(t, ua, mcu.uri, { clock, requestTimeoutMs: 2_000, healthIntervalMs: 600_000 });
  await short.connect();
  await t.rejects(
    short.setLayout(A, '2x2'),
    { code: 'MCU_ERR_REJECTED', details: { sipStatus: 491 } },
    'a wait that cannot end before the deadline is not started',
  );
  t.equal(mcu.count('INFO'), 3);
});

t.test('an MCU that takes no TCP: the subscription falls back to the control transport, and keeps to it', async (t) => {
  const mcu = await handMcu(t); // UDP only
  mcu.users = [A];
  const ua = await controller(t, true); // we listen on TCP too: the SUBSCRIBE goes over TCP first
  const d = driverFor(t, ua, mcu.uri, { resubscribeIntervalMs: 60_000 });
  await d.connect();
  t.equal(d.capabilities.conferenceEvents, 'available');
  t.same([...d.roster.keys()], [A]);
  t.same(
    mcu.requests.filter((r) => r.method === 'SUBSCRIBE').map((r) => [r.transport, r.message.uri]),
    [['udp', mcu.uri]],
    'the refused TCP connection never reached the MCU; the retry is over UDP, without a transport parameter',
  );
  await until('the MCU has the subscription', () => mcu.subscriptions.length === 1);
  await mcu.subscriptions[0]!.terminate('noresource');
  await until(
    'subscribed again',
    () => mcu.count('SUBSCRIBE') === 2 && d.capabilities.conferenceEvents === 'available',
  );
  t.equal(mcu.requests.filter((r) => r.method === 'SUBSCRIBE')[1]!.transport, 'udp', 'no second try over TCP');
});
