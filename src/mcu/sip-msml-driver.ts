/**
 * The standards-based MCU driver (design section 2): a control dialog (INVITE
 * without media), OPTIONS for health, REFER for cascade links (RFC 3515, RFC
 * 4579), the conference event package for roster and link state (RFC 4575),
 * INFO with MSML for layouts and streams (RFC 5707) and picture fast update
 * (RFC 5168).
 *
 * It drives MCUs as they are (docs/mcu.md): only the control dialog decides
 * up or down. An MCU without the conference event package is up with a
 * `capabilities` record saying so; its roster is then what the driver set up
 * itself, and the subscription is retried now and then.
 *
 * Supervision: from the first connect() until close(), a timer sends OPTIONS
 * every healthIntervalMs; `healthFailures` failures in a row or the end of
 * the control dialog (a far-end BYE at any moment, also during connect) mark
 * the MCU down, and the next tick tries to re-establish it (the MCU's full
 * roster state is then taken afresh, never trusted from memory).
 */
import type { Logger } from 'pino';
import { type Clock, isCascadedError, onceClose, realClock, type TimerHandle, TypedEmitter } from '../core/index.js';
import {
  answerOffer,
  controlLegOffer,
  type Dialog,
  type DigestCredentials,
  glareBackoffMs,
  type InviteOptions,
  parseUri,
  SipResponseError,
  type Subscription,
  type TransportName,
  type UserAgent,
  withUriParams,
} from '../sip/index.js';
import { CONFERENCE_INFO_CONTENT_TYPE, type ConferenceInfo, parseConferenceInfo } from './conference-info.js';
import { McuError } from './errors.js';
import { CommandLanes } from './lanes.js';
import { isLayoutName, type LayoutName } from './layouts.js';
import { buildPictureFastUpdate, MEDIA_CONTROL_CONTENT_TYPE } from './media-control.js';
import { buildMsml, MSML_CONTENT_TYPE, type MsmlCommand, parseResult } from './msml.js';
import { Roster, type RosterChange } from './roster.js';
import type { LinkState, McuCapabilities, McuDriver, McuDriverEvents, McuHealth, RosterEntry } from './types.js';

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
  /** Digest credentials for this MCU's 401/407 challenges (MD5 or SHA-256, RFC 8760), sent with every request to it. */
  readonly credentials?: DigestCredentials;
  /** Transport of the control dialog; default: the URI's transport parameter, else UDP. */
  readonly transport?: TransportName;
  /** RFC 4028 session interval asked for on the control dialog, s; default: the user agent's setting. */
  readonly sessionExpires?: number;
  /**
   * The control INVITE's session description: 'answer' (default) sends none
   * and answers the offer the MCU puts in its 2xx in the ACK (RFC 3261
   * 13.2.2.4); 'offer' sends an inactive audio/video offer. An MCU that
   * refuses one form for its SDP (488, 606, 415, 400) is asked once with the
   * other, which is kept from then on.
   */
  readonly sdp?: SdpForm;
  /**
   * Transport for the conference subscription; default: the control transport
   * when it is a stream, else TCP when the user agent listens on it (a
   * national roster exceeds a UDP datagram).
   */
  readonly subscribeTransport?: TransportName;
  /** Subscription duration asked for, s. */
  readonly subscribeExpires?: number;
  /** How often an MCU that lacks the conference event package is asked again, ms. */
  readonly resubscribeIntervalMs?: number;
}

const DEFAULTS = {
  requestTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  dialTimeoutMs: 30_000,
  healthIntervalMs: 5_000,
  healthFailures: 3,
  subscribeExpires: 600,
  resubscribeIntervalMs: 60_000,
};
const BUSY = new Set([486, 503, 600]);
/**
 * Refusals of an INVITE for its session description: 488 and 606 (RFC 3261
 * 21.4.26, 21.6.4), 415 (an unsupported body, 21.4.13), and 400, which some
 * MCUs send for a missing or unreadable SDP: whether a 400 is about the body
 * is only in its reason phrase, which the driver does not read, so one
 * INVITE with the other form is spent to find out.
 */
const REFUSED_FOR_SDP = new Set([400, 415, 488, 606]);

