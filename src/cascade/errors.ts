import { type ErrorTable, errorClass } from '../core/index.js';

/** Error codes of the cascade manager (docs/errors.md, section "cascade"). */
export const CASCADE_ERRORS = {
  CASCADE_ERR_INVALID_SESSION: {
    status: 400,
    description:
      'A session request names an unknown root MCU or endpoint, a main endpoint not placed on that MCU, or is malformed; `details.path` says where.',
  },
  CASCADE_ERR_NO_ROOM: {
    status: 409,
    description:
      'An MCU of the plan has no free conference room left (every URI of its `conferences` is held by a live session); `details` names the MCU and the sessions holding its rooms.',
  },
  CASCADE_ERR_ENDPOINT_BUSY: {
    status: 409,
    description:
      'Endpoints of the session already take part in a live session (a room is in one session at a time); `details` lists them and the sessions.',
  },
  CASCADE_ERR_NOT_FOUND: { status: 404, description: 'No session with that id.' },
  CASCADE_ERR_STATE: {
    status: 409,
    description: 'The session is not in a state that allows this (for example a selection on a session that ended).',
  },
  CASCADE_ERR_UNCONFIRMED: {
    status: 502,
    description:
      "An MCU accepted a dial (the REFER's final sipfrag 2xx) but its conference roster did not list the participant within `daemon.cascade.halfDeadGraceMs`: the manager asks for the MCU's full roster and tries again with backoff; `details` names the MCU, room and participant.",
  },
  CASCADE_ERR_BUSY: {
    status: 503,
    description:
      'Sessions kept changing while a session was being admitted or re-planned (every attempt lost the race); try again.',
  },
} as const satisfies ErrorTable;

export type CascadeErrorCode = keyof typeof CASCADE_ERRORS;

export const CascadeError = errorClass('CascadeError', CASCADE_ERRORS);
export type CascadeError = InstanceType<typeof CascadeError>;
