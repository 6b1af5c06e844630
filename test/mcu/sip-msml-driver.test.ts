/**
 * The sip-msml driver against simulated MCUs over real loopback sockets:
 * every operation, cascade links between two simulated MCUs, loss and delay
 * on the wire, and faults giving the right coded errors.
 */
import t from 'tap';
import {
  createSipMsmlDriver,
  type LinkState,
  type McuDriver,
  type McuHealth,
  type SipMsmlDriverOptions,
} from '../../src/mcu/index.js';
import { createSimMcu, type SimMcu, type SimMcuOptions } from '../../src/sim/index.js';
import { answerOffer, createUserAgent, type UserAgent } from '../../src/sip/index.js';

t.setTimeout(90_000);

const FAST = { t1: 50, t2: 400, t4: 500 }; // ms: short SIP timers keep retransmission and failure paths quick
const HOST = '127.0.0.1';

async function sim(t: Tap, id: string, extra: Partial<SimMcuOptions> = {}): Promise<SimMcu> {
  const m = await createSimMcu({ id, uri: `sip:conf@${HOST}:0`, ports: 20, timers: FAST, ...extra });
  t.teardown(() => m.close());
  return m;
}

type Tap = { teardown(fn: () => unknown): void };

async function controller(t: Tap, tcp = true): Promise<UserAgent> {
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: HOST, port: 0 },
      ...(tcp ? [{ transport: 'tcp' as const, host: HOST, port: 0 }] : []),
    ],
    timers: FAST,
    user: 'cascaded',
  });
  t.teardown(() => ua.close());
  return ua;
}

function driverFor(t: Tap, ua: UserAgent, m: SimMcu, extra: Partial<SipMsmlDriverOptions> = {}): McuDriver {
  const d = createSipMsmlDriver({
    ua,
    mcu: { id: m.id, uri: m.uri },
    requestTimeoutMs: 2_000,
    healthIntervalMs: 200,
    healthFailures: 2,
    ...extra,
  });
  t.teardown(() => d.close());
  return d;
}

