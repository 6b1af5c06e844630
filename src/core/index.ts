export { CascadedError, CoreError, CORE_ERRORS, isCascadedError } from './errors.js';
export type { CascadedErrorOptions, CoreErrorCode, ErrorSpec, ErrorTable } from './errors.js';
export { TypedEmitter } from './events.js';
export type { EventMap } from './events.js';
export { FakeClock, realClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { randomHex, randomToken } from './ids.js';
export { onceClose } from './lifecycle.js';
export type { Closeable } from './lifecycle.js';
