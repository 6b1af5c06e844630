/**
 * The chair hot path (issue 11, design section 3): bring an endpoint to the
 * chair in about one network round trip, far inside the 30-second rule of
 * Decision 1594. The path resolution is a pure function (path.ts,
 * property-tested against a brute-force oracle); the engine issues every
 * step at once under one deadline. See docs/chair.md.
 */
export type {
  ChairEngine,
  ChairEngineOptions,
  ChairEvents,
  ChairPreview,
  ChairResult,
  CommandFinished,
  CommandOptions,
  CommandStarted,
  CommandStep,
  StepOutcome,
} from './engine.js';
export { createChairEngine } from './engine.js';
export type { ChairErrorCode } from './errors.js';
export { CHAIR_ERRORS, ChairError } from './errors.js';
export type {
  AudioStep,
  BrokenHop,
  ChairLayout,
  ChairObserved,
  ChairPath,
  ChairSession,
  ChairStep,
  EntryView,
  Resolution,
  RoomView,
  SwitchStep,
} from './path.js';
export { CHAIR_LAYOUTS, participantKey, resolveDefault, resolvePath } from './path.js';
export type { CascadeSourceOptions, ChairSource, DriverSourceOptions } from './source.js';
export { cascadeSource, chairSession, driverSource } from './source.js';
