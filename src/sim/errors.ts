import { type ErrorTable, errorClass } from '../core/index.js';

/** Error codes of the MCU simulator (docs/errors.md, section "sim"). */
export const SIM_ERRORS = {
  SIM_ERR_UNKNOWN_MCU: { status: 404, description: 'No simulated MCU with that id or URI.' },
  SIM_ERR_UNKNOWN_PARTICIPANT: {
    status: 404,
    description: 'No endpoint or cascade link with that id in the simulated network or conference.',
  },
  SIM_ERR_UNKNOWN_CONFERENCE: {
    status: 404,
    description: 'The simulated MCU has no conference (lobby or room) with that name or URI.',
  },
  SIM_ERR_FULL: { status: 409, description: 'The simulated MCU has no free port for another participant.' },
  SIM_ERR_INVALID_ARGUMENT: {
    status: 400,
    description: 'A simulator call or control request was given an invalid argument (fault, impairment, URI).',
  },
  SIM_ERR_CLOSED: { status: 503, description: 'The simulated MCU or network was closed.' },
  SIM_ERR_PROCESS: {
    status: 500,
    description: 'The simulator process (cascaded-sim started by the daemon) failed to start in time or exited.',
  },
} as const satisfies ErrorTable;

export type SimErrorCode = keyof typeof SIM_ERRORS;

export const SimError = errorClass('SimError', SIM_ERRORS);
export type SimError = InstanceType<typeof SimError>;
