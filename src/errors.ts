/**
 * Every error code of the daemon, merged from the tables of each context.
 * docs/errors.md documents each one (checked by test/errors.test.ts).
 */
import { API_ERRORS } from './api/index.js';
import { CASCADE_ERRORS } from './cascade/index.js';
import { CHAIR_ERRORS } from './chair/index.js';
import { CONFIG_ERRORS } from './config/index.js';
import { CORE_ERRORS, type ErrorTable } from './core/index.js';
import { MCU_ERRORS } from './mcu/index.js';
import { PLANNER_ERRORS } from './planner/index.js';
import { SESSION_ERRORS } from './session/index.js';
import { SIM_ERRORS } from './sim/index.js';
import { SIP_ERRORS } from './sip/index.js';
import { STORE_ERRORS } from './store/index.js';

export const ALL_ERRORS: ErrorTable = {
  ...CORE_ERRORS,
  ...SIP_ERRORS,
  ...CONFIG_ERRORS,
  ...STORE_ERRORS,
  ...API_ERRORS,
  ...PLANNER_ERRORS,
  ...MCU_ERRORS,
  ...SIM_ERRORS,
  ...CASCADE_ERRORS,
  ...CHAIR_ERRORS,
  ...SESSION_ERRORS,
};
