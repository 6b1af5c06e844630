/**
 * One error registry (style.md). Every context declares its codes in a table
 * with the HTTP status the code maps to where it surfaces in the API and a
 * one-line description; `src/errors.ts` merges the tables and a test checks
 * each code is documented in docs/errors.md. Code branches on `err.code`,
 * never on message text.
 */

export interface ErrorSpec {
  /** HTTP status when this error reaches the REST API. */
  readonly status: number;
  readonly description: string;
}

export type ErrorTable = Readonly<Record<string, ErrorSpec>>;

export interface CascadedErrorOptions {
  cause?: unknown;
  /** Machine-readable detail (violations, offending path, SIP status ...). */
  details?: unknown;
}

export class CascadedError<C extends string = string> extends Error {
  readonly code: C;
  readonly status: number;
  readonly details: unknown;

  constructor(code: C, message: string, status: number, options: CascadedErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CascadedError';
    this.code = code;
    this.status = status;
    this.details = options.details;
  }

  /** The API error body of design section 4. */
  toJSON(): { code: C; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/**
 * The error class of one context, bound to its table: `new StoreError(code,
 * message, options)` takes the HTTP status from the table, so a code and its
 * status cannot drift apart. `instanceof` works on the returned class.
 */
export function errorClass<C extends string>(name: string, table: Readonly<Record<C, ErrorSpec>>) {
  return class extends CascadedError<C> {
    constructor(code: C, message: string, options?: CascadedErrorOptions) {
      super(code, message, table[code].status, options);
      this.name = name;
    }
  };
}

export const CORE_ERRORS = {
  ERR_CLOSED: { status: 503, description: 'The object was closed; it accepts no more work.' },
  ERR_DEADLINE: { status: 504, description: 'An operation did not finish within its deadline.' },
  ERR_INTERNAL: { status: 500, description: 'An unexpected internal failure (a bug): details are in the log.' },
} as const satisfies ErrorTable;

export type CoreErrorCode = keyof typeof CORE_ERRORS;

export const CoreError = errorClass('CoreError', CORE_ERRORS);
export type CoreError = InstanceType<typeof CoreError>;

/** Narrow an unknown thrown value to a CascadedError, optionally of one code. */
export function isCascadedError(err: unknown, code?: string): err is CascadedError {
  return err instanceof CascadedError && (code === undefined || err.code === code);
}
