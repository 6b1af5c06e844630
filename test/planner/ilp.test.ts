/**
 * Property test against the ILP oracle (HiGHS, presolve off, exact integer
 * re-check) on seeded random medium instances (random roots, cycles, held
 * capacity): too large for the exhaustive
 * oracle, with tight capacities, relays and unavailable MCUs.
 */
import t from 'tap';
import { ilpOptimum } from '../../testkit/ilp.js';
import { MEDIUM, randomInstance } from './fixtures.js';
import { compareWithOracle } from './harness.js';

const INSTANCES = 120;

t.test(`planner = HiGHS optimum on ${INSTANCES} seeded medium instances`, async (t) => {
  await compareWithOracle(
    t,
    'ILP',
    Array.from({ length: INSTANCES }, (_, i) => 10_001 + i),
    (seed) => randomInstance(seed, MEDIUM),
    async (inst) => (await ilpOptimum(inst.inventory, inst.session, inst.unavailable, inst.reserved)).objective,
  );
});
