/**
 * Property test against the ILP oracle (HiGHS, presolve off, exact integer
 * re-check) on seeded random medium instances: too large for the exhaustive
 * oracle, with tight capacities, relays and unavailable MCUs.
 */
import t from 'tap';
import { compareObjectives } from './exhaustive.js';
import { MEDIUM, randomInstance } from './fixtures.js';
import { checkPlan, isPlanError, plan } from './harness.js';
import { ilpOptimum } from './ilp.js';

const INSTANCES = 120;

t.test(`planner = HiGHS optimum on ${INSTANCES} seeded medium instances`, async (t) => {
  let feasible = 0;
  let mismatches = 0;
  for (let seed = 10_001; seed < 10_001 + INSTANCES; seed++) {
    const inst = randomInstance(seed, MEDIUM);
    const { objective: expected } = await ilpOptimum(inst.inventory, inst.session, inst.unavailable);
    let got: ReturnType<typeof plan> | null = null;
    try {
      got = plan(inst.inventory, inst.session, { unavailableMcus: inst.unavailable });
    } catch (err) {
      if (!isPlanError(err, 'PLAN_ERR_INFEASIBLE')) throw err;
    }
    if (expected === null || got === null) {
      if ((expected === null) !== (got === null) && mismatches++ < 5) {
        t.fail(
          `seed ${seed}: ILP ${expected === null ? 'infeasible' : 'feasible'}, planner ${got === null ? 'infeasible' : 'feasible'}`,
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
