/**
 * Call quality reports (RFC 6035, application/vq-rtcpxr): the body codec
 * against the RFC's own example (section 4.7.3, message F13, as printed,
 * folded lines included), refusals of unreadable bodies, and the driver's
 * subscription against simulated MCUs over real sockets: the figures of the
 * MCU's impairment arrive as typed `quality` events; an MCU without the
 * package leaves the conference open with `qualityReports: 'missing'`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  buildVqReport,
  createSipMsmlDriver,
  parseVqReport,
  type QualityReport,
  type SipMsmlDriver,
  uriOfId,
} from '../../src/mcu/index.js';
import { createSimMcu, type SimMcu, type SimMcuOptions } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';

t.setTimeout(60_000);

const RFC_EXAMPLE = readFileSync(
  fileURLToPath(new URL('../../../test/mcu/vectors/rfc6035-4.7.3-f13.txt', import.meta.url)),
  'utf8',
);
const FAST = { t1: 50, t2: 400, t4: 500 }; // ms: short SIP timers keep failure paths quick
const HOST = '127.0.0.1';
type Tap = { teardown(fn: () => unknown): void };

t.test('the RFC 6035 4.7.3 example report (F13) parses to its figures', async (t) => {
  const r = parseVqReport(RFC_EXAMPLE);
  t.equal(r.type, 'session');
  t.equal(r.callTerm, true);
  t.equal(r.callId, '6dg37f1890463');
  t.equal(uriOfId(r.localId), 'sip:alice@example.org');
  t.equal(uriOfId(r.remoteId), 'sip:bill@example.net');
  t.equal(r.origId, 'Alice <sip:alice@example.org>');
  t.equal(r.localGroup, 'example-phone-55671');
  t.equal(r.remoteGroup, 'example-gateway-09871');
  // The folded DialogID continues on the next line.
  t.equal(r.dialogId, '1890463548@alice.example.org;to-tag=8472761; from-tag=9123dh311');
  const figures = {
    lossPercent: 5,
    discardPercent: 2,
    roundTripMs: 200,
    oneWayMs: 200,
    jitterMs: 2,
    codec: 'G729',
    start: '2004-10-10T18:23:43Z',
    stop: '2004-10-01T18:26:02Z',
  };
  t.same(r.local, figures);
  t.same(r.remote, figures);
});

t.test('build and parse agree, the bitrate extension line included; unknown lines are skipped', async (t) => {
  const body = buildVqReport({
    type: 'interval',
    callTerm: false,
    callId: 'c1@h',
    localId: '<sip:8001@127.0.1.5:5060>',
    remoteId: '<sip:ep@10.0.0.1>',
    local: { lossPercent: 1.5, jitterMs: 3, roundTripMs: 40, oneWayMs: 20, bitrateKbps: 1946 },
  });
  t.match(body, /^VQIntervalReport:\r\n/);
  t.match(body, /x-Bitrate:KBPS=1946\r\n/);
  const r = parseVqReport(`${body}x-Vendor:ANY=thing\r\n`);
  t.same(r.local, {
    lossPercent: 1.5,
    discardPercent: 0,
    jitterMs: 3,
    roundTripMs: 40,
    oneWayMs: 20,
    bitrateKbps: 1946,
  });
  t.equal(r.remote, undefined);
  t.equal(uriOfId(r.remoteId), 'sip:ep@10.0.0.1');
});

t.test('unreadable reports are MCU_ERR_PROTOCOL naming the line', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /first line/],
    ['Hello: there\r\nCallID: x\r\n', /line 1: the first line/],
    ['VQIntervalReport:\r\nCallID: x\r\nLocalID: <sip:a@b>\r\n', /no RemoteID/],
    ['VQIntervalReport:\r\nno colon here\r\n', /line 2: not a "Name:value"/],
    [
      'VQIntervalReport:\r\nCallID: x\r\nLocalID: <sip:a@b>\r\nRemoteID: <sip:c@d>\r\nLocalMetrics:\r\nPacketLoss:NLR=150 JDR=0\r\n',
      /line 6: NLR=150/,
    ],
    [
      'VQIntervalReport:\r\nCallID: x\r\nLocalID: <sip:a@b>\r\nRemoteID: <sip:c@d>\r\nLocalMetrics:\r\nDelay:IAJ=abc\r\n',
      /line 6: IAJ=abc/,
    ],
    [`VQIntervalReport:\r\n${'x'.repeat(20_000)}`, /bytes/],
  ];
  for (const [body, message] of bad) t.throws(() => parseVqReport(body), { code: 'MCU_ERR_PROTOCOL', message });
});

/** A simulated MCU and a driver subscribing to its quality reports; closed driver first, then the MCU. */
async function setUp(
  t: Tap,
  id: string,
  extra: Partial<SimMcuOptions> = {},
  qualityReports = true,
): Promise<{ m: SimMcu; d: SipMsmlDriver }> {
  const m = await createSimMcu({
    id,
    uri: `sip:conf@${HOST}:0`,
    ports: 20,
    timers: FAST,
    qualityReportMs: 50,
    ...extra,
  });
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: HOST, port: 0 },
      { transport: 'tcp', host: HOST, port: 0 },
    ],
    timers: FAST,
    user: 'cascaded',
  });
  const d = createSipMsmlDriver({ ua, mcu: { id: m.id, uri: m.uri }, healthIntervalMs: 200, qualityReports });
  t.teardown(async () => {
    // The emulator holds delayed datagrams on unref'd timers: keep the loop alive until everything closed.
    const alive = setInterval(() => {}, 1_000);
    await d.close();
    await ua.close();
    await m.close();
    clearInterval(alive);
  });
  return { m, d };
}

