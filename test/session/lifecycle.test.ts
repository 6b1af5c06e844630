/**
 * The lifecycle as one module: a real store, a FakeClock, and a stand-in for
 * the cascade manager (its admissions recorded, its progress set by the test).
 * The end-to-end proof against the simulator is e2e.test.ts; this file checks
 * the timeline's bookkeeping: steps at their times, deadlines at risk, met and
 * missed, restarts, changes, cancellation, refusals.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { CascadeManagerEvents, CascadeProgress, SessionRequest } from '../../src/cascade/index.js';
import { parseConfig } from '../../src/config/index.js';
import { FakeClock, isCascadedError, TypedEmitter } from '../../src/core/index.js';
import {
  type DeadlineEvent,
  HOUR,
  MINUTE,
  type SessionLifecycle,
  type StepEvent,
  startSessionLifecycle,
  summaryCsv,
  timelineOf,
} from '../../src/session/index.js';
import type { CascadeHead, Store } from '../../src/store/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { at, BASE, nationalRequest, sessionNetwork } from './fixtures.js';

t.setTimeout(60_000);

const inventory = parseConfig(JSON.stringify(sessionNetwork('127.9.9.'))).inventory;

class StubCascade extends TypedEmitter<CascadeManagerEvents> {
  admitted: SessionRequest[] = [];
  ended: string[] = [];
  up = new Set<string>();
  constructor(readonly store: Store) {
    super();
  }
  async admit(r: SessionRequest): Promise<CascadeHead> {
    this.admitted.push(r);
    // What the real manager records: a cascade row (the lifecycle looks for it before dialling again).
    return this.store.createCascade(
      {
        session: { id: r.id!, kind: r.kind ?? 'adhoc', title: r.title ?? '' },
        root: r.root!,
        request: r,
        plan: { endpoints: r.endpoints },
        usage: {},
        rooms: {},
      },
      await this.store.cascadeGeneration(),
    );
  }
  async end(id: string): Promise<CascadeHead> {
    this.ended.push(id);
    return this.store.setCascadeState(id, 'ending');
  }
  progress(id?: string): CascadeProgress[] {
    if (id === undefined || !this.admitted.some((a) => a.id === id)) return [];
    const up = this.up.has(id);
    return [
      {
        session: id,
        phase: 'live',
        root: 'm',
        counts: { planned: 0, dialing: up ? 0 : 2, up: up ? 2 : 0, failed: 0 },
        links: [],
        endpoints: { wanted: 3, in: up ? 3 : 0 },
        viewsApplied: up,
      },
    ];
  }
  /** Endpoints in their rooms not seeing the session's view, by session (none unless set). */
  withoutView = new Map<string, number>();
  endpointsWithoutView(id: string): number | undefined {
    return this.admitted.some((a) => a.id === id) ? (this.withoutView.get(id) ?? 0) : undefined;
  }
  bringUp(id: string): void {
    this.up.add(id);
    this.safeEmit('session', { session: id, kind: 'up', at: 0 });
  }
}

interface World {
  store: Store;
  clock: FakeClock;
  cascade: StubCascade;
  lc: SessionLifecycle;
  steps: StepEvent[];
  deadlines: DeadlineEvent[];
  dir: string;
  restart(): Promise<void>;
}

