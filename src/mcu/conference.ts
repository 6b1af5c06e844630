/**
 * One conference of an MCU as the sip-msml driver controls it: its own
 * control dialog (INVITE without media), its own subscription to the
 * conference event package (RFC 4575) or, for an MCU without it, the roster
 * the driver builds from what it set up, and its own command lanes. Nothing
 * of one conference waits for another's: a command in room 8001 never queues
 * behind one in room 8002 or in the lobby.
 *
 * Supervision comes from the driver's health tick (`tick()`): OPTIONS in the
 * control dialog; `healthFailures` failures in a row, a 481 (the MCU forgot
 * the dialog: it restarted) or a far-end BYE end the dialog, the conference
 * is 'down' and the next tick opens it again, taking the MCU's full state
 * afresh, never trusting memory.
 *
 *   closed --open()--> opening --ok--> open --lost--> down --tick ok--> open
 *                         \--failed------------------/
 *   any --close()--> closed (open() again later: the same room, another session)
 */
import type { Logger } from 'pino';
import { type Clock, isCascadedError, TypedEmitter } from '../core/index.js';
import {
  answerOffer,
  controlLegOffer,
  type Dialog,
  type DigestCredentials,
  glareBackoffMs,
  type InviteOptions,
  parseUri,
  type ReferSubscription,
  SipResponseError,
  type Subscription,
  type TransportName,
  type UserAgent,
  withUriParams,
} from '../sip/index.js';
import { CONFERENCE_INFO_CONTENT_TYPE, type ConferenceInfo, parseConferenceInfo } from './conference-info.js';
import { McuError } from './errors.js';
import { CommandLanes } from './lanes.js';
import { isLayoutName, type LayoutName, layoutRegions } from './layouts.js';
import { buildPictureFastUpdate, MEDIA_CONTROL_CONTENT_TYPE } from './media-control.js';
import { buildMsml, buildSwitch, MSML_CONTENT_TYPE, type MsmlCommand, type MsmlResult, parseResult } from './msml.js';
import { Roster, type RosterChange } from './roster.js';
import type {
  Conference,
  ConferenceEvents,
  ConferenceStateName,
  LinkState,
  McuCapabilities,
  McuLack,
  OpenOptions,
  ReferMode,
  RosterEntry,
  SwitchOptions,
  SwitchTiming,
} from './types.js';
import { parseVqReport, uriOfId, VQ_RTCPXR_CONTENT_TYPE, VQ_RTCPXR_EVENT } from './vq-rtcpxr.js';

export type SdpForm = 'answer' | 'offer';

/** Deadlines and intervals of the driver (ms, except sessionExpires in s). */
export interface DriverSettings {
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly dialTimeoutMs: number;
  readonly healthIntervalMs: number;
  readonly healthFailures: number;
  readonly subscribeExpires: number;
  readonly resubscribeIntervalMs: number;
  /** Subscribe each open conference to RFC 6035 quality reports. */
  readonly qualityReports: boolean;
  readonly sessionExpires?: number;
}

/**
 * What the conferences of one MCU share: the MCU's settings and what the
 * driver learned about it (the SDP form it takes, whether it takes the
 * subscription over TCP), and the driver's hooks.
 */
export interface McuContext {
  readonly mcuId: string;
  readonly ua: UserAgent;
  readonly clock: Clock;
  readonly log?: Logger;
  readonly o: DriverSettings;
  readonly auth: { readonly credentials?: DigestCredentials };
  readonly transport?: TransportName;
  readonly subscribeTransport?: TransportName;
  /** The control INVITE's SDP form: the configured one until the MCU showed it takes only the other. */
  sdp: SdpForm;
  /** The MCU refused a stream transport for the subscription: subscribe as the control dialog goes. */
  subscribeOverControl: boolean;
  /** Where REFERs go: the configured `control.refer` until the MCU refused one outside the control dialog. */
  refer: ReferMode;
  /** Why REFERs went back into the control dialog (the MCU's refusal), for every conference's capabilities. */
  referLack?: McuLack;
  /** A REFER outside a dialog was refused with `status`: every conference of the MCU sends them in-dialog. */
  referRefused(status: number, reason: string): void;
  closed(): boolean;
  /** Start the health tick (idempotent). */
  supervise(): void;
  /** A conference's dialog was unknown to the MCU (481): it restarted, every conference of it is gone. */
  restarted(from: ConferenceControl): void;
  /** Every state change, and every new reason while not open (the driver's health follows the lobby's). */
  changed(from: ConferenceControl, state: ConferenceStateName, reason: string): void;
}

/**
 * What a command needs of its room: 'open'; 'established', its control dialog up while its roster is still on its
 * way; 'requested', only its first open under way, for a REFER outside any dialog to the conference URI (RFC 4579
 * 5.5), which the MCU takes without our control dialog (a cascade link: `Conference.dialLink`).
 */
type Readiness = 'open' | 'established' | 'requested';

const BUSY = new Set([486, 503, 600]);
/**
 * Refusals of a REFER outside a dialog that mean "not this way" (RFC 3261 21.4.4 403, 21.4.6 405, 21.5.2 501;
 * 481: an MCU that looks every REFER up as an in-dialog one): the REFER is sent again in the control dialog,
 * and all later ones go there.
 */
const REFER_OUTSIDE_REFUSED = new Set([403, 405, 481, 501]);
/**
 * Refusals of an INVITE for its session description: 488 and 606 (RFC 3261
 * 21.4.26, 21.6.4), 415 (an unsupported body, 21.4.13), and 400, which some
 * MCUs send for a missing or unreadable SDP: whether a 400 is about the body
 * is only in its reason phrase, which the driver does not read, so one
 * INVITE with the other form is spent to find out.
 */
