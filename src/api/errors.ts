import { type ErrorTable, errorClass } from '../core/index.js';

export const API_ERRORS = {
  API_ERR_VALIDATION: {
    status: 400,
    description:
      'The request body, query or parameters failed validation; `details` lists each violation with its JSON path (`/body/endpoints/3`).',
  },
  API_ERR_BAD_JSON: { status: 400, description: 'The body is not valid JSON.' },
  API_ERR_UNAUTHENTICATED: {
    status: 401,
    description:
      'No credentials, or a bearer token that is malformed, unknown, revoked or expired (`details.reason`); or a client certificate mapped to no identity.',
  },
  API_ERR_FORBIDDEN: {
    status: 403,
    description: "The caller's role does not allow this action (a viewer mutating, a non-admin reading the audit).",
  },
  API_ERR_OUT_OF_SCOPE: {
    status: 403,
    description:
      "The target (MCU, endpoint, session) is outside the operator's scope, or the chair of a national session was commanded by a non-central operator.",
  },
  API_ERR_NOT_FOUND: { status: 404, description: 'No such route or resource.' },
  API_ERR_CONFLICT: { status: 409, description: 'The request conflicts with the current state (e.g. an id in use).' },
  API_ERR_BODY_TOO_LARGE: { status: 413, description: 'The body exceeds `daemon.api.bodyLimitBytes`.' },
  API_ERR_MEDIA_TYPE: { status: 415, description: 'The body is not `application/json`.' },
  API_ERR_RATE_LIMITED: {
    status: 429,
    description:
      'Too many mutating requests from this token (`daemon.api.rateLimit`); `Retry-After` says when to retry.',
  },
  API_ERR_NOT_IMPLEMENTED: {
    status: 501,
    description: 'The route is part of the contract but its module is not in this build yet (see README, Status).',
  },
  API_ERR_TIMEOUT: {
    status: 503,
    description: 'The request did not finish within `daemon.api.requestTimeoutMs`; the work may still complete.',
  },
  API_ERR_UNAVAILABLE: {
    status: 503,
    description: 'The daemon is stopping, or too many clients follow /v1/events (`daemon.api.maxEventClients`).',
  },
  API_ERR_TLS: { status: 500, description: 'The API certificate or key could not be read or generated.' },
  API_ERR_TOKEN_SPEC: {
    status: 400,
    description:
      '`cascaded token create` was given an invalid role, scope (unknown operator or province) or expiry; or a token id is malformed.',
  },
} as const satisfies ErrorTable;

export type ApiErrorCode = keyof typeof API_ERRORS;

export const ApiError = errorClass('ApiError', API_ERRORS);
export type ApiError = InstanceType<typeof ApiError>;
