/**
 * National-scale instances with tight cascade ports (testkit/national.ts: a root with fewer
 * cascade ports than the MCUs that may cascade into it, random roots, capacity held by other
 * sessions), seeds 11 to 20: each planned with proof of optimality, valid under the independent
 * checker, its objective as the checker recomputes it equal to the ILP oracle's. The oracle's
 * verdicts are cached in national-verdicts.json (`npm run gen:planner-verdicts`): HiGHS takes
 * seconds per instance. The seeds are split over two files so tap runs them in parallel.
 */
import t from 'tap';
import { checkNational } from './harness.js';

checkNational(t, 11, 20);