const until = async (what: string, cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const A = 'sip:a@endpoints.invalid';
const B = 'sip:b@endpoints.invalid';

t.test('connect, full roster, layout, show, mute, keyframe; MSML refusals are MCU_ERR_REJECTED', async (t) => {
  const m = await sim(t, 'p1');
  m.join(A, 'Endpoint A');
  m.join(B, 'Endpoint B');
  const ua = await controller(t);
  const d = driverFor(t, ua, m);
  const health: McuHealth[] = [];
  d.on('health', (h) => health.push(h));
  await d.connect();
  t.same(d.health.up, true);
  t.same([...d.roster.keys()].sort(), [A, B]);
  t.match(d.roster.get(A), { kind: 'endpoint', status: 'connected', audioMuted: false, displayText: 'Endpoint A' });
  t.equal(m.controlDialogs, 1);

  await d.setLayout(A, '2x2');
  await d.showSource(A, 1, B);
  await d.showSource(A, 4, A);
  t.same(m.outputs.get(A)?.layout, '2x2');
  t.same(m.outputs.get(A)?.regions, [B, null, null, A]);
  await d.setLayout(A, 'single');
  t.same(m.outputs.get(A)?.regions, [B], 'shrinking a layout keeps the first regions');

  const rosterUpdates: boolean[] = [];
  d.on('roster', (u) => rosterUpdates.push(u.full));
  await d.mute(B);
  t.equal(m.participants.get(B)?.audioMuted, true);
  await until('the partial notification of the mute', () => d.roster.get(B)?.audioMuted === true);
  await d.unmute(B);
  await until('the partial notification of the unmute', () => d.roster.get(B)?.audioMuted === false);
  t.same(rosterUpdates, [false, false], 'mute and unmute arrive as partial notifications');

  await d.requestKeyframe(A);
  await d.requestKeyframe(A);
  t.equal(m.outputs.get(A)?.keyframes, 2);

  m.join('sip:c@endpoints.invalid');
  await until('a joined endpoint in the roster', () => d.roster.has('sip:c@endpoints.invalid'));
  m.leave('sip:c@endpoints.invalid');
  await until('a left endpoint out of the roster', () => !d.roster.has('sip:c@endpoints.invalid'));

  await t.rejects(d.showSource(A, 1, 'sip:nobody@endpoints.invalid'), {
    code: 'MCU_ERR_REJECTED',
    details: { msmlResponse: 404 },
  });
  await t.rejects(
    d.showSource(A, 3, B),
    { code: 'MCU_ERR_REJECTED', details: { msmlResponse: 400 } },
    'region 3 of single',
  );
  await t.rejects(d.showSource(A, 0, B), { code: 'MCU_ERR_INVALID_ARGUMENT' });
  await t.rejects(d.setLayout(A, 'spiral' as never), { code: 'MCU_ERR_INVALID_ARGUMENT' });
  t.same(
    health.map((h) => h.up),
    [true],
  );

  await Promise.all([d.close(), d.close()]);
  t.equal(d.health.up, false);
  await until('the control dialog ended on the MCU', () => m.controlDialogs === 0);
  await t.rejects(d.setLayout(A, 'single'), { code: 'MCU_ERR_CLOSED' });
  await t.rejects(d.connect(), { code: 'MCU_ERR_CLOSED' });
});

t.test('cascade links are real dialogs between two simulated MCUs; busy and hang-up', async (t) => {
  const parent = await sim(t, 'parent');
  const child = await sim(t, 'child', { isFocus: (e) => e === parent.uri });
  const full = await sim(t, 'full', { ports: 1 });
  full.join(A);
  const ua = await controller(t);
  const dp = driverFor(t, ua, parent);
  const dc = driverFor(t, ua, child);
  await Promise.all([dp.connect(), dc.connect()]);
  const links: LinkState[] = [];
  dp.on('link', (l) => links.push(l));

  const state = await dp.dialLink(child.uri);
  t.same(state, { target: child.uri, state: 'connected' });
  const up = parent.participants.get(child.uri);
  // The parent reports 200 once its INVITE is answered; the child counts the call from the ACK, which may come
  // in a moment later.
  await until('the child has the call', () => child.participants.get(parent.uri)?.status === 'connected');
  const down = child.participants.get(parent.uri);
  t.match(up, { kind: 'link', status: 'connected' });
  t.match(down, { kind: 'link', status: 'connected' }, 'the child sees the parent as a cascade participant');
  t.equal(up?.callId, down?.callId, 'both ends share one SIP dialog');
  await until('the child driver sees the link', () => dc.roster.get(parent.uri)?.kind === 'link');
  await until('the parent driver sees the link', () => dp.roster.get(child.uri)?.status === 'connected');
  t.same(links[0], { target: child.uri, state: 'dialing' });
  t.ok(links.some((l) => l.state === 'connected'));

  t.same(
    await dp.dialLink(child.uri),
    { target: child.uri, state: 'connected' },
    'dialing a connected link is idempotent',
  );

  await t.rejects(dp.dialLink(full.uri), { code: 'MCU_ERR_BUSY', details: { sipStatus: 486 } }, 'the far MCU is full');
  t.notOk(parent.participants.has(full.uri));
  await t.rejects(dp.dialLink('not a uri'), { code: 'MCU_ERR_INVALID_ARGUMENT' });

  await dp.hangUpLink(child.uri);
  t.notOk(parent.participants.has(child.uri));
  await until('the child lost the link', () => !child.participants.has(parent.uri));
  await until('the parent driver saw the link go', () => links.at(-1)?.state === 'disconnected');
  await t.rejects(dp.hangUpLink(child.uri), { code: 'MCU_ERR_REJECTED', details: { sipStatus: 404 } });

  // A link dropped by the MCU itself (a line failure) reaches the driver as a state change.
  await dp.dialLink(child.uri);
  await until('link up again', () => dc.roster.has(parent.uri));
  await child.dropLink(parent.uri);
  await until('parent side dropped', () => !parent.participants.has(child.uri));
  await until('driver told', () => links.at(-1)?.state === 'disconnected' && !dp.roster.has(child.uri));

  // Cascade calls run MCU to MCU: a driver (daemon) that goes away drops no link, and a new one re-reads them.
  await dp.dialLink(child.uri);
  await dp.close();
  t.equal(parent.participants.get(child.uri)?.status, 'connected', 'the link survives the driver');
  const again = driverFor(t, ua, parent);
  await again.connect();
  t.match(again.roster.get(child.uri), { kind: 'link', status: 'connected' }, 're-synchronised from the full state');
});

t.test('every operation succeeds through 20% loss and 10-30 ms one-way delay (UDP only)', async (t) => {
  const parent = await sim(t, 'lossy-parent', { tcp: false });
  const child = await sim(t, 'lossy-child', { tcp: false, isFocus: (e) => e === parent.uri });
  for (const m of [parent, child]) m.setImpairment({ delayMs: 10, jitterMs: 20, loss: 0.2 });
  parent.setProcessingDelay(5);
  parent.join(A);
  parent.join(B);
  const ua = await controller(t, false);
  const d = driverFor(t, ua, parent, { healthFailures: 5, requestTimeoutMs: 4_000 });
  const t0 = Date.now();
  await d.connect();
  t.same([...d.roster.keys()].sort(), [A, B]);
  for (let i = 0; i < 5; i++) {
    await d.setLayout(A, i % 2 === 0 ? '1+5' : '2x2');
    await d.showSource(A, 1, B);
    await d.mute(B);
    await d.unmute(B);
    await d.requestKeyframe(A);
  }
  t.equal(parent.outputs.get(A)?.regions[0], B);
  t.equal(parent.outputs.get(A)?.keyframes, 5);
  await d.dialLink(child.uri);
  // The child counts the link once the ACK of its 200 arrives, which loss may delay.
  await until('the child has the link', () => child.participants.get(parent.uri)?.kind === 'link');
  await d.hangUpLink(child.uri);
  await until('roster converges despite loss', () => !d.roster.has(child.uri) && d.roster.size === 2, 10_000);
  t.ok(d.health.up, 'still up');
  const wire = parent.wire;
  t.ok(
    wire.dropped > 5 && wire.delayed > 50,
    `the emulator really dropped ${wire.dropped} and delayed ${wire.delayed} datagrams`,
  );
  t.comment(`27 operations through the lossy link in ${Date.now() - t0} ms`);
});

t.test('faults: INFO 5xx, a silent MCU, an unreachable one, a restart', async (t) => {
  const m = await sim(t, 'faulty');
  m.join(A);
  const ua = await controller(t);
  const d = driverFor(t, ua, m, { requestTimeoutMs: 400 });
  const health: McuHealth[] = [];
  d.on('health', (h) => health.push(h));
  await d.connect();

  m.setFaults({ infoStatus: 503 });
  await t.rejects(d.setLayout(A, 'single'), { code: 'MCU_ERR_REJECTED', details: { sipStatus: 503 } });
  await t.rejects(d.requestKeyframe(A), { code: 'MCU_ERR_REJECTED', details: { sipStatus: 503 } });
  m.setFaults({ infoStatus: undefined });
  await d.setLayout(A, 'single');

  m.setFaults({ silent: true });
  await t.rejects(d.setLayout(A, '2x2'), { code: 'MCU_ERR_TIMEOUT' });
  await until('health down after consecutive OPTIONS failures', () => !d.health.up);
  t.match(d.health.reason, /health checks failed/);
  await t.rejects(d.setLayout(A, '2x2'), { code: 'MCU_ERR_DOWN' }, 'nothing is sent to a down MCU');
  m.setFaults({ silent: false });
  await until('health back up', () => d.health.up, 8_000);
  t.same([...d.roster.keys()], [A], 're-synchronised from the full state');

  // A restart loses every call: the driver learns it from a 481 and re-establishes.
  await m.restart(100);
  t.equal(m.participants.size, 0, 'the restarted MCU lost its participants');
  await until('down after the restart', () => !d.health.up, 5_000);
  await until('up again on the restarted MCU', () => d.health.up && m.controlDialogs === 1, 8_000);
  t.equal(d.roster.size, 0, 'roster taken from the restarted MCU');
  t.same(
    health.map((h) => h.up),
    [true, false, true, false, true],
  );

  const gone = await createSimMcu({ id: 'gone', uri: `sip:conf@${HOST}:0`, ports: 1, tcp: false });
  const goneUri = gone.uri;
  await gone.close();
  const dg = driverFor(t, ua, { id: 'gone', uri: goneUri } as SimMcu, { connectTimeoutMs: 500 });
  await t.rejects(dg.connect(), { code: /^MCU_ERR_(TIMEOUT|DOWN)$/ });
  t.equal(dg.health.up, false);
  await t.rejects(dg.dialLink(`sip:conf@${HOST}:9`), { code: 'MCU_ERR_DOWN' });
});

t.test('a lost conference-info version makes the driver ask for the full state again (RFC 4575 4.1)', async (t) => {
  const { buildConferenceInfo, CONFERENCE_INFO_CONTENT_TYPE } = await import('../../src/mcu/index.js');
  // A hand-driven MCU on our SIP stack, so the test chooses the versions it sends.
  const mcu = await controller(t, false);
  const user = (entity: string) => ({
    entity,
    state: 'full' as const,
    kind: 'endpoint' as const,
    status: 'connected' as const,
    audioMuted: false,
  });
  const doc = (version: number, state: 'full' | 'partial', users: string[]) => ({
    contentType: CONFERENCE_INFO_CONTENT_TYPE,
    body: buildConferenceInfo({ entity: 'sip:conf@x', version, state, users: users.map(user) }),
  });
  mcu.on('invite', (inv) => {
    inv.accept().then(
      (d) => d.on('request', (r) => r.respond(200)),
      () => {},
    );
  });
  let refreshes = 0;
  const accepted = new Promise<import('../../src/sip/index.js').ServerSubscription>((resolve) =>
    mcu.on('subscribe', (s) => {
      s.accept({ ...doc(1, 'full', [A]), expires: 600 }).then((server) => {
        server.on('refreshed', () => {
          refreshes++;
          server.notify(doc(7, 'full', [A, B, 'sip:c@endpoints.invalid'])).catch(() => {});
        });
        resolve(server);
      });
    }),
  );
  const ua = await controller(t, false);
  const d = driverFor(t, ua, { id: 'hand', uri: mcu.contactUri('udp') } as SimMcu);
  await d.connect();
  const server = await accepted;
  t.same([...d.roster.keys()], [A]);
  await server.notify(doc(2, 'partial', [B]));
  await until('version 2 applied', () => d.roster.has(B));
  await server.notify(doc(4, 'partial', ['sip:lost@endpoints.invalid'])); // version 3 never came
  await until('the full state after the refresh', () => d.roster.size === 3 && d.roster.has('sip:c@endpoints.invalid'));
  t.equal(refreshes, 1, 'one refresh asked for the full state');
  t.notOk(d.roster.has('sip:lost@endpoints.invalid'), 'the out-of-order partial was not applied');
});

t.test('deadlines: a slow MCU times out, a busy parent reports 503, an unreachable child fails the dial', async (t) => {
  const m = await sim(t, 'slow', { ports: 1 });
  const ua = await controller(t);
  // The dial deadline outlasts the simulated MCU's own INVITE timeout (Timer B = 64*T1 = 3.2 s with FAST timers).
  const d = driverFor(t, ua, m, { requestTimeoutMs: 300, dialTimeoutMs: 8_000, healthFailures: 100 });
  await d.connect();
  m.join(A);
  m.setProcessingDelay(600);
  await t.rejects(d.setLayout(A, 'single'), { code: 'MCU_ERR_TIMEOUT', details: { timeoutMs: 300 } });
  m.setProcessingDelay(0);
  await t.rejects(
    d.dialLink(`sip:conf@${HOST}:9`),
    { code: 'MCU_ERR_BUSY', details: { sipStatus: 503 } },
    'no free port on the dialing MCU itself',
  );
  m.leave(A);
  const gone = await createSimMcu({ id: 'gone', uri: `sip:conf@${HOST}:0`, ports: 1, tcp: false });
  const target = gone.uri;
  await gone.close();
  await t.rejects(
    d.dialLink(target),
    { code: 'MCU_ERR_REJECTED', details: { sipStatus: /^(408|480)$/ } },
    'nobody answers the cascade INVITE: 408, or 480 when the port refuses',
  );
  t.notOk(m.participants.has(target), 'the failed link left no participant');
});

t.test('the simulated MCU keeps a control dialog alive through session-timer refreshes (RFC 4028)', async (t) => {
  const m = await sim(t, 'timers');
  const ua = await createUserAgent({
    listen: [{ transport: 'udp', host: HOST, port: 0 }],
    timers: FAST,
    sessionTimer: { expires: 90 },
  });
  t.teardown(() => ua.close());
  // The MCU offers in its 200 (RFC 3261 13.3.1.4): the ACK carries our answer.
  const control = await ua.invite(m.uri, { answer: (offer) => answerOffer(offer, { host: HOST }) });
  t.same(control.sessionTimer, { interval: 90, refresher: 'local' }, 'the MCU accepts the session interval');
  t.equal((await control.reinvite()).status, 200, 'a refresh re-INVITE is answered');
  t.equal(m.controlDialogs, 1);
  await control.bye();
});
