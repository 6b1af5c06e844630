/** What the planner tests share: the public API, a coded-error guard, the oracle comparisons. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { isCascadedError } from '../../src/core/index.js';
import { checkPlan, type PlanErrorCode, plan } from '../../src/planner/index.js';
import {
  compareObjectives,
  cpuMs,
  fingerprint,
  nationalInstance,
  type OracleObjective,
  VERDICT_OPTIONS,
} from '../../testkit/index.js';
import type { Instance } from './fixtures.js';

export { checkPlan, plan, replan } from '../../src/planner/index.js';

export function isPlanError(err: unknown, code: PlanErrorCode): boolean {
  return isCascadedError(err, code);
}

/**
 * The planner against an oracle on seeded instances: the same feasibility, an
 * equal objective as recomputed by the independent checker (not as the
 * planner reports it), a plan the checker accepts, proven optimal. At most
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
      got = plan(inst.inventory, inst.session, { unavailableMcus: inst.unavailable, reserved: inst.reserved });
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
    const check = checkPlan(inst.inventory, got, { reserved: inst.reserved });
    const o = check.objective;
    const mine = { ...o, utilisation: [o.maxUtilisation.used, o.maxUtilisation.ports] as const };
    const bad = compareObjectives(mine, expected) !== 0 || check.violations.length > 0 || !got.optimal;
    if (bad && mismatches++ < 5) {
      t.fail(`seed ${seed}`, { got: mine, expected, violations: check.violations, optimal: got.optimal });
    }
  }
  t.equal(mismatches, 0, 'no mismatch');
  t.ok(feasible > total / 3, `enough feasible instances (${feasible} of ${total})`);
}

interface Verdicts {
  readonly instances: readonly { seed: number; fingerprint: string; objective: OracleObjective | null }[];
}

/** The ILP oracle's cached verdicts (`npm run gen:planner-verdicts`). */
const verdictFile = fileURLToPath(new URL('../../../test/planner/national-verdicts.json', import.meta.url));

/**
 * National-scale instances with tight cascade ports, seeds `from` to `to`: planned with proof of
 * optimality, valid under the independent checker, with the objective the checker recomputes
 * equal to the ILP's.
 */
export function checkNational(t: Test, from: number, to: number): void {
  const verdicts = JSON.parse(readFileSync(verdictFile, 'utf8')) as Verdicts;
  for (let seed = from; seed <= to; seed++) {
    t.test(`national seed ${seed}`, async (t) => {
      const verdict = verdicts.instances.find((v) => v.seed === seed);
      const inst = nationalInstance(seed, VERDICT_OPTIONS);
      t.ok(verdict, 'a cached verdict');
      t.equal(fingerprint(inst), verdict?.fingerprint, 'it is for this instance (else: npm run gen:planner-verdicts)');
      const master = inst.inventory.mcus.find((m) => m.role === 'master')!;
      const wanting = inst.inventory.mcus.filter((m) => m.parents.includes(master.id)).length;
      const free = master.capacity.cascadePorts - (inst.reserved[master.id]?.cascadePorts ?? 0);
      t.ok(free < wanting, `tight: the master has ${free} cascade ports for ${wanting} MCUs that may cascade into it`);
      // The budget on this process's CPU time, not the wall clock: six engineers share two cores
      // here and a CI runner may be as busy; the hardest instance takes about 3 s of CPU.
      const p = plan(inst.inventory, inst.session, {
        unavailableMcus: inst.unavailable,
        reserved: inst.reserved,
        budgetMs: 30_000,
        clock: { now: cpuMs },
      });
      t.ok(p.optimal, `proven optimal (${p.search.nodes} nodes)`);
      const check = checkPlan(inst.inventory, p, { reserved: inst.reserved });
      t.same(check.violations, [], 'valid');
      const o = check.objective;
      const mine = { ...o, utilisation: [o.maxUtilisation.used, o.maxUtilisation.ports] as const };
      t.equal(
        compareObjectives(mine, verdict!.objective!),
        0,
        'the objective the checker recomputes is the ILP optimum',
      );
      const { maxUtilisation: _, ...tiers } = p.objective;
      t.same(p.bound, tiers, 'the bound meets the objective');
    });
  }
}
