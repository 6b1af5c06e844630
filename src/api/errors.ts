import { type ErrorTable, errorClass } from '../core/index.js';

export const API_ERRORS = {
  API_ERR_VALIDATION: {
    status: 400,
    description: 'The request body, query or parameters failed validation; details say where.',
  },
  API_ERR_NOT_FOUND: { status: 404, description: 'No such route or resource.' },
  API_ERR_TLS: { status: 500, description: 'The API certificate or key could not be read or generated.' },
} as const satisfies ErrorTable;

export type ApiErrorCode = keyof typeof API_ERRORS;

export const ApiError = errorClass('ApiError', API_ERRORS);
export type ApiError = InstanceType<typeof ApiError>;
