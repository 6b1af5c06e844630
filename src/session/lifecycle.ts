/**
 * The session lifecycle (issue 13, docs/session.md): scheduled sessions in the
 * store, the timeline of Decision 1594 carried out by a scheduler on the
 * Clock, deadlines watched before they are missed.
 *
 * Scheduling: every pending step and every pending deadline's risk and due
 * times get a timer of their own, armed synchronously (so a FakeClock's
 * `advance` fires them in time order); each timer captures the time it fired
 * and queues its work on one serial queue, so steps and evaluations never
 * interleave. What is due while the daemon was down runs at once on start, on
 * the same queue, recorded with how late it ran.
 */
import type { Logger } from 'pino';
import type { CascadeManagerEvents, CascadeProgress, SessionRequest } from '../cascade/index.js';
import type { ChairPreview, ChairResult, CommandOptions } from '../chair/index.js';
import { type Clock, CoreError, isCascadedError, onceClose, type TimerHandle, TypedEmitter } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import type {
  CascadeHead,
  LifecycleAckRecord,
  LifecycleDeadlineRecord,
  LifecycleSessionRecord,
  LifecycleStepRecord,
  Store,
} from '../store/index.js';
import { type CheckSummary, type EndpointChecks, failed, lastChecks, summarize } from './checks.js';
import { SessionError } from './errors.js';
import {
  ACTIVE,
  defaultSessionId,
  fitSession,
  type LifecycleChange,
  type LifecycleRequest,
  type Resolved,
  resolveRequest,
  type ScriptItem,
  unitsOf,
} from './model.js';
import { buildReport, reportCsv, type SessionReport } from './report.js';
import { reportHtml } from './report-html.js';
import { DEFAULT_TIMELINE, type DeadlineName, type StepName, type TimelineSettings, timelineOf } from './timeline.js';

/** What the lifecycle needs of the cascade manager. */
export interface LifecycleCascade {
  admit(request: SessionRequest): Promise<CascadeHead>;
  end(sessionId: string): Promise<CascadeHead>;
  progress(sessionId?: string): CascadeProgress[];
  /** Endpoints in their rooms that do not see the session's view yet (the chair excepted). */
  endpointsWithoutView(sessionId: string): number | undefined;
  on<K extends keyof CascadeManagerEvents & string>(event: K, l: (...a: CascadeManagerEvents[K]) => void): unknown;
  off<K extends keyof CascadeManagerEvents & string>(event: K, l: (...a: CascadeManagerEvents[K]) => void): unknown;
}

/** What the lifecycle needs of the chair engine. */
export interface LifecycleChair {
  bringToChair(session: string, endpoint: string, options?: CommandOptions): Promise<ChairResult>;
  /** The daemon's own endpoint checks: whether the chair path of an endpoint resolves (in its room, on the cascade). */
  preview(session: string, endpoint: string | null): ChairPreview;
}

/** A unit's test result for one endpoint (any result not given is not recorded). */
export interface CheckInput {
  readonly endpoint: string;
  readonly connected?: boolean;
  readonly audio?: boolean;
  readonly video?: boolean;
  readonly notes?: string;
}

export interface LifecycleSettings extends TimelineSettings {
  /** A step that runs later than this after its time is recorded as late (default 60 s). */
  readonly lateToleranceMs: number;
  /** A dial that failed is tried again after this long, until the start (default 60 s). */
  readonly dialRetryMs: number;
  /** The planner's time budget for the fit check (default: the planner's). */
  readonly planBudgetMs?: number;
}

export const DEFAULT_LIFECYCLE: LifecycleSettings = {
  ...DEFAULT_TIMELINE,
  lateToleranceMs: 60_000,
  dialRetryMs: 60_000,
};

export interface SessionLifecycleOptions {
  readonly store: Store;
  readonly inventory: Inventory;
  readonly cascade: LifecycleCascade;
  readonly chair?: LifecycleChair;
  /** The scheduler's time: its `wallNow` is compared with the sessions' times (a FakeClock in tests). */
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly settings?: Partial<LifecycleSettings>;
}

export interface StepEvent {
  readonly session: string;
  readonly step: StepName;
  readonly state: 'done' | 'failed' | 'skipped';
  /** How long after its time it ran, ms. */
  readonly lateMs: number;
  readonly late: boolean;
  readonly detail: unknown;
}

export interface DeadlineEvent {
  readonly session: string;
  readonly deadline: DeadlineName;
  readonly state: 'at-risk' | 'met' | 'missed';
  /** ISO 8601. */
  readonly due: string;
  readonly detail: unknown;
}

export type LifecycleEvents = {
  step: [StepEvent];
  deadline: [DeadlineEvent];
  status: [{ readonly session: string; readonly status: string }];
};

/** A scheduled session as REST and cascadectl show it. */
export interface SessionView {
  readonly id: string;
  readonly kind: 'planned' | 'adhoc';
  readonly level: 'national' | 'provincial';
  readonly title: string;
  readonly requester: string;
  readonly root: string;
  readonly chair: string;
  readonly status: string;
  readonly requestedAt: string;
  readonly startsAt: string;
  readonly endsAt: string;
  readonly rehearsalAt: string | null;
  readonly endpoints: readonly string[];
  readonly spec: LifecycleRequest;
  readonly script: readonly ScriptItem[];
  /** Script items brought to the chair so far. */
  readonly scriptPos: number;
  readonly units: readonly { readonly unit: string; readonly ack: LifecycleAckRecord | null }[];
  readonly steps: readonly LifecycleStepRecord[];
  readonly deadlines: readonly LifecycleDeadlineRecord[];
}

