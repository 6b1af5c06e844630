/** What the planner tests share: the public API, a coded-error guard, the oracle comparison. */
import type { Test } from 'tap';
import { isCascadedError } from '../../src/core/errors.js';
import { checkPlan, type PlanErrorCode, plan } from '../../src/planner/index.js';
import { compareObjectives, type OracleObjective } from './exhaustive.js';
import type { Instance } from './fixtures.js';

export { checkPlan, plan, replan } from '../../src/planner/index.js';

export function isPlanError(err: unknown, code: PlanErrorCode): boolean {
  return isCascadedError(err, code);
}

/**
 * The planner against an oracle on seeded instances: the same feasibility,
 * an equal objective, and a plan the independent checker accepts. At most
 * five mismatches are reported in detail.
 */
export async function compareWithOracle(
  t: Test,
  oracleName: string,
  seeds: Iterable<number>,
  instance: (seed: number) => Instance,
  oracle: (inst: Instance) => Promise<OracleObjective | null> | OracleObjective | null,
): Promise<void> {
  let total = 0;
  let feasible = 0;
  let mismatches = 0;
  for (const seed of seeds) {
    total++;
    const inst = instance(seed);
    const expected = await oracle(inst);
    let got: ReturnType<typeof plan> | null = null;
    try {
      got = plan(inst.inventory, inst.session, { unavailableMcus: inst.unavailable });
    } catch (err) {
      if (!isPlanError(err, 'PLAN_ERR_INFEASIBLE')) throw err;
    }
    if (expected === null || got === null) {
      if ((expected === null) !== (got === null) && mismatches++ < 5) {
        const says = (x: unknown) => (x === null ? 'infeasible' : 'feasible');
        t.fail(`seed ${seed}: ${oracleName} ${says(expected)}, planner ${says(got)}`);
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
  t.ok(feasible > total / 3, `enough feasible instances (${feasible} of ${total})`);
}
