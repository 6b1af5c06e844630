/**
 * Behaviour of the planner on hand-built networks: the objective's tiers,
 * relays, the chair, input-order independence, coded errors with actionable
 * reasons, and re-planning with minimal change.
 */
import t from 'tap';
import type { InfeasibilityReason, Plan } from '../../src/planner/index.js';
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
      { mcu: 'p1b', why: 'no-path-to-master' },
    ],
  });
  t.match(lost, [{}, { kind: 'no-path-to-master', mcu: 'p1b', endpoints: ['p1-a'] }]);

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
    { kind: 'no-path-to-master', mcu: 'c' },
  ]);
  t.same(q.unavailableMcus, ['a']);
  const back = replan(inv, q, { restoredMcus: ['a'], addEndpoints: ['y'] });
  t.equal(back.assignments.x, 'b', 'x stays where it is after the MCU comes back');
  t.equal(back.assignments.y, 'a');
  t.throws(() => replan(inv, { ...p, master: 'gone' }, {}), { code: 'PLAN_ERR_INVALID_PLAN' });
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
