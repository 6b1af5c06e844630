import { CascadedError, type CascadedErrorOptions, type ErrorTable } from '../core/errors.js';

export const API_ERRORS = {
  API_ERR_VALIDATION: {
    status: 400,
    description: 'The request body, query or parameters failed validation; details say where.',
  },
  API_ERR_NOT_FOUND: { status: 404, description: 'No such route or resource.' },
  API_ERR_TLS: { status: 500, description: 'The API certificate or key could not be read or generated.' },
} as const satisfies ErrorTable;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends CascadedError<ApiErrorCode> {
  constructor(code: ApiErrorCode, message: string, options?: CascadedErrorOptions) {
    super(code, message, API_ERRORS[code].status, options);
    this.name = 'ApiError';
  }
}
