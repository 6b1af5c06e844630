/**
 * Every error code of the daemon, merged from the tables of each context.
 * docs/errors.md documents each one (checked by test/errors.test.ts).
 */
import { API_ERRORS } from './api/errors.js';
import { CONFIG_ERRORS } from './config/errors.js';
import { CORE_ERRORS, type ErrorTable } from './core/errors.js';
import { MCU_ERRORS } from './mcu/errors.js';
import { PLANNER_ERRORS } from './planner/errors.js';
import { SIM_ERRORS } from './sim/errors.js';
import { SIP_ERRORS } from './sip/errors.js';
import { STORE_ERRORS } from './store/errors.js';

export const ALL_ERRORS: ErrorTable = {
  ...CORE_ERRORS,
  ...SIP_ERRORS,
  ...CONFIG_ERRORS,
  ...STORE_ERRORS,
  ...API_ERRORS,
  ...PLANNER_ERRORS,
  ...MCU_ERRORS,
  ...SIM_ERRORS,
};
