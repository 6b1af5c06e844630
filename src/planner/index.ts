/**
 * The cascade planner: a pure function from an inventory and a session to the
 * optimal cascade plan (docs/planner.md). No I/O.
 */
export type { PlanErrorCode } from './errors.js';
export { PLANNER_ERRORS, PlanError } from './errors.js';
export type { PlanCheck } from './evaluate.js';
export { checkPlan } from './evaluate.js';
export type { ReplanOptions } from './plan.js';
export { PLAN_BUDGET_MS, plan, REPLAN_BUDGET_MS, replan } from './plan.js';
export type {
  HeldCapacity,
  InfeasibilityReason,
  McuUsage,
  Objective,
  ObjectiveBound,
  Plan,
  PlanChanges,
  PlanClock,
  PlanOptions,
  SearchStats,
  Session,
  SessionChange,
} from './types.js';