export interface SessionLifecycle extends TypedEmitter<LifecycleEvents> {
  /** Schedule a session: validated, fitted beside the sessions it overlaps, its timeline armed. */
  create(request: LifecycleRequest, actor?: string): Promise<SessionView>;
  /** Change a session; once its cascade is dialled only title, end and script may change. */
  change(id: string, change: LifecycleChange, actor?: string): Promise<SessionView>;
  /** Cancel: nothing more runs; a dialled cascade is torn down. Idempotent. */
  cancel(id: string, actor?: string): Promise<SessionView>;
  get(id: string): Promise<SessionView>;
  list(query?: { statuses?: readonly string[]; limit?: number }): Promise<SessionView[]>;
  /** A unit's acknowledgement of the notification (the first counts). */
  acknowledge(id: string, unit: string, actor: string): Promise<LifecycleAckRecord & { readonly withinRule: boolean }>;
  /**
   * The session's quality report (Decision 1594 II.1.7) as it stands: the timeline against its deadlines,
   * units, checks, links and drops, chair commands against the 30-second rule. A session admitted directly
   * (no timeline) gets the parts the store has.
   */
  report(id: string): Promise<SessionReport>;
  reportCsv(id: string): Promise<string>;
  reportHtml(id: string): Promise<string>;
  /** Record a unit's test result for an endpoint of the session; answers the endpoint's row of the summary. */
  recordCheck(id: string, check: CheckInput, actor: string): Promise<EndpointChecks>;
  /** The daemon checks every endpoint of a dialled session itself now (in its room, on the cascade). */
  autoCheck(id: string): Promise<CheckSummary>;
  /** The per-province summary, every endpoint's last checks and those to test again. */
  checks(id: string): Promise<CheckSummary>;
  /**
   * Bring the script's next speaker to the chair through the chair engine (`cascadectl next`). The position
   * moves on only when the command succeeded; the same request id again answers the first outcome.
   */
  next(id: string, options?: { readonly requestId?: string; readonly actor?: string }): Promise<NextResult>;
  /** Resolves when every queued step and evaluation has run (tests on a FakeClock). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface NextResult {
  readonly session: string;
  readonly item: ScriptItem;
  /** 1-based position of the item in the script. */
  readonly position: number;
  readonly of: number;
  readonly chair: ChairResult;
}

interface Entry {
  rec: LifecycleSessionRecord;
  readonly timers: Set<TimerHandle>;
}