const REFUSED_FOR_SDP = new Set([400, 415, 488, 606]);
/** Bodies we take in answers; SDP because an MCU answers a body-less INVITE with an offer (RFC 3261 13.3.1.4). */
/**
 * How often one request is sent again after a 500 that a later request of
 * ours may have caused (see `#send`). Each retry needs its own overtaking
 * (a loss and a later request arriving first), so three cover heavy loss;
 * the bound keeps a genuine 500 to pipelined requests a failure the caller
 * sees and retries at its own level.
 */
const MAX_500_RETRIES = 3;
const ACCEPT = `application/sdp, ${MSML_CONTENT_TYPE}, ${MEDIA_CONTROL_CONTENT_TYPE}`;
const noop = () => {};

export class ConferenceControl extends TypedEmitter<ConferenceEvents> implements Conference {
  readonly mcuId: string;
  readonly uri: string;
  /** The MCU's default conference: its control dialog is the MCU's health channel. */
  readonly lobby: boolean;
  readonly #m: McuContext;
  readonly #log?: Logger;
  /** How messages name this conference: the MCU alone for its lobby (as before rooms existed). */
  readonly #who: string;
  readonly #details: Readonly<Record<string, string>>;
  readonly #sdpHost: string;
  readonly #controlUri: string;
  readonly #streamSubUri: string;
  readonly #lanes: CommandLanes;
  readonly #roster = new Roster();
  #state: ConferenceStateName = 'closed';
  #reason = 'not opened';
  #capabilities: McuCapabilities;
  /** open() was called and close() not since: supervised. */
  #wanted = false;
  /** Held open by the driver (the lobby while the driver is connected): close() leaves it open. */
  #pinned = false;
  #control?: Dialog;
  #sub?: Subscription;
  /** The subscription of an attempt in progress, whose notifications already count. */
  #trying?: Subscription;
  #establishing?: Promise<void>;
  #subscribing?: { readonly control: Dialog; readonly done: Promise<void> };
  #nextResubscribeAt = 0;
  /** Conference SUBSCRIBEs in a row that got no answer: a busy MCU is asked again sooner than one that refused. */
  #unansweredSubscribes = 0;
  #ticking?: Promise<void>;
  #failures = 0;
  /** Requests sent in the control dialog so far: tells whether a later one went out while one was pending. */
  #sent = 0;
  /** Resolves the wait for the first full roster of the current subscription attempt. */
  #onFullState?: () => void;
  /** The quality report subscription (RFC 6035), when asked for and accepted. */
  #quality?: Subscription;
  #qualitySubscribing = false;
  #qualityState: 'available' | 'missing' | 'unknown' = 'unknown';
  #qualityLack?: McuLack;
  #nextQualityAt = 0;
  /** open({ holdQuality }): no quality subscription until reportQuality(). */
  #qualityHeld = false;

