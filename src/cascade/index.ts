/**
 * The cascade manager (issue 10): turns each live session's plan into live
 * cascade links and keeps them there. The decisions are a pure function
 * (reconcile.ts, property-tested); the runtime carries them out through the
 * MCU drivers. See docs/cascade.md.
 */
export type { AdmitOptions, Holder, ReplanOutcome, SessionRequest, StoredRequest } from './admission.js';
export { admitSession, endSession, heldBy, replanSession, selectForChair, usageOf } from './admission.js';
export type { BackoffPolicy } from './backoff.js';
export { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export type {
  DesiredSession,
  EndpointDirectory,
  LayoutSpec,
  Ref,
  SessionSpec,
  SessionView,
  ViewSpec,
} from './desired.js';
export { desiredSession, mainEndpoint, reselect, SESSION_VIEWS } from './desired.js';
export type { CascadeErrorCode } from './errors.js';
export { CASCADE_ERRORS, CascadeError } from './errors.js';
export type {
  CascadeManager,
  CascadeManagerEvents,
  CascadeManagerOptions,
  CascadeProgress,
  ChairClaim,
  LayoutEvent,
  LinkEvent,
  ParticipantEvent,
  QualityEvent,
  SessionEvent,
} from './manager.js';
export { startCascadeManager } from './manager.js';
export { Bookkeeping, poolOf } from './memory.js';
export type {
  Action,
  Decision,
  LinkStateName,
  LinkView,
  Memory,
  Observed,
  ObservedEntry,
  ObservedMcu,
  ObservedRoom,
  Pool,
  ReconcileOptions,
  Retry,
  RoomState,
  UnexpectedLink,
} from './reconcile.js';
export {
  decide,
  decideLayouts,
  endpointsWithoutView,
  layoutKey,
  linkKey,
  QUIET_GRACE_FACTOR,
  roomKey,
} from './reconcile.js';
export type { SessionStatus } from './status.js';
export { cascadeStatus } from './status.js';
