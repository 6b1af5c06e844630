import { type ErrorTable, errorClass } from '../core/index.js';

export const CONFIG_ERRORS = {
  CFG_ERR_READ: { status: 500, description: 'The config file could not be read (missing, unreadable, too large).' },
  CFG_ERR_YAML: {
    status: 400,
    description: 'The config file is not well-formed YAML; details list each error with its line.',
  },
  CFG_ERR_INVALID: {
    status: 400,
    description: 'The config violates the schema or a semantic rule; details.violations lists every one with its path.',
  },
  CFG_ERR_SECRET: {
    status: 500,
    description:
      "An MCU's secret could not be read: the file is missing, unreadable or empty, the environment variable is unset, or $CREDENTIALS_DIRECTORY is missing.",
  },
} as const satisfies ErrorTable;

export type ConfigErrorCode = keyof typeof CONFIG_ERRORS;

export const ConfigError = errorClass('ConfigError', CONFIG_ERRORS);
export type ConfigError = InstanceType<typeof ConfigError>;

/** One thing wrong with a config file, located by JSON pointer and, when known, line and column. */
export interface Violation {
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}