  constructor(m: McuContext, uri: string, lobby: boolean) {
    super();
    const u = parseUri(uri);
    if (u === undefined || (u.scheme !== 'sip' && u.scheme !== 'sips'))
      throw new McuError('MCU_ERR_INVALID_ARGUMENT', `MCU ${m.mcuId}: not a SIP URI: ${uri}`);
    this.mcuId = m.mcuId;
    this.uri = uri;
    this.lobby = lobby;
    this.#m = m;
    this.#log = lobby ? m.log : m.log?.child({ conference: uri });
    this.#who = lobby ? `MCU ${m.mcuId}` : `MCU ${m.mcuId} conference ${uri}`;
    this.#details = lobby ? { mcu: m.mcuId } : { mcu: m.mcuId, conference: uri };
    const uriTransport = u.params.transport?.toLowerCase();
    const control = m.transport ?? (u.scheme === 'sips' ? 'tls' : uriTransport);
    const ours = parseUri(m.ua.contactUri(control === 'tcp' || control === 'tls' ? control : undefined))?.host;
    this.#sdpHost = ours === undefined ? '127.0.0.1' : ours.replace(/^\[(.*)\]$/, '$1');
    this.#controlUri = m.transport === undefined ? uri : withUriParams(uri, { transport: m.transport })!;
    const sub =
      m.subscribeTransport ??
      (control === 'tcp' || control === 'tls'
        ? control
        : m.ua.listening.some((l) => l.transport === 'tcp')
          ? 'tcp'
          : undefined);
    this.#streamSubUri =
      sub === undefined || sub === control || u.scheme === 'sips'
        ? this.#controlUri
        : withUriParams(uri, { transport: sub })!;
    this.#lanes = new CommandLanes(m.clock);
    this.#capabilities = this.#withRefer('unknown', []);
    this.onListenerError((err, event) => this.#log?.error({ err, event }, 'conference listener threw'));
  }

  get state(): ConferenceStateName {
    return this.#state;
  }

  /** Why the conference is not open (or 'connected'). */
  get reason(): string {
    return this.#reason;
  }

  get capabilities(): McuCapabilities {
    if (!this.#m.o.qualityReports) return this.#capabilities;
    const c = this.#capabilities;
    return {
      conferenceEvents: c.conferenceEvents,
      refer: c.refer,
      qualityReports: this.#qualityState,
      lacks: this.#qualityLack === undefined ? c.lacks : [...c.lacks, this.#qualityLack],
    };
  }

  get roster(): ReadonlyMap<string, RosterEntry> {
    return this.#roster.entries;
  }

  get #subUri(): string {
    return this.#m.subscribeOverControl ? this.#controlUri : this.#streamSubUri;
  }

  // ---- opening and supervision ---------------------------------------------

  open(options?: OpenOptions): Promise<void> {
    if (this.#m.closed()) return Promise.reject(this.#closedError());
    if (options?.holdQuality === true) this.#qualityHeld = true;
    else this.reportQuality();
    this.#wanted = true;
    this.#m.supervise();
    if (this.#state === 'open') return Promise.resolve();
    if (this.#state === 'closed') this.#setState('opening', 'opening');
    return this.#establishOnce();
  }

  /** The driver holds this conference open (its lobby while connected): a user's close() keeps it. */
  pin(): void {
    this.#pinned = true;
  }

  /** Ends the control dialog and the subscription only: participants and links stay on the MCU. Idempotent. */
  async close(): Promise<void> {
    if (this.#pinned && !this.#m.closed()) return;
    await this.shutDown();
  }

  /** close() for the driver: also a pinned conference. */
  async shutDown(): Promise<void> {
    this.#wanted = false;
    this.#pinned = false;
    const control = this.#control;
    const sub = this.#sub;
    const quality = this.#quality;
    this.#control = undefined;
    this.#sub = undefined;
    this.#quality = undefined;
    this.#qualityHeld = false;
    this.#roster.expectFullState();
    this.#setState('closed', 'closed');
    // An attempt still in flight cleans up after itself when it sees the conference closed (it never waits on us).
    const at = this.#m.clock.now() + this.#m.o.requestTimeoutMs;
    await Promise.allSettled([
      sub === undefined ? undefined : this.#race(sub.unsubscribe(), at, 'unsubscribe'),
      quality === undefined ? undefined : this.#race(quality.unsubscribe(), at, 'unsubscribe'),
      control === undefined ? undefined : this.#race(control.bye(), at, 'BYE'),
    ]);
  }

  /** Not wanted any more (closed, or the driver closed): an attempt in flight drops what it got. */
  #gone(): boolean {
    return !this.#wanted || this.#m.closed();
  }

  #establishOnce(): Promise<void> {
    this.#establishing ??= this.#establish().finally(() => {
      this.#establishing = undefined;
    });
    return this.#establishing;
  }

  async #establish(): Promise<void> {
    const at = this.#m.clock.now() + this.#m.o.connectTimeoutMs;
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
      throw this.#openFailed(err);
    }
    if (this.#gone()) {
      control.bye().catch(noop);
      throw this.#notWantedError();
    }
    // The dialog is ours from here: a far-end BYE at any moment, even before the roster is in, ends it.
    const ended = new Promise<never>((_, reject) => {
      const fail = (reason: string) =>
        reject(new McuError('MCU_ERR_DOWN', `${this.#who}: control dialog ended during connect (${reason})`));
      if (control.state === 'terminated') fail('already terminated');
      else control.once('terminated', fail);
    });
    ended.catch(noop);
    this.#adoptControl(control);
    // A first open (a re-open after a loss is 'down' until it is over: nothing may use the room meanwhile).
    if (this.#state === 'opening') this.safeEmit('established');
    try {
      await Promise.race([this.#subscribeOnce(control, at), ended]);
    } catch (err) {
      throw this.#openFailed(err);
    }
    if (this.#gone()) throw this.#notWantedError();
    if (this.#control !== control)
      throw this.#openFailed(new McuError('MCU_ERR_DOWN', `${this.#who}: control dialog lost during connect`));
    this.#failures = 0;
    this.#setState('open', 'connected');
    if (this.#m.o.qualityReports && !this.#qualityHeld) this.#subscribeQuality(control);
  }

  /**
   * The control INVITE in this MCU's SDP form; refused for that form, once
   * more in the other, inside the same deadline (docs/mcu.md, "SDP").
   * `watch` sees every INVITE, so a dialog set up after we gave up is ended.
   */
  async #inviteControl(at: number, signal: AbortSignal, watch: (inviting: Promise<Dialog>) => void): Promise<Dialog> {
    let form = this.#m.sdp;
    for (let attempt = 1; ; attempt++) {
      const inviting = this.#m.ua.invite(this.#controlUri, this.#inviteOptions(form, signal));
      watch(inviting);
      try {
        const control = await this.#race(inviting, at, 'control INVITE');
        if (form !== this.#m.sdp) {
          this.#log?.warn(
            { configured: this.#m.sdp, works: form },
            `MCU refused the control INVITE's SDP form, took the other: using sdp "${form}" from now on (set control.sdp)`,
          );
          this.#m.sdp = form;
        }
        return control;
      } catch (err) {
        const refused = err instanceof SipResponseError && REFUSED_FOR_SDP.has(err.sipStatus);
        if (!refused || attempt > 1 || this.#m.clock.now() >= at) throw err;
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
    const { sessionExpires } = this.#m.o;
    return {
      signal,
      headers: { Accept: ACCEPT },
      ...this.#m.auth,
      ...(sessionExpires === undefined ? {} : { sessionTimer: { expires: sessionExpires } }),
      // Answering an offer in the 2xx (RFC 3261 13.2.2.4, RFC 3264): every stream inactive, no media flows.
      answer: (offer) => answerOffer(offer, { host }),
      ...(form === 'offer' ? controlLegOffer({ host }) : {}),
    };
  }

  #openFailed(err: unknown): McuError {
    const e = this.#mapError(err, 'connect');
    if (e.code !== 'MCU_ERR_CLOSED' && !this.#gone()) this.#setState('down', e.message);
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
      const fail = () => reject(new McuError('MCU_ERR_DOWN', `${this.#who}: control dialog ended`));
      if (control.state === 'terminated' || this.#control !== control) fail();
      else control.once('terminated', fail);
    });
    controlEnded.catch(noop);
    try {
      const full = new Promise<void>((resolve) => {
        this.#onFullState = resolve;
      });
      this.#roster.expectFullState();
      const answerBy = Math.min(at, this.#m.clock.now() + this.#m.o.requestTimeoutMs);
      const subscribe = (uri: string) => {
        const subscribing = this.#m.ua.subscribe(uri, {
          event: 'conference',
          accept: CONFERENCE_INFO_CONTENT_TYPE,
          expires: this.#m.o.subscribeExpires,
          ...this.#m.auth,
        });
        subscribing.then((s) => {
          if (abandoned) this.#lateSubscription(s, control);
        }, noop);
        return Promise.race([this.#race(subscribing, answerBy, 'conference SUBSCRIBE'), controlEnded]);
      };
      const uri = this.#subUri;
      try {
        sub = await subscribe(uri);
      } catch (err) {
        // An MCU that takes no TCP (connection refused): subscribe as the control dialog goes, and keep to it.
        if (!isCascadedError(err, 'SIP_ERR_TRANSPORT') || uri === this.#controlUri) throw err;
        this.#log?.warn(
          { err: (err as Error).message },
          'conference SUBSCRIBE over a stream transport failed: subscribing over the control transport',
        );
        this.#m.subscribeOverControl = true;
        sub = await subscribe(this.#controlUri);
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
      if (!this.#gone() && this.#control === control) this.#conferenceEventsMissing(this.#mapError(err, 'SUBSCRIBE'));
      return;
    }
    this.#trying = undefined;
    if (this.#gone() || this.#control !== control) {
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
    if (this.#gone() || this.#control !== control || this.#sub !== undefined || this.#subscribing !== undefined) {
      sub.unsubscribe().catch(noop);
      return;
    }
    this.#log?.info('conference SUBSCRIBE accepted after its deadline: taking the subscription');
    this.#roster.expectFullState();
    this.#sub = sub;
    this.#attachSubscription(sub);
  }

  /** `ended`: a subscription that ran ended (the MCU has the package): asked for again at once. */
  #conferenceEventsMissing(err: McuError, ended = false): void {
    const sipStatus = (err.details as { sipStatus?: number } | undefined)?.sipStatus;
    const reason = err.message.replace(`${this.#who}: `, '');
    // A refusal (489, 405, 501) is an answer: ask again at the interval. No answer may be a busy MCU or a loaded
    // machine (a daemon start opens every conference at once): ask again after the request deadline, doubling.
    const unanswered = err.code === 'MCU_ERR_TIMEOUT';
    this.#unansweredSubscribes = unanswered ? this.#unansweredSubscribes + 1 : 0;
    const retryMs = ended
      ? 0
      : unanswered
        ? Math.min(this.#m.o.resubscribeIntervalMs, this.#m.o.requestTimeoutMs * 2 ** (this.#unansweredSubscribes - 1))
        : this.#m.o.resubscribeIntervalMs;
    this.#nextResubscribeAt = this.#m.clock.now() + retryMs;
    const was = this.#capabilities;
    this.#setCapabilities({
      conferenceEvents: 'missing',
      lacks: [{ feature: 'conference-events', reason, ...(sipStatus === undefined ? {} : { sipStatus }) }],
    });
    if (was.conferenceEvents !== 'missing')
      this.#log?.warn(
        { reason, sipStatus, retryMs },
        ended
          ? 'conference subscription ended: subscribing again, with the roster from what the driver sets up meanwhile'
          : unanswered
            ? 'conference SUBSCRIBE unanswered: up, with the roster from what the driver sets up until it is answered'
            : 'MCU lacks the conference event package (RFC 4575): up, with the roster from what the driver sets up',
      );
  }

  #setCapabilities(c: { conferenceEvents: McuCapabilities['conferenceEvents']; lacks: readonly McuLack[] }): void {
    if (c.conferenceEvents === 'available') this.#unansweredSubscribes = 0;
    this.#capabilities = this.#withRefer(c.conferenceEvents, c.lacks);
    this.safeEmit('capabilities', this.capabilities);
  }

  /** The conference's own findings and the MCU's REFER mode, in one frozen record. */
  #withRefer(conferenceEvents: McuCapabilities['conferenceEvents'], lacks: readonly McuLack[]): McuCapabilities {
    const own = lacks.filter((l) => l.feature !== 'out-of-dialog-refer');
    const referLack = this.#m.referLack;
    return Object.freeze({
      conferenceEvents,
      refer: this.#m.refer,
      lacks: Object.freeze(referLack === undefined ? own : [...own, referLack]),
    });
  }

  /** The MCU's REFER mode changed (refused outside a dialog in some conference of it). */
  referModeChanged(): void {
    this.#setCapabilities(this.#capabilities);
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
      // Not a reason to call the conference down (only the control dialog is): ask again at the next tick.
      this.#conferenceEventsMissing(
        new McuError('MCU_ERR_REJECTED', `conference subscription ended (${reason})`, { details: this.#details }),
        true,
      );
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
    const quality = this.#quality;
    this.#control = undefined;
    this.#sub = undefined;
    this.#quality = undefined;
    this.#roster.expectFullState();
    control?.bye().catch(noop);
    sub?.unsubscribe().catch(noop);
    quality?.unsubscribe().catch(noop);
    if (!this.#gone()) this.#setState('down', reason);
  }

  /** The MCU restarted and lost every call (a 481 here or in another conference of it). */
  forgotten(): void {
    if (this.#rosterFromDriver()) {
      const change = this.#roster.clear();
      if (change !== undefined) this.#emitChange(change);
    }
    if (this.#control !== undefined) this.#lost('control dialog unknown to the MCU (481): it restarted');
  }

  /**
   * 481 to a request in the control dialog `control`: the MCU restarted;
   * every conference of it hears of it. The stack may have ended the dialog
   * already (RFC 3261 12.2.1.2); only a newer dialog means it is old news.
   */
  #restarted(control: Dialog): void {
    if (this.#control !== undefined && this.#control !== control) return;
    this.forgotten();
    this.#m.restarted(this);
  }

  #setState(state: ConferenceStateName, reason: string): void {
    const changed = this.#state !== state;
    if (!changed && (state === 'open' || this.#reason === reason)) return;
    this.#state = state;
    this.#reason = reason;
    if (changed) {
      if (state === 'open') this.#log?.info({ capabilities: this.#capabilities }, 'conference open');
      else if (state === 'down') this.#log?.warn({ reason }, 'conference down');
      this.safeEmit('state', state);
    }
    this.#m.changed(this, state, reason);
  }

  /**
   * One health tick: open a conference that should be and is not; OPTIONS
   * inside an open one (proves the MCU answers and still knows our dialog:
   * 481 after a restart). It takes no command lane, so it never waits
   * behind a command. `reopen` false: only check, do not dial (a room while
   * its MCU is down).
   */
  async tick(reopen = true): Promise<void> {
    if (this.#gone()) return;
    const control = this.#control;
    if (control === undefined || this.#state !== 'open') {
      if (reopen) await this.#establishOnce().catch(noop);
      return;
    }
    const at = this.#m.clock.now() + this.#m.o.requestTimeoutMs;
    try {
      await this.#race(
        this.#send(control, at, (c) => c.request('OPTIONS')),
        at,
        'OPTIONS',
      );
      this.#failures = 0;
    } catch (err) {
      if (err instanceof SipResponseError && err.sipStatus === 481) {
        this.#restarted(control);
        return;
      }
      if (this.#control !== control) return;
      this.#healthFailed(this.#mapError(err, 'OPTIONS').message);
      return;
    }
    if (this.#capabilities.conferenceEvents === 'missing' && this.#m.clock.now() >= this.#nextResubscribeAt)
      this.#subscribeOnce(control, this.#m.clock.now() + this.#m.o.connectTimeoutMs).catch(noop);
    if (
      this.#m.o.qualityReports &&
      !this.#qualityHeld &&
      this.#quality === undefined &&
      this.#m.clock.now() >= this.#nextQualityAt
    )
      this.#subscribeQuality(control);
  }

  reportQuality(): void {
    if (!this.#qualityHeld) return;
    this.#qualityHeld = false;
    const control = this.#control;
    if (this.#m.o.qualityReports && this.#state === 'open' && control !== undefined) this.#subscribeQuality(control);
  }

  // ---- quality reports (RFC 6035) --------------------------------------------

  /**
   * SUBSCRIBE to the conference's call quality reports (Event: vq-rtcpxr, RFC
   * 6035 3), on the side: the conference is open without it, and a refusal or
   * no answer only makes `capabilities.qualityReports` 'missing' until the
   * next attempt, `resubscribeIntervalMs` later at a health tick.
   */
  #subscribeQuality(control: Dialog): void {
    if (this.#qualitySubscribing || this.#quality !== undefined) return;
    this.#qualitySubscribing = true;
    const at = this.#m.clock.now() + this.#m.o.requestTimeoutMs;
    const subscribing = this.#m.ua.subscribe(this.#subUri, {
      event: VQ_RTCPXR_EVENT,
      accept: VQ_RTCPXR_CONTENT_TYPE,
      expires: this.#m.o.subscribeExpires,
      ...this.#m.auth,
    });
    let late = false;
    subscribing.then((s) => {
      if (late) s.unsubscribe().catch(noop);
    }, noop);
    this.#race(subscribing, at, 'quality SUBSCRIBE', () => {
      late = true;
    })
      .then(
        (sub) => {
          if (this.#gone() || this.#control !== control) {
            sub.unsubscribe().catch(noop);
            return;
          }
          this.#quality = sub;
          sub.on('notify', (n) => this.#onQuality(sub, n.body.toString('utf8')));
          sub.on('terminated', (reason) => {
            if (this.#quality !== sub) return;
            this.#quality = undefined;
            this.#qualityMissing(`quality subscription ended (${reason})`);
          });
          if (this.#qualityState !== 'available') {
            this.#qualityState = 'available';
            this.#qualityLack = undefined;
            this.safeEmit('capabilities', this.capabilities);
          }
        },
        (err: unknown) => {
          if (this.#gone() || this.#control !== control) return;
          const e = this.#mapError(err, 'quality SUBSCRIBE');
          this.#qualityMissing(
            e.message.replace(`${this.#who}: `, ''),
            (e.details as { sipStatus?: number } | undefined)?.sipStatus,
          );
        },
      )
      .finally(() => {
        this.#qualitySubscribing = false;
      });
  }

  #qualityMissing(reason: string, sipStatus?: number): void {
    this.#nextQualityAt = this.#m.clock.now() + this.#m.o.resubscribeIntervalMs;
    const was = this.#qualityState;
    this.#qualityState = 'missing';
    this.#qualityLack = { feature: 'quality-reports', reason, ...(sipStatus === undefined ? {} : { sipStatus }) };
    this.safeEmit('capabilities', this.capabilities);
    if (was !== 'missing')
      this.#log?.info({ reason, sipStatus }, 'no call quality reports (RFC 6035 vq-rtcpxr) from this conference');
  }

  #onQuality(sub: Subscription, body: string): void {
    // The first NOTIFY of a subscription may carry no report (RFC 6665 4.2.1 asks for one at once).
    if (sub !== this.#quality || body.trim() === '') return;
    try {
      const r = parseVqReport(body);
      this.safeEmit('quality', {
        conference: this.uri,
        entity: uriOfId(r.remoteId),
        callId: r.callId,
        type: r.type,
        callTerm: r.callTerm,
        ...(r.local === undefined ? {} : { local: r.local }),
        ...(r.remote === undefined ? {} : { remote: r.remote }),
        at: this.#m.clock.wallNow(),
      });
    } catch (err) {
      this.#log?.warn({ err }, 'unreadable quality report ignored');
    }
  }

  /** tick(), unless the previous one is still running. */
  tickOnce(reopen: boolean): void {
    this.#ticking ??= this.tick(reopen).finally(() => {
      this.#ticking = undefined;
    });
  }

  /** Open again now, not at the next tick (the MCU just came back). */
  reopenSoon(): void {
    if (!this.#gone() && this.#state === 'down') this.#establishOnce().catch(noop);
  }

  #healthFailed(reason: string): void {
    this.#failures++;
    this.#log?.debug({ failures: this.#failures, reason }, 'health check failed');
    if (this.#failures >= this.#m.o.healthFailures && this.#control !== undefined)
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
      outcome = await this.#commandWhen(
        'requested',
        `link:${target}`,
        this.#m.o.dialTimeoutMs,
        what,
        async (control, at) => {
          dialing = true;
          this.safeEmit('link', { target, state: 'dialing' });
          const sub = await this.#refer(control, at, target);
          return sub.outcome;
        },
      );
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
    const message = `${this.#who}: dialing ${target} failed: ${outcome.status} ${outcome.reason}`;
    this.safeEmit('link', { target, state: 'failed', reason: message, sipStatus: outcome.status });
    throw this.#dialFailed(message, target, outcome.status);
  }

  async hangUpLink(target: string): Promise<void> {
    await this.#hangUp(target, `link:${target}`);
    if (this.#rosterFromDriver() && this.#roster.entries.has(target)) {
      this.#learn(this.#roster.forget(target));
      this.safeEmit('link', { target, state: 'disconnected', reason: 'hung up' });
    }
  }

  /** A participant of the driver's own roster that the MCU says it does not have. */
  #forgetSeen(entity: string, reason: string): void {
    const was = this.#roster.entries.get(entity);
    if (was === undefined) return;
    this.#learn(this.#roster.forget(entity));
    if (was.kind === 'link') this.safeEmit('link', { target: entity, state: 'disconnected', reason });
  }

  /**
   * The focus dials a participant into this conference (RFC 4579 5.5: a
   * REFER whose Refer-To is the participant). Resolves when the far end
   * answered 2xx; a participant already in the conference is a success
   * (the MCU reports 200 again).
   */
  async dialParticipant(uri: string): Promise<void> {
    if (parseUri(uri) === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `not a SIP URI: ${uri}`);
    const what = `dial participant ${uri}`;
    let outcome: { status: number; reason: string };
    try {
      outcome = await this.#command(`participant:${uri}`, this.#m.o.dialTimeoutMs, what, async (control, at) => {
        const sub = await this.#refer(control, at, uri);
        return sub.outcome;
      });
    } catch (err) {
      throw this.#mapError(err, what);
    }
    if (outcome.status >= 200 && outcome.status < 300) {
      if (this.#rosterFromDriver()) this.#learn(this.#roster.learn(uri, { kind: 'endpoint', status: 'connected' }));
      return;
    }
    throw this.#dialFailed(
      `${this.#who}: dialing ${uri} failed: ${outcome.status} ${outcome.reason}`,
      uri,
      outcome.status,
    );
  }

  refreshRoster(): void {
    const sub = this.#sub;
    if (sub === undefined || this.#rosterFromDriver()) return;
    this.#log?.info('asking for the full conference state (subscription refresh)');
    sub.refresh().catch(noop);
  }

  async hangUpParticipant(uri: string): Promise<void> {
    await this.#hangUp(uri, `participant:${uri}`);
    if (this.#rosterFromDriver()) this.#learn(this.#roster.forget(uri));
  }

  #dialFailed(message: string, target: string, status: number): McuError {
    return new McuError(BUSY.has(status) ? 'MCU_ERR_BUSY' : 'MCU_ERR_REJECTED', message, {
      details: { ...this.#details, target, sipStatus: status },
    });
  }

  /**
   * A REFER for this conference (RFC 3515). Out of dialog, to the conference URI (RFC 4579 5.5): each REFER's
   * implicit subscription has a dialog of its own, so its NOTIFYs never queue behind another REFER's (a
   * dialog's NOTIFYs go one at a time, each with a higher CSeq: RFC 3261 12.2.2), and the links of a room leave
   * together. An MCU that refuses that (REFER_OUTSIDE_REFUSED) gets it in the control dialog, and every later one.
   */
  /** `control` is missing only for a link dialled before the room's control dialog is up ('requested'). */
  async #refer(control: Dialog | undefined, at: number, target: string): Promise<ReferSubscription> {
    if (this.#m.refer === 'out-of-dialog') {
      try {
        return await this.#m.ua.refer(this.#controlUri, target, this.#m.auth);
      } catch (err) {
        if (!(err instanceof SipResponseError) || !REFER_OUTSIDE_REFUSED.has(err.sipStatus)) throw err;
        this.#m.referRefused(err.sipStatus, err.reason);
      }
    }
    const c = control ?? this.#control;
    if (c === undefined)
      throw new McuError('MCU_ERR_DOWN', `${this.#who}: REFERs go in the control dialog, which is not up yet`, {
        details: { ...this.#details, reason: 'control dialog not up yet' },
      });
    return this.#send(c, at, (d) => d.refer(target));
  }

  /** RFC 4579 5.6: a REFER whose Refer-To carries method=BYE asks the focus to remove that participant. */
  async #hangUp(target: string, lane: string): Promise<void> {
    const bye = withUriParams(target, { method: 'BYE' });
    if (bye === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `not a SIP URI: ${target}`);
    const what = `hang up ${target}`;
    let outcome: { status: number; reason: string };
    try {
      outcome = await this.#command(lane, this.#m.o.requestTimeoutMs, what, async (control, at) => {
        const sub = await this.#refer(control, at, bye);
        return sub.outcome;
      });
    } catch (err) {
      throw this.#mapError(err, what);
    }
    if (outcome.status < 200 || outcome.status >= 300)
      throw new McuError(
        'MCU_ERR_REJECTED',
        `${this.#who}: hang-up of ${target}: ${outcome.status} ${outcome.reason}`,
        {
          details: { ...this.#details, target, sipStatus: outcome.status },
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
    await this.#info(
      `out:${output}`,
      MEDIA_CONTROL_CONTENT_TYPE,
      buildPictureFastUpdate(output),
      `picture fast update of ${output}`,
    );
    if (this.#rosterFromDriver()) this.#learn(this.#roster.learn(output, {}));
  }

  async switchOutput(
    output: string,
    layout: LayoutName,
    sources: readonly string[],
    options: SwitchOptions = {},
  ): Promise<SwitchTiming> {
    if (!isLayoutName(layout))
      return Promise.reject(new McuError('MCU_ERR_INVALID_ARGUMENT', `unknown layout ${String(layout)}`));
    if (sources.length > layoutRegions(layout).length)
      return Promise.reject(
        new McuError('MCU_ERR_INVALID_ARGUMENT', `${sources.length} sources for the ${layout} layout`),
      );
    const keyframe = options.keyframe !== false;
    const { clock } = this.#m;
    const t0 = clock.now();
    const what = `switch of ${output}`;
    const body = buildSwitch({ output, layout, sources });
    let timing: SwitchTiming;
    try {
      timing = await this.#command(`out:${output}`, this.#m.o.requestTimeoutMs, what, async (control, at) => {
        const info = (contentType: string, b: string) =>
          this.#send(control, at, (c) => c.request('INFO', { contentType, body: b }));
        let switched = 0;
        let keyed = 0;
        // Both go out now, the keyframe request right behind the switch: one round trip instead of two.
        const sw = info(MSML_CONTENT_TYPE, body).then((res) => {
          switched = clock.now();
          return res;
        });
        const kf = keyframe
          ? info(MEDIA_CONTROL_CONTENT_TYPE, buildPictureFastUpdate(output)).then(() => {
              keyed = clock.now();
            })
          : undefined;
        kf?.catch(noop);
        const result = parseResult((await sw).body);
        if (result.response !== 200) throw this.#msmlRefused('switch', result);
        if (kf === undefined) return { switchedMs: switched - t0, keyframeMs: null };
        const keyedFirst = await kf.then(
          () => keyed < switched,
          () => true,
        );
        // Answered before the switch: it may have been carried out before it (the switch was lost and sent
        // again, or refused 500 for coming after it). Failed: once more, inside the deadline.
        if (keyedFirst) {
          await info(MEDIA_CONTROL_CONTENT_TYPE, buildPictureFastUpdate(output));
          keyed = clock.now();
        }
        return { switchedMs: switched - t0, keyframeMs: keyed - t0 };
      });
    } catch (err) {
      throw this.#mapError(err, what);
    }
    if (this.#rosterFromDriver()) {
      this.#learn(this.#roster.learn(output, {}));
      for (const source of sources) this.#learn(this.#roster.learn(source, {}));
    }
    return timing;
  }

  #msmlRefused(op: string, result: MsmlResult): McuError {
    return new McuError(
      'MCU_ERR_REJECTED',
      `${this.#who}: MSML ${op}: ${result.response} ${result.description ?? ''}`.trim(),
      {
        details: { ...this.#details, msmlResponse: result.response, description: result.description },
      },
    );
  }

  async #msml(cmd: MsmlCommand): Promise<void> {
    // Commands on one output stay in order (layout, then what goes in it); a source's audio has its own lane.
    const lane = cmd.op === 'audio' ? `audio:${cmd.source}` : `out:${cmd.output}`;
    const res = await this.#info(lane, MSML_CONTENT_TYPE, buildMsml(cmd), `MSML ${cmd.op}`);
    const result = parseResult(res.body);
    if (result.response !== 200) {
      // A layout names its output alone: 404 says the MCU has no such connection (any more). Without the
      // conference event package this is how the driver learns that a link dropped by itself (docs/mcu.md).
      if (cmd.op === 'layout' && result.response === 404 && this.#rosterFromDriver())
        this.#forgetSeen(cmd.output, 'unknown to the MCU (MSML 404)');
      throw this.#msmlRefused(cmd.op, result);
    }
    if (!this.#rosterFromDriver()) return;
    // The MCU accepted a command naming these participants: they are in its conference.
    if (cmd.op === 'audio') this.#learn(this.#roster.learn(cmd.source, { audioMuted: cmd.muted }));
    else {
      this.#learn(this.#roster.learn(cmd.output, {}));
      if (cmd.op === 'show') this.#learn(this.#roster.learn(cmd.source, {}));
    }
  }

  #info(lane: string, contentType: string, body: string, what: string) {
    return this.#command(lane, this.#m.o.requestTimeoutMs, what, (control, at) =>
      this.#send(control, at, (c) => c.request('INFO', { contentType, body })),
    ).catch((err: unknown) => {
      throw this.#mapError(err, what);
    });
  }

  /**
   * A command in its lane under its own deadline (see lanes.ts); `work` gets
   * the control dialog as it is when the command starts, and the deadline. The room must be open.
   */
  #command<T>(lane: string, ms: number, what: string, work: (control: Dialog, at: number) => Promise<T>): Promise<T> {
    return this.#commandWhen('open', lane, ms, what, (control, at) => work(control!, at));
  }

  /**
   * `#command` for what needs less of the room (`Readiness`): `work` then gets no control dialog when the room
   * has none yet.
   */
  #commandWhen<T>(
    need: Readiness,
    lane: string,
    ms: number,
    what: string,
    work: (control: Dialog | undefined, at: number) => Promise<T>,
  ): Promise<T> {
    try {
      this.#ready(need);
    } catch (err) {
      return Promise.reject(err);
    }
    const at = this.#m.clock.now() + ms;
    return this.#lanes.run(
      lane,
      at,
      async () => {
        const control = this.#ready(need);
        try {
          return await work(control, at);
        } catch (err) {
          // 481: the MCU no longer knows our dialog (it restarted): re-establish from its full state.
          if (control !== undefined && err instanceof SipResponseError && err.sipStatus === 481)
            this.#restarted(control);
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
   *   with 500 (RFC 3261 12.2.2). Retried, each attempt under the same
   *   rule (under loss a health check's OPTIONS can overtake the retry too),
   *   at most MAX_500_RETRIES times: two pipelined requests that the MCU
   *   refuses 500 for another reason would otherwise keep re-triggering each
   *   other's retry until the deadline.
   * - 491 (request pending; some MCUs answer it while busy with an earlier
   *   request): retried after the random wait of RFC 3261 14.1, for as long
   *   as the wait ends before the deadline; we own the control dialog's
   *   Call-ID, so the wait is 2.1 to 4 s.
   */
  async #send<T>(control: Dialog, at: number, send: (c: Dialog) => Promise<T>): Promise<T> {
    let retries500 = 0;
    const { clock } = this.#m;
    for (;;) {
      const mark = ++this.#sent;
      try {
        return await send(control);
      } catch (err) {
        if (!(err instanceof SipResponseError) || clock.now() >= at) throw err;
        if (err.sipStatus === 500 && this.#sent > mark && retries500 < MAX_500_RETRIES) {
          retries500 += 1;
          this.#log?.debug({ retries500 }, '500 while a later request was out: retrying (RFC 3261 12.2.2)');
          continue;
        }
        if (err.sipStatus !== 491) throw err;
        const wait = glareBackoffMs(true);
        if (clock.now() + wait >= at) throw err;
        this.#log?.debug({ waitMs: wait }, '491 request pending: retrying after the RFC 3261 14.1 wait');
        await new Promise<void>((resolve) => clock.setTimeout(resolve, wait));
        if (this.#gone() || this.#control !== control) throw err;
      }
    }
  }

  #ready(need: Readiness = 'open'): Dialog | undefined {
    if (this.#m.closed()) throw this.#closedError();
    const c = this.#control;
    if (c !== undefined && (this.#state === 'open' || (need !== 'open' && this.#state === 'opening'))) return c;
    if (need === 'requested' && this.#state === 'opening' && this.#m.refer === 'out-of-dialog') return undefined;
    if (this.#state === 'closed')
      throw new McuError('MCU_ERR_CLOSED', `${this.#who} is closed: open() it first`, { details: this.#details });
    throw new McuError('MCU_ERR_DOWN', `${this.#who} is down: ${this.#reason}`, {
      details: { ...this.#details, reason: this.#reason },
    });
  }

  // ---- helpers -------------------------------------------------------------

  /** Race a promise against a deadline (clock time `at`); `onTimeout` cancels what can be cancelled. */
  #race<T>(p: Promise<T>, at: number, what: string, onTimeout?: () => void): Promise<T> {
    const { clock } = this.#m;
    const ms = Math.max(0, Math.round(at - clock.now()));
    return new Promise<T>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        onTimeout?.();
        reject(this.#timeoutError(what, ms));
      }, ms);
      p.then(
        (v) => {
          clock.clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  #timeoutError(what: string, ms: number): McuError {
    return new McuError('MCU_ERR_TIMEOUT', `${this.#who}: ${what}: no answer within ${ms} ms`, {
      details: { ...this.#details, timeoutMs: ms },
    });
  }

  #mapError(err: unknown, what: string): McuError {
    if (err instanceof McuError) return err;
    const details = this.#details;
    const who = this.#who;
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
      return new McuError(code, `${who}: ${what}: ${s} ${err.reason}`, {
        cause: err,
        details: { ...details, sipStatus: s },
      });
    }
    if (isCascadedError(err, 'SIP_ERR_AUTH'))
      return new McuError('MCU_ERR_AUTH', `${who}: ${what}: ${(err as Error).message}`, { cause: err, details });
    if (isCascadedError(err, 'SIP_ERR_TIMEOUT'))
      return new McuError('MCU_ERR_TIMEOUT', `${who}: ${what}: SIP transaction timed out`, { cause: err, details });
    if (isCascadedError(err, 'SIP_ERR_CLOSED') && this.#m.closed()) return this.#closedError();
    if (isCascadedError(err, 'SIP_ERR_SUBSCRIPTION'))
      return new McuError('MCU_ERR_REJECTED', `${who}: ${what}: ${(err as Error).message}`, { cause: err, details });
    return new McuError('MCU_ERR_DOWN', `${who}: ${what}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
      details,
    });
  }

  #closedError(): McuError {
    return new McuError('MCU_ERR_CLOSED', `MCU driver ${this.mcuId} is closed`);
  }

  /** An open attempt that ended because the conference (or the driver) was closed meanwhile. */
  #notWantedError(): McuError {
    return this.#m.closed()
      ? this.#closedError()
      : new McuError('MCU_ERR_CLOSED', `${this.#who} was closed while opening`, { details: this.#details });
  }
}
