/**
 * Every error code of the daemon, merged from the tables of each context.
 * docs/errors.md documents each one (checked by test/errors.test.ts).
 */
import { CORE_ERRORS, type ErrorTable } from './core/errors.js';
import { SIP_ERRORS } from './sip/errors.js';

export const ALL_ERRORS: ErrorTable = {
  ...CORE_ERRORS,
  ...SIP_ERRORS,
};
