/**
 * Behaviour of the planner on hand-built networks: the objective's tiers,
 * relays, the chair, input-order independence, coded errors with actionable
 * reasons, and re-planning with minimal change.
 */
import t from 'tap';
import type { HeldCapacity, InfeasibilityReason, Plan } from '../../src/planner/index.js';
import { nationalInstance } from '../../testkit/index.js';
import { endpoint, inventory, mcu, prng, randomInstance, relay, SMALL } from './fixtures.js';
import { checkPlan, isPlanError, plan, replan } from './harness.js';

/** master <- p1, p2 (provinces); p1 <- p1b (second MCU, depth 2 only). */
function province() {
  return inventory(
    [mcu('master', 20, 3), mcu('p1', 6, 1, ['master']), mcu('p1b', 6, 0, ['p1']), mcu('p2', 6, 1, ['master'])],
    [
      endpoint('chair', ['master']),
      endpoint('gov', ['master']),
      endpoint('p1-ubnd', ['master', 'p1']),
      ...['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((x) => endpoint(`p1-${x}`, ['p1', 'p1b'])),
      endpoint('p2-a', ['p2']),
      relay('p1-r', 'p1-ubnd'),
    ],
  );
}

function reasonsOf(fn: () => unknown): InfeasibilityReason[] {
  try {
    fn();
  } catch (err) {
    if (isPlanError(err, 'PLAN_ERR_INFEASIBLE'))
      return (err as { details: { reasons: InfeasibilityReason[] } }).details.reasons;
    throw err;
  }
  throw new Error('expected PLAN_ERR_INFEASIBLE');
}

t.test('fills the province MCU before spilling to depth 2, and keeps the tree valid', async (t) => {
  const inv = province();
  const p = plan(inv, { endpoints: inv.endpoints.map((e) => e.id), chair: 'chair' });
  t.same(checkPlan(inv, p).violations, []);
  // p1 has 6 ports: its link up and the link down to p1b take 2, so 4 of 7 stay, 3 go deeper.
  t.equal(p.objective.maxDepth, 2);
  t.equal(p.objective.atMaxDepth, 3);
  t.equal(p.links.p1b, 'p1');
  t.equal(p.assignments.chair, 'master');
  t.equal(p.assignments['p1-ubnd'], 'master', 'the province room prefers the master (depth 0)');
  t.equal(p.depths['p1-r'], p.depths['p1-ubnd'], 'a relay has the depth of its source');
  t.same(p.relays, { 'p1-r': 'p1-ubnd' });
  t.same(p.objective, checkPlan(inv, p).objective, 'reported objective equals the recomputed one');
  t.ok(JSON.parse(JSON.stringify(p)), 'plain JSON');
});

t.test('a relay brings its source endpoint into the session and weighs on its depth', async (t) => {
  const inv = province();
  const p = plan(inv, { endpoints: ['p1-r', 'p2-a'] });
  t.same(p.addedForRelay, ['p1-ubnd']);
  t.same(p.endpoints, ['p1-r', 'p1-ubnd', 'p2-a']);
  t.equal(p.depths['p1-r'], 0);
  t.notOk('p1-r' in p.assignments, 'a relay takes no MCU port');
});

t.test('preference beats saving a link, links beat balance', async (t) => {
  const inv = inventory(
    [mcu('master', 10, 2), mcu('a', 5, 0, ['master']), mcu('b', 5, 0, ['master'])],
    [endpoint('x', ['a', 'b']), endpoint('y', ['b', 'a'])],
  );
  const p = plan(inv, { endpoints: ['x', 'y'] });
  t.same(p.assignments, { x: 'a', y: 'b' }, 'each on its first choice even though one MCU would save a link');
  t.equal(p.objective.preferenceSum, 0);
  t.equal(p.objective.links, 2);
  const q = plan(inv, { endpoints: ['x'] });
  t.same(q.links, { a: 'master' });
  t.same(q.unusedMcus, ['b']);
});

t.test('the same input in any order gives the same plan', async (t) => {
  for (let seed = 1; seed <= 60; seed++) {
    const inst = randomInstance(seed, SMALL);
    const rnd = prng(seed * 7919);
    const shuffle = <T>(xs: readonly T[]): T[] => [...xs].sort(() => rnd() - 0.5);
    const run = (inv: typeof inst.inventory, endpoints: readonly string[]) => {
      try {
        return JSON.stringify(plan(inv, { ...inst.session, endpoints }, { unavailableMcus: inst.unavailable }));
      } catch (err) {
        return JSON.stringify(err);
      }
    };
    const shuffled = {
      ...inst.inventory,
      mcus: shuffle(inst.inventory.mcus),
      endpoints: shuffle(inst.inventory.endpoints),
    };
    t.equal(
      run(shuffled, shuffle([...inst.session.endpoints, ...inst.session.endpoints])),
      run(inst.inventory, inst.session.endpoints),
      `seed ${seed}`,
    );
  }
});

t.test('invalid sessions are coded errors', async (t) => {
  const inv = province();
  t.throws(() => plan(inv, { endpoints: ['nope'] }), {
    code: 'PLAN_ERR_INVALID_SESSION',
    details: { unknownEndpoints: ['nope'] },
  });
  t.throws(() => plan(inv, { endpoints: [] }), { code: 'PLAN_ERR_INVALID_SESSION' });
  t.throws(() => plan(inv, { endpoints: ['gov'], chair: 'p1-r' }), { code: 'PLAN_ERR_INVALID_SESSION' });
  t.throws(() => plan(inv, { endpoints: ['gov'] }, { unavailableMcus: ['zz'] }), { code: 'PLAN_ERR_INVALID_SESSION' });
});

t.test('infeasible sessions say which endpoints and why', async (t) => {
  const inv = province();
  const lost = reasonsOf(() => plan(inv, { endpoints: ['p1-a', 'gov'] }, { unavailableMcus: ['p1'] }));
  t.match(lost[0], {
    kind: 'no-reachable-candidate',
    endpoints: ['p1-a'],
    candidates: [
      { mcu: 'p1', why: 'unavailable' },
      { mcu: 'p1b', why: 'no-path-to-root' },
    ],
  });
  t.match(lost, [{}, { kind: 'no-path-to-root', mcu: 'p1b', endpoints: ['p1-a'] }]);

  const small = inventory(
    [mcu('master', 4, 1), mcu('s', 3, 0, ['master'])],
    ['a', 'b', 'c', 'd'].map((x) => endpoint(x, ['s'])),
  );
  const ports = reasonsOf(() => plan(small, { endpoints: ['a', 'b', 'c', 'd'] }));
  t.match(ports, [{ kind: 'ports-short', mcus: ['s'], short: 2, endpoints: ['a', 'b', 'c', 'd'] }]);
  t.match(ports[0]!.message, /MCU s is short of 2 ports/);

  const fan = inventory(
    [mcu('master', 10, 1), mcu('s1', 3, 0, ['master']), mcu('s2', 3, 0, ['master'])],
    [endpoint('a', ['s1']), endpoint('b', ['s2'])],
  );
  t.match(
    reasonsOf(() => plan(fan, { endpoints: ['a', 'b'] })),
    [{ kind: 'cascade-ports-short', mcus: ['master'], short: 1, children: ['s1', 's2'] }],
  );
});

function livePlan(): { inv: ReturnType<typeof province>; p: Plan } {
  const inv = province();
  return { inv, p: plan(inv, { endpoints: ['gov', 'p1-a', 'p1-b', 'p2-a', 'p1-ubnd'], chair: 'chair' }) };
}

t.test('re-planning with no change changes nothing', async (t) => {
  const { inv, p } = livePlan();
  const q = replan(inv, p, {});
  t.same(q.assignments, p.assignments);
  t.same(q.links, p.links);
  t.same(q.changes, {
    relinkedMcus: [],
    droppedMcus: [],
    addedMcus: [],
    movedEndpoints: [],
    droppedEndpoints: [],
    reasons: [],
  });
});

t.test('adding endpoints moves nobody already placed', async (t) => {
  const { inv, p } = livePlan();
  const q = replan(inv, p, { addEndpoints: ['p1-c', 'p1-d', 'p1-e', 'p1-f'] });
  t.same(checkPlan(inv, q).violations, []);
  t.same(q.changes!.movedEndpoints, []);
  t.same(q.changes!.addedMcus, ['p1b']);
  for (const e of ['p1-a', 'p1-b']) t.equal(q.assignments[e], p.assignments[e]);
});

t.test('removing endpoints drops MCUs nobody needs', async (t) => {
  const { inv, p } = livePlan();
  const q = replan(inv, p, { removeEndpoints: ['p2-a'] });
  t.same(q.changes!.droppedMcus, ['p2']);
  t.notOk('p2' in q.links);
  t.throws(() => replan(inv, p, { removeEndpoints: ['chair'] }), { code: 'PLAN_ERR_INVALID_SESSION' });
});

t.test('losing an MCU: its endpoints move if they can, leave with reasons if not', async (t) => {
  const inv = inventory(
    [mcu('master', 20, 3), mcu('a', 5, 1, ['master']), mcu('b', 5, 1, ['master']), mcu('c', 5, 0, ['a'])],
    [endpoint('x', ['a', 'b']), endpoint('y', ['a']), endpoint('z', ['b']), endpoint('w', ['c'])],
  );
  const p = plan(inv, { endpoints: ['x', 'y', 'z', 'w'] });
  t.same(p.assignments, { w: 'c', x: 'a', y: 'a', z: 'b' });
  const q = replan(inv, p, { lostMcus: ['a'] });
  t.same(q.assignments, { x: 'b', z: 'b' });
  t.same(q.changes!.movedEndpoints, ['x']);
  t.same(q.changes!.droppedEndpoints, ['w', 'y']);
  t.same(q.changes!.droppedMcus, ['a', 'c']);
  t.match(q.changes!.reasons, [
    { kind: 'no-reachable-candidate' },
    { kind: 'no-reachable-candidate' },
    { kind: 'no-path-to-root', mcu: 'c' },
  ]);
  t.same(q.unavailableMcus, ['a']);
  const back = replan(inv, q, { restoredMcus: ['a'], addEndpoints: ['y'] });
  t.equal(back.assignments.x, 'b', 'x stays where it is after the MCU comes back');
  t.equal(back.assignments.y, 'a');
  t.throws(() => replan(inv, { ...p, root: 'gone' }, {}), { code: 'PLAN_ERR_INVALID_PLAN' });
  // Plans are frozen: `replan` keeps numbers beside the plan object it returned, which a mutation would make stale.
  t.ok(Object.isFrozen(q) && Object.isFrozen(q.assignments) && Object.isFrozen(q.mcus[0]!.endpoints));
  t.ok(Object.isFrozen(q.changes!.reasons[0]) && Object.isFrozen(q.objective.maxUtilisation));
  t.throws(() => {
    (q.assignments as Record<string, string>).x = 'a';
  }, TypeError);
  t.same(replan(inv, q, {}).assignments, { x: 'b', z: 'b' });
});

t.test('re-planning keeps the depth optimal before sparing links', async (t) => {
  // x sits deep on d (under a); once a gets a free cascade port... here: b joins and depth must stay minimal.
  const inv = inventory(
    [mcu('master', 20, 1), mcu('a', 6, 2, ['master']), mcu('d', 6, 0, ['a', 'master'])],
    [endpoint('x', ['d']), endpoint('y', ['a'])],
  );
  const p = plan(inv, { endpoints: ['x'] });
  t.same(p.links, { d: 'master' });
  const q = replan(inv, p, { addEndpoints: ['y'] });
  // The master has one cascade port: a must take it, so d relinks under a (depth 2 is now the optimum).
  t.same(q.links, { a: 'master', d: 'a' });
  t.same(q.changes!.relinkedMcus, ['d']);
  t.equal(q.objective.maxDepth, 2);
});

t.test('any root: allowed parents in a cycle cascade away from the session root', async (t) => {
  const inv = inventory(
    [mcu('master', 10, 2, ['a']), mcu('a', 10, 2, ['master', 'b']), mcu('b', 10, 2, ['a'])],
    [endpoint('em', ['master']), endpoint('ea', ['a']), endpoint('eb', ['b'])],
  );
  const all = ['em', 'ea', 'eb'];
  const national = plan(inv, { endpoints: all });
  t.equal(national.root, 'master');
  t.same(national.links, { a: 'master', b: 'a' });
  t.same(national.depths, { ea: 1, eb: 2, em: 0 });
  const provincial = plan(inv, { endpoints: all, root: 'b', chair: 'ea' });
  t.equal(provincial.root, 'b');
  t.same(provincial.links, { a: 'b', master: 'a' }, 'the same links, the other way round');
  t.same(provincial.depths, { ea: 0, eb: 0, em: 2 });
  t.equal(provincial.assignments.ea, 'b', 'the chair sits on the root whatever its candidates');
  t.equal(provincial.mcus[0]!.id, 'b');
  t.same(checkPlan(inv, provincial).violations, []);
  t.same(checkPlan(inv, { ...provincial, root: 'master' }).violations.length > 0, true, 'checked against its own root');
  t.throws(() => plan(inv, { endpoints: all, root: 'nowhere' }), {
    code: 'PLAN_ERR_INVALID_SESSION',
    details: { unknownMcus: ['nowhere'] },
  });
  t.match(
    reasonsOf(() => plan(inv, { endpoints: all, root: 'b' }, { unavailableMcus: ['b'] })),
    [{ kind: 'root-unavailable', mcu: 'b' }],
  );
});

t.test('capacity held by other sessions: the plan fits in what is left', async (t) => {
  const inv = inventory(
    [mcu('master', 10, 2), mcu('a', 6, 0, ['master']), mcu('b', 6, 0, ['master'])],
    ['x1', 'x2', 'x3', 'x4'].map((x) => endpoint(x, ['a', 'b'])),
  );
  const session = { endpoints: ['x1', 'x2', 'x3', 'x4'] };
  const free = plan(inv, session);
  t.same(Object.values(free.assignments), ['a', 'a', 'a', 'a'], 'all on their first choice when a is free');
  const reserved = { a: { ports: 3 } };
  const shared = plan(inv, session, { reserved });
  t.same(shared.reserved, { a: { ports: 3, cascadePorts: 0 } });
  const a = shared.mcus.find((m) => m.id === 'a')!;
  t.same(a.ports, { used: 3, held: 3, capacity: 6 }, 'two endpoints and its link, beside the three held');
  t.same(checkPlan(inv, shared).violations, [], 'checked against the capacity it recorded');
  t.match(checkPlan(inv, free, { reserved }).violations, [/MCU a uses 5 ports with 3 held by other sessions, of 6/]);
  t.equal(shared.objective.maxUtilisation.mcu, 'a');
  t.equal(shared.objective.maxUtilisation.used, 6, 'the load counts the ports other sessions hold');
  t.match(
    reasonsOf(() => plan(inv, session, { reserved: { a: { ports: 5 }, b: { ports: 5 } } })),
    [{ kind: 'ports-short', mcus: ['a', 'b'] }],
  );
  t.match(
    reasonsOf(() => plan(inv, session, { reserved: { master: { cascadePorts: 2 } } })),
    [{ kind: 'no-tree', mcus: ['master'] }],
    'the root has no cascade port left',
  );
  const malformed: Record<string, HeldCapacity>[] = [
    { zz: { ports: 1 } },
    { a: { ports: -1 } },
    { a: { cascadePorts: 0.5 } },
  ];
  for (const bad of malformed) {
    t.throws(() => plan(inv, session, { reserved: bad }), { code: 'PLAN_ERR_INVALID_SESSION' }, JSON.stringify(bad));
  }
});

t.test('the time budget: past it, the best plan found, marked as not proven optimal, with a bound', async (t) => {
  // A national network with tight cascade ports takes hundreds of search nodes; a clock that moves
  // one millisecond each time it is read stops it after a handful.
  const inst = nationalInstance(3, { roots: 'master', reserved: true });
  let now = 0;
  const clock = { now: () => now++ };
  const options = { reserved: inst.reserved, budgetMs: 10, clock };
  const p = plan(inst.inventory, inst.session, options);
  t.equal(p.optimal, false);
  t.equal(p.search.budgetExhausted, true);
  t.same(checkPlan(inst.inventory, p).violations, [], 'a valid plan all the same');
  const tiers = ['maxDepth', 'atMaxDepth', 'depthSum', 'preferenceSum', 'links'] as const;
  const cmp = tiers.map((k) => p.bound[k] - p.objective[k]).find((d) => d !== 0) ?? 0;
  t.ok(cmp <= 0, 'the bound is no better than the plan found', { bound: p.bound, objective: p.objective });
  t.ok(p.bound.maxDepth >= 1, 'depth bounds that cannot fit are proven');
  // No budget at all still answers at once, from the first relaxation.
  const started = performance.now();
  const quick = plan(inst.inventory, inst.session, { reserved: inst.reserved, budgetMs: 0 });
  t.ok(performance.now() - started < 30_000, 'answers without searching');
  t.equal(quick.optimal, false);
  t.same(checkPlan(inst.inventory, quick).violations, []);
  t.throws(() => plan(inst.inventory, inst.session, { budgetMs: -1 }), { code: 'PLAN_ERR_INVALID_SESSION' });
});

t.test('a re-plan under a shortage places as many endpoints as fit and says why the rest left', async (t) => {
  const inv = inventory(
    [mcu('master', 20, 2), mcu('a', 6, 0, ['master']), mcu('b', 4, 0, ['master'])],
    [
      ...['x1', 'x2', 'x3', 'x4', 'x5'].map((x) => endpoint(x, ['a', 'b'])),
      endpoint('y1', ['b']),
      endpoint('y2', ['b']),
    ],
  );
  const p = plan(inv, { endpoints: inv.endpoints.map((e) => e.id) });
  t.same(p.mcus.find((m) => m.id === 'a')!.endpoints, ['x1', 'x2', 'x3', 'x4', 'x5']);
  const q = replan(inv, p, { lostMcus: ['a'] });
  t.ok(q.optimal);
  t.same(q.changes!.droppedEndpoints.length, 4, 'b keeps a port for its link: three of seven fit');
  t.same(Object.keys(q.assignments).length, 3);
  t.equal(q.bound.unplaced, 4, 'the count left out is proven minimal');
  t.match(q.changes!.reasons, [{ kind: 'ports-short', mcus: ['b'] }]);
  t.same(checkPlan(inv, q).violations, []);
  t.ok(
    q.changes!.droppedEndpoints.every((e) => !(e in q.depths)),
    'dropped endpoints are out of the session',
  );
  const back = replan(inv, q, { restoredMcus: ['a'], addEndpoints: q.changes!.droppedEndpoints });
  t.same(back.changes!.droppedEndpoints, [], 'they come back with their MCU');
});

t.test('search statistics are part of each result, not state of the module', async (t) => {
  const inv = province();
  const small = plan(inv, { endpoints: ['gov'] });
  const big = plan(inv, { endpoints: inv.endpoints.map((e) => e.id), chair: 'chair' });
  t.match(small.search, { nodes: Number, flows: Number, shortcut: 'none', budgetExhausted: false });
  t.ok(Object.isFrozen(small.search));
  t.ok(big.search.flows >= small.search.flows, 'each result keeps its own counts');
  t.equal(replan(inv, big, {}).search.shortcut, 'kept');
});
