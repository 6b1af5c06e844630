/**
 * The chair's command engine (design section 3, issue 11): bring an endpoint
 * to the chair in about one network round trip.
 *
 * A command resolves the endpoint's path (path.ts, pure) and issues every
 * step at once: each MCU on the path switches one output in one request
 * (`Conference.switchOutput`: layout, source and keyframe request), audio
 * follows where a source is muted. It has one deadline (30 s by default),
 * and everything happens inside it:
 *
 *   resolve ──ok──> issue the steps not done ──all confirmed──> ok
 *      │  ^                    │ a step failed
 *      │  └──── backoff ───────┘ (resolve again: names may have changed)
 *      └─ path down ──> ask the cascade manager to heal, wait for a change ──┘
 *   deadline: CHAIR_ERR_PATH_DOWN (naming the hop) or CHAIR_ERR_DEADLINE
 *
 * Concurrency. Nothing is shared between sessions or MCUs: a silent MCU
 * delays only the commands whose path crosses it. A newer command for the
 * same chair (session) supersedes one in flight: the older settles at once
 * with CHAIR_ERR_SUPERSEDED and issues nothing more; what it already issued
 * is ahead of the newer command's steps in the driver's lane of each output
 * (one lane per output, in issue order; the MCU takes a dialog's requests
 * in CSeq order, RFC 3261 12.2.2), so none of its steps lands after a step
 * of the newer one on the same output. A request id seen before returns the
 * first command's outcome (the work is done once).
 */
import type { Logger } from 'pino';
import {
  type Clock,
  isCascadedError,
  onceClose,
  randomHex,
  realClock,
  type TimerHandle,
  TypedEmitter,
} from '../core/index.js';
import { layoutRegions, type SwitchTiming } from '../mcu/index.js';
import { ChairError, type ChairErrorCode } from './errors.js';
import {
  type BrokenHop,
  type ChairPath,
  type ChairSession,
  type ChairStep,
  type Resolution,
  resolveDefault,
  resolvePath,
} from './path.js';
import type { ChairSource } from './source.js';

export interface ChairEngineOptions {
  readonly source: ChairSource;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** A command's deadline, ms (default 30,000: the 30-second rule of Decision 1594). */
  readonly deadlineMs?: number;
  /** First wait before a failed step is tried again, ms; it doubles up to `retryMaxMs` (default 100). */
  readonly retryFirstMs?: number;
  readonly retryMaxMs?: number;
  /** While a path is down, how often it is checked again besides on every change reported (default 1,000 ms). */
  readonly recheckMs?: number;
  /** How long a request id is remembered, ms (default 10 minutes), and how many at most (default 10,000). */
  readonly rememberMs?: number;
  readonly rememberMax?: number;
}

export interface CommandOptions {
  /** Idempotency key: the same id again returns the first command's outcome. Default: a fresh one. */
  readonly requestId?: string;
  /** This command's deadline, ms from now (default: the engine's). */
  readonly deadlineMs?: number;
  /** Who asked (for the events and the audit). */
  readonly actor?: string;
}