export type SdpForm = 'answer' | 'offer';
/** Bodies we take in answers; SDP because an MCU answers a body-less INVITE with an offer (RFC 3261 13.3.1.4). */
const ACCEPT = `application/sdp, ${MSML_CONTENT_TYPE}, ${MEDIA_CONTROL_CONTENT_TYPE}`;
const NO_CAPABILITIES_YET: McuCapabilities = Object.freeze({ conferenceEvents: 'unknown', lacks: [] });
const noop = () => {};

export function createSipMsmlDriver(options: SipMsmlDriverOptions): McuDriver {
  return new SipMsmlDriver(options);
}

class SipMsmlDriver extends TypedEmitter<McuDriverEvents> implements McuDriver {
  readonly mcuId: string;
  readonly uri: string;
  readonly #ua: UserAgent;
  readonly #log?: Logger;
  readonly #clock: Clock;
  readonly #o: typeof DEFAULTS & { readonly sessionExpires?: number };
  /** The control INVITE's SDP form: the configured one until the MCU showed it takes only the other. */
  #sdp: SdpForm;
  /** Our address in session descriptions (the control leg's media is inactive: it only has to be valid). */
  readonly #sdpHost: string;
  /** `{ credentials }` for every request to this MCU, or nothing. */
  readonly #auth: { readonly credentials?: DigestCredentials };
  readonly #controlUri: string;
  /** Where the conference SUBSCRIBE goes: over a stream when we can, else as the control dialog (see #subscribe). */
  #subUri: string;
  readonly #lanes: CommandLanes;
  readonly #roster = new Roster();
  #health: McuHealth;
  #capabilities: McuCapabilities = NO_CAPABILITIES_YET;
  #control?: Dialog;
  #sub?: Subscription;
  /** The subscription of an attempt in progress, whose notifications already count. */
  #trying?: Subscription;
  #establishing?: Promise<void>;
  #subscribing?: { readonly control: Dialog; readonly done: Promise<void> };
  #nextResubscribeAt = 0;
  #supervising = false;
  #healthTimer?: TimerHandle;
  #failures = 0;
  /** Requests sent in the control dialog so far: tells whether a later one went out while one was pending. */
  #sent = 0;
  #closed = false;
  /** Resolves the wait for the first full roster of the current subscription attempt. */
  #onFullState?: () => void;
  readonly close: () => Promise<void>;