async function world(t: { teardown(fn: () => unknown): void }): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'session-lc-'));
  const store = await openSqliteStore({ path: join(dir, 'cascaded.db') });
  const clock = new FakeClock(BASE);
  const cascade = new StubCascade(store);
  const w = { store, clock, cascade, steps: [], deadlines: [], dir } as unknown as World;
  const start = async () => {
    w.lc = await startSessionLifecycle({ store, inventory, cascade, clock });
    w.lc.on('step', (s) => w.steps.push(s));
    w.lc.on('deadline', (d) => w.deadlines.push(d));
  };
  await start();
  w.restart = async () => {
    await w.lc.close();
    await start();
  };
  t.teardown(async () => {
    await w.lc.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

const national = nationalRequest;

t.test('the timeline of Decision 1594 from the start time', async (t) => {
  const req = BASE;
  const p = timelineOf({
    kind: 'planned',
    requestedAt: req,
    startsAt: req + 5 * HOUR,
    endsAt: req + 6 * HOUR,
    rehearsalAt: req + HOUR,
  });
  const step = (n: string) => p.steps.find((s) => s.name === n)!.at - req;
  const due = (n: string) => p.deadlines.find((d) => d.name === n)?.due;
  t.equal(step('plan'), 0);
  t.equal(step('dial'), 2.5 * HOUR, 'dialled 30 minutes before T-2h');
  t.equal(step('readiness'), 4.5 * HOUR);
  t.equal(step('teardown'), 6 * HOUR + 5 * MINUTE);
  t.equal(due('notify')! - req, 15 * MINUTE, 'the 15-minute rule');
  t.equal(due('plan')! - req, HOUR, 'plan agreed before the rehearsal');
  t.equal(due('tests')! - req, 3 * HOUR);
  t.equal(due('cascade')! - req, 3 * HOUR, 'cascade at least 2 hours before');
  t.equal(due('ready')! - req, 4.5 * HOUR, 'ready 30 minutes before');
  const a = timelineOf({ kind: 'adhoc', requestedAt: req, startsAt: req + 40 * MINUTE, endsAt: req + HOUR });
  t.equal(a.steps.find((s) => s.name === 'dial')!.at, req, 'ad-hoc: dialled at once');
  t.notOk(
    a.deadlines.some((d) => d.name === 'tests'),
    'ad-hoc: no internal-test deadline',
  );
  t.equal(a.deadlines.find((d) => d.name === 'cascade')!.due - req, 10 * MINUTE, 'ad-hoc: cascade by T-30min');
  const late = timelineOf({ kind: 'adhoc', requestedAt: req, startsAt: req + 20 * MINUTE, endsAt: req + HOUR });
  const ready = late.deadlines.find((d) => d.name === 'ready')!;
  t.match(ready, { due: req + 20 * MINUTE, compressed: true }, 'announced 20 minutes before: ready by the start');
});

t.test('a planned session: steps at their times, deadlines met and missed on purpose', async (t) => {
  const w = await world(t);
  const v = await w.lc.create(national());
  t.equal(v.level, 'national');
  t.same(
    v.units.map((u) => u.unit),
    ['ninh-binh', 'quang-binh'],
  );
  t.same([...v.endpoints].sort(), ['chair', 'nb-room', 'qb-room', 'qb-x1']);
  await w.lc.idle();
  t.match(w.steps, [{ step: 'plan', state: 'done', late: false }]);
  t.match(w.deadlines, [{ deadline: 'plan', state: 'met' }], 'the plan is made at once: before the rehearsal');

  w.clock.advance(5 * MINUTE);
  const ack = await w.lc.acknowledge('national', 'ninh-binh', 'op-nb');
  t.match(ack, { unit: 'ninh-binh', at: at(5 * MINUTE), withinRule: true });
  await t.rejects(w.lc.acknowledge('national', 'thai-nguyen', 'x'), { code: 'SESSION_ERR_INVALID' });
  w.clock.advance(5 * MINUTE);
  await w.lc.idle();
  t.match(w.deadlines.at(-1), { deadline: 'notify', state: 'at-risk', detail: { missing: ['quang-binh'] } });
  w.clock.advance(5 * MINUTE);
  await w.lc.idle();
  t.match(w.deadlines.at(-1), { deadline: 'notify', state: 'missed', detail: { missing: ['quang-binh'] } });
  w.clock.advance(1 * MINUTE);
  const late = await w.lc.acknowledge('national', 'quang-binh', 'op-qb');
  t.equal(late.withinRule, false, 'an acknowledgement after 15 minutes is recorded, outside the rule');

  w.clock.advance(30 * MINUTE - 16 * MINUTE - 1);
  await w.lc.idle();
  t.equal(w.cascade.admitted.length, 0, 'not dialled before T-2h-30min');
  w.clock.advance(1);
  await w.lc.idle();
  t.match(w.cascade.admitted, [{ id: 'national', root: 'm', chair: 'chair', kind: 'planned' }]);
  t.equal((await w.lc.get('national')).status, 'dialing');
  w.cascade.bringUp('national');
  await w.lc.idle();
  t.match(
    w.deadlines.filter((d) => d.deadline === 'cascade'),
    [{ state: 'met' }],
  );
  w.clock.advance(30 * MINUTE);
  await w.lc.idle();
  t.match(
    w.deadlines.filter((d) => d.deadline === 'tests'),
    [{ state: 'at-risk' }, { state: 'missed', detail: { untested: 4 } }],
    'no endpoint tested: the internal tests deadline missed',
  );

  w.clock.advance(90 * MINUTE);
  await w.lc.idle();
  t.match(w.steps.at(-1), { step: 'readiness', state: 'done', detail: { ok: true } });
  t.match(w.deadlines.filter((d) => d.deadline === 'ready').at(-1), { state: 'met' });
  t.equal((await w.lc.get('national')).status, 'ready');
  w.clock.advance(30 * MINUTE);
  await w.lc.idle();
  t.equal((await w.lc.get('national')).status, 'live');
  w.clock.advance(65 * MINUTE);
  await w.lc.idle();
  t.same(w.cascade.ended, ['national']);
  const end = await w.lc.get('national');
  t.equal(end.status, 'ended');
  t.ok(
    end.steps.every((s) => s.state === 'done' && s.lateMs === 0),
    'every step on time',
  );
  t.equal(w.clock.pending, 0, 'no timer left');
  const events = await w.store.listEvents({ subject: 'national', limit: 1000 });
  t.ok(events.some((e) => e.type === 'session.deadline' && (e.data as { state: string }).state === 'missed'));
});

t.test('a restart: a step missed while down runs at once, recorded late', async (t) => {
  const w = await world(t);
  await w.lc.create(national());
  await w.lc.idle();
  w.clock.advance(20 * MINUTE);
  await w.lc.idle();
  await w.lc.close();
  // Down across the dial (T-2h-30min): nothing runs meanwhile.
  w.clock.advance(15 * MINUTE);
  t.equal(w.cascade.admitted.length, 0);
  await w.restart();
  await w.lc.idle();
  t.match(w.cascade.admitted, [{ id: 'national' }], 'dialled at once on start');
  const dial = (await w.lc.get('national')).steps.find((s) => s.step === 'dial')!;
  t.match(dial, { state: 'done', lateMs: 5 * MINUTE, ranAt: at(35 * MINUTE) });
  t.match(w.steps.at(-1), { step: 'dial', late: true, lateMs: 5 * MINUTE });
  w.cascade.bringUp('national');
  await w.lc.idle();
  t.match(
    w.deadlines.filter((d) => d.deadline === 'cascade'),
    [{ state: 'met' }],
    'up before T-2h',
  );
  // A second restart does not dial again.
  await w.restart();
  await w.lc.idle();
  t.equal(w.cascade.admitted.length, 1);
});

t.test('readiness: endpoints that do not see the session view keep it from ready, and say how many', async (t) => {
  const w = await world(t);
  await w.lc.create(national());
  w.clock.advance(30 * MINUTE);
  await w.lc.idle();
  t.match(w.cascade.admitted, [{ id: 'national' }]);
  // Every link up and every endpoint in its room, but two screens not showing the chair yet.
  w.cascade.withoutView.set('national', 2);
  w.cascade.bringUp('national');
  await w.lc.idle();
  w.clock.advance(105 * MINUTE);
  await w.lc.idle();
  t.match(
    w.deadlines.filter((d) => d.deadline === 'ready'),
    [{ state: 'at-risk', detail: { ok: false, up: true, endpointsIn: 3, withoutView: 2 } }],
    'at risk at T-45min, naming the endpoints without the view',
  );
  w.clock.advance(15 * MINUTE);
  await w.lc.idle();
  t.match(w.steps.at(-1), { step: 'readiness', state: 'done', detail: { ok: false, withoutView: 2 } });
  t.match(w.deadlines.filter((d) => d.deadline === 'ready').at(-1), { state: 'missed', detail: { withoutView: 2 } });
  t.equal((await w.lc.get('national')).status, 'dialing', 'not ready');
});

t.test('overlapping sessions that do not fit are refused with the planner reasons', async (t) => {
  const w = await world(t);
  await w.lc.create(national());
  // qb has 3 ports: the national session holds qb-room, qb-x1 and the link to m.
  const third = {
    id: 'qb-local',
    kind: 'adhoc' as const,
    title: 'Giao ban Quảng Bình',
    requester: 'UBND tỉnh Quảng Bình',
    root: 'qb',
    chair: 'qb-room',
    startsAt: at(3 * HOUR + 10 * MINUTE),
    endsAt: at(3 * HOUR + 40 * MINUTE),
    endpoints: ['qb-x1'],
  };
  await t.rejects(w.lc.create(third), { code: 'SESSION_ERR_ENDPOINT_BUSY', details: { sessions: ['national'] } });
  const err = await w.lc.create({ ...third, chair: 'qb-x2', endpoints: ['qb-x2'] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isCascadedError(err, 'PLAN_ERR_INFEASIBLE'), String(err));
  t.match((err as { details: unknown }).details, { heldBy: ['national'] });
  t.match((err as Error).message, /held by overlapping session national/);
  // The same session the next day fits.
  const nextDay = await w.lc.create({
    ...third,
    id: 'qb-tomorrow',
    chair: 'qb-x1',
    startsAt: at(27 * HOUR),
    endsAt: at(28 * HOUR),
    endpoints: ['qb-x2'],
  });
  t.equal(nextDay.level, 'provincial');
  await t.rejects(w.lc.create({ ...third, id: 'national' }), { code: 'SESSION_ERR_EXISTS' });
  await t.rejects(w.lc.create({ ...third, id: 'bad', endsAt: third.startsAt }), {
    code: 'SESSION_ERR_INVALID',
    details: { path: '/endsAt' },
  });
  await t.rejects(w.lc.create({ ...third, id: 'bad', endpoints: [{ province: 'ha-noi' }] }), {
    code: 'SESSION_ERR_INVALID',
    details: { path: '/endpoints/0/province' },
  });
  await t.rejects(w.lc.create({ ...third, id: 'bad', rehearsalAt: at(HOUR) }), {
    code: 'SESSION_ERR_INVALID',
    details: { path: '/rehearsalAt' },
  });
});

t.test('change and cancel', async (t) => {
  const w = await world(t);
  await w.lc.create(national());
  await w.lc.idle();
  const moved = await w.lc.change('national', {
    startsAt: at(5 * HOUR),
    endsAt: at(6 * HOUR),
    title: 'Hội nghị (dời)',
  });
  t.equal(moved.title, 'Hội nghị (dời)');
  t.equal(moved.steps.find((s) => s.step === 'dial')!.dueAt, at(2.5 * HOUR), 'the dial moved with the start');
  t.equal(moved.steps.find((s) => s.step === 'plan')!.state, 'done', 'a step already run stays');
  w.clock.advance(2.5 * HOUR);
  await w.lc.idle();
  t.equal(w.cascade.admitted.length, 1);
  await t.rejects(w.lc.change('national', { endpoints: ['qb-x1'] }), { code: 'SESSION_ERR_STATE' });
  const script = await w.lc.change('national', { script: [{ endpoint: 'nb-room' }] });
  t.same(script.script, [{ endpoint: 'nb-room' }]);
  const c = await w.lc.cancel('national', 'admin');
  t.equal(c.status, 'cancelled');
  t.same(w.cascade.ended, ['national'], 'the dialled cascade is torn down');
  t.ok(c.steps.filter((s) => s.step !== 'plan' && s.step !== 'dial').every((s) => s.state === 'skipped'));
  t.equal(w.clock.pending, 0);
  t.equal((await w.lc.cancel('national')).status, 'cancelled', 'idempotent');
  await t.rejects(w.lc.change('national', { title: 'x' }), { code: 'SESSION_ERR_STATE' });
  await t.rejects(w.lc.get('nope'), { code: 'SESSION_ERR_NOT_FOUND' });
  await w.lc.close();
  await t.rejects(w.lc.get('national'), { code: 'ERR_CLOSED' });
});

t.test('endpoint checks: the tests deadline, the summary, the CSV', async (t) => {
  const w = await world(t);
  const v = await w.lc.create(national());
  for (const e of v.endpoints.filter((x) => x !== 'qb-x1'))
    await w.lc.recordCheck('national', { endpoint: e, connected: true, audio: true }, 'op');
  await t.rejects(w.lc.recordCheck('national', { endpoint: 'nb-x1', connected: true }, 'op'), {
    code: 'SESSION_ERR_INVALID',
    details: { path: '/endpoint' },
  });
  await t.rejects(w.lc.recordCheck('national', { endpoint: 'chair' }, 'op'), { code: 'SESSION_ERR_INVALID' });
  const bad = await w.lc.recordCheck(
    'national',
    { endpoint: 'qb-x1', video: false, notes: 'Mất hình, "camera" hỏng' },
    'op-qb',
  );
  t.equal(bad.verdict, 'failing');
  await w.lc.idle();
  t.notOk(
    w.deadlines.some((d) => d.deadline === 'tests' && d.state === 'met'),
    'a failing endpoint: not met',
  );
  await w.lc.recordCheck('national', { endpoint: 'qb-x1', connected: true, audio: true, video: true }, 'op-qb');
  await w.lc.idle();
  t.match(
    w.deadlines.filter((d) => d.deadline === 'tests'),
    [{ state: 'met' }],
    'every endpoint tested and passing',
  );
  const s = await w.lc.checks('national');
  t.match(s.provinces, [
    { province: 'central', endpoints: 1, tested: 1, ok: 1 },
    { province: 'ninh-binh', name: 'Ninh Bình', endpoints: 1, ok: 1 },
    { province: 'quang-binh', name: 'Quảng Bình', endpoints: 2, tested: 2, ok: 2, failing: 0 },
  ]);
  t.same(s.retest, []);
  const csv = summaryCsv(s);
  t.match(csv, /^\uFEFFprovince,name,/);
  t.match(csv, /total,,4,4,4,0,0,0\r\n/);
  await w.lc.recordCheck('national', { endpoint: 'qb-x1', video: false, notes: 'Mất hình, "camera" hỏng' }, 'op-qb');
  t.match(summaryCsv(await w.lc.checks('national')), /,"Mất hình, ""camera"" hỏng",/, 'RFC 4180 quoting');
  await t.rejects(w.lc.autoCheck('national'), { code: 'SESSION_ERR_STATE' }, 'not dialled: nothing to see');
});
