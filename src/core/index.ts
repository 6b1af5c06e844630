export type { Clock, TimerHandle } from './clock.js';
export { FakeClock, realClock } from './clock.js';
export type { CascadedErrorOptions, CoreErrorCode, ErrorSpec, ErrorTable } from './errors.js';
export { CascadedError, CORE_ERRORS, CoreError, isCascadedError } from './errors.js';
export type { EventMap } from './events.js';
export { TypedEmitter } from './events.js';
export { randomHex, randomToken } from './ids.js';
export type { Closeable } from './lifecycle.js';
export { onceClose } from './lifecycle.js';