const until = async (what: string, cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

t.test('the driver subscribes and reads the simulated MCU impairment as per-call figures', async (t) => {
  const { m, d } = await setUp(t, 'q1', { impairment: { loss: 0.05, delayMs: 10, jitterMs: 9 } });
  m.join('sip:a@endpoints.invalid', 'A');
  m.join('sip:b@endpoints.invalid', 'B');
  const reports: QualityReport[] = [];
  const lobby = d.conference(m.uri);
  lobby.on('quality', (q) => reports.push(q));
  await d.connect();
  await until('a report for each call', () => new Set(reports.map((r) => r.entity)).size === 2);
  t.equal(d.capabilities.qualityReports, 'available');
  const a = reports.find((r) => r.entity === 'sip:a@endpoints.invalid')!;
  t.equal(a.conference, m.uri);
  t.equal(a.type, 'interval');
  // Expected values of the emulator's draws: loss as set, IAJ = jitter/3, one way = delay + jitter/2.
  t.match(a.local, { lossPercent: 5, jitterMs: 3, oneWayMs: 15, roundTripMs: 29, bitrateKbps: 1946, codec: 'H264' });
  t.same(a.remote, a.local);
  m.setImpairment({ loss: 0, jitterMs: 0 });
  const n = reports.length;
  await until('a report after the change', () => reports.slice(n).some((r) => r.local?.lossPercent === 0));
  t.match(reports.at(-1)?.local, { lossPercent: 0, jitterMs: 0, bitrateKbps: 2048 });
});

t.test('an MCU without the package: the conference is open, quality reports missing with the 489', async (t) => {
  const { d } = await setUp(t, 'q2', { profile: 'no-conference-events' });
  await d.connect();
  t.equal(d.health.up, true);
  await until('quality reports missing', () => d.capabilities.qualityReports === 'missing');
  t.match(d.capabilities, {
    conferenceEvents: 'missing',
    qualityReports: 'missing',
    lacks: [
      { feature: 'conference-events', sipStatus: 489 },
      { feature: 'quality-reports', sipStatus: 489 },
    ],
  });
});

t.test('without qualityReports the capabilities record is as before (no qualityReports field)', async (t) => {
  const { d } = await setUp(t, 'q3', {}, false);
  await d.connect();
  t.match(d.capabilities, { conferenceEvents: 'available', lacks: [] });
  t.notOk('qualityReports' in d.capabilities);
});

t.test('a room opened with holdQuality subscribes to its reports only once asked (reportQuality)', async (t) => {
  const { m, d } = await setUp(t, 'q4', { rooms: ['8001'] });
  const roomUri = m.roomUri(m.rooms[0]!);
  m.join('sip:a@endpoints.invalid', 'A');
  m.join('sip:b@endpoints.invalid', 'B', m.rooms[0]);
  await d.connect();
  const room = d.conference(roomUri);
  const lobbyReports: QualityReport[] = [];
  const roomReports: QualityReport[] = [];
  d.conference(m.uri).on('quality', (q) => lobbyReports.push(q));
  room.on('quality', (q) => roomReports.push(q));
  await room.open({ holdQuality: true });
  // The lobby reports every 50 ms and the driver ticks every 200 ms: a dozen lobby reports span several ticks,
  // none of which may subscribe the held room.
  await until('a dozen lobby reports', () => lobbyReports.length >= 12);
  const conf = () => [...m.conferences.values()].find((c) => c.room === '8001');
  t.equal(conf()?.qualitySubscribers, 0, 'no quality subscription to the held room');
  t.equal(room.capabilities.qualityReports, 'unknown');
  t.equal(roomReports.length, 0);
  room.reportQuality();
  await until('a report from the room', () => roomReports.length > 0);
  t.equal(roomReports[0]?.entity, 'sip:b@endpoints.invalid');
  t.equal(conf()?.qualitySubscribers, 1);
  t.equal(room.capabilities.qualityReports, 'available');
  room.reportQuality();
  t.equal(conf()?.qualitySubscribers, 1, 'asked again: nothing more');
});
