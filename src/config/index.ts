export type { ConfigErrorCode, Violation } from './errors.js';
export { CONFIG_ERRORS, ConfigError } from './errors.js';
export type { ParseOptions } from './load.js';
export { formatViolations, loadConfigFile, parseConfig } from './load.js';
export { configSchema } from './schema.js';
export { readMcuSecret } from './secrets.js';
export type {
  ApiConfig,
  CascadeSettings,
  ChairSettings,
  Config,
  DaemonConfig,
  LogLevel,
  McuDriverSettings,
  SessionSettings,
  SipLimits,
  SipListen,
  SipTransportName,
} from './types.js';
