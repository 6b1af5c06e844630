/**
 * The standards-based MCU driver (design section 2): a control dialog (INVITE
 * without media), OPTIONS for health, REFER for cascade links (RFC 3515, RFC
 * 4579), the conference event package for roster and link state (RFC 4575),
 * INFO with MSML for layouts and streams (RFC 5707) and picture fast update
 * (RFC 5168).
 *
 * Supervision: from the first connect() until close(), a timer sends OPTIONS
 * every healthIntervalMs; `healthFailures` failures in a row, the end of the
 * control dialog or of the subscription mark the MCU down, and the next ticks
 * try to re-establish both (the MCU's full roster state is then taken afresh,
 * never trusted from memory).
 */
import type { Logger } from 'pino';
import { type Clock, isCascadedError, onceClose, realClock, type TimerHandle, TypedEmitter } from '../core/index.js';
import {
  type Dialog,
  parseUri,
  SipResponseError,
  type Subscription,
  type TransportName,
  type UserAgent,
} from '../sip/index.js';
import {
  CONFERENCE_INFO_CONTENT_TYPE,
  type ConferenceInfo,
  type ConferenceUser,
  parseConferenceInfo,
} from './conference-info.js';
import { McuError } from './errors.js';
import { isLayoutName, type LayoutName } from './layouts.js';
import { buildPictureFastUpdate, MEDIA_CONTROL_CONTENT_TYPE } from './media-control.js';
import { buildMsml, MSML_CONTENT_TYPE, type MsmlCommand, parseResult } from './msml.js';
import type { LinkState, McuDriver, McuDriverEvents, McuHealth, RosterEntry } from './types.js';

export interface SipMsmlDriverOptions {
  /** The user agent to send from; shared by every driver of the daemon and owned by the caller. */
  readonly ua: UserAgent;
  readonly mcu: { readonly id: string; readonly uri: string };
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Deadline of one control request (INFO, OPTIONS, hang-up), ms. */
  readonly requestTimeoutMs?: number;
  /** Deadline of establishing the control dialog and the first full roster, ms. */
  readonly connectTimeoutMs?: number;
  /** Deadline of dialing a cascade link (REFER until the final NOTIFY), ms. */
  readonly dialTimeoutMs?: number;
  readonly healthIntervalMs?: number;
  /** Consecutive OPTIONS failures that mark the MCU down. */
  readonly healthFailures?: number;
  /** Transport for the conference subscription; default TCP when the user agent listens on it (a national roster exceeds a UDP datagram). */
  readonly subscribeTransport?: TransportName;
  /** Subscription duration asked for, s. */
  readonly subscribeExpires?: number;
}

const DEFAULTS = {
  requestTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  dialTimeoutMs: 30_000,
  healthIntervalMs: 5_000,
  healthFailures: 3,
  subscribeExpires: 600,
};
const BUSY = new Set([486, 503, 600]);

export function createSipMsmlDriver(options: SipMsmlDriverOptions): McuDriver {
  return new SipMsmlDriver(options);
}

class SipMsmlDriver extends TypedEmitter<McuDriverEvents> implements McuDriver {
  readonly mcuId: string;
  readonly uri: string;
  readonly #ua: UserAgent;
  readonly #log?: Logger;
  readonly #clock: Clock;
  readonly #o: typeof DEFAULTS;
  readonly #subUri: string;
  #health: McuHealth;
  readonly #roster = new Map<string, RosterEntry>();
  #version = -1;
  #control?: Dialog;
  #sub?: Subscription;
  #establishing?: Promise<void>;
  #supervising = false;
  #healthTimer?: TimerHandle;
  #failures = 0;
  #closed = false;
  /** Tail of the in-dialog request queue (see #serial). */
  #tail: Promise<unknown> = Promise.resolve();
  /** Resolves the wait for the first full roster of the current subscription. */
  #onFullState?: () => void;
  readonly close: () => Promise<void>;