/** Longest single timer: Node's setTimeout overflows above 2^31-1 ms, so far times are reached in hops. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const iso = (ms: number) => new Date(ms).toISOString();

export async function startSessionLifecycle(options: SessionLifecycleOptions): Promise<SessionLifecycle> {
  const lc = new Lifecycle(options);
  await lc.load();
  return lc;
}

class Lifecycle extends TypedEmitter<LifecycleEvents> implements SessionLifecycle {
  readonly #store: Store;
  readonly #inv: Inventory;
  readonly #cascade: LifecycleCascade;
  readonly #chair: LifecycleChair | undefined;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #settings: LifecycleSettings;
  readonly #entries = new Map<string, Entry>();
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;
  #closed = false;
  readonly #nextByRequest = new Map<string, NextResult>();
  readonly #nextChain = new Map<string, Promise<NextResult>>();
  readonly #onCascadeSession: (e: CascadeManagerEvents['session'][0]) => void;

  constructor(o: SessionLifecycleOptions) {
    super();
    this.#store = o.store;
    this.#inv = o.inventory;
    this.#cascade = o.cascade;
    this.#chair = o.chair;
    this.#clock = o.clock;
    this.#log = o.logger?.child({ module: 'session' });
    this.#settings = { ...DEFAULT_LIFECYCLE, ...o.settings };
    this.onListenerError((err, event) => this.#log?.warn({ err, event }, 'a session event listener failed'));
    this.#onCascadeSession = (e) => {
      if (e.kind !== 'up' || !this.#entries.has(e.session)) return;
      const at = this.#clock.wallNow();
      this.#enqueue(() => this.#cascadeUp(e.session, at));
    };
    this.#cascade.on('session', this.#onCascadeSession);
  }

  /** Arm every active session; what fell due while the daemon was down runs at once. */
  async load(): Promise<void> {
    const now = this.#clock.wallNow();
    for (const rec of await this.#store.lifecycle.list({ statuses: ACTIVE, limit: 10_000 })) {
      const entry: Entry = { rec, timers: new Set() };
      this.#entries.set(rec.id, entry);
      await this.#arm(entry, now);
    }
  }

  // ---------------------------------------------------------------------------
  // Scheduling

  #enqueue(work: () => Promise<void>): void {
    this.#pending++;
    this.#queue = this.#queue
      .then(async () => {
        if (!this.#closed) await work();
      })
      .catch((err: unknown) => this.#log?.error({ err }, 'a session step failed unexpectedly'))
      .finally(() => {
        this.#pending--;
      });
  }

  async idle(): Promise<void> {
    while (this.#pending > 0) await this.#queue;
  }

  /** A timer at wall time `at`; `fn` gets the time it fired (the FakeClock's is exactly `at`). */
  #at(entry: Entry, at: number, fn: (firedAt: number) => void): void {
    const delay = at - this.#clock.wallNow();
    const hop = Math.min(Math.max(0, delay), MAX_TIMER_MS);
    const h = this.#clock.setTimeout(() => {
      entry.timers.delete(h);
      if (this.#clock.wallNow() < at) this.#at(entry, at, fn);
      else fn(this.#clock.wallNow());
    }, hop);
    entry.timers.add(h);
  }

  #disarm(entry: Entry): void {
    for (const h of entry.timers) this.#clock.clearTimeout(h);
    entry.timers.clear();
  }

  /** Timers for the pending steps and deadlines; those already due are queued now. */
  async #arm(entry: Entry, now: number): Promise<void> {
    const id = entry.rec.id;
    const schedule = (at: number, work: (firedAt: number) => Promise<void>) => {
      if (at <= now) this.#enqueue(() => work(now));
      else this.#at(entry, at, (firedAt) => this.#enqueue(() => work(firedAt)));
    };
    for (const s of await this.#store.lifecycle.steps(id)) {
      if (s.state !== 'pending') continue;
      schedule(Date.parse(s.dueAt), (firedAt) => this.#runStep(id, s.step as StepName, firedAt));
    }
    for (const d of await this.#store.lifecycle.deadlines(id)) {
      if (d.state !== 'pending') continue;
      const name = d.name as DeadlineName;
      if (d.atRiskAt === null) schedule(Date.parse(d.riskAt), (t) => this.#evaluate(id, name, 'risk', t));
      schedule(Date.parse(d.dueAt), (t) => this.#evaluate(id, name, 'due', t));
    }
  }

  // ---------------------------------------------------------------------------
  // Steps

  async #runStep(id: string, step: StepName, firedAt: number): Promise<void> {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    const rec = (await this.#store.lifecycle.steps(id)).find((s) => s.step === step);
    if (rec === undefined || rec.state !== 'pending') return;
    const lateMs = Math.max(0, firedAt - Date.parse(rec.dueAt));
    const late = lateMs > this.#settings.lateToleranceMs;
    let state: StepEvent['state'] = 'done';
    let detail: unknown = null;
    try {
      detail = await this.#stepAction(entry, step);
    } catch (err) {
      state = 'failed';
      detail = isCascadedError(err)
        ? { code: err.code, message: err.message, details: err.details }
        : { code: 'ERR_INTERNAL', message: String((err as Error)?.message ?? err) };
    }
    await this.#store.lifecycle.setStep(id, { ...rec, state, ranAt: iso(firedAt), lateMs, detail });
    await this.#record('session.step', id, { step, state, lateMs, late, detail });
    const fields = { session: id, step, state, lateMs, detail };
    if (state === 'failed') this.#log?.error(fields, `session ${id}: step ${step} failed`);
    else if (late) this.#log?.warn(fields, `session ${id}: step ${step} ran late (${Math.round(lateMs / 1000)} s)`);
    else this.#log?.info(fields, `session ${id}: step ${step} ${state}`);
    this.safeEmit('step', { session: id, step, state, lateMs, late, detail });
    if (step === 'plan') await this.#evaluate(id, 'plan', 'event', firedAt);
    if (step === 'readiness') await this.#evaluate(id, 'ready', 'event', firedAt);
    if (step === 'dial' && state === 'failed' && firedAt < Date.parse(entry.rec.startsAt)) {
      // The cascade deadline goes at risk and is missed on its own; meanwhile keep trying.
      this.#at(entry, firedAt + this.#settings.dialRetryMs, (t) => this.#enqueue(() => this.#retryDial(id, t)));
    }
  }

  async #retryDial(id: string, firedAt: number): Promise<void> {
    const rec = (await this.#store.lifecycle.steps(id)).find((s) => s.step === 'dial');
    if (rec === undefined || rec.state !== 'failed') return;
    await this.#store.lifecycle.setStep(id, { ...rec, state: 'pending' });
    await this.#runStep(id, 'dial', Math.max(firedAt, Date.parse(rec.dueAt)));
  }

  async #stepAction(entry: Entry, step: StepName): Promise<unknown> {
    const rec = entry.rec;
    switch (step) {
      case 'plan': {
        // The plan again, against what overlaps now (others may have changed since the request).
        const { plan, usage } = await fitSession(this.#store, this.#inv, rec.id, this.#resolved(rec), this.#settings);
        await this.#update(entry, { usage });
        return { mcus: plan.mcus.length, links: Object.keys(plan.links).length, maxDepth: plan.objective.maxDepth };
      }
      case 'dial': {
        if ((await this.#store.getCascade(rec.id)) !== undefined) return { admitted: 'before' };
        const spec = rec.spec as LifecycleRequest;
        const head = await this.#cascade.admit({
          id: rec.id,
          title: rec.title,
          kind: rec.kind,
          root: rec.root,
          endpoints: rec.endpoints,
          chair: spec.chair,
          ...(spec.mains === undefined ? {} : { mains: spec.mains }),
          ...(spec.view === undefined ? {} : { view: spec.view }),
        });
        await this.#setStatus(entry, 'dialing');
        return { admitted: head.createdAt, mcus: Object.keys(head.rooms).length };
      }
      case 'readiness': {
        if (this.#chair !== undefined && (await this.#store.getCascade(rec.id)) !== undefined)
          await this.#runAutoChecks(rec);
        const r = await this.#readiness(rec);
        if (r.ok) await this.#setStatus(entry, 'ready');
        return r;
      }
      case 'start':
        await this.#setStatus(entry, 'live');
        return null;
      case 'teardown': {
        let ended: string | null = null;
        try {
          ended = (await this.#cascade.end(rec.id)).state;
        } catch (err) {
          if (!isCascadedError(err, 'CASCADE_ERR_NOT_FOUND')) throw err;
        }
        await this.#setStatus(entry, 'ended');
        this.#finish(entry);
        return { cascade: ended };
      }
    }
  }

  /** The session is over (ended or cancelled): no timer left, nothing more evaluated. */
  #finish(entry: Entry): void {
    this.#disarm(entry);
    this.#entries.delete(entry.rec.id);
  }

  // ---------------------------------------------------------------------------
  // Deadlines

  async #cascadeUp(id: string, at: number): Promise<void> {
    await this.#evaluate(id, 'cascade', 'event', at);
    await this.#evaluate(id, 'ready', 'event', at);
  }

  /** Whether the cascade of the session is up: every link of its plan up, as the manager sees it. */
  #cascadeState(id: string): { up: boolean; links: number; linksUp: number; endpoints: number; endpointsIn: number } {
    const p = this.#cascade.progress(id)[0];
    if (p === undefined || p.phase !== 'live') return { up: false, links: 0, linksUp: 0, endpoints: 0, endpointsIn: 0 };
    const links = Object.values(p.counts).reduce((a, b) => a + b, 0);
    return {
      up: p.counts.up === links,
      links,
      linksUp: p.counts.up,
      endpoints: p.endpoints.wanted,
      endpointsIn: p.endpoints.in,
    };
  }

  async #failingChecks(rec: LifecycleSessionRecord): Promise<string[]> {
    const last = lastChecks(await this.#store.lifecycle.checks(rec.id));
    return [...last.entries()].filter(([, l]) => failed(l.unit) || failed(l.daemon)).map(([e]) => e);
  }

  /**
   * The readiness check (T-30min, Decision 1594 II.1.5): every link up, every endpoint in its room and seeing
   * the session's view (the chair, or the speaker: docs/cascade.md, "What everyone sees"), none failing its
   * last check. `withoutView` names how many endpoints in their rooms do not see the view yet (the cascade
   * manager's count when asked; an endpoint not in its room is counted by `endpointsIn` instead).
   */
  async #readiness(rec: LifecycleSessionRecord) {
    const c = this.#cascadeState(rec.id);
    const withoutView = this.#cascade.endpointsWithoutView(rec.id) ?? 0;
    const failing = await this.#failingChecks(rec);
    const ok = c.up && c.endpointsIn >= c.endpoints && withoutView === 0 && failing.length === 0;
    return { ok, ...c, withoutView, failingChecks: failing };
  }

  /** The condition of a deadline now: met or not, and what it saw. */
  /**
   * The condition of a deadline as of `at` (the time the timer fired: the queue may run it a little later).
   * Acknowledgements and checks carry their times; the cascade's state is as it is now.
   */
  async #condition(
    rec: LifecycleSessionRecord,
    name: DeadlineName,
    at: number,
  ): Promise<{ ok: boolean; detail: unknown }> {
    switch (name) {
      case 'notify': {
        const acked = new Set(
          (await this.#store.lifecycle.acks(rec.id)).filter((a) => Date.parse(a.at) <= at).map((a) => a.unit),
        );
        const missing = unitsOf(this.#inv, rec.endpoints).filter((u) => !acked.has(u));
        return { ok: missing.length === 0, detail: { missing } };
      }
      case 'plan': {
        const s = (await this.#store.lifecycle.steps(rec.id)).find((x) => x.step === 'plan');
        return { ok: s?.state === 'done', detail: { step: s?.state ?? 'none' } };
      }
      case 'tests': {
        // The units' own tests (II.1.4): the daemon's checks see connectivity only, not picture and sound.
        const last = lastChecks((await this.#store.lifecycle.checks(rec.id)).filter((c) => Date.parse(c.at) <= at));
        const untested = rec.endpoints.filter((e) => (last.get(e)?.unit ?? null) === null);
        const failing = [...last.entries()].filter(([, l]) => failed(l.unit) || failed(l.daemon)).map(([e]) => e);
        return {
          ok: untested.length === 0 && failing.length === 0,
          detail: { untested: untested.length, failing, untestedFirst: untested.slice(0, 20) },
        };
      }
      case 'cascade': {
        const c = this.#cascadeState(rec.id);
        return { ok: c.up, detail: c };
      }
      case 'ready': {
        const r = await this.#readiness(rec);
        return { ok: r.ok, detail: r };
      }
    }
  }

  /**
   * Evaluate a deadline: at its risk time (not met: at risk), at its due time (met or missed), or on an event
   * that may meet it. `ready` is a state at T-30min, not a milestone: an event before its risk time does not
   * meet it early.
   */
  async #evaluate(id: string, name: DeadlineName, why: 'risk' | 'due' | 'event', at: number): Promise<void> {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    const d = (await this.#store.lifecycle.deadlines(id)).find((x) => x.name === name);
    if (d === undefined || d.state !== 'pending') return;
    const due = Date.parse(d.dueAt);
    if (why === 'event' && name === 'ready' && at < Date.parse(d.riskAt)) return;
    const c = await this.#condition(entry.rec, name, at);
    if (c.ok) {
      // Past the due time (the daemon was down then) only acknowledgements carry their own times; for
      // the others nobody saw the condition at the deadline, so it is not counted as met.
      const inTime = at <= due || (name === 'notify' && (await this.#acksInTime(id, due)));
      await this.#settle(
        entry,
        d,
        inTime ? 'met' : 'missed',
        at,
        inTime ? c.detail : { ...asObject(c.detail), seenAfterDue: true },
      );
      return;
    }
    if (at >= due) {
      await this.#settle(entry, d, 'missed', at, c.detail);
      return;
    }
    if (why === 'risk' && d.atRiskAt === null) {
      await this.#store.lifecycle.setDeadline(id, { ...d, atRiskAt: iso(at), detail: c.detail });
      await this.#record('session.deadline', id, { deadline: name, state: 'at-risk', due: d.dueAt, detail: c.detail });
      this.#log?.warn(
        { session: id, deadline: name, due: d.dueAt, detail: c.detail },
        `session ${id}: deadline ${name} at risk (due ${d.dueAt}): ${timelineRule(entry.rec, name)}`,
      );
      this.safeEmit('deadline', { session: id, deadline: name, state: 'at-risk', due: d.dueAt, detail: c.detail });
    }
  }

  async #acksInTime(id: string, due: number): Promise<boolean> {
    return (await this.#store.lifecycle.acks(id)).every((a) => Date.parse(a.at) <= due);
  }

  async #settle(
    entry: Entry,
    d: LifecycleDeadlineRecord,
    state: 'met' | 'missed',
    at: number,
    detail: unknown,
  ): Promise<void> {
    const id = entry.rec.id;
    await this.#store.lifecycle.setDeadline(id, { ...d, state, at: iso(at), detail });
    await this.#record('session.deadline', id, { deadline: d.name, state, due: d.dueAt, detail });
    const fields = { session: id, deadline: d.name, due: d.dueAt, detail };
    if (state === 'missed')
      this.#log?.error(fields, `session ${id}: deadline ${d.name} missed: ${timelineRule(entry.rec, d.name)}`);
    else this.#log?.info(fields, `session ${id}: deadline ${d.name} met`);
    this.safeEmit('deadline', { session: id, deadline: d.name as DeadlineName, state, due: d.dueAt, detail });
  }

  // ---------------------------------------------------------------------------
  // Records

  async #record(type: string, subject: string, data: unknown): Promise<void> {
    await this.#store.appendEvent({ type, subject, data });
  }

  async #update(entry: Entry, patch: Parameters<Store['lifecycle']['update']>[1]): Promise<void> {
    entry.rec = await this.#store.lifecycle.update(entry.rec.id, patch);
  }

  async #setStatus(entry: Entry, status: string): Promise<void> {
    if (entry.rec.status === status) return;
    await this.#update(entry, { status });
    await this.#record('session.status', entry.rec.id, { status });
    this.safeEmit('status', { session: entry.rec.id, status });
  }

  #resolved(rec: LifecycleSessionRecord): Resolved {
    return resolveRequest(this.#inv, rec.spec as LifecycleRequest, Date.parse(rec.requestedAt));
  }

  #timelineRecords(r: Resolved, kind: 'planned' | 'adhoc') {
    const tl = timelineOf({ ...r, kind }, this.#settings);
    const steps: LifecycleStepRecord[] = tl.steps.map((s) => ({
      step: s.name,
      dueAt: iso(s.at),
      state: 'pending',
      ranAt: null,
      lateMs: null,
      detail: null,
    }));
    const deadlines: LifecycleDeadlineRecord[] = tl.deadlines.map((d) => ({
      name: d.name,
      dueAt: iso(d.due),
      riskAt: iso(d.riskAt),
      state: 'pending',
      at: null,
      atRiskAt: null,
      detail: { rule: d.rule, compressed: d.compressed },
    }));
    return { steps, deadlines };
  }

  #check(): void {
    if (this.#closed) throw new CoreError('ERR_CLOSED', 'the session lifecycle is closed');
  }

  async #view(rec: LifecycleSessionRecord): Promise<SessionView> {
    const spec = rec.spec as LifecycleRequest;
    const acks = new Map((await this.#store.lifecycle.acks(rec.id)).map((a) => [a.unit, a]));
    const master = this.#inv.mcus.find((m) => m.role === 'master')?.id;
    return {
      id: rec.id,
      kind: rec.kind,
      level: rec.root === master ? 'national' : 'provincial',
      title: rec.title,
      requester: spec.requester,
      root: rec.root,
      chair: spec.chair,
      status: rec.status,
      requestedAt: rec.requestedAt,
      startsAt: rec.startsAt,
      endsAt: rec.endsAt,
      rehearsalAt: rec.rehearsalAt,
      endpoints: rec.endpoints,
      spec,
      script: spec.script ?? [],
      scriptPos: rec.scriptPos,
      units: unitsOf(this.#inv, rec.endpoints).map((unit) => ({ unit, ack: acks.get(unit) ?? null })),
      steps: await this.#store.lifecycle.steps(rec.id),
      deadlines: await this.#store.lifecycle.deadlines(rec.id),
    };
  }

  async #get(id: string): Promise<LifecycleSessionRecord> {
    const rec = await this.#store.lifecycle.get(id);
    if (rec === undefined) throw new SessionError('SESSION_ERR_NOT_FOUND', `no scheduled session "${id}"`);
    return rec;
  }

  // ---------------------------------------------------------------------------
  // The interface

  async create(request: LifecycleRequest, actor = 'system'): Promise<SessionView> {
    this.#check();
    const now = this.#clock.wallNow();
    const r = resolveRequest(this.#inv, request, now);
    const id = request.id ?? defaultSessionId(r.startsAt);
    if ((await this.#store.lifecycle.get(id)) !== undefined || (await this.#store.getSession(id)) !== undefined)
      throw new SessionError('SESSION_ERR_EXISTS', `session "${id}" exists already`);
    const { usage } = await fitSession(this.#store, this.#inv, id, r, this.#settings);
    const { steps, deadlines } = this.#timelineRecords(r, request.kind);
    const spec: LifecycleRequest = { ...request, id, requestedAt: iso(r.requestedAt) };
    const rec = await this.#store.lifecycle.create(
      {
        id,
        kind: request.kind,
        title: request.title,
        root: r.root,
        status: 'scheduled',
        requestedAt: iso(r.requestedAt),
        startsAt: iso(r.startsAt),
        endsAt: iso(r.endsAt),
        ...(r.rehearsalAt === undefined ? {} : { rehearsalAt: iso(r.rehearsalAt) }),
        spec,
        endpoints: r.endpoints,
        usage,
      },
      steps,
      deadlines,
    );
    await this.#record('session.scheduled', id, { actor, kind: rec.kind, startsAt: rec.startsAt });
    this.#log?.info(
      { session: id, kind: rec.kind, startsAt: rec.startsAt, endpoints: rec.endpoints.length, actor },
      `session ${id} scheduled: ${rec.title}`,
    );
    const entry: Entry = { rec, timers: new Set() };
    this.#entries.set(id, entry);
    await this.#arm(entry, this.#clock.wallNow());
    return this.#view(rec);
  }

  async change(id: string, change: LifecycleChange, actor = 'system'): Promise<SessionView> {
    this.#check();
    const rec = await this.#get(id);
    if (!(ACTIVE as readonly string[]).includes(rec.status))
      throw new SessionError('SESSION_ERR_STATE', `session ${id} is ${rec.status}`);
    const keys = Object.keys(change).filter((k) => (change as Record<string, unknown>)[k] !== undefined);
    const late = keys.filter((k) => !['title', 'endsAt', 'script'].includes(k));
    if (rec.status !== 'scheduled' && late.length > 0)
      throw new SessionError(
        'SESSION_ERR_STATE',
        `session ${id} is ${rec.status}: its cascade is dialled, only title, endsAt and script may change (not ${late.join(', ')})`,
        { details: { fields: late } },
      );
    const old = rec.spec as LifecycleRequest;
    const { rehearsalAt, ...rest } = change;
    const next: LifecycleRequest = {
      ...old,
      ...rest,
      ...(rehearsalAt === undefined ? {} : rehearsalAt === null ? { rehearsalAt: undefined } : { rehearsalAt }),
    };
    if (next.rehearsalAt === undefined) delete (next as { rehearsalAt?: string }).rehearsalAt;
    const r = resolveRequest(this.#inv, next, Date.parse(rec.requestedAt));
    const { usage } = await fitSession(this.#store, this.#inv, id, r, this.#settings);
    const { steps, deadlines } = this.#timelineRecords(r, rec.kind);
    // Steps already run and deadlines already settled stay as they are; the pending ones move.
    const ran = new Set(
      (await this.#store.lifecycle.steps(id)).filter((s) => s.state !== 'pending').map((s) => s.step),
    );
    const settled = new Map((await this.#store.lifecycle.deadlines(id)).map((d) => [d.name, d]));
    const entry = this.#entries.get(id) ?? { rec, timers: new Set<TimerHandle>() };
    this.#disarm(entry);
    entry.rec = await this.#store.lifecycle.update(
      id,
      {
        title: next.title,
        root: r.root,
        startsAt: iso(r.startsAt),
        endsAt: iso(r.endsAt),
        rehearsalAt: r.rehearsalAt === undefined ? null : iso(r.rehearsalAt),
        spec: next,
        endpoints: r.endpoints,
        usage,
      },
      steps.filter((s) => !ran.has(s.step)),
      deadlines
        .filter((d) => settled.get(d.name)?.state === 'pending' || !settled.has(d.name))
        .map((d) => {
          const atRiskAt = settled.get(d.name)?.atRiskAt ?? null;
          // At risk before, and moved out of its risk window: watched again.
          return {
            ...d,
            atRiskAt: atRiskAt !== null && Date.parse(d.riskAt) <= this.#clock.wallNow() ? atRiskAt : null,
          };
        }),
    );
    this.#entries.set(id, entry);
    await this.#record('session.changed', id, { actor, fields: keys });
    this.#log?.info({ session: id, fields: keys, actor }, `session ${id} changed`);
    await this.#arm(entry, this.#clock.wallNow());
    return this.#view(entry.rec);
  }

  async cancel(id: string, actor = 'system'): Promise<SessionView> {
    this.#check();
    const rec = await this.#get(id);
    if (rec.status === 'cancelled' || rec.status === 'ended') return this.#view(rec);
    const entry = this.#entries.get(id) ?? { rec, timers: new Set<TimerHandle>() };
    this.#disarm(entry);
    this.#entries.delete(id);
    if ((await this.#store.getCascade(id)) !== undefined) await this.#cascade.end(id);
    const now = iso(this.#clock.wallNow());
    for (const s of await this.#store.lifecycle.steps(id))
      if (s.state === 'pending')
        await this.#store.lifecycle.setStep(id, { ...s, state: 'skipped', ranAt: now, detail: { cancelled: true } });
    entry.rec = await this.#store.lifecycle.update(id, { status: 'cancelled' });
    await this.#record('session.status', id, { status: 'cancelled', actor });
    this.#log?.info({ session: id, actor }, `session ${id} cancelled`);
    this.safeEmit('status', { session: id, status: 'cancelled' });
    return this.#view(entry.rec);
  }

  async get(id: string): Promise<SessionView> {
    this.#check();
    return this.#view(await this.#get(id));
  }

  async list(query: { statuses?: readonly string[]; limit?: number } = {}): Promise<SessionView[]> {
    this.#check();
    const out: SessionView[] = [];
    for (const rec of await this.#store.lifecycle.list(query)) out.push(await this.#view(rec));
    return out;
  }

  async acknowledge(id: string, unit: string, actor: string) {
    this.#check();
    const rec = await this.#get(id);
    if (!unitsOf(this.#inv, rec.endpoints).includes(unit))
      throw new SessionError('SESSION_ERR_INVALID', `unit "${unit}" has no endpoint in session ${id}`, {
        details: { path: '/unit' },
      });
    const at = this.#clock.wallNow();
    const ack = await this.#store.lifecycle.ack(id, { unit, at: iso(at), actor });
    const notify = (await this.#store.lifecycle.deadlines(id)).find((d) => d.name === 'notify');
    const withinRule = notify === undefined || Date.parse(ack.at) <= Date.parse(notify.dueAt);
    if (ack.at === iso(at)) {
      await this.#record('session.ack', id, { unit, actor, withinRule });
      this.#log?.info({ session: id, unit, actor, withinRule }, `session ${id}: ${unit} acknowledged`);
      this.#enqueue(() => this.#evaluate(id, 'notify', 'event', at));
    }
    return { ...ack, withinRule };
  }

  async report(id: string): Promise<SessionReport> {
    this.#check();
    const lc = this.#store.lifecycle;
    const session = await lc.get(id);
    const cascade = await this.#store.getCascade(id);
    if (session === undefined && cascade === undefined)
      throw new SessionError('SESSION_ERR_NOT_FOUND', `no session "${id}"`);
    return buildReport({
      id,
      inventory: this.#inv,
      ...(session === undefined ? {} : { session }),
      ...(cascade === undefined ? {} : { cascade }),
      steps: await lc.steps(id),
      deadlines: await lc.deadlines(id),
      acks: await lc.acks(id),
      checks: await lc.checks(id),
      events: await this.#store.listEvents({ subject: id, limit: 10_000 }),
      generatedAt: iso(this.#clock.wallNow()),
    });
  }

  async reportCsv(id: string): Promise<string> {
    return reportCsv(await this.report(id));
  }

  async reportHtml(id: string): Promise<string> {
    return reportHtml(await this.report(id));
  }

  async recordCheck(id: string, check: CheckInput, actor: string): Promise<EndpointChecks> {
    this.#check();
    const rec = await this.#get(id);
    if (!(ACTIVE as readonly string[]).includes(rec.status))
      throw new SessionError(
        'SESSION_ERR_STATE',
        `session ${id} is ${rec.status}: checks are recorded before and during it`,
      );
    if (!rec.endpoints.includes(check.endpoint))
      throw new SessionError('SESSION_ERR_INVALID', `endpoint "${check.endpoint}" is not in session ${id}`, {
        details: { path: '/endpoint' },
      });
    if (check.connected === undefined && check.audio === undefined && check.video === undefined)
      throw new SessionError('SESSION_ERR_INVALID', 'a check records connected, audio or video', {
        details: { path: '/connected' },
      });
    const at = this.#clock.wallNow();
    const c = await this.#store.lifecycle.addCheck(id, { ...check, source: 'unit', at: iso(at), actor });
    await this.#record('session.check', id, { endpoint: c.endpoint, failed: failed(c), actor });
    this.#enqueue(() => this.#evaluate(id, 'tests', 'event', at));
    const summary = summarize(this.#inv, id, rec.endpoints, await this.#store.lifecycle.checks(id));
    return summary.endpoints.find((e) => e.endpoint === check.endpoint)!;
  }

  async autoCheck(id: string): Promise<CheckSummary> {
    this.#check();
    const rec = await this.#get(id);
    if (!['dialing', 'ready', 'live'].includes(rec.status) || this.#chair === undefined)
      throw new SessionError(
        'SESSION_ERR_STATE',
        `session ${id} is ${rec.status}: the daemon checks a dialled session`,
      );
    await this.#runAutoChecks(rec);
    return this.checks(id);
  }

  /** What the daemon sees of each endpoint: in its MCU's room, and its path to the chair up (the chair's preview). */
  async #runAutoChecks(rec: LifecycleSessionRecord): Promise<void> {
    const at = iso(this.#clock.wallNow());
    let bad = 0;
    for (const endpoint of rec.endpoints) {
      const p = this.#chair!.preview(rec.id, endpoint);
      const notes = p.ok ? `path ${p.path.join(' -> ')}` : `${p.code}: ${p.message}`;
      if (!p.ok) bad++;
      await this.#store.lifecycle.addCheck(rec.id, {
        endpoint,
        source: 'daemon',
        connected: p.ok,
        notes,
        at,
        actor: 'daemon',
      });
    }
    this.#log?.info(
      { session: rec.id, endpoints: rec.endpoints.length, failing: bad },
      `session ${rec.id}: the daemon checked ${rec.endpoints.length} endpoints, ${bad} failing`,
    );
  }

  async checks(id: string): Promise<CheckSummary> {
    this.#check();
    const rec = await this.#get(id);
    return summarize(this.#inv, id, rec.endpoints, await this.#store.lifecycle.checks(id));
  }

  async next(id: string, options: { readonly requestId?: string; readonly actor?: string } = {}): Promise<NextResult> {
    this.#check();
    const seen = options.requestId === undefined ? undefined : this.#nextByRequest.get(options.requestId);
    if (seen !== undefined) return seen;
    // One `next` per session at a time: two technicians pressing at once bring two speakers, in order.
    const previous = this.#nextChain.get(id) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#next(id, options));
    this.#nextChain.set(id, run);
    try {
      return await run;
    } finally {
      if (this.#nextChain.get(id) === run) this.#nextChain.delete(id);
    }
  }

  async #next(id: string, options: { readonly requestId?: string; readonly actor?: string }): Promise<NextResult> {
    const rec = await this.#get(id);
    if (!['dialing', 'ready', 'live'].includes(rec.status))
      throw new SessionError(
        'SESSION_ERR_STATE',
        `session ${id} is ${rec.status}: no cascade to bring a speaker through`,
      );
    if (this.#chair === undefined) throw new SessionError('SESSION_ERR_STATE', 'no chair engine in this daemon');
    const script = (rec.spec as LifecycleRequest).script ?? [];
    const item = script[rec.scriptPos];
    if (item === undefined)
      throw new SessionError(
        'SESSION_ERR_STATE',
        `session ${id}: the script's ${script.length} speakers have all spoken`,
        {
          details: { position: rec.scriptPos, of: script.length },
        },
      );
    const chair = await this.#chair.bringToChair(id, item.endpoint, {
      ...(options.requestId === undefined ? {} : { requestId: options.requestId }),
      ...(options.actor === undefined ? {} : { actor: options.actor }),
    });
    const entry = this.#entries.get(id);
    const updated = await this.#store.lifecycle.update(id, { scriptPos: rec.scriptPos + 1 });
    if (entry !== undefined) entry.rec = updated;
    await this.#record('session.next', id, { position: rec.scriptPos + 1, endpoint: item.endpoint, ms: chair.ms });
    const out: NextResult = { session: id, item, position: rec.scriptPos + 1, of: script.length, chair };
    if (options.requestId !== undefined) {
      this.#nextByRequest.set(options.requestId, out);
      // Bounded memory: the oldest request ids go first.
      if (this.#nextByRequest.size > 1_000) this.#nextByRequest.delete(this.#nextByRequest.keys().next().value!);
    }
    return out;
  }

  readonly close = onceClose(async () => {
    this.#closed = true;
    this.#cascade.off('session', this.#onCascadeSession);
    for (const e of this.#entries.values()) this.#disarm(e);
    this.#entries.clear();
    await this.#queue;
  });
}

function timelineRule(rec: LifecycleSessionRecord, name: string): string {
  const d = timelineOf({
    kind: rec.kind,
    requestedAt: Date.parse(rec.requestedAt),
    startsAt: Date.parse(rec.startsAt),
    endsAt: Date.parse(rec.endsAt),
  }).deadlines.find((x) => x.name === name);
  return d?.rule ?? name;
}

const asObject = (v: unknown): object => (typeof v === 'object' && v !== null ? v : { value: v });
