/**
 * The session lifecycle of Decision 1594 (issue 13): planned and ad-hoc
 * sessions at any level, their timeline carried out by a scheduler on the
 * Clock (persisted, so a restart runs what it missed), deadlines watched
 * before they are missed, acknowledgements, the script. See docs/session.md.
 */
export type { CheckSummary, EndpointChecks, ProvinceSummary } from './checks.js';
export { csvField, csvLine, summarize, summaryCsv } from './checks.js';
export type { SessionErrorCode } from './errors.js';
export { SESSION_ERRORS, SessionError } from './errors.js';
export type {
  CheckInput,
  DeadlineEvent,
  LifecycleCascade,
  LifecycleChair,
  LifecycleEvents,
  LifecycleSettings,
  NextResult,
  SessionLifecycle,
  SessionLifecycleOptions,
  SessionView,
  StepEvent,
} from './lifecycle.js';
export { DEFAULT_LIFECYCLE, startSessionLifecycle } from './lifecycle.js';
export type {
  FigureWindow,
  LiveRecorder,
  LiveRecorderOptions,
  ParticipantInput,
  QualityInput,
  QualityWindow,
} from './live.js';
export { createLiveRecorder } from './live.js';
export type { EndpointSelector, EndpointSpec, LifecycleChange, LifecycleRequest, ScriptItem } from './model.js';
export { resolveEndpoints, unitsOf } from './model.js';
export type {
  ChairCommandRow,
  EndpointRow,
  Figure,
  LinkRow,
  ProvinceQuality,
  QualityFigures,
  ReportInput,
  SessionReport,
} from './report.js';
export { buildReport, CHAIR_RULE_MS, reportCsv } from './report.js';
export { chairChart, reportHtml } from './report-html.js';
export type {
  DeadlineName,
  PlannedDeadline,
  PlannedStep,
  SessionKind,
  StepName,
  Timeline,
  TimelineInput,
  TimelineSettings,
} from './timeline.js';
export { DEADLINE_NAMES, DEFAULT_TIMELINE, HOUR, MINUTE, STEP_NAMES, timelineOf } from './timeline.js';
