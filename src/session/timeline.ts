/**
 * The timeline of Decision 1594 (section II), derived from a session's times:
 * the daemon's own steps and the procedure's deadlines. Pure: plain data in,
 * plain data out, all times in wall-clock milliseconds.
 *
 *   requested ──15 min──▶ notify (every unit acknowledged)           II.1.2
 *   planned:   plan agreed before the rehearsal (else T-2h)           II.1.3
 *              internal tests and the cascade done by T-2h            II.1.4, II.1.5
 *   ad-hoc:    plan at once, the cascade by T-30min (dialled at once)   II.2
 *   both:      everything ready at T-30min; the 30-second rule        II.1.5, II.1.6
 *              during the session; the quality report after the end  II.1.7
 */

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

export type SessionKind = 'planned' | 'adhoc';
export type StepName = 'plan' | 'dial' | 'readiness' | 'start' | 'teardown';
export type DeadlineName = 'notify' | 'plan' | 'tests' | 'cascade' | 'ready';

export const STEP_NAMES: readonly StepName[] = ['plan', 'dial', 'readiness', 'start', 'teardown'];
export const DEADLINE_NAMES: readonly DeadlineName[] = ['notify', 'plan', 'tests', 'cascade', 'ready'];

export interface TimelineInput {
  readonly kind: SessionKind;
  /** When the request reached Cục BĐTW: the 15-minute rule counts from here. */
  readonly requestedAt: number;
  readonly startsAt: number;
  readonly endsAt: number;
  /** Planned sessions only. */
  readonly rehearsalAt?: number;
}

export interface TimelineSettings {
  /** The cascade is dialled this long before it must be up (planned: before T-2h). */
  readonly dialLeadMs: number;
  /** A deadline not met this long before it is due is at risk (metric, alert, log line). */
  readonly riskWindowMs: number;
  /** The risk window of the 15-minute notification rule (shorter: the whole rule is 15 minutes). */
  readonly notifyRiskWindowMs: number;
  /** Tear-down this long after the expected end. */
  readonly teardownAfterMs: number;
}

export const DEFAULT_TIMELINE: TimelineSettings = {
  dialLeadMs: 30 * MINUTE,
  riskWindowMs: 15 * MINUTE,
  notifyRiskWindowMs: 5 * MINUTE,
  teardownAfterMs: 5 * MINUTE,
};

export interface PlannedStep {
  readonly name: StepName;
  readonly at: number;
}

export interface PlannedDeadline {
  readonly name: DeadlineName;
  readonly due: number;
  /** From here on, not met means at risk. */
  readonly riskAt: number;
  /** The request came too late for the procedure's time: the deadline moved to the start. */
  readonly compressed: boolean;
  /** What the procedure asks, for logs and the report. */
  readonly rule: string;
}

export interface Timeline {
  readonly steps: readonly PlannedStep[];
  readonly deadlines: readonly PlannedDeadline[];
}

const RULES: Record<DeadlineName, string> = {
  notify: 'every unit notified and acknowledged within 15 minutes of the request (II.1.2)',
  plan: 'the cascade plan agreed before the rehearsal (II.1.3; ad-hoc: at once, II.2)',
  tests: 'every endpoint tested at least 2 hours before the session (II.1.4)',
  cascade: 'slave MCUs cascaded into the root at least 2 hours before (II.1.5; ad-hoc: 30 minutes, II.2)',
  ready: 'the whole system ready 30 minutes before the session (II.1.5, II.2)',
};

/** The steps and deadlines of a session. Deadlines already past at the request move to the start (`compressed`). */
export function timelineOf(s: TimelineInput, settings: TimelineSettings = DEFAULT_TIMELINE): Timeline {
  const { requestedAt: req, startsAt: t0 } = s;
  const atOrAfterRequest = (at: number) => Math.max(at, req);
  const twoHours = t0 - 2 * HOUR;
  const halfHour = t0 - 30 * MINUTE;
  const steps: PlannedStep[] = [
    { name: 'plan', at: req },
    // Ad-hoc: at once when the start is near (the usual case), never earlier than the procedure needs.
    { name: 'dial', at: atOrAfterRequest((s.kind === 'adhoc' ? halfHour : twoHours) - settings.dialLeadMs) },
    { name: 'readiness', at: atOrAfterRequest(halfHour) },
    { name: 'start', at: atOrAfterRequest(t0) },
    { name: 'teardown', at: atOrAfterRequest(s.endsAt + settings.teardownAfterMs) },
  ];
  const deadline = (name: DeadlineName, due: number, window: number): PlannedDeadline => {
    const compressed = due < req;
    const d = compressed ? Math.max(t0, req) : due;
    return { name, due: d, riskAt: Math.max(req, d - window), compressed, rule: RULES[name] };
  };
  const w = settings.riskWindowMs;
  const deadlines: PlannedDeadline[] = [deadline('notify', req + 15 * MINUTE, settings.notifyRiskWindowMs)];
  if (s.kind === 'planned') {
    deadlines.push(deadline('plan', s.rehearsalAt ?? twoHours, w));
    deadlines.push(deadline('tests', twoHours, w));
    deadlines.push(deadline('cascade', twoHours, w));
  } else {
    deadlines.push(deadline('plan', req + 15 * MINUTE, settings.notifyRiskWindowMs));
    deadlines.push(deadline('cascade', halfHour, w));
  }
  deadlines.push(deadline('ready', halfHour, w));
  return { steps, deadlines };
}
