/** What the planner tests share: the public API and a coded-error guard. */
import { isCascadedError } from '../../src/core/errors.js';
import type { PlanErrorCode } from '../../src/planner/index.js';

export { checkPlan, plan, replan } from '../../src/planner/index.js';

export function isPlanError(err: unknown, code: PlanErrorCode): boolean {
  return isCascadedError(err, code);
}
