import { type ErrorTable, errorClass } from '../core/index.js';

export const STORE_ERRORS = {
  STORE_ERR_OPEN: { status: 503, description: 'The store could not be opened (path, permissions, not a database).' },
  STORE_ERR_VERSION: {
    status: 503,
    description: 'The database was written by a newer cascaded (schema version ahead of this build).',
  },
  STORE_ERR_NOT_FOUND: { status: 404, description: 'No record with that id.' },
  STORE_ERR_CONFLICT: { status: 409, description: 'A record with that id already exists.' },
} as const satisfies ErrorTable;

export type StoreErrorCode = keyof typeof STORE_ERRORS;

export const StoreError = errorClass('StoreError', STORE_ERRORS);
export type StoreError = InstanceType<typeof StoreError>;
