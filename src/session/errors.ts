import { type ErrorTable, errorClass } from '../core/index.js';

/** Error codes of the session lifecycle (docs/errors.md, section "session"). */
export const SESSION_ERRORS = {
  SESSION_ERR_INVALID: {
    status: 400,
    description:
      'A session request is malformed: an unknown root, chair, endpoint, selector, unit or script speaker, or times out of order (start after end, rehearsal after start); `details.path` says where.',
  },
  SESSION_ERR_NOT_FOUND: { status: 404, description: 'No scheduled session with that id.' },
  SESSION_ERR_EXISTS: {
    status: 409,
    description: 'A session with that id exists already (scheduled, or admitted directly).',
  },
  SESSION_ERR_STATE: {
    status: 409,
    description:
      'The session is not in a state that allows this: a change of endpoints, root or start once its cascade is dialled, anything on a cancelled or ended session, `next` on a session not live or at the end of its script.',
  },
  SESSION_ERR_ENDPOINT_BUSY: {
    status: 409,
    description:
      'Endpoints of the session take part in another session overlapping it in time (an endpoint is in one session at a time); `details` lists them and the sessions.',
  },
} as const satisfies ErrorTable;

export type SessionErrorCode = keyof typeof SESSION_ERRORS;

export const SessionError = errorClass('SessionError', SESSION_ERRORS);
export type SessionError = InstanceType<typeof SessionError>;
