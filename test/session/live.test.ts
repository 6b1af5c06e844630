/**
 * The live record (src/session/live.ts) on a FakeClock with a real store:
 * endpoint calls written as they come and go, quality reports rolled up in
 * windows written every flushMs, and the report's figures from them (per
 * endpoint, per link, per province; drops and time away), in JSON, CSV and
 * HTML. The simulator end to end is test/session/e2e.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { FakeClock } from '../../src/core/index.js';
import { buildReport, createLiveRecorder, reportCsv, reportHtml } from '../../src/session/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { BASE, sessionNetwork } from './fixtures.js';

t.setTimeout(60_000);

const inventory = parseConfig(JSON.stringify(sessionNetwork('127.9.7.'))).inventory;
const report = (q: { lossPercent?: number; jitterMs?: number; bitrateKbps?: number; roundTripMs?: number }) => ({
  local: q,
  remote: { ...q, lossPercent: (q.lossPercent ?? 0) / 2 },
});

/** A live recorder on a FakeClock at BASE, writing every minute to a store of its own; closed with the test. */
async function recorder(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'session-live-'));
  const clock = new FakeClock(BASE);
  const store = await openSqliteStore({ path: join(dir, 'cascaded.db'), clock });
  const live = createLiveRecorder({ store, clock, flushMs: 60_000 });
  t.teardown(async () => {
    await live.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { clock, store, live };
}

t.test('calls and quality windows recorded, then reported per endpoint, link and province', async (t) => {
  const { clock, store, live } = await recorder(t);
  const call = (endpoint: string, state: 'connected' | 'disconnected') =>
    live.participant({ session: 's1', mcu: 'qb', room: 'sip:8001@qb', endpoint, state });
  call('qb-x1', 'connected');
  call('qb-room', 'connected');
  live.quality({ session: 's1', mcu: 'qb', endpoint: 'qb-x1', report: report({ lossPercent: 1, jitterMs: 4 }) });
  live.quality({ session: 's1', mcu: 'qb', endpoint: 'qb-x1', report: report({ lossPercent: 3, jitterMs: 8 }) });
  live.quality({ session: 's1', mcu: 'nb', endpoint: 'nb-room', report: report({ bitrateKbps: 2000 }) });
  live.quality({ session: 's1', mcu: 'qb', link: { child: 'qb', parent: 'm' }, report: report({ lossPercent: 0.5 }) });
  // An endpoint's call away for 90 s, then back; a second window with worse figures.
  clock.advance(30_000);
  call('qb-x1', 'disconnected');
  await live.flush();
  clock.advance(90_000);
  call('qb-x1', 'connected');
  // Written now, at this time (the store stamps events as it writes them): the windows are empty still.
  await live.flush();
  live.quality({ session: 's1', mcu: 'qb', endpoint: 'qb-x1', report: report({ lossPercent: 10, jitterMs: 60 }) });
  live.quality({ session: 's1', mcu: 'nb', endpoint: 'nb-room', report: report({ bitrateKbps: 1000 }) });
  live.quality({ session: 'other', mcu: 'nb', endpoint: 'nb-room', report: report({ lossPercent: 50 }) });
  // The timer writes the window on its own.
  clock.advance(60_000);
  await live.flush();

  const events = await store.listEvents({ subject: 's1', limit: 1_000 });
  t.same(
    events.map((e) => e.type),
    [
      'session.endpoint.up',
      'session.endpoint.up',
      'session.endpoint.down',
      'session.quality',
      'session.quality',
      'session.quality',
      'session.endpoint.up',
      'session.quality',
      'session.quality',
    ],
  );
  const first = events.find((e) => e.type === 'session.quality')!.data;
  t.same(first, {
    mcu: 'qb',
    endpoint: 'qb-x1',
    reports: 2,
    // Each report: the worse of its two directions (the local one here); the window keeps sum and worst.
    lossPercent: { n: 2, sum: 4, worst: 3 },
    jitterMs: { n: 2, sum: 12, worst: 8 },
  });

  const rep2 = buildReport({
    id: 's1',
    inventory,
    steps: [],
    deadlines: [],
    acks: [],
    checks: [],
    cascade: {
      plan: {
        root: 'm',
        endpoints: ['qb-x1', 'qb-room', 'nb-room'],
        assignments: { 'qb-x1': 'qb', 'qb-room': 'qb', 'nb-room': 'nb' },
        relays: {},
        depths: { 'qb-x1': 1, 'qb-room': 1, 'nb-room': 1 },
        links: { qb: 'm', nb: 'm' },
      },
    } as never,
    events: [
      ...events,
      { id: 999, at: events[0]!.at, type: 'cascade.link.up', subject: 's1', data: { child: 'qb', parent: 'm' } },
    ],
    generatedAt: new Date(clock.wallNow()).toISOString(),
  });
  const rows = new Map(rep2.endpoints.map((e) => [e.endpoint, e]));
  t.match(rows.get('qb-x1'), {
    calls: { connections: 2, drops: 1, disconnectedMs: 90_000 },
    quality: {
      reports: 3,
      lossPercent: { mean: 4.7, worst: 10 },
      jitterMs: { mean: 24, worst: 60 },
      bitrateKbps: null,
    },
  });
  t.match(rows.get('qb-room'), { calls: { connections: 1, drops: 0, disconnectedMs: 0 }, quality: null });
  t.match(rows.get('nb-room'), { quality: { reports: 2, bitrateKbps: { mean: 1500, worst: 1000 } } });
  t.equal(rep2.callDrops, 1);
  t.match(rep2.links, [{ child: 'qb', quality: { reports: 1, lossPercent: { mean: 0.5, worst: 0.5 } } }]);
  t.match(rep2.quality, {
    reports: 6,
    endpoints: { reports: 5, lossPercent: { worst: 10 } },
    links: { reports: 1 },
    provinces: [
      { province: 'ninh-binh', name: 'Ninh Bình', endpoints: 1, bitrateKbps: { worst: 1000 } },
      { province: 'quang-binh', name: 'Quảng Bình', endpoints: 1, lossPercent: { worst: 10 } },
    ],
  });

  const csv = reportCsv(rep2);
  t.match(csv, /\r\nqb-x1,Xã Quảng Phú,commune,quang-binh,qb,1,untested,,0,0,2,1,90,3,4\.7,10,24,60,,,,\r\n/);
  t.match(csv, /\r\nquality_province,name,endpoints,quality_reports,/);
  t.match(csv, /\r\nquang-binh,Quảng Bình,1,3,4\.7,10,24,60,,,,\r\n/);
  const html = reportHtml(rep2);
  t.match(html, /<h2>Call quality as the MCUs reported it<\/h2>/);
  t.match(html, /<td class="num bad">4\.7 % \(10\)<\/td>/, 'loss over 1% marked');
  t.match(html, /<td>Quảng Bình<\/td><td class="num">1<\/td>/);

  await live.close();
  live.participant({ session: 's1', mcu: 'qb', room: 'r', endpoint: 'qb-x1', state: 'disconnected' });
  await live.close();
  t.equal((await store.listEvents({ subject: 's1', limit: 1_000 })).length, events.length, 'nothing after close');
});

t.test('no quality event: the report says null and the HTML says why', async (t) => {
  const rep = buildReport({
    id: 's2',
    inventory,
    steps: [],
    deadlines: [],
    acks: [],
    checks: [],
    events: [],
    generatedAt: new Date(BASE).toISOString(),
  });
  t.equal(rep.quality, null);
  t.match(reportHtml(rep), /No MCU of this session reported call quality/);
});

t.test('a national minute of windows: every one written, in batches, the event loop served between them', async (t) => {
  const { store, live } = await recorder(t);
  const n = 1_234;
  for (let i = 0; i < n; i++)
    live.quality({ session: 's1', mcu: 'qb', endpoint: `e${i}`, report: report({ lossPercent: i % 7 }) });
  // Something else the loop has to do meanwhile (a chair command's answer, an API request): it must not wait for
  // the whole flush.
  let served = 0;
  let writtenWhenServed = -1;
  const flushed = live.flush();
  setImmediate(() => {
    served++;
    void store.listEvents({ type: 'session.quality', limit: 10_000 }).then((e) => {
      writtenWhenServed = e.length;
    });
  });
  await flushed;
  const events = await store.listEvents({ type: 'session.quality', limit: 10_000 });
  t.equal(events.length, n, 'every window written');
  t.same(
    events.map((e) => (e.data as { endpoint: string }).endpoint),
    Array.from({ length: n }, (_, i) => `e${i}`),
    'in the order the windows were opened',
  );
  t.equal(served, 1, 'the loop ran other work during the flush');
  t.ok(
    writtenWhenServed > 0 && writtenWhenServed < n,
    `served between two batches (${writtenWhenServed} written then)`,
  );
});