  constructor(opts: SipMsmlDriverOptions) {
    super();
    const u = parseUri(opts.mcu.uri);
    if (u === undefined || (u.scheme !== 'sip' && u.scheme !== 'sips'))
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
      resubscribeIntervalMs: opts.resubscribeIntervalMs ?? DEFAULTS.resubscribeIntervalMs,
      sessionExpires: opts.sessionExpires,
    };
    this.#auth = opts.credentials === undefined ? {} : { credentials: opts.credentials };
    this.#sdp = opts.sdp ?? 'answer';
    const uriTransport = u.params.transport?.toLowerCase();
    const control = opts.transport ?? (u.scheme === 'sips' ? 'tls' : uriTransport);
    const ours = parseUri(opts.ua.contactUri(control === 'tcp' || control === 'tls' ? control : undefined))?.host;
    this.#sdpHost = ours === undefined ? '127.0.0.1' : ours.replace(/^\[(.*)\]$/, '$1');
    this.#controlUri =
      opts.transport === undefined ? this.uri : withUriParams(this.uri, { transport: opts.transport })!;
    const sub =
      opts.subscribeTransport ??
      (control === 'tcp' || control === 'tls'
        ? control
        : opts.ua.listening.some((l) => l.transport === 'tcp')
          ? 'tcp'
          : undefined);
    this.#subUri =
      sub === undefined || sub === control || u.scheme === 'sips'
        ? this.#controlUri
        : withUriParams(this.uri, { transport: sub })!;
    this.#lanes = new CommandLanes(this.#clock);
    this.#health = { up: false, reason: 'not connected', since: this.#clock.wallNow() };
    this.onListenerError((err, event) => this.#log?.error({ err, event }, 'MCU driver listener threw'));
    this.close = onceClose(() => this.#close());
  }

  get health(): McuHealth {
    return this.#health;
  }

  get capabilities(): McuCapabilities {
    return this.#capabilities;
  }

  get roster(): ReadonlyMap<string, RosterEntry> {
    return this.#roster.entries;
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
    const at = this.#clock.now() + this.#o.connectTimeoutMs;
    const abort = new AbortController();
    // Set when we give up: a dialog that arrives after that is ended at once, nobody owns it.
    let abandoned = false;
    let control: Dialog;
    try {
      control = await this.#inviteControl(at, abort.signal, (inviting) =>
        inviting.then((d) => {
          if (abandoned) d.bye().catch(noop);
        }, noop),
      );
    } catch (err) {
      abandoned = true;
      abort.abort();
      throw this.#connectFailed(err);
    }
    if (this.#closed) {
      control.bye().catch(noop);
      throw this.#closedError();
    }
    // The dialog is ours from here: a far-end BYE at any moment, even before the roster is in, ends it.
    const ended = new Promise<never>((_, reject) => {
      const fail = (reason: string) =>
        reject(new McuError('MCU_ERR_DOWN', `MCU ${this.mcuId}: control dialog ended during connect (${reason})`));
      if (control.state === 'terminated') fail('already terminated');
      else control.once('terminated', fail);
    });
    ended.catch(noop);
    this.#adoptControl(control);
    try {
      await Promise.race([this.#subscribeOnce(control, at), ended]);
    } catch (err) {
      throw this.#connectFailed(err);
    }
    if (this.#closed) throw this.#closedError();
    if (this.#control !== control)
      throw this.#connectFailed(new McuError('MCU_ERR_DOWN', `MCU ${this.mcuId}: control dialog lost during connect`));
    this.#failures = 0;
    this.#setHealth(true, 'connected');
  }

  /**
   * The control INVITE in this MCU's SDP form; refused for that form, once
   * more in the other, inside the same deadline (docs/mcu.md, "SDP").
   * `watch` sees every INVITE, so a dialog set up after we gave up is ended.
   */
  async #inviteControl(at: number, signal: AbortSignal, watch: (inviting: Promise<Dialog>) => void): Promise<Dialog> {
    let form = this.#sdp;
    for (let attempt = 1; ; attempt++) {
      const inviting = this.#ua.invite(this.#controlUri, this.#inviteOptions(form, signal));
      watch(inviting);
      try {
        const control = await this.#race(inviting, at, 'control INVITE');
        if (form !== this.#sdp) {
          this.#log?.warn(
            { configured: this.#sdp, works: form },
            `MCU refused the control INVITE's SDP form, took the other: using sdp "${form}" from now on (set control.sdp)`,
          );
          this.#sdp = form;
        }
        return control;
      } catch (err) {
        const refused = err instanceof SipResponseError && REFUSED_FOR_SDP.has(err.sipStatus);
        if (!refused || attempt > 1 || this.#clock.now() >= at) throw err;
        this.#log?.info(
          { sipStatus: err.sipStatus, form },
          'control INVITE refused for its SDP form: trying the other',
        );
        form = form === 'answer' ? 'offer' : 'answer';
      }
    }
  }

  #inviteOptions(form: SdpForm, signal: AbortSignal): InviteOptions {
    const host = this.#sdpHost;
    return {
      signal,
      headers: { Accept: ACCEPT },
      ...this.#auth,
      ...(this.#o.sessionExpires === undefined ? {} : { sessionTimer: { expires: this.#o.sessionExpires } }),
      // Answering an offer in the 2xx (RFC 3261 13.2.2.4, RFC 3264): every stream inactive, no media flows.
      answer: (offer) => answerOffer(offer, { host }),
      ...(form === 'offer' ? controlLegOffer({ host }) : {}),
    };
  }

  #connectFailed(err: unknown): McuError {
    const e = this.#mapError(err, 'connect');
    if (e.code !== 'MCU_ERR_CLOSED') this.#setHealth(false, e.message);
    return e;
  }

  #adoptControl(control: Dialog): void {
    this.#control = control;
    control.on('terminated', (reason) => {
      if (this.#control === control) this.#lost(`control dialog ended (${reason})`);
    });
    control.on('request', (req) => {
      // An MCU may probe the dialog with OPTIONS or send INFO events: acknowledge, we drive from the roster.
      req.respond(req.method === 'OPTIONS' || req.method === 'INFO' ? 200 : 405);
    });
  }

  /**
   * One subscription attempt at a time; it never rejects: its outcome is the
   * `capabilities` record. An attempt for an earlier control dialog ends when
   * that dialog does, and a new one waits for it.
   */
  #subscribeOnce(control: Dialog, at: number): Promise<void> {
    const running = this.#subscribing;
    if (running?.control === control) return running.done;
    const done: Promise<void> = (running?.done ?? Promise.resolve())
      .then(() => this.#subscribe(control, at))
      .finally(() => {
        if (this.#subscribing?.done === done) this.#subscribing = undefined;
      });
    this.#subscribing = { control, done };
    return done;
  }

  async #subscribe(control: Dialog, at: number): Promise<void> {
    let abandoned = false;
    let sub: Subscription | undefined;
    const controlEnded = new Promise<never>((_, reject) => {
      const fail = () => reject(new McuError('MCU_ERR_DOWN', `MCU ${this.mcuId}: control dialog ended`));
      if (control.state === 'terminated' || this.#control !== control) fail();
      else control.once('terminated', fail);
    });
    controlEnded.catch(noop);
    try {
      const full = new Promise<void>((resolve) => {
        this.#onFullState = resolve;
      });
      this.#roster.expectFullState();
      const answerBy = Math.min(at, this.#clock.now() + this.#o.requestTimeoutMs);
      const subscribe = (uri: string) => {
        const subscribing = this.#ua.subscribe(uri, {
          event: 'conference',
          accept: CONFERENCE_INFO_CONTENT_TYPE,
          expires: this.#o.subscribeExpires,
          ...this.#auth,
        });
        subscribing.then((s) => {
          if (abandoned) this.#lateSubscription(s, control);
        }, noop);
        return Promise.race([this.#race(subscribing, answerBy, 'conference SUBSCRIBE'), controlEnded]);
      };
      try {
        sub = await subscribe(this.#subUri);
      } catch (err) {
        // An MCU that takes no TCP (connection refused): subscribe as the control dialog goes, and keep to it.
        if (!isCascadedError(err, 'SIP_ERR_TRANSPORT') || this.#subUri === this.#controlUri) throw err;
        this.#log?.warn(
          { err: (err as Error).message },
          'conference SUBSCRIBE over a stream transport failed: subscribing over the control transport',
        );
        this.#subUri = this.#controlUri;
        sub = await subscribe(this.#subUri);
      }
      this.#trying = sub;
      const ended = new Promise<never>((_, reject) =>
        sub!.once('terminated', (reason) =>
          reject(new McuError('MCU_ERR_REJECTED', `conference subscription ended before its full state (${reason})`)),
        ),
      );
      ended.catch(noop);
      // A first NOTIFY that raced ahead of the 2xx is held by the stack for this listener (RFC 6665 4.1.2.4).
      this.#attachSubscription(sub);
      await Promise.race([this.#race(full, at, 'full conference state'), ended, controlEnded]);
    } catch (err) {
      abandoned = true;
      this.#onFullState = undefined;
      this.#trying = undefined;
      sub?.unsubscribe().catch(noop);
      if (!this.#closed && this.#control === control) this.#conferenceEventsMissing(this.#mapError(err, 'SUBSCRIBE'));
      return;
    }
    this.#trying = undefined;
    if (this.#closed || this.#control !== control) {
      sub.unsubscribe().catch(noop);
      return;
    }
    this.#sub = sub;
    if (this.#capabilities.conferenceEvents !== 'available') {
      if (this.#capabilities.conferenceEvents === 'missing')
        this.#log?.info('conference event package available again: roster from the MCU');
      this.#setCapabilities({ conferenceEvents: 'available', lacks: [] });
    }
  }

  /**
   * A SUBSCRIBE accepted after its attempt gave up (a slow MCU, a loaded
   * machine): taken when nothing replaced it, so the roster arrives without
   * waiting for the next attempt; otherwise ended.
   */
  #lateSubscription(sub: Subscription, control: Dialog): void {
    if (this.#closed || this.#control !== control || this.#sub !== undefined || this.#subscribing !== undefined) {
      sub.unsubscribe().catch(noop);
      return;
    }
    this.#log?.info('conference SUBSCRIBE accepted after its deadline: taking the subscription');
    this.#roster.expectFullState();
    this.#sub = sub;
    this.#attachSubscription(sub);
  }

  #conferenceEventsMissing(err: McuError): void {
    const sipStatus = (err.details as { sipStatus?: number } | undefined)?.sipStatus;
    const reason = err.message.replace(`MCU ${this.mcuId}: `, '');
    this.#nextResubscribeAt = this.#clock.now() + this.#o.resubscribeIntervalMs;
    const was = this.#capabilities;
    this.#setCapabilities({
      conferenceEvents: 'missing',
      lacks: [{ feature: 'conference-events', reason, ...(sipStatus === undefined ? {} : { sipStatus }) }],
    });
    if (was.conferenceEvents !== 'missing')
      this.#log?.warn(
        { reason, sipStatus, retryMs: this.#o.resubscribeIntervalMs },
        'MCU lacks the conference event package (RFC 4575): up, with the roster from what the driver sets up',
      );
  }

  #setCapabilities(c: McuCapabilities): void {
    this.#capabilities = Object.freeze(c);
    this.safeEmit('capabilities', this.#capabilities);
  }

  #attachSubscription(sub: Subscription): void {
    sub.on('notify', (n) => {
      if (n.body.length === 0 || (sub !== this.#sub && sub !== this.#trying)) return;
      let info: ConferenceInfo;
      try {
        info = parseConferenceInfo(n.body);
      } catch (err) {
        this.#log?.warn({ err }, 'unreadable conference-info ignored');
        return;
      }
      const change = this.#roster.apply(info);
      if (change === 'stale') return;
      if (change === 'gap') {
        this.#log?.warn({ got: info.version }, 'conference-info version gap: asking for full state');
        sub.refresh().catch(noop);
        return;
      }
      this.#emitChange(change);
      if (info.state === 'full') {
        this.#onFullState?.();
        this.#onFullState = undefined;
        if (sub === this.#sub && this.#capabilities.conferenceEvents !== 'available')
          this.#setCapabilities({ conferenceEvents: 'available', lacks: [] });
      }
    });
    sub.on('terminated', (reason) => {
      if (this.#sub !== sub) return;
      this.#sub = undefined;
      // Not a reason to call the MCU down (only the control dialog is): ask again at the next health check.
      this.#conferenceEventsMissing(
        new McuError('MCU_ERR_REJECTED', `conference subscription ended (${reason})`, {
          details: { mcu: this.mcuId },
        }),
      );
      this.#nextResubscribeAt = this.#clock.now();
    });
  }

  #emitChange(change: RosterChange, links = true): void {
    this.safeEmit('roster', change.update);
    if (links) for (const l of change.links) this.safeEmit('link', l);
  }

  /** For an MCU without the conference event package: the driver's own roster (events only; links report themselves). */
  #learn(change: RosterChange | undefined): void {
    if (change !== undefined) this.#emitChange(change, false);
  }

  #rosterFromDriver(): boolean {
    return this.#capabilities.conferenceEvents !== 'available';
  }

  #lost(reason: string): void {
    const control = this.#control;
    const sub = this.#sub;
    this.#control = undefined;
    this.#sub = undefined;
    this.#roster.expectFullState();
    control?.bye().catch(noop);
    sub?.unsubscribe().catch(noop);
    this.#setHealth(false, reason);
  }

  /** 481 to a request in the control dialog: the MCU restarted and lost every call. */
  #restarted(control: Dialog): void {
    if (this.#rosterFromDriver()) {
      const change = this.#roster.clear();
      if (change !== undefined) this.#emitChange(change);
    }
    if (this.#control === control) this.#lost('control dialog unknown to the MCU (481): it restarted');
  }

  #setHealth(up: boolean, reason: string): void {
    if (this.#health.up === up && (up || this.#health.reason === reason)) return;
    const changed = this.#health.up !== up;
    this.#health = { up, reason, since: this.#clock.wallNow() };
    if (changed) {
      if (up) this.#log?.info({ reason, capabilities: this.#capabilities }, 'MCU up');
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

  /**
   * OPTIONS inside the control dialog: proves the MCU answers and still knows
   * our dialog (481 after a restart). It takes no command lane, so it never
   * waits behind a command.
   */
  async #healthTick(): Promise<void> {
    if (this.#closed) return;
    const control = this.#control;
    if (control === undefined || !this.#health.up) {
      await this.#establishOnce().catch(noop);
      return;
    }
    const at = this.#clock.now() + this.#o.requestTimeoutMs;
    try {
      await this.#race(
        this.#send(control, at, (c) => c.request('OPTIONS')),
        at,
        'OPTIONS',
      );
      this.#failures = 0;
    } catch (err) {
      if (this.#control !== control) return;
      if (err instanceof SipResponseError && err.sipStatus === 481) {
        this.#restarted(control);
        return;
      }
      this.#healthFailed(this.#mapError(err, 'OPTIONS').message);
      return;
    }
    if (this.#capabilities.conferenceEvents === 'missing' && this.#clock.now() >= this.#nextResubscribeAt)
      this.#subscribeOnce(control, this.#clock.now() + this.#o.connectTimeoutMs).catch(noop);
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
    const what = `dial ${target}`;
    const before = this.#roster.entries.get(target);
    let dialing = false;
    let outcome: { status: number; reason: string };
    try {
      outcome = await this.#command(`link:${target}`, this.#o.dialTimeoutMs, what, async (control, at) => {
        dialing = true;
        this.safeEmit('link', { target, state: 'dialing' });
        const sub = await this.#send(control, at, (c) => c.refer(target));
        return sub.outcome;
      });
    } catch (err) {
      const e = this.#mapError(err, what);
      if (dialing) this.safeEmit('link', { target, state: 'failed', reason: e.message });
      throw e;
    }
    if (outcome.status >= 200 && outcome.status < 300) {
      if (this.#rosterFromDriver()) this.#learn(this.#roster.learn(target, { kind: 'link', status: 'connected' }));
      const state: LinkState = { target, state: 'connected' };
      this.safeEmit('link', state);
      return state;
    }
    if (this.#rosterFromDriver() && before?.status !== 'connected') this.#learn(this.#roster.forget(target));
    const code = BUSY.has(outcome.status) ? 'MCU_ERR_BUSY' : 'MCU_ERR_REJECTED';
    const message = `MCU ${this.mcuId}: dialing ${target} failed: ${outcome.status} ${outcome.reason}`;
    this.safeEmit('link', { target, state: 'failed', reason: message, sipStatus: outcome.status });
    throw new McuError(code, message, { details: { mcu: this.mcuId, target, sipStatus: outcome.status } });
  }

  async hangUpLink(target: string): Promise<void> {
    // RFC 4579 5.6: a REFER whose Refer-To carries method=BYE asks the focus to remove that participant.
    const bye = withUriParams(target, { method: 'BYE' });
    if (bye === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `not a SIP URI: ${target}`);
    const what = `hang up ${target}`;
    let outcome: { status: number; reason: string };
    try {
      outcome = await this.#command(`link:${target}`, this.#o.requestTimeoutMs, what, async (control, at) => {
        const sub = await this.#send(control, at, (c) => c.refer(bye));
        return sub.outcome;
      });
    } catch (err) {
      throw this.#mapError(err, what);
    }
    if (outcome.status < 200 || outcome.status >= 300)
      throw new McuError(
        'MCU_ERR_REJECTED',
        `MCU ${this.mcuId}: hang-up of ${target}: ${outcome.status} ${outcome.reason}`,
        {
          details: { mcu: this.mcuId, target, sipStatus: outcome.status },
        },
      );
    if (this.#rosterFromDriver() && this.#roster.entries.has(target)) {
      this.#learn(this.#roster.forget(target));
      this.safeEmit('link', { target, state: 'disconnected', reason: 'hung up' });
    }
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
    await this.#info(
      `out:${output}`,
      MEDIA_CONTROL_CONTENT_TYPE,
      buildPictureFastUpdate(output),
      `picture fast update of ${output}`,
    );
    if (this.#rosterFromDriver()) this.#learn(this.#roster.learn(output, {}));
  }

  async #msml(cmd: MsmlCommand): Promise<void> {
    // Commands on one output stay in order (layout, then what goes in it); a source's audio has its own lane.
    const lane = cmd.op === 'audio' ? `audio:${cmd.source}` : `out:${cmd.output}`;
    const res = await this.#info(lane, MSML_CONTENT_TYPE, buildMsml(cmd), `MSML ${cmd.op}`);
    const result = parseResult(res.body);
    if (result.response !== 200)
      throw new McuError(
        'MCU_ERR_REJECTED',
        `MCU ${this.mcuId}: MSML ${cmd.op}: ${result.response} ${result.description ?? ''}`.trim(),
        {
          details: { mcu: this.mcuId, msmlResponse: result.response, description: result.description },
        },
      );
    if (!this.#rosterFromDriver()) return;
    // The MCU accepted a command naming these participants: they are in its conference.
    if (cmd.op === 'audio') this.#learn(this.#roster.learn(cmd.source, { audioMuted: cmd.muted }));
    else {
      this.#learn(this.#roster.learn(cmd.output, {}));
      if (cmd.op === 'show') this.#learn(this.#roster.learn(cmd.source, {}));
    }
  }

  #info(lane: string, contentType: string, body: string, what: string) {
    return this.#command(lane, this.#o.requestTimeoutMs, what, (control, at) =>
      this.#send(control, at, (c) => c.request('INFO', { contentType, body })),
    ).catch((err: unknown) => {
      throw this.#mapError(err, what);
    });
  }

  /**
   * A command in its lane under its own deadline (see lanes.ts); `work` gets
   * the control dialog as it is when the command starts, and the deadline.
   */
  #command<T>(lane: string, ms: number, what: string, work: (control: Dialog, at: number) => Promise<T>): Promise<T> {
    try {
      this.#ready();
    } catch (err) {
      return Promise.reject(err);
    }
    const at = this.#clock.now() + ms;
    return this.#lanes.run(
      lane,
      at,
      async () => {
        const control = this.#ready();
        try {
          return await work(control, at);
        } catch (err) {
          // 481: the MCU no longer knows our dialog (it restarted): re-establish from its full state.
          if (err instanceof SipResponseError && err.sipStatus === 481) this.#restarted(control);
          throw err;
        }
      },
      () => this.#timeoutError(what, ms),
    );
  }

  /**
   * Send in the control dialog, retrying inside the deadline `at` what the
   * MCU refused only because of timing. The reason phrase is never read.
   *
   * - 500 while a later request of ours went out: over UDP that later CSeq
   *   may have overtaken this one, and the MCU must then refuse this one
   *   with 500 (RFC 3261 12.2.2). Retried once.
   * - 491 (request pending; some MCUs answer it while busy with an earlier
   *   request): retried after the random wait of RFC 3261 14.1, for as long
   *   as the wait ends before the deadline; we own the control dialog's
   *   Call-ID, so the wait is 2.1 to 4 s.
   */
  async #send<T>(control: Dialog, at: number, send: (c: Dialog) => Promise<T>): Promise<T> {
    let retried500 = false;
    for (;;) {
      const mark = ++this.#sent;
      try {
        return await send(control);
      } catch (err) {
        if (!(err instanceof SipResponseError) || this.#clock.now() >= at) throw err;
        if (err.sipStatus === 500 && this.#sent > mark && !retried500) {
          retried500 = true;
          this.#log?.debug('500 while a later request was out: retrying once (RFC 3261 12.2.2)');
          continue;
        }
        if (err.sipStatus !== 491) throw err;
        const wait = glareBackoffMs(true);
        if (this.#clock.now() + wait >= at) throw err;
        this.#log?.debug({ waitMs: wait }, '491 request pending: retrying after the RFC 3261 14.1 wait');
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, wait));
        if (this.#closed || this.#control !== control) throw err;
      }
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

  /** Race a promise against a deadline (clock time `at`); `onTimeout` cancels what can be cancelled. */
  #race<T>(p: Promise<T>, at: number, what: string, onTimeout?: () => void): Promise<T> {
    const ms = Math.max(0, Math.round(at - this.#clock.now()));
    return new Promise<T>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        onTimeout?.();
        reject(this.#timeoutError(what, ms));
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

  #timeoutError(what: string, ms: number): McuError {
    return new McuError('MCU_ERR_TIMEOUT', `MCU ${this.mcuId}: ${what}: no answer within ${ms} ms`, {
      details: { mcu: this.mcuId, timeoutMs: ms },
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
          : s === 401 || s === 407
            ? 'MCU_ERR_AUTH'
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
    if (isCascadedError(err, 'SIP_ERR_AUTH'))
      return new McuError('MCU_ERR_AUTH', `MCU ${this.mcuId}: ${what}: ${(err as Error).message}`, {
        cause: err,
        details,
      });
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
    const at = this.#clock.now() + this.#o.requestTimeoutMs;
    await Promise.allSettled([
      sub === undefined ? undefined : this.#race(sub.unsubscribe(), at, 'unsubscribe'),
      control === undefined ? undefined : this.#race(control.bye(), at, 'BYE'),
    ]);
    this.#setHealth(false, 'closed');
  }
}