/** One step's outcome; times in ms after the command started. */
export interface StepOutcome {
  readonly id: string;
  readonly kind: ChairStep['kind'];
  readonly mcu: string;
  readonly role?: string;
  readonly output?: string;
  readonly sources?: readonly string[];
  readonly source?: string;
  readonly outcome: 'ok' | 'failed' | 'pending';
  readonly attempts: number;
  readonly startedMs: number;
  /** When the MCU confirmed it. */
  readonly doneMs?: number;
  /** When the MCU confirmed the keyframe request (switch steps). */
  readonly keyframeMs?: number;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface ChairResult {
  readonly command: string;
  readonly requestId: string;
  readonly session: string;
  /** The endpoint brought to the chair; null for a return to the default layout. */
  readonly endpoint: string | null;
  /** The endpoint whose picture is shown (a relayed room's: the endpoint relaying it). */
  readonly shown: string | null;
  /** MCUs of the path, from the endpoint's to the root. */
  readonly path: readonly string[];
  readonly outcome: 'ok';
  /** From the command to the last step confirmed. */
  readonly ms: number;
  /** Hops that were down during the command and healed inside its deadline. */
  readonly healed: readonly BrokenHop[];
  readonly steps: readonly StepOutcome[];
}

/** What a command would do, without doing it. */
export type ChairPreview =
  | {
      readonly ok: true;
      readonly session: string;
      readonly endpoint: string | null;
      readonly shown: string | null;
      readonly path: readonly string[];
      readonly steps: readonly ChairStep[];
    }
  | {
      readonly ok: false;
      readonly session: string;
      readonly endpoint: string | null;
      readonly code: ChairErrorCode;
      readonly message: string;
      readonly details?: unknown;
    };

export interface CommandStarted {
  readonly command: string;
  readonly requestId: string;
  readonly session: string;
  readonly endpoint: string | null;
  readonly actor?: string;
  /** Wall-clock ms. */
  readonly at: number;
}

export interface CommandStep {
  readonly command: string;
  readonly session: string;
  readonly step: StepOutcome;
}

export interface CommandFinished {
  readonly command: string;
  readonly requestId: string;
  readonly session: string;
  readonly endpoint: string | null;
  readonly actor?: string;
  /** 'ok' or the error code. */
  readonly outcome: string;
  readonly ms: number;
  readonly steps: readonly StepOutcome[];
}

export type ChairEvents = {
  started: [CommandStarted];
  step: [CommandStep];
  finished: [CommandFinished];
};

export interface ChairEngine extends TypedEmitter<ChairEvents> {
  /** Bring `endpoint` to the chair of `session`. Rejects with a ChairError. */
  bringToChair(session: string, endpoint: string, options?: CommandOptions): Promise<ChairResult>;
  /** Return the chair's screen to the session's default layout. */
  returnToDefault(session: string, options?: CommandOptions): Promise<ChairResult>;
  /** The steps a command would issue now (nothing is sent). */
  preview(session: string, endpoint: string | null): ChairPreview;
  /** Commands in flight. */
  readonly inFlight: number;
  /** In-flight commands end with CHAIR_ERR_CLOSED; later calls fail with it. Idempotent. */
  close(): Promise<void>;
}

export function createChairEngine(options: ChairEngineOptions): ChairEngine {
  return new Engine(options);
}

interface StepRecord {
  readonly step: ChairStep;
  readonly sig: string;
  state: 'running' | 'ok' | 'failed';
  readonly startedMs: number;
  attempts: number;
  doneMs?: number;
  keyframeMs?: number;
  error?: { code: string; message: string };
}

class Command {
  readonly steps = new Map<string, StepRecord>();
  /** Step ids of the latest resolution, in order. */
  current: readonly ChairStep[] = [];
  path?: ChairPath;
  finished = false;
  failures = 0;
  broken: readonly BrokenHop[] = [];
  readonly healed: BrokenHop[] = [];
  lastDown?: Extract<Resolution, { ok: false }>;
  deadlineTimer?: TimerHandle;
  retryTimer?: TimerHandle;
  recheckTimer?: TimerHandle;
  unwatch?: () => void;
  roundQueued = false;
  readonly healAsked = new Set<string>();
  /** The path's pictures taken over from the cascade manager (ChairSource.claim), once the path is known. */
  claim?: { done(ok: boolean): void };
  resolve!: (r: ChairResult) => void;
  reject!: (e: Error) => void;
  readonly promise: Promise<ChairResult>;

