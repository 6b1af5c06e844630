/**
 * The cascade planner: a pure function from an inventory and a session to the
 * optimal cascade plan (docs/planner.md). No I/O.
 */
export type { PlanErrorCode } from './errors.js';
export { PLANNER_ERRORS, PlanError } from './errors.js';
export type { PlanCheck } from './evaluate.js';
export { checkPlan } from './evaluate.js';
export { plan, replan } from './plan.js';
export type {
  InfeasibilityReason,
  McuUsage,
  Objective,
  Plan,
  PlanChanges,
  PlanOptions,
  Session,
  SessionChange,
} from './types.js';
