/**
 * The cascade records of the store (docs/cascade.md): admission and
 * re-planning under optimistic concurrency (a generation), rooms held once,
 * released at the end, observed link states, and the change counter the
 * daemon polls to notice what CLI processes wrote.
 */
import { join } from 'node:path';
import t from 'tap';
import { FakeClock } from '../../src/core/index.js';
import { openSqliteStore } from '../../src/store/index.js';

const usage = { master: { ports: 3, cascadePorts: 1 }, p1: { ports: 2, cascadePorts: 0 } };

t.test('a cascade is admitted once against a generation; its rooms are held once', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 8));
  const store = await openSqliteStore({ path: join(t.testdir(), 'c.db'), clock });
  t.teardown(() => store.close());
  t.equal(await store.cascadeGeneration(), 0);
  const c = await store.createCascade(
    {
      session: { id: 's1', kind: 'adhoc', title: 'Họp toàn quốc' },
      root: 'master',
      request: { endpoints: ['a', 'b'], chair: 'a' },
      plan: { links: { p1: 'master' } },
      usage,
      rooms: { master: 'sip:7001@10.0.0.1', p1: 'sip:7001@10.0.0.2' },
    },
    0,
  );
  t.match(c, {
    sessionId: 's1',
    title: 'Họp toàn quốc',
    state: 'live',
    root: 'master',
    planVersion: 1,
    plan: { links: { p1: 'master' } },
    usage,
    rooms: { master: 'sip:7001@10.0.0.1', p1: 'sip:7001@10.0.0.2' },
    selection: null,
    generation: 1,
  });
  t.match(await store.getSession('s1'), { state: 'live', kind: 'adhoc' });
  const next = {
    session: { id: 's2', kind: 'adhoc' as const, title: 'Tỉnh' },
    root: 'p1',
    request: {},
    plan: {},
    usage: {},
    rooms: { p1: 'sip:7002@10.0.0.2' },
  };
  await t.rejects(store.createCascade(next, 0), { code: 'STORE_ERR_CONFLICT' }, 'planned against an old generation');
  await t.rejects(
    store.createCascade({ ...next, rooms: { p1: 'sip:7001@10.0.0.2' } }, 1),
    { code: 'STORE_ERR_CONFLICT', details: { mcu: 'p1', uri: 'sip:7001@10.0.0.2' } },
    'a room held by a live session',
  );
  t.equal(await store.getSession('s2'), undefined, 'a refused admission leaves nothing behind');
  await store.createCascade(next, 1);
  await t.rejects(store.createCascade({ ...next, rooms: {} }, 2), { code: 'STORE_ERR_CONFLICT' }, 'same id');
  t.same(
    (await store.listCascades()).map((h) => [h.sessionId, h.state]),
    [
      ['s1', 'live'],
      ['s2', 'live'],
    ],
  );
  t.notOk('plan' in (await store.listCascades())[0]!, 'heads come without the plan');
});

t.test('re-plans, states, selection and link states', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 8));
  const store = await openSqliteStore({ path: join(t.testdir(), 'r.db'), clock });
  t.teardown(() => store.close());
  await store.createCascade(
    {
      session: { id: 's1', kind: 'planned', title: 'x' },
      root: 'master',
      request: null,
      plan: { v: 1 },
      usage,
      rooms: { master: 'sip:r1@h1', p1: 'sip:r1@h2' },
    },
    0,
  );
  const g = await store.cascadeGeneration();
  await t.rejects(store.replaceCascadePlan('s1', { plan: { v: 2 }, usage: {}, addRooms: {} }, g - 1), {
    code: 'STORE_ERR_CONFLICT',
  });
  await t.rejects(store.replaceCascadePlan('nope', { plan: {}, usage: {}, addRooms: {} }, g), {
    code: 'STORE_ERR_NOT_FOUND',
  });
  const r = await store.replaceCascadePlan('s1', { plan: { v: 2 }, usage: {}, addRooms: { p2: 'sip:r1@h3' } }, g);
  t.match(r, { planVersion: 2, plan: { v: 2 }, rooms: { master: 'sip:r1@h1', p1: 'sip:r1@h2', p2: 'sip:r1@h3' } });
  t.ok((await store.cascadeGeneration()) > g, 'a re-plan is a change');

  await store.setCascadeSelection('s1', 'ep-7');
  t.match(await store.getCascade('s1'), { selection: 'ep-7' });
  await store.setCascadeSelection('s1', null);
  t.match(await store.getCascade('s1'), { selection: null });
  await t.rejects(store.setCascadeSelection('nope', null), { code: 'STORE_ERR_NOT_FOUND' });
  await store.setCascadeSelection('s1', 'ep-8');
  t.match(
    (await store.listCascades()).find((c) => c.sessionId === 's1'),
    { selection: 'ep-8' },
    'the heads read the selection from its own table (store v5) too',
  );

  await store.saveLinkStates('s1', [
    { child: 'p1', parent: 'master', state: 'dialing', detail: null, since: '2026-11-22T08:00:00.000Z', attempts: 0 },
    { child: 'p2', parent: 'master', state: 'failed', detail: '486', since: '2026-11-22T08:00:01.000Z', attempts: 2 },
  ]);
  await store.saveLinkStates(
    's1',
    [{ child: 'p1', parent: 'master', state: 'up', detail: null, since: '2026-11-22T08:00:02.000Z', attempts: 0 }],
    ['p1'],
  );
  t.same(await store.listLinkStates('s1'), [
    { child: 'p1', parent: 'master', state: 'up', detail: null, since: '2026-11-22T08:00:02.000Z', attempts: 0 },
  ]);

  t.match(await store.setCascadeState('s1', 'ending'), { state: 'ending' });
  t.equal((await store.listCascades()).length, 1, 'ending is still live for the reconciler');
  await store.setCascadeState('s1', 'ended');
  t.same(await store.listCascades(), []);
  t.equal((await store.listCascades({ states: ['ended'] }))[0]?.sessionId, 's1');
  // Its rooms are free again.
  await store.createCascade(
    {
      session: { id: 's2', kind: 'adhoc', title: 'y' },
      root: 'master',
      request: null,
      plan: {},
      usage: {},
      rooms: { master: 'sip:r1@h1' },
    },
    await store.cascadeGeneration(),
  );
  await t.rejects(store.setCascadeState('nope', 'ended'), { code: 'STORE_ERR_NOT_FOUND' });

  await store.appendEvent({ type: 'cascade.link.up', subject: 's1', data: { child: 'p1' } });
  await store.appendEvent({ type: 'cascade.link.up', subject: 's2' });
  t.same(
    (await store.listEvents({ subject: 's1' })).map((e) => e.type),
    ['cascade.link.up'],
    'events of one session',
  );
});

t.test("another process's commits show in the change counter; our own do not", async (t) => {
  const path = join(t.testdir(), 'v.db');
  const daemon = await openSqliteStore({ path });
  const cli = await openSqliteStore({ path });
  t.teardown(() => Promise.all([daemon.close(), cli.close()]));
  const v0 = await daemon.externalChanges();
  await daemon.appendEvent({ type: 'x' });
  t.equal(await daemon.externalChanges(), v0, 'own writes do not count');
  await cli.createCascade(
    { session: { id: 's', kind: 'adhoc', title: 't' }, root: 'm', request: null, plan: {}, usage: {}, rooms: {} },
    0,
  );
  t.not(await daemon.externalChanges(), v0, 'a commit by another connection does');
  t.equal((await daemon.listCascades())[0]?.sessionId, 's', 'and is visible at once (WAL)');
});
