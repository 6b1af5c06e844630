/**
 * A planned national session and an ad-hoc provincial session, overlapping,
 * run end to end against the simulator on a compressed (fake) clock: created
 * with cascadectl and REST, dialled by the cascade manager over SIP at their
 * times, a restart of the lifecycle across the national dial (the step runs
 * at once, recorded late), deadlines missed on purpose (a unit that never
 * acknowledges, endpoints never tested) with their metric, the script's
 * speakers brought to the chair (seen by the simulator's display model),
 * tear-down after the end; a third overlapping session refused with the
 * planner's reasons.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { HOUR, MINUTE } from '../../src/session/index.js';
import { call } from '../api/harness.js';
import { until } from '../cascade/helpers.js';
import { at, provincialRequest } from './fixtures.js';
import { type SessionWorld, sessionWorld } from './harness.js';

t.setTimeout(300_000);

let w: SessionWorld;
let admin: string;
let opNb: string;
let opQb: string;
let viewer: string;
let ca: string;

t.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'session-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  w = await sessionWorld(dir);
  t.teardown(() => w.close());
  admin = await w.token('admin');
  opNb = await w.token('operator', 'province:ninh-binh');
  opQb = await w.token('operator', 'province:quang-binh');
  viewer = await w.token('viewer');
  ca = readFileSync(w.caFile, 'utf8');
});

const rest = (method: string, path: string, token: string, body?: unknown) =>
  call(w.url, ca, method, path, { token, ...(body === undefined ? {} : { body }) });

/** Advance the fake clock to `ms` after BASE and let every step and evaluation due run. */
async function to(ms: number): Promise<void> {
  w.clock.advance(ms - w.clock.now());
  await w.lifecycle.idle();
}

const deadline = async (session: string, name: string) =>
  (await w.parts.store.lifecycle.deadlines(session)).find((d) => d.name === name)!;
const step = async (session: string, name: string) =>
  (await w.parts.store.lifecycle.steps(session)).find((s) => s.step === name)!;

