/**
 * National-scale instances with tight cascade ports (testkit/national.ts: a master with fewer
 * cascade ports than the MCUs that may cascade into it, random roots, capacity held by other
 * sessions), seeds 11 to 15: each planned with proof of optimality, valid under the independent
 * checker, its objective as the checker recomputes it equal to the ILP oracle's. The oracle's
 * verdicts are cached in national-verdicts.json (`npm run gen:planner-verdicts`): HiGHS takes
 * seconds per instance. The 20 seeds are split over four files (a to d) so that each stays well
 * within a test file's time limit on a loaded machine.
 */
import t from 'tap';
import { checkNational } from './harness.js';

checkNational(t, 11, 15);