  constructor(
    readonly id: string,
    readonly requestId: string,
    readonly session: string,
    readonly endpoint: string | null,
    readonly actor: string | undefined,
    readonly t0: number,
    readonly deadlineAt: number,
    /** The speaker on the chair's screen before this command (for muting). */
    readonly previous: string | null,
  ) {
    this.promise = new Promise<ChairResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A caller that dropped the promise (a superseded command nobody awaits) must not crash the process.
    this.promise.catch(() => {});
  }
}

const signature = (s: ChairStep) =>
  s.kind === 'switch'
    ? `${s.room}\n${s.output}\n${s.layout}\n${s.sources.join('\n')}`
    : `${s.room}\n${s.kind}\n${s.source}`;

const hopKey = (h: BrokenHop) => ('mcu' in h ? `mcu:${h.mcu}` : `link:${h.child}>${h.parent}`);

/** MCU errors that another attempt cannot fix: the command fails at once. */
function permanent(err: unknown): boolean {
  if (!isCascadedError(err)) return true;
  switch (err.code) {
    case 'MCU_ERR_INVALID_ARGUMENT':
    case 'MCU_ERR_AUTH':
    case 'MCU_ERR_PROTOCOL':
      return true;
    case 'MCU_ERR_REJECTED': {
      const d = err.details as { msmlResponse?: number; sipStatus?: number } | undefined;
      // MSML 404: a connection the MCU does not know (a link redialled under another name, an endpoint that left):
      // resolving again finds the new name or the reason. Other MSML 4xx: our request is wrong for this MCU.
      if (d?.msmlResponse !== undefined) return d.msmlResponse >= 400 && d.msmlResponse < 500 && d.msmlResponse !== 404;
      const s = d?.sipStatus ?? 0;
      return s >= 400 && s < 500 && s !== 408 && s !== 481 && s !== 491;
    }
    default:
      return false;
  }
}

function describe(err: unknown): { code: string; message: string } {
  if (isCascadedError(err)) return { code: err.code, message: err.message };
  return { code: 'ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

class Engine extends TypedEmitter<ChairEvents> implements ChairEngine {
  readonly #source: ChairSource;
  readonly #clock: Clock;
  readonly #log?: Logger;
  readonly #deadlineMs: number;
  readonly #retryFirstMs: number;
  readonly #retryMaxMs: number;
  readonly #recheckMs: number;
  readonly #rememberMs: number;
  readonly #rememberMax: number;
  /** The command in flight per session (one chair per session). */
  readonly #current = new Map<string, Command>();
  /** The endpoint on each session's chair screen as this engine last put it (null: the default layout). */
  readonly #selection = new Map<string, string | null>();
  /**
   * Request id -> what it asked for and its outcome, oldest first; `cmd` while it runs. A finished command's
   * state is let go: up to `rememberMax` entries are kept, and each holds only its key and result.
   */
  readonly #requests = new Map<
    string,
    { readonly key: string; readonly at: number; readonly promise: Promise<ChairResult>; cmd?: Command }
  >();
  readonly #running = new Set<Command>();
  #closed = false;
  readonly close: () => Promise<void>;

  constructor(o: ChairEngineOptions) {
    super();
    this.#source = o.source;
    this.#clock = o.clock ?? realClock;
    this.#log = o.logger?.child({ module: 'chair' });
    this.#deadlineMs = o.deadlineMs ?? 30_000;
    this.#retryFirstMs = o.retryFirstMs ?? 100;
    this.#retryMaxMs = o.retryMaxMs ?? 2_000;
    this.#recheckMs = o.recheckMs ?? 1_000;
    this.#rememberMs = o.rememberMs ?? 600_000;
    this.#rememberMax = o.rememberMax ?? 10_000;
    this.onListenerError((err, event) => this.#log?.error({ err, event }, 'chair listener threw'));
    this.close = onceClose(async () => {
      this.#closed = true;
      for (const cmd of [...this.#running])
        this.#fail(cmd, new ChairError('CHAIR_ERR_CLOSED', 'the chair engine closed while the command ran'));
    });
  }

  get inFlight(): number {
    return this.#running.size;
  }

  bringToChair(session: string, endpoint: string, options: CommandOptions = {}): Promise<ChairResult> {
    return this.#command(session, endpoint, options);
  }

  returnToDefault(session: string, options: CommandOptions = {}): Promise<ChairResult> {
    return this.#command(session, null, options);
  }

  preview(session: string, endpoint: string | null): ChairPreview {
    const s = this.#source.session(session);
    if (s === undefined)
      return { ok: false, session, endpoint, code: 'CHAIR_ERR_NO_SESSION', message: `no live session ${session}` };
    const r = this.#resolve(s, endpoint, this.#previous(session));
    if (!r.ok) return { ok: false, session, endpoint, code: r.code, message: r.message, details: r.details };
    return {
      ok: true,
      session,
      endpoint,
      shown: endpoint === null ? null : r.path.shown,
      path: r.path.mcus,
      steps: r.path.steps,
    };
  }

  #previous(session: string): string | null {
    const mine = this.#selection.get(session);
    if (mine !== undefined) return mine;
    return this.#source.selection?.(session) ?? null;
  }

  #resolve(s: ChairSession, endpoint: string | null, previous: string | null): Resolution {
    const o = this.#source.observed(s);
    if (endpoint !== null) return resolvePath(s, o, endpoint, previous);
    const d = resolveDefault(s, o, layoutRegions(s.defaultLayout).length);
    if (!d.ok) return d;
    return {
      ok: true,
      path: { session: s.id, endpoint: '', shown: '', mcu: s.root, mcus: [s.root], steps: [d.step] },
    };
  }

  #command(session: string, endpoint: string | null, options: CommandOptions): Promise<ChairResult> {
    if (this.#closed) return Promise.reject(new ChairError('CHAIR_ERR_CLOSED', 'the chair engine is closed'));
    const now = this.#clock.now();
    const key = `${session}\n${endpoint ?? ''}`;
    this.#forgetOld(now);
    const requestId = options.requestId ?? randomHex(8);
    const seen = this.#requests.get(requestId);
    if (seen !== undefined) {
      if (seen.key === key) return seen.promise;
      return Promise.reject(
        new ChairError('CHAIR_ERR_REQUEST_CONFLICT', `request id ${requestId} was used for another command`, {
          details: { requestId, session, endpoint },
        }),
      );
    }
    const before = this.#current.get(session);
    const deadlineMs = options.deadlineMs ?? this.#deadlineMs;
    const cmd = new Command(
      randomHex(8),
      requestId,
      session,
      endpoint,
      options.actor,
      now,
      now + deadlineMs,
      this.#previous(session),
    );
    this.#requests.set(requestId, { key, at: now, promise: cmd.promise, cmd });
    if (before !== undefined && !before.finished)
      this.#fail(
        before,
        new ChairError('CHAIR_ERR_SUPERSEDED', `a newer command for the chair of ${session} arrived`, {
          details: { session, by: cmd.requestId },
        }),
      );
    this.#current.set(session, cmd);
    this.#running.add(cmd);
    cmd.deadlineTimer = this.#clock.setTimeout(() => this.#expire(cmd), deadlineMs);
    this.safeEmit('started', {
      command: cmd.id,
      requestId,
      session,
      endpoint,
      ...(cmd.actor === undefined ? {} : { actor: cmd.actor }),
      at: this.#clock.wallNow(),
    });
    this.#round(cmd);
    return cmd.promise;
  }

  #forgetOld(now: number): void {
    for (const [id, r] of this.#requests) {
      if (this.#requests.size <= this.#rememberMax && now - r.at < this.#rememberMs) break;
      if (r.cmd !== undefined) break;
      this.#requests.delete(id);
    }
  }

  /** Resolve again and issue what is not done; called at the start, after a failure's backoff, on a change. */
  #round(cmd: Command): void {
    cmd.roundQueued = false;
    if (cmd.finished) return;
    const s = this.#source.session(cmd.session);
    if (s === undefined) {
      this.#fail(cmd, new ChairError('CHAIR_ERR_NO_SESSION', `no live session ${cmd.session}`));
      return;
    }
    const r = this.#resolve(s, cmd.endpoint, cmd.previous);
    if (cmd.claim === undefined && (r.ok || r.code === 'CHAIR_ERR_PATH_DOWN'))
      cmd.claim = this.#source.claim?.(cmd.session, cmd.endpoint);
    if (!r.ok) {
      if (r.code !== 'CHAIR_ERR_PATH_DOWN') {
        this.#fail(cmd, new ChairError(r.code, r.message, { details: r.details }));
        return;
      }
      this.#pathDown(cmd, s, r);
      return;
    }
    if (cmd.broken.length > 0) {
      cmd.healed.push(...cmd.broken);
      cmd.broken = [];
      cmd.lastDown = undefined;
    }
    cmd.path = r.path;
    cmd.current = r.path.steps;
    for (const step of r.path.steps) {
      const sig = signature(step);
      const rec = cmd.steps.get(step.id);
      if (rec !== undefined && rec.sig === sig && rec.state !== 'failed') continue;
      this.#start(cmd, step, sig, rec);
    }
    this.#checkDone(cmd);
  }

  #pathDown(cmd: Command, s: ChairSession, r: Extract<Resolution, { ok: false }>): void {
    cmd.broken = r.broken ?? [];
    cmd.lastDown = r;
    for (const hop of cmd.broken) {
      const k = hopKey(hop);
      if (cmd.healAsked.has(k)) continue;
      cmd.healAsked.add(k);
      this.#log?.info({ session: cmd.session, endpoint: cmd.endpoint, hop }, 'chair path down: asking for a heal');
      this.#source.heal?.(cmd.session, hop);
    }
    if (cmd.unwatch === undefined) {
      const mcus = new Set<string>();
      for (const h of cmd.broken) {
        if ('mcu' in h) mcus.add(h.mcu);
        else {
          mcus.add(h.child);
          mcus.add(h.parent);
        }
      }
      cmd.unwatch = this.#source.watch(s, [...mcus], () => this.#queueRound(cmd));
    }
    this.#clock.clearTimeout(cmd.recheckTimer);
    cmd.recheckTimer = this.#clock.setTimeout(() => this.#round(cmd), this.#recheckMs);
  }

  /** Many roster notifications in a burst make one round. */
  #queueRound(cmd: Command): void {
    if (cmd.roundQueued || cmd.finished) return;
    cmd.roundQueued = true;
    queueMicrotask(() => this.#round(cmd));
  }

  #start(cmd: Command, step: ChairStep, sig: string, before: StepRecord | undefined): void {
    const rec: StepRecord = {
      step,
      sig,
      state: 'running',
      startedMs: before?.startedMs ?? this.#clock.now() - cmd.t0,
      attempts: (before?.attempts ?? 0) + 1,
    };
    cmd.steps.set(step.id, rec);
    const c = this.#source.conference(step.mcu, step.room);
    let p: Promise<SwitchTiming | undefined>;
    if (c === undefined)
      p = Promise.reject(new ChairError('CHAIR_ERR_NO_SESSION', `no room ${step.room} on ${step.mcu}`));
    else if (step.kind === 'switch') p = c.switchOutput(step.output, step.layout, step.sources);
    else p = (step.kind === 'mute' ? c.mute(step.source) : c.unmute(step.source)).then(() => undefined);
    const issued = this.#clock.now();
    p.then(
      (timing) => {
        if (cmd.finished || cmd.steps.get(step.id) !== rec) return;
        rec.state = 'ok';
        rec.doneMs = this.#clock.now() - cmd.t0;
        if (timing?.keyframeMs !== null && timing !== undefined)
          rec.keyframeMs = Math.round((issued - cmd.t0 + timing.keyframeMs) * 100) / 100;
        this.#emitStep(cmd, rec);
        this.#checkDone(cmd);
      },
      (err: unknown) => {
        if (cmd.finished || cmd.steps.get(step.id) !== rec) return;
        rec.state = 'failed';
        rec.error = describe(err);
        this.#emitStep(cmd, rec);
        if (permanent(err)) {
          this.#fail(
            cmd,
            new ChairError('CHAIR_ERR_REJECTED', `${step.mcu} refused ${step.id}: ${rec.error.message}`, {
              cause: err,
              details: { step: step.id, mcu: step.mcu, error: rec.error },
            }),
          );
          return;
        }
        this.#retryLater(cmd);
      },
    );
  }

  /** A step's outcome to the `step` listeners, built only when there are any (three or more per command). */
  #emitStep(cmd: Command, rec: StepRecord): void {
    if (this.listenerCount('step') > 0)
      this.safeEmit('step', { command: cmd.id, session: cmd.session, step: outcomeOf(rec) });
  }

  #retryLater(cmd: Command): void {
    if (cmd.retryTimer !== undefined) return;
    const wait = Math.min(this.#retryMaxMs, this.#retryFirstMs * 2 ** cmd.failures++);
    cmd.retryTimer = this.#clock.setTimeout(() => {
      cmd.retryTimer = undefined;
      this.#round(cmd);
    }, wait);
  }

  #checkDone(cmd: Command): void {
    if (cmd.finished || cmd.current.length === 0) return;
    for (const step of cmd.current) {
      const rec = cmd.steps.get(step.id);
      if (rec?.state !== 'ok' || rec.sig !== signature(step)) return;
    }
    this.#succeed(cmd);
  }

  #outcomes(cmd: Command): StepOutcome[] {
    const ids = new Set(cmd.current.map((s) => s.id));
    const out: StepOutcome[] = [];
    for (const rec of cmd.steps.values())
      if (ids.has(rec.step.id) || cmd.current.length === 0) out.push(outcomeOf(rec));
    return out;
  }

  #end(cmd: Command): number {
    cmd.finished = true;
    this.#running.delete(cmd);
    const remembered = this.#requests.get(cmd.requestId);
    if (remembered?.cmd === cmd) remembered.cmd = undefined;
    if (this.#current.get(cmd.session) === cmd) this.#current.delete(cmd.session);
    this.#clock.clearTimeout(cmd.deadlineTimer);
    this.#clock.clearTimeout(cmd.retryTimer);
    this.#clock.clearTimeout(cmd.recheckTimer);
    cmd.unwatch?.();
    return Math.round((this.#clock.now() - cmd.t0) * 100) / 100;
  }

  #succeed(cmd: Command): void {
    const ms = this.#end(cmd);
    const steps = this.#outcomes(cmd);
    const path = cmd.path!;
    const result: ChairResult = {
      command: cmd.id,
      requestId: cmd.requestId,
      session: cmd.session,
      endpoint: cmd.endpoint,
      shown: cmd.endpoint === null ? null : path.shown,
      path: path.mcus,
      outcome: 'ok',
      ms,
      healed: cmd.healed,
      steps,
    };
    this.#selection.set(cmd.session, cmd.endpoint);
    cmd.claim?.done(true);
    this.#log?.info(
      { session: cmd.session, endpoint: cmd.endpoint, requestId: cmd.requestId, ms, path: path.mcus },
      cmd.endpoint === null
        ? `chair of ${cmd.session} back to its default layout in ${ms} ms`
        : `${cmd.endpoint} brought to the chair of ${cmd.session} in ${ms} ms (${path.mcus.join(' -> ')})`,
    );
    this.#finished(cmd, 'ok', ms, steps);
    cmd.resolve(result);
  }

  #fail(cmd: Command, err: ChairError): void {
    if (cmd.finished) return;
    const ms = this.#end(cmd);
    const steps = this.#outcomes(cmd);
    const details = (err.details ?? {}) as Record<string, unknown>;
    cmd.claim?.done(false);
    const full = new ChairError(err.code, err.message, {
      cause: err.cause,
      details: { ...details, session: cmd.session, endpoint: cmd.endpoint, requestId: cmd.requestId, ms, steps },
    });
    const level = err.code === 'CHAIR_ERR_SUPERSEDED' ? 'info' : 'warn';
    this.#log?.[level](
      { session: cmd.session, endpoint: cmd.endpoint, requestId: cmd.requestId, code: err.code, ms },
      `chair command for ${cmd.endpoint ?? 'the default layout'} in ${cmd.session}: ${err.message}`,
    );
    this.#finished(cmd, err.code, ms, steps);
    cmd.reject(full);
  }

  #finished(cmd: Command, outcome: string, ms: number, steps: readonly StepOutcome[]): void {
    this.safeEmit('finished', {
      command: cmd.id,
      requestId: cmd.requestId,
      session: cmd.session,
      endpoint: cmd.endpoint,
      ...(cmd.actor === undefined ? {} : { actor: cmd.actor }),
      outcome,
      ms,
      steps,
    });
  }

  #expire(cmd: Command): void {
    if (cmd.finished) return;
    const down = cmd.lastDown;
    if (down !== undefined) {
      this.#fail(
        cmd,
        new ChairError('CHAIR_ERR_PATH_DOWN', `${down.message}; not healed within the deadline`, {
          details: { ...down.details, broken: down.broken },
        }),
      );
      return;
    }
    const pending = cmd.current.filter((s) => cmd.steps.get(s.id)?.state !== 'ok').map((s) => s.id);
    this.#fail(
      cmd,
      new ChairError(
        'CHAIR_ERR_DEADLINE',
        `not every step was confirmed within ${Math.round(cmd.deadlineAt - cmd.t0)} ms (${pending.join(', ') || 'path not resolved'})`,
        { details: { pending } },
      ),
    );
  }
}

function outcomeOf(rec: StepRecord): StepOutcome {
  const s = rec.step;
  return {
    id: s.id,
    kind: s.kind,
    mcu: s.mcu,
    ...(s.kind === 'switch' ? { role: s.role, output: s.output, sources: s.sources } : { source: s.source }),
    outcome: rec.state === 'running' ? 'pending' : rec.state,
    attempts: rec.attempts,
    startedMs: Math.round(rec.startedMs * 100) / 100,
    ...(rec.doneMs === undefined ? {} : { doneMs: Math.round(rec.doneMs * 100) / 100 }),
    ...(rec.keyframeMs === undefined ? {} : { keyframeMs: rec.keyframeMs }),
    ...(rec.error === undefined ? {} : { error: rec.error }),
  };
}
