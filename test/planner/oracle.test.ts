/**
 * Property test: on seeded random small instances (tight capacities, relays,
 * chairs, unavailable MCUs, random roots, cycles among allowed parents,
 * capacity held by other sessions) the planner's objective equals the exhaustive
 * oracle's optimum, every plan passes the independent checker, and the
 * planner reports PLAN_ERR_INFEASIBLE exactly when the oracle finds no plan.
 */
import t from 'tap';
import { exhaustive } from '../../testkit/exhaustive.js';
import { randomInstance, SMALL } from './fixtures.js';
import { compareWithOracle } from './harness.js';

const INSTANCES = 1200;
const seeds = Array.from({ length: INSTANCES }, (_, i) => i + 1);

t.test(`planner = exhaustive oracle on ${INSTANCES} seeded small instances`, async (t) => {
  await compareWithOracle(
    t,
    'oracle',
    seeds,
    (seed) => randomInstance(seed, SMALL),
    (inst) => exhaustive(inst.inventory, inst.session, inst.unavailable, inst.reserved),
  );
});
