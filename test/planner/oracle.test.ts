/**
 * Property test: on seeded random small instances (tight capacities, relays,
 * chairs, unavailable MCUs) the planner's objective equals the exhaustive
 * oracle's optimum, every plan passes the independent checker, and the
 * planner reports PLAN_ERR_INFEASIBLE exactly when the oracle finds no plan.
 */
import t from 'tap';
import { compareObjectives, exhaustive } from './exhaustive.js';
import { randomInstance, SMALL } from './fixtures.js';
import { checkPlan, isPlanError, plan } from './harness.js';

const INSTANCES = 1200;

t.test(`planner = exhaustive oracle on ${INSTANCES} seeded small instances`, async (t) => {
  let feasible = 0;
  let mismatches = 0;
  for (let seed = 1; seed <= INSTANCES; seed++) {
    const inst = randomInstance(seed, SMALL);
    const expected = exhaustive(inst.inventory, inst.session, inst.unavailable);
    let got: ReturnType<typeof plan> | null = null;
    try {
      got = plan(inst.inventory, inst.session, { unavailableMcus: inst.unavailable });
    } catch (err) {
      if (!isPlanError(err, 'PLAN_ERR_INFEASIBLE')) throw err;
    }
    if (expected === null || got === null) {
      if ((expected === null) !== (got === null) && mismatches++ < 5) {
        t.fail(
          `seed ${seed}: oracle ${expected === null ? 'infeasible' : 'feasible'}, planner ${got === null ? 'infeasible' : 'feasible'}`,
        );
      }
      continue;
    }
    feasible++;
    const o = got.objective;
    const mine = { ...o, utilisation: [o.maxUtilisation.used, o.maxUtilisation.ports] as const };
    const check = checkPlan(inst.inventory, got);
    if ((compareObjectives(mine, expected) !== 0 || check.violations.length > 0) && mismatches++ < 5) {
      t.fail(`seed ${seed}`, { got: mine, expected, violations: check.violations });
    }
  }
  t.equal(mismatches, 0, 'no mismatch');
  t.ok(feasible > INSTANCES / 3, `enough feasible instances (${feasible})`);
});
