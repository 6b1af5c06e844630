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
  SessionSettings,
  Config,
  DaemonConfig,
  LogLevel,
  McuDriverSettings,
  SipLimits,
  SipListen,
  SipTransportName,
} from './types.js';
