/**
 * The sip-msml driver against MCUs as they are, each played by a hand-driven
 * MCU on our stack over real loopback sockets: no conference event package,
 * a far-end BYE at any moment, a command that is never answered, 500 after a
 * reordered CSeq, URIs with parameters, per-MCU settings from the inventory.
 */
import t from 'tap';
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
import { createUserAgent, type IncomingRequest, type UserAgent } from '../../src/sip/index.js';
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
    t.same(d.capabilities, { conferenceEvents: 'unknown', lacks: [] }, 'unknown before the first attempt');
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
    lacks: [{ feature: 'conference-events', reason: /no answer within 300 ms/ }],
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

t.test('the subscription ending later does not take the MCU down; it is asked again', async (t) => {
  const mcu = await handMcu(t);
  mcu.users = [A];
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri, { resubscribeIntervalMs: 60_000 });
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
  const mcu = await handMcu(t, {
    info: (req) => {
      const body = req.message.body.toString();
      const out = /conn:(sip:[a-z]+@endpoints\.invalid)"/.exec(body)?.[1] ?? '?';
      order.push(`${out} ${/type="text\/msml-basic-layout"/.test(body) ? 'layout' : 'show'}`);
      inFlight++;
      perOutput.set(out, (perOutput.get(out) ?? 0) + 1);
      maxInFlight = Math.max(maxInFlight, inFlight);
      maxPerOutput = Math.max(maxPerOutput, perOutput.get(out)!);
      setTimeout(() => {
        inFlight--;
        perOutput.set(out, perOutput.get(out)! - 1);
        okInfo(req);
      }, 30);
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

t.test('500 to a request a later one of ours overtook is retried once; a lone 500 is not', async (t) => {
  let first: IncomingRequest | undefined;
  let mode: 'overtaken' | 'lone' = 'overtaken';
  let infos = 0;
  const mcu = await handMcu(t, {
    info: (req) => {
      infos++;
      if (mode === 'lone') {
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
