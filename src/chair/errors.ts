import { type ErrorTable, errorClass } from '../core/index.js';

/** Error codes of the chair hot path (docs/errors.md, section "chair"). */
export const CHAIR_ERRORS = {
  CHAIR_ERR_NO_SESSION: {
    status: 404,
    description: 'No live session with that id has a cascade the chair can use (unknown, ended, or not admitted).',
  },
  CHAIR_ERR_NO_CHAIR: {
    status: 409,
    description:
      'The session has no chair endpoint on its root MCU (its plan names none), so there is no screen to bring anyone to.',
  },
  CHAIR_ERR_NOT_IN_SESSION: {
    status: 404,
    description: 'The endpoint is not part of the session (neither placed on one of its MCUs nor relayed through one).',
  },
  CHAIR_ERR_NOT_CONNECTED: {
    status: 409,
    description:
      "The endpoint (or the chair, `details.role`) is part of the session but not connected to its MCU's conference; `details.mcu` names the MCU.",
  },
  CHAIR_ERR_PATH_DOWN: {
    status: 503,
    description:
      'A hop of the path is down and could not be healed within the deadline: `details.hop` names it (`{child, parent}` for a cascade link, `{mcu}` for an MCU or room that is down).',
  },
  CHAIR_ERR_SUPERSEDED: {
    status: 409,
    description: 'A newer command for the same chair arrived while this one was in flight; this one stopped.',
  },
  CHAIR_ERR_DEADLINE: {
    status: 504,
    description:
      "The command's deadline passed before every step was confirmed; `details.steps` gives each step's outcome and timing.",
  },
  CHAIR_ERR_REJECTED: {
    status: 502,
    description:
      'An MCU refused a step for good (an MSML or SIP error that a retry cannot fix); `details` names the step and carries the MCU error.',
  },
  CHAIR_ERR_REQUEST_CONFLICT: {
    status: 409,
    description: 'The request id was already used for a different command (another session, endpoint or action).',
  },
  CHAIR_ERR_CLOSED: { status: 503, description: 'The chair engine was closed (the daemon is stopping).' },
} as const satisfies ErrorTable;

export type ChairErrorCode = keyof typeof CHAIR_ERRORS;

export const ChairError = errorClass('ChairError', CHAIR_ERRORS);
export type ChairError = InstanceType<typeof ChairError>;