t.test('two overlapping sessions through their timelines', async (t) => {
  // 06:00 UTC: the Government Office's request; cascadectl schedules it with selectors and a script.
  const created = await w.ctl(admin, [
    'schedule',
    'create',
    '--id',
    'national',
    '--kind',
    'planned',
    '--title',
    'Hội nghị trực tuyến toàn quốc về chuyển đổi số',
    '--requester',
    'Văn phòng Chính phủ',
    '--chair',
    'chair',
    '--start',
    at(3 * HOUR),
    '--end',
    at(4 * HOUR),
    '--rehearsal',
    at(1 * HOUR),
    '--select',
    'level=province,province=quang-binh',
    '--endpoints',
    'nb-room,qb-x1',
    '--script',
    'qb-room,nb-room',
  ]);
  t.equal(created.code, 0, created.err);
  t.match(created.out, /national: Hội nghị trực tuyến toàn quốc về chuyển đổi số \[planned, national, scheduled\]/);
  t.match(created.out, /units: ninh-binh \(not acknowledged\), quang-binh \(not acknowledged\)/);
  await w.lifecycle.idle();
  t.equal((await deadline('national', 'plan')).state, 'met', 'planned at once, before the rehearsal');

  // Ninh Bình acknowledges within the 15 minutes; Quảng Bình never does (on purpose).
  await to(5 * MINUTE);
  const wrongUnit = await w.ctl(opQb, ['ack', 'national', 'ninh-binh']);
  t.equal(wrongUnit.code, 3, 'an operator acknowledges for its own unit only');
  const ack = await w.ctl(opNb, ['ack', 'national', 'ninh-binh']);
  t.equal(ack.code, 0, ack.err);
  t.match(ack.out, new RegExp(`ninh-binh acknowledged at ${at(5 * MINUTE)}`));
  await to(10 * MINUTE);
  const risk = await w.metrics.render();
  t.match(risk, /cascaded_session_deadline_at_risk\{session="national",deadline="notify"\} 1/, 'at risk: the metric');
  t.match(await deadline('national', 'notify'), { state: 'pending', atRiskAt: at(10 * MINUTE) });
  await to(15 * MINUTE);
  t.match(await deadline('national', 'notify'), { state: 'missed', detail: { missing: ['quang-binh'] } });
  const missed = await w.metrics.render();
  t.notMatch(missed, /cascaded_session_deadline_at_risk\{session="national",deadline="notify"\}/, 'no longer at risk');
  t.match(missed, /cascaded_session_deadlines_total\{deadline="notify",outcome="missed"\} 1/);

  // The daemon is down from 06:20 to 06:35, across the dial at T-2h30 (06:30).
  await to(20 * MINUTE);
  await w.stop();
  w.clock.advance(15 * MINUTE);
  t.equal(await w.parts.store.getCascade('national'), undefined, 'nothing dialled while down');
  await w.restart();
  await w.lifecycle.idle();
  t.match(await step('national', 'dial'), { state: 'done', lateMs: 5 * MINUTE, ranAt: at(35 * MINUTE) });
  await until(
    'the national cascade up (the cascade deadline met)',
    async () => ((await deadline('national', 'cascade')).state === 'met' ? true : undefined),
    60_000,
  );
  await until(
    'every national endpoint in its room, seeing the session view',
    () => {
      const p = w.parts.manager.progress('national')[0];
      return p !== undefined && p.endpoints.wanted > 0 && p.endpoints.in === p.endpoints.wanted && p.viewsApplied;
    },
    60_000,
  );
  // The units test their endpoints; Quảng Bình's commune has no picture (on purpose).
  for (const [token, endpoint, extra] of [
    [admin, 'chair', []],
    [opQb, 'qb-room', []],
    [opNb, 'nb-room', []],
    [opQb, 'qb-x1', ['--video', 'no', '--notes', 'Mất hình, kiểm tra lại camera']],
  ] as const) {
    const r = await w.ctl(token, [
      'check',
      'national',
      endpoint,
      '--connected',
      'yes',
      '--audio',
      'yes',
      '--video',
      'yes',
      ...extra,
    ]);
    t.equal(r.code, 0, r.err);
  }
  const foreign = await w.ctl(opNb, ['check', 'national', 'qb-room', '--connected', 'yes']);
  t.equal(foreign.code, 3, 'a unit records the tests of its own endpoints only');
  const summary = await w.ctl(admin, ['checks', 'national']);
  t.match(summary.out, /Quảng Bình\s+2\s+2\s+1\s+1\s+0/, 'the per-province summary');
  t.match(summary.out, /to test again:[\s\S]*qb-x1\s+Xã Quảng Phú\s+quang-binh\s+unit\s+Mất hình/);
  await to(60 * MINUTE);
  t.match(
    await deadline('national', 'tests'),
    { state: 'missed', detail: { untested: 0, failing: ['qb-x1'] } },
    'an endpoint failing its test at T-2h: missed on purpose',
  );
  // Re-tested and fixed; the daemon checks what it sees itself.
  const retest = await rest('POST', '/v1/schedule/national/checks', opQb, {
    endpoint: 'qb-x1',
    connected: true,
    audio: true,
    video: true,
  });
  t.match(retest, { status: 200, body: { endpoint: 'qb-x1', verdict: 'ok' } });
  const csv = await w.ctl(admin, ['checks', 'national', '--auto', '--csv']);
  t.equal(csv.code, 0, csv.err);
  t.ok(csv.out.startsWith('\uFEFFprovince,name,endpoints,tested,ok,failing,untested,connected\r\n'), 'CSV with a BOM');
  t.match(csv.out, /quang-binh,Quảng Bình,2,2,2,0,0,2\r\n/);
  t.match(csv.out, /qb-x1,Xã Quảng Phú,commune,quang-binh,ok,yes,yes,yes,,\S+,\S+,yes,path qb -> m,/);

  // T-30min: ready.
  await to(150 * MINUTE);
  t.match(await step('national', 'readiness'), { state: 'done', detail: { ok: true, withoutView: 0 }, lateMs: 0 });
  t.equal((await deadline('national', 'ready')).state, 'met');

  // 08:40: an ad-hoc provincial session for 09:15, overlapping; dialled at once.
  await to(160 * MINUTE);
  const prov = await rest('POST', '/v1/schedule', opNb, provincialRequest());
  t.equal(prov.status, 201, prov.text);
  t.match(prov.body, { level: 'provincial', status: 'scheduled', units: [{ unit: 'ninh-binh', ack: null }] });
  t.same([...prov.body.endpoints].sort(), ['nb-h1', 'nb-x1', 'nb-x2', 'ubnd-nb']);
  await w.lifecycle.idle();
  t.equal((await step('nb-adhoc', 'dial')).state, 'done');
  t.equal((await rest('POST', '/v1/schedule/nb-adhoc/acks', opNb, { unit: 'ninh-binh' })).body.withinRule, true);
  await until(
    'the provincial cascade up',
    async () => ((await deadline('nb-adhoc', 'cascade')).state === 'met' ? true : undefined),
    60_000,
  );

  // A third session overlapping both does not fit on qb: refused with the planner's reasons.
  const third = await rest('POST', '/v1/schedule', admin, {
    ...provincialRequest({ id: 'qb-local', root: 'qb', chair: 'qb-x2', endpoints: ['qb-x2'], script: [] }),
  });
  t.equal(third.status, 422, third.text);
  t.match(third.body, { code: 'PLAN_ERR_INFEASIBLE', details: { heldBy: ['national'] } });
  t.match(third.body.message, /held by overlapping session national/);
  const busy = await rest('POST', '/v1/schedule', admin, provincialRequest({ id: 'nb-2', chair: 'nb-room' }));
  t.match(busy, { status: 409, body: { code: 'SESSION_ERR_ENDPOINT_BUSY' } });

  await until(
    'every provincial endpoint in its room, seeing the session view',
    () => {
      const p = w.parts.manager.progress('nb-adhoc')[0];
      return p !== undefined && p.endpoints.wanted > 0 && p.endpoints.in === p.endpoints.wanted && p.viewsApplied;
    },
    60_000,
  );
  await to(165 * MINUTE);
  t.equal((await deadline('nb-adhoc', 'ready')).state, 'met', 'ad-hoc: ready 30 minutes before');

  // 09:00: the national session is live; the script's first speaker to the chair with one command.
  await to(180 * MINUTE);
  t.equal((await w.lifecycle.get('national')).status, 'live');
  const next = await w.ctl(admin, ['next', 'national']);
  t.equal(next.code, 0, next.err);
  t.match(next.out, /speaker 1 of 2: qb-room on the chair in [\d.]+ ms via qb -> m/);
  t.ok((await w.view('chair')).seesIds.includes('qb-room'), 'the chair sees Quảng Bình (simulator display model)');
  await to(195 * MINUTE);
  const pNext = await rest('POST', '/v1/schedule/nb-adhoc/next', opNb, {});
  t.equal(pNext.status, 200, pNext.text);
  t.match(pNext.body, { position: 1, item: { endpoint: 'nb-x1' }, chair: { outcome: 'ok' } });
  t.ok((await w.view('ubnd-nb')).seesIds.includes('nb-x1'), 'the provincial chair sees the commune');

  // Quảng Bình's link drops during the session; the cascade manager redials it.
  const rooms = (await w.parts.store.getCascade('national'))!.rooms;
  const drop = await fetch(`${w.sim.control}/v1/mcus/qb/drop-link`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ target: rooms.m, conference: rooms.qb }),
  });
  t.equal(drop.status, 200, await drop.text());
  await until(
    'the dropped link down and up again in the record',
    async () => {
      const ev = await w.parts.store.listEvents({ subject: 'national', type: 'cascade.link.up', limit: 100 });
      const down = await w.parts.store.listEvents({ subject: 'national', type: 'cascade.link.down', limit: 100 });
      return down.length === 1 && ev.some((e) => e.id > down[0]!.id && (e.data as { child: string }).child === 'qb');
    },
    60_000,
  );

  // Quảng Phú's own call drops (its line fails, not a link); the cascade manager dials it in again.
  const post = (path: string, body: unknown) =>
    fetch(`${w.sim.control}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const callDrop = await post('/v1/mcus/qb/drop-call', { endpoint: 'qb-x1' });
  t.equal(callDrop.status, 200, await callDrop.text());
  const ofQbX1 = (e: { data: unknown }) => (e.data as { endpoint?: string }).endpoint === 'qb-x1';
  await until(
    "Quảng Phú's call down and up again in the record",
    async () => {
      const down = (await w.parts.store.listEvents({ subject: 'national', type: 'session.endpoint.down' })).filter(
        ofQbX1,
      );
      const up = (await w.parts.store.listEvents({ subject: 'national', type: 'session.endpoint.up' })).filter(ofQbX1);
      return down.length === 1 && up.some((e) => e.id > down[0]!.id);
    },
    60_000,
  );
  // Quảng Bình's MCU impaired: its RFC 6035 reports carry the loss, rolled up in the live record.
  t.equal((await post('/v1/mcus/qb/impairment', { loss: 0.02, jitterMs: 30 })).status, 200);
  await until(
    "a quality window of Quảng Phú's call with 2% loss",
    async () =>
      (await w.parts.store.listEvents({ subject: 'national', type: 'session.quality', limit: 10_000 })).some(
        (e) => ofQbX1(e) && (e.data as { lossPercent?: { worst: number } }).lossPercent?.worst === 2,
      ),
    60_000,
  );
  // And in /metrics: the link qb -> m (qb reports it, m is not impaired: the worse end), and qb's endpoint
  // calls in its histogram, above the 1% bucket.
  await until(
    "qb's link at 2% loss and 10 ms jitter in the metrics",
    async () => {
      const text = await w.metrics.render();
      return (
        /cascaded_link_packet_loss_ratio\{session="national",child="qb",parent="m"\} 0\.02\n/.test(text) &&
        /cascaded_link_jitter_seconds\{session="national",child="qb",parent="m"\} 0\.01\n/.test(text)
      );
    },
    60_000,
  );
  const qbCalls = (await w.metrics.render()).split('\n');
  const bucket = (le: string) =>
    Number(
      qbCalls
        .find((l) => l.startsWith(`cascaded_endpoint_packet_loss_ratio_bucket{le="${le}",mcu="qb"}`))
        ?.split(' ')[1],
    );
  t.ok(bucket('+Inf') > bucket('0.01'), "qb's endpoint calls reported over 1% loss");
  const adhocLinks = qbCalls.filter((l) => l.startsWith('cascaded_link_packet_loss_ratio{session="nb-adhoc"'));
  t.ok(
    adhocLinks.every((l) => l.endsWith(' 0')),
    `the other session's links lose nothing: ${adhocLinks.join('; ')}`,
  );
  t.equal((await post('/v1/mcus/qb/impairment', { loss: 0, jitterMs: 0 })).status, 200);

  // Tear-down after each end.
  await to(225 * MINUTE + 5 * MINUTE);
  t.equal((await w.lifecycle.get('nb-adhoc')).status, 'ended');
  t.equal((await w.lifecycle.get('national')).status, 'live', 'the national session goes on');
  await until(
    'the provincial cascade torn down',
    async () => ((await w.parts.store.getCascade('nb-adhoc'))?.state === 'ended' ? true : undefined),
    60_000,
  );
  await to(245 * MINUTE);
  const end = await w.ctl(admin, ['schedule', 'show', 'national']);
  t.match(end.out, /\[planned, national, ended\]/);
  t.match(end.out, /dial\s+\S+\s+done\s+\S+\s+300 s/, 'the late dial shows in the timeline');
  const list = await w.ctl(admin, ['schedule', '--json']);
  const items = JSON.parse(list.out) as { id: string; status: string }[];
  t.same(items.map((s) => [s.id, s.status]).sort(), [
    ['national', 'ended'],
    ['nb-adhoc', 'ended'],
  ]);
  // The report's figures are what happened.
  const rep = (await rest('GET', '/v1/sessions/national/report', admin)).body;
  t.match(rep.session, { id: 'national', level: 'national', status: 'ended', requester: 'Văn phòng Chính phủ' });
  t.same(rep.timeline.deadlines.map((d: { name: string; state: string }) => `${d.name}:${d.state}`).sort(), [
    'cascade:met',
    'notify:missed',
    'plan:met',
    'ready:met',
    'tests:missed',
  ]);
  t.match(
    rep.timeline.steps.find((x: { step: string }) => x.step === 'dial'),
    { lateMs: 5 * MINUTE },
    'the late dial',
  );
  t.match(rep.units, [
    { unit: 'ninh-binh', withinRule: true },
    { unit: 'quang-binh', ack: null },
  ]);
  t.match(rep.chair, { ok: 1, failed: 0, overRule: 0, commands: [{ endpoint: 'qb-room', outcome: 'ok' }] });
  t.ok(rep.chair.commands[0].ms < 30_000);
  t.equal(rep.drops, 1, 'one link dropped');
  const rows = new Map(rep.endpoints.map((e: { endpoint: string }) => [e.endpoint, e]));
  t.match(rows.get('qb-x1'), { drops: 1, mcu: 'qb', verdict: 'ok', connected: true });
  t.match(rows.get('qb-x1'), { calls: { connections: 2, drops: 1 } }, 'its own call dropped once, dialled again');
  t.ok((rows.get('qb-x1') as { calls: { disconnectedMs: number } }).calls.disconnectedMs > 0, 'away for a while');
  t.match(rows.get('nb-room'), { drops: 0, calls: { drops: 0 } });
  t.equal(rep.callDrops, 1, "the link drop is not counted as the endpoints' own drops");
  t.match(rows.get('qb-x1'), { quality: { lossPercent: { worst: 2 }, jitterMs: { worst: 10 } } }, 'as qb reported it');
  t.match(
    rep.quality.provinces.find((p: { province: string }) => p.province === 'quang-binh'),
    {
      name: 'Quảng Bình',
      lossPercent: { worst: 2 },
    },
  );
  t.not(rep.links.find((l: { child: string }) => l.child === 'qb').quality, null, "the link's own figures");
  const provReport = (await rest('GET', '/v1/sessions/nb-adhoc/report', admin)).body;
  t.match(provReport.chair, { ok: 1, commands: [{ endpoint: 'nb-x1' }] });
  t.match(provReport.timeline, { missed: 0 }, 'the provincial session met every deadline');
  const html = await rest('GET', '/v1/sessions/national/report?format=html', viewer);
  t.equal(html.status, 200);
  t.match(html.headers['content-type'], /^text\/html; charset=utf-8/);
  t.match(html.text, /<h1>Hội nghị trực tuyến toàn quốc về chuyển đổi số<\/h1>/);
  const csvOut = join(w.dir, 'report.csv');
  const reportCsv = await w.ctl(viewer, ['report', 'national', '--format', 'csv', '--out', csvOut]);
  t.equal(reportCsv.code, 0, reportCsv.err);
  t.match(
    readFileSync(csvOut, 'utf8'),
    /\r\nqb-x1,Xã Quảng Phú,commune,quang-binh,qb,1,ok,yes,1,0,2,1,\d+,\d+,[\d.]+,2,/,
  );

  const audit = await w.parts.store.listAudit({ action: 'schedule.create' });
  t.ok(
    audit.some((a) => a.outcome === 'PLAN_ERR_INFEASIBLE'),
    'the refusal is audited',
  );
});
