/**
 * Admission (src/cascade/admission.ts): a session fits in what the live
 * sessions leave, or is refused with reasons naming the sessions holding the
 * capacity; every MCU of its plan gets a room of its own; two admissions
 * racing through two store connections (two processes) never both take the
 * same ports; bad requests are refused with the path of what is wrong.
 */
import { join } from 'node:path';
import t from 'tap';
import { admitSession, endSession, replanSession, selectForChair } from '../../src/cascade/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { network } from './helpers.js';

t.setTimeout(60_000);

// master (12 ports) <- p (30 ports, 2 rooms); 8 central endpoints on the master, 10 communes on p.
const inv = network(
  '127.250.0.',
  [
    { id: 'master', ports: 12, rooms: 3 },
    { id: 'p', parents: ['master'], ports: 30, rooms: 2 },
  ],
  [
    ...Array.from({ length: 8 }, (_, i) => ({ id: `gov-${i}`, level: 'central', mcus: ['master'] })),
    ...Array.from({ length: 10 }, (_, i) => ({ id: `p-x${i}`, mcus: ['p'] })),
  ],
);
const gov = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `gov-${from + i}`);

t.test('sessions share capacity; a session that does not fit is refused, naming who holds it', async (t) => {
  const store = await openSqliteStore({ path: join(t.testdir(), 'a.db') });
  t.teardown(() => store.close());
  const a = await admitSession(store, inv, { id: 'a', title: 'A', endpoints: [...gov(6), 'p-x0'] });
  t.match(a, { sessionId: 'a', state: 'live', root: 'master', planVersion: 1 });
  t.same(Object.keys(a.rooms).sort(), ['master', 'p'], 'a room on every MCU of the plan');
  t.match(a.usage, { master: { ports: 7, cascadePorts: 1 }, p: { ports: 2 } });

  const refused = await admitSession(store, inv, { id: 'b', endpoints: gov(6, 2) }).catch((e: unknown) => e);
  t.match(refused, { code: 'PLAN_ERR_INFEASIBLE', details: { heldBy: ['a'] } });
  const reason = (refused as { details: { reasons: { kind: string; heldBy?: { session: string; mcu: string }[] }[] } })
    .details.reasons[0]!;
  t.equal(reason.kind, 'ports-short');
  t.match(reason.heldBy, [{ session: 'a', mcu: 'master', ports: 7 }]);
  t.match((refused as Error).message, /held by live session a/);
  t.equal(await store.getSession('b'), undefined, 'nothing recorded for a refused session');

  const busy = await admitSession(store, inv, { id: 'b', endpoints: ['gov-5', 'p-x0', 'p-x1'] }).catch(
    (e: unknown) => e,
  );
  t.match(
    busy,
    {
      code: 'CASCADE_ERR_ENDPOINT_BUSY',
      details: { sessions: ['a'], count: 2, endpoints: [{ session: 'a' }, { session: 'a' }] },
    },
    'an endpoint takes part in one live session at a time',
  );
  const b = await admitSession(store, inv, { id: 'b', endpoints: ['gov-6', 'p-x1'] });
  t.not(b.rooms.master, a.rooms.master, 'another room on the master');
  t.not(b.rooms.p, a.rooms.p, 'another room on p');
  const c = await admitSession(store, inv, { id: 'c', endpoints: ['p-x2'], chair: 'gov-7' }).catch((e: unknown) => e);
  t.match(c, { code: 'CASCADE_ERR_NO_ROOM', details: { mcu: 'p', heldBy: ['a', 'b'] } }, 'p has two rooms only');

  // An ended session gives its capacity and rooms back.
  await endSession(store, 'a');
  t.equal((await store.getCascade('a'))?.state, 'ending', 'ending still holds until the daemon tears it down');
  await store.setCascadeState('a', 'ended');
  const again = await admitSession(store, inv, { id: 'c', endpoints: [...gov(5), 'p-x2'] });
  t.equal(again.rooms.p, a.rooms.p, "a's room on p is free again");
  t.same(await endSession(store, 'a').then((h) => h.state), 'ended', 'ending an ended session changes nothing');
});