  constructor(opts: SipMsmlDriverOptions) {
    super();
    if (parseUri(opts.mcu.uri) === undefined)
      throw new McuError('MCU_ERR_INVALID_ARGUMENT', `MCU ${opts.mcu.id}: not a SIP URI: ${opts.mcu.uri}`);
    this.mcuId = opts.mcu.id;
    this.uri = opts.mcu.uri;
    this.#ua = opts.ua;
    this.#log = opts.logger?.child({ module: 'mcu', mcu: opts.mcu.id });
    this.#clock = opts.clock ?? realClock;
    this.#o = {
      requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      dialTimeoutMs: opts.dialTimeoutMs ?? DEFAULTS.dialTimeoutMs,
      healthIntervalMs: opts.healthIntervalMs ?? DEFAULTS.healthIntervalMs,
      healthFailures: opts.healthFailures ?? DEFAULTS.healthFailures,
      subscribeExpires: opts.subscribeExpires ?? DEFAULTS.subscribeExpires,
    };
    const transport = opts.subscribeTransport ?? (opts.ua.listening.some((l) => l.transport === 'tcp') ? 'tcp' : 'udp');
    this.#subUri = transport === 'tcp' ? `${this.uri};transport=tcp` : this.uri;
    this.#health = { up: false, reason: 'not connected', since: this.#clock.wallNow() };
    this.onListenerError((err, event) => this.#log?.error({ err, event }, 'MCU driver listener threw'));
    this.close = onceClose(() => this.#close());
  }

  get health(): McuHealth {
    return this.#health;
  }

  get roster(): ReadonlyMap<string, RosterEntry> {
    return this.#roster;
  }

  // ---- connection and supervision ------------------------------------------

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (!this.#supervising) {
      this.#supervising = true;
      this.#scheduleHealth();
    }
    if (this.#health.up) return Promise.resolve();
    return this.#establishOnce();
  }

  #establishOnce(): Promise<void> {
    this.#establishing ??= this.#establish().finally(() => {
      this.#establishing = undefined;
    });
    return this.#establishing;
  }

  async #establish(): Promise<void> {
    const deadline = this.#clock.now() + this.#o.connectTimeoutMs;
    const left = () => Math.max(1, deadline - this.#clock.now());
    const abort = new AbortController();
    let control: Dialog | undefined;
    let sub: Subscription | undefined;
    // Set when we give up: a dialog or subscription that arrives after that is ended at once, nobody owns it.
    let abandoned = false;
    try {
      const inviting = this.#ua.invite(this.uri, {
        signal: abort.signal,
        headers: { Accept: `${MSML_CONTENT_TYPE}, ${MEDIA_CONTROL_CONTENT_TYPE}` },
      });
      inviting.then(
        (d) => {
          if (abandoned) d.bye().catch(() => {});
        },
        () => {},
      );
      control = await this.#deadline(inviting, left(), 'control INVITE', () => abort.abort());
      const full = new Promise<void>((resolve) => {
        this.#onFullState = resolve;
      });
      this.#version = -1;
      const subscribing = this.#ua.subscribe(this.#subUri, {
        event: 'conference',
        accept: CONFERENCE_INFO_CONTENT_TYPE,
        expires: this.#o.subscribeExpires,
      });
      subscribing.then(
        (s) => {
          if (abandoned) s.unsubscribe().catch(() => {});
        },
        () => {},
      );
      sub = await this.#deadline(subscribing, left(), 'conference SUBSCRIBE');
      // A first NOTIFY that raced ahead of the 2xx is held by the stack for this listener (RFC 6665 4.1.2.4).
      this.#attachSubscription(sub);
      await this.#deadline(full, left(), 'full conference state');
    } catch (err) {
      abandoned = true;
      this.#onFullState = undefined;
      control?.bye().catch(() => {});
      sub?.unsubscribe().catch(() => {});
      const e = this.#mapError(err, 'connect');
      this.#setHealth(false, e.message);
      throw e;
    }
    if (this.#closed) {
      control.bye().catch(() => {});
      sub.unsubscribe().catch(() => {});
      throw this.#closedError();
    }
    this.#control = control;
    this.#sub = sub;
    this.#failures = 0;
    control.on('terminated', (reason) => {
      if (this.#control === control) this.#lost(`control dialog ended (${reason})`);
    });
    control.on('request', (req) => {
      // An MCU may probe the dialog with OPTIONS or send INFO events: acknowledge, we drive from the roster.
      req.respond(req.method === 'OPTIONS' || req.method === 'INFO' ? 200 : 405);
    });
    this.#setHealth(true, 'connected');
  }

  #attachSubscription(sub: Subscription): void {
    sub.on('notify', (n) => {
      if (n.body.length === 0) return;
      let info: ConferenceInfo;
      try {
        info = parseConferenceInfo(n.body);
      } catch (err) {
        this.#log?.warn({ err }, 'unreadable conference-info ignored');
        return;
      }
      this.#applyConferenceInfo(info, sub);
    });
    sub.on('terminated', (reason) => {
      if (this.#sub === sub) this.#lost(`conference subscription ended (${reason})`);
    });
  }

  /** RFC 4575 4.1: apply a full document, or a partial one that follows the last version; else ask for the full state. */
  #applyConferenceInfo(info: ConferenceInfo, sub: Subscription): void {
    if (info.state === 'full') {
      const old = new Set(this.#roster.keys());
      this.#roster.clear();
      for (const u of info.users) if (u.state !== 'deleted') this.#roster.set(u.entity, toEntry(u));
      this.#version = info.version;
      const removed = [...old].filter((e) => !this.#roster.has(e));
      this.safeEmit('roster', { full: true, version: info.version, changed: [...this.#roster.values()], removed });
      for (const e of removed) this.#emitLinkGone(e);
      for (const u of this.#roster.values()) if (u.kind === 'link') this.#emitLink(u);
      this.#onFullState?.();
      this.#onFullState = undefined;
      return;
    }
    if (this.#version < 0 || info.version <= this.#version) return; // before the full state, or a duplicate
    if (info.version !== this.#version + 1) {
      this.#log?.warn({ have: this.#version, got: info.version }, 'conference-info version gap: asking for full state');
      this.#version = -1;
      sub.refresh().catch(() => {});
      return;
    }
    this.#version = info.version;
    const changed: RosterEntry[] = [];
    const removed: string[] = [];
    for (const u of info.users) {
      const was = this.#roster.get(u.entity);
      if (u.state === 'deleted') {
        if (was !== undefined) {
          this.#roster.delete(u.entity);
          removed.push(u.entity);
          if (was.kind === 'link') this.#emitLinkGone(u.entity);
        }
        continue;
      }
      const entry = toEntry(u);
      this.#roster.set(u.entity, entry);
      changed.push(entry);
      if (entry.kind === 'link' && (was === undefined || was.status !== entry.status)) this.#emitLink(entry);
    }
    this.safeEmit('roster', { full: false, version: info.version, changed, removed });
  }

  #emitLink(e: RosterEntry): void {
    const state = e.status === 'connected' ? 'connected' : e.status === 'dialing-out' ? 'dialing' : 'disconnected';
    this.safeEmit('link', { target: e.entity, state });
  }

  #emitLinkGone(target: string): void {
    this.safeEmit('link', { target, state: 'disconnected', reason: 'left the conference' });
  }

  #lost(reason: string): void {
    const control = this.#control;
    const sub = this.#sub;
    this.#control = undefined;
    this.#sub = undefined;
    this.#version = -1;
    control?.bye().catch(() => {});
    sub?.unsubscribe().catch(() => {});
    this.#setHealth(false, reason);
  }

  #setHealth(up: boolean, reason: string): void {
    if (this.#health.up === up && (up || this.#health.reason === reason)) return;
    const changed = this.#health.up !== up;
    this.#health = { up, reason, since: this.#clock.wallNow() };
    if (changed) {
      if (up) this.#log?.info({ reason }, 'MCU up');
      else this.#log?.warn({ reason }, 'MCU down');
    }
    this.safeEmit('health', this.#health);
  }

  #scheduleHealth(): void {
    this.#healthTimer = this.#clock.setTimeout(() => {
      this.#healthTick().finally(() => {
        if (!this.#closed) this.#scheduleHealth();
      });
    }, this.#o.healthIntervalMs);
  }

  /** OPTIONS inside the control dialog: proves the MCU answers and still knows our dialog (481 after a restart). */
  async #healthTick(): Promise<void> {
    if (this.#closed) return;
    const control = this.#control;
    if (control === undefined) {
      await this.#establishOnce().catch(() => {});
      return;
    }
    try {
      await this.#serial(control, (c) => c.request('OPTIONS'), this.#o.requestTimeoutMs, 'OPTIONS');
      this.#failures = 0;
    } catch (err) {
      if (this.#control !== control) return;
      if (err instanceof SipResponseError && err.sipStatus === 481) {
        this.#lost('control dialog unknown to the MCU (481): it restarted');
        return;
      }
      this.#healthFailed(this.#mapError(err, 'OPTIONS').message);
    }
  }

  #healthFailed(reason: string): void {
    this.#failures++;
    this.#log?.debug({ failures: this.#failures, reason }, 'health check failed');
    if (this.#failures >= this.#o.healthFailures && this.#control !== undefined)
      this.#lost(`${this.#failures} health checks failed: ${reason}`);
  }

  // ---- control requests ----------------------------------------------------

  async dialLink(target: string): Promise<LinkState> {
    if (parseUri(target) === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `not a SIP URI: ${target}`);
    const control = this.#ready();
    this.safeEmit('link', { target, state: 'dialing' });
    let outcome: { status: number; reason: string };
    try {
      const sub = await this.#serial(control, (c) => c.refer(target), this.#o.dialTimeoutMs, `REFER to ${target}`);
      outcome = await this.#deadline(sub.outcome, this.#o.dialTimeoutMs, `dialing ${target}`);
    } catch (err) {
      const e = this.#mapError(err, `dial ${target}`);
      this.safeEmit('link', { target, state: 'failed', reason: e.message });
      throw e;
    }
    if (outcome.status >= 200 && outcome.status < 300) {
      const state: LinkState = { target, state: 'connected' };
      this.safeEmit('link', state);
      return state;
    }
    const code = BUSY.has(outcome.status) ? 'MCU_ERR_BUSY' : 'MCU_ERR_REJECTED';
    const message = `MCU ${this.mcuId}: dialing ${target} failed: ${outcome.status} ${outcome.reason}`;
    this.safeEmit('link', { target, state: 'failed', reason: message, sipStatus: outcome.status });
    throw new McuError(code, message, { details: { mcu: this.mcuId, target, sipStatus: outcome.status } });
  }

  async hangUpLink(target: string): Promise<void> {
    if (parseUri(target) === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `not a SIP URI: ${target}`);
    const control = this.#ready();
    // RFC 4579 5.6: a REFER whose Refer-To carries method=BYE asks the focus to remove that participant.
    let outcome: { status: number; reason: string };
    try {
      const sub = await this.#serial(
        control,
        (c) => c.refer(`<${target};method=BYE>`),
        this.#o.requestTimeoutMs,
        `hang up ${target}`,
      );
      outcome = await this.#deadline(sub.outcome, this.#o.requestTimeoutMs, `hang up ${target}`);
    } catch (err) {
      throw this.#mapError(err, `hang up ${target}`);
    }
    if (outcome.status < 200 || outcome.status >= 300)
      throw new McuError(
        'MCU_ERR_REJECTED',
        `MCU ${this.mcuId}: hang-up of ${target}: ${outcome.status} ${outcome.reason}`,
        {
          details: { mcu: this.mcuId, target, sipStatus: outcome.status },
        },
      );
  }

  setLayout(output: string, layout: LayoutName): Promise<void> {
    if (!isLayoutName(layout))
      return Promise.reject(new McuError('MCU_ERR_INVALID_ARGUMENT', `unknown layout ${String(layout)}`));
    return this.#msml({ op: 'layout', output, layout });
  }

  showSource(output: string, region: number, source: string): Promise<void> {
    if (!Number.isInteger(region) || region < 1)
      return Promise.reject(new McuError('MCU_ERR_INVALID_ARGUMENT', `region must be an integer >= 1, got ${region}`));
    return this.#msml({ op: 'show', output, region, source });
  }

  mute(source: string): Promise<void> {
    return this.#msml({ op: 'audio', source, muted: true });
  }

  unmute(source: string): Promise<void> {
    return this.#msml({ op: 'audio', source, muted: false });
  }

  async requestKeyframe(output: string): Promise<void> {
    await this.#info(MEDIA_CONTROL_CONTENT_TYPE, buildPictureFastUpdate(output), `picture fast update of ${output}`);
  }

  async #msml(cmd: MsmlCommand): Promise<void> {
    const res = await this.#info(MSML_CONTENT_TYPE, buildMsml(cmd), `MSML ${cmd.op}`);
    const result = parseResult(res.body);
    if (result.response !== 200)
      throw new McuError(
        'MCU_ERR_REJECTED',
        `MCU ${this.mcuId}: MSML ${cmd.op}: ${result.response} ${result.description ?? ''}`.trim(),
        {
          details: { mcu: this.mcuId, msmlResponse: result.response, description: result.description },
        },
      );
  }

  async #info(contentType: string, body: string, what: string) {
    const control = this.#ready();
    try {
      return await this.#serial(
        control,
        (c) => c.request('INFO', { contentType, body }),
        this.#o.requestTimeoutMs,
        what,
      );
    } catch (err) {
      // 481: the MCU no longer knows our dialog (it restarted): re-establish from its full state.
      if (err instanceof SipResponseError && err.sipStatus === 481 && this.#control === control)
        this.#lost('control dialog unknown to the MCU (481)');
      throw this.#mapError(err, what);
    }
  }

  #ready(): Dialog {
    if (this.#closed) throw this.#closedError();
    const c = this.#control;
    if (c === undefined || !this.#health.up)
      throw new McuError('MCU_ERR_DOWN', `MCU ${this.mcuId} is down: ${this.#health.reason}`, {
        details: { mcu: this.mcuId, reason: this.#health.reason },
      });
    return c;
  }

  // ---- helpers -------------------------------------------------------------

  /**
   * One request at a time in the control dialog: over UDP a later CSeq may
   * overtake an earlier one, and the MCU must then refuse the earlier with
   * 500 (RFC 3261 12.2.2). The deadline counts the wait in the queue; a
   * request whose deadline passed while queued is never sent.
   */
  #serial<T>(control: Dialog, send: (c: Dialog) => Promise<T>, ms: number, what: string): Promise<T> {
    let expired = false;
    const run = this.#tail.then(() => {
      if (expired) throw new McuError('MCU_ERR_TIMEOUT', `MCU ${this.mcuId}: ${what}: deadline passed in the queue`);
      return send(control);
    });
    this.#tail = run.catch(() => {});
    return this.#deadline(run, ms, what, () => {
      expired = true;
    });
  }

  /** Race a promise against a deadline; `onTimeout` cancels what can be cancelled. */
  #deadline<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        onTimeout?.();
        reject(
          new McuError('MCU_ERR_TIMEOUT', `MCU ${this.mcuId}: ${what}: no answer within ${ms} ms`, {
            details: { mcu: this.mcuId, timeoutMs: ms },
          }),
        );
      }, ms);
      p.then(
        (v) => {
          this.#clock.clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          this.#clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  #mapError(err: unknown, what: string): McuError {
    if (err instanceof McuError) return err;
    const details = { mcu: this.mcuId };
    if (err instanceof SipResponseError) {
      const s = err.sipStatus;
      const code =
        s === 481
          ? 'MCU_ERR_DOWN'
          : BUSY.has(s) && what === 'connect'
            ? 'MCU_ERR_BUSY'
            : s === 408
              ? 'MCU_ERR_TIMEOUT'
              : 'MCU_ERR_REJECTED';
      return new McuError(code, `MCU ${this.mcuId}: ${what}: ${s} ${err.reason}`, {
        cause: err,
        details: { ...details, sipStatus: s },
      });
    }
    if (isCascadedError(err, 'SIP_ERR_TIMEOUT'))
      return new McuError('MCU_ERR_TIMEOUT', `MCU ${this.mcuId}: ${what}: SIP transaction timed out`, {
        cause: err,
        details,
      });
    if (isCascadedError(err, 'SIP_ERR_CLOSED') && this.#closed) return this.#closedError();
    if (isCascadedError(err, 'SIP_ERR_SUBSCRIPTION'))
      return new McuError('MCU_ERR_REJECTED', `MCU ${this.mcuId}: ${what}: ${(err as Error).message}`, {
        cause: err,
        details,
      });
    return new McuError('MCU_ERR_DOWN', `MCU ${this.mcuId}: ${what}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
      details,
    });
  }

  #closedError(): McuError {
    return new McuError('MCU_ERR_CLOSED', `MCU driver ${this.mcuId} is closed`);
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#clock.clearTimeout(this.#healthTimer);
    const control = this.#control;
    const sub = this.#sub;
    this.#control = undefined;
    this.#sub = undefined;
    // An attempt still in flight cleans up after itself when it sees #closed (it never waits on us).
    await Promise.allSettled([
      sub === undefined ? undefined : this.#deadline(sub.unsubscribe(), this.#o.requestTimeoutMs, 'unsubscribe'),
      control === undefined ? undefined : this.#deadline(control.bye(), this.#o.requestTimeoutMs, 'BYE'),
    ]);
    this.#setHealth(false, 'closed');
  }
}

function toEntry(u: ConferenceUser): RosterEntry {
  return {
    entity: u.entity,
    kind: u.kind,
    status: u.status,
    audioMuted: u.audioMuted,
    ...(u.displayText === undefined ? {} : { displayText: u.displayText }),
    ...(u.callId === undefined ? {} : { callId: u.callId }),
  };
}
