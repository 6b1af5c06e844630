import { type ErrorTable, errorClass } from '../core/index.js';

export const PLANNER_ERRORS = {
  PLAN_ERR_INFEASIBLE: {
    status: 422,
    description:
      'No cascade plan satisfies the capacities and parent links; `details.reasons` says which endpoints cannot be placed and why.',
  },
  PLAN_ERR_INVALID_SESSION: {
    status: 400,
    description:
      'The session names unknown endpoints or MCUs, has no endpoint, its chair cannot be placed, or its reserved capacity or budget is malformed.',
  },
  PLAN_ERR_TIMEOUT: {
    status: 503,
    description:
      'The time budget ran out before any valid plan was found (the session may be infeasible); retry with a larger `budgetMs`.',
  },
  PLAN_ERR_INVALID_PLAN: {
    status: 400,
    description: 'The plan given for re-planning does not belong to this inventory (unknown endpoint, MCU or link).',
  },
} as const satisfies ErrorTable;

export type PlanErrorCode = keyof typeof PLANNER_ERRORS;

export const PlanError = errorClass('PlanError', PLANNER_ERRORS);
export type PlanError = InstanceType<typeof PlanError>;