t.test('two admissions racing through two connections: one gets the capacity', async (t) => {
  const path = join(t.testdir(), 'race.db');
  const one = await openSqliteStore({ path });
  const two = await openSqliteStore({ path });
  t.teardown(() => Promise.all([one.close(), two.close()]));
  for (let round = 0; round < 5; round++) {
    const [x, y] = await Promise.allSettled([
      admitSession(one, inv, { id: `x${round}`, endpoints: gov(7) }),
      admitSession(two, inv, { id: `y${round}`, endpoints: gov(7, 1) }),
    ]);
    const won = [x, y].filter((r) => r.status === 'fulfilled');
    const lost = [x, y].filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    t.equal(won.length, 1, `round ${round}: exactly one admitted`);
    t.match(lost[0]?.reason, { code: 'PLAN_ERR_INFEASIBLE' }, `round ${round}: the other refused for capacity`);
    for (const h of await one.listCascades()) await one.setCascadeState(h.sessionId, 'ended');
  }
});

t.test('bad requests are refused with the path of what is wrong', async (t) => {
  const store = await openSqliteStore({ path: join(t.testdir(), 'bad.db') });
  t.teardown(() => store.close());
  const bad = async (request: Parameters<typeof admitSession>[2], path: string) =>
    t.rejects(admitSession(store, inv, request), { code: 'CASCADE_ERR_INVALID_SESSION', details: { path } }, path);
  await bad({ endpoints: [] }, '/endpoints');
  await bad({ endpoints: ['gov-1', 'nope'] }, '/endpoints/1');
  await bad({ endpoints: ['gov-1'], root: 'nope' }, '/root');
  await bad({ endpoints: ['gov-1'], chair: 'nope' }, '/chair');
  await bad({ endpoints: ['gov-1'], mains: ['p-x1'] }, '/mains/0');
  await bad({ endpoints: ['gov-1'], id: 'has space' }, '/id');
  await bad({ endpoints: ['gov-1'], view: 'grid' as 'chair' }, '/view');
  await admitSession(store, inv, { id: 'dup', endpoints: ['gov-1'] });
  await t.rejects(admitSession(store, inv, { id: 'dup', endpoints: ['gov-2'] }), { code: 'STORE_ERR_CONFLICT' });
  await t.rejects(endSession(store, 'nope'), { code: 'CASCADE_ERR_NOT_FOUND' });
  await t.rejects(selectForChair(store, inv, 'dup', 'p-x3'), {
    code: 'CASCADE_ERR_INVALID_SESSION',
    details: { path: '/selection' },
  });
  t.match(await selectForChair(store, inv, 'dup', 'gov-1'), { selection: 'gov-1' });
  await t.rejects(replanSession(store, inv, 'nope', { lostMcus: ['p'] }), { code: 'CASCADE_ERR_NOT_FOUND' });
  await endSession(store, 'dup');
  await t.rejects(selectForChair(store, inv, 'dup', null), { code: 'CASCADE_ERR_STATE' });
  await t.rejects(replanSession(store, inv, 'dup', { lostMcus: ['p'] }), { code: 'CASCADE_ERR_STATE' });
});

t.test('a re-plan without a lost MCU keeps the rooms and adds what it needs', async (t) => {
  const two = network(
    '127.250.1.',
    [
      { id: 'master', ports: 20, rooms: 2 },
      { id: 'p', parents: ['master'], rooms: 2 },
      { id: 'q', parents: ['master'], rooms: 2 },
    ],
    [
      { id: 'chair', level: 'central', mcus: ['master'] },
      { id: 'x1', mcus: ['p', 'q'] },
      { id: 'x2', mcus: ['p', 'q'] },
    ],
  );
  const store = await openSqliteStore({ path: join(t.testdir(), 'r.db') });
  t.teardown(() => store.close());
  const s = await admitSession(store, two, { id: 's', endpoints: 'all', chair: 'chair' });
  t.same(Object.keys(s.rooms).sort(), ['master', 'p'], 'x1 and x2 on their first candidate');
  const out = await replanSession(store, two, 's', { lostMcus: ['p'] });
  t.equal(out.record.planVersion, 2);
  t.same(out.plan.changes?.droppedMcus, ['p']);
  t.same(out.plan.changes?.addedMcus, ['q']);
  t.same(Object.keys(out.record.rooms).sort(), ['master', 'p', 'q'], "p's room is kept until the end");
  t.equal(out.record.rooms.master, s.rooms.master, 'the master keeps its room');
});
