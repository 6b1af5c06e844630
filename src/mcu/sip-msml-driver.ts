/**
 * The standards-based MCU driver (design section 2): per conference of the
 * MCU a control dialog (INVITE without media), REFER for cascade links and
 * participants (RFC 3515, RFC 4579), the conference event package for roster
 * and link state (RFC 4575), INFO with MSML for layouts and streams (RFC
 * 5707) and picture fast update (RFC 5168); OPTIONS for health.
 *
 * It drives MCUs as they are (docs/mcu.md): only a control dialog decides
 * up or down. An MCU without the conference event package is up with a
 * `capabilities` record saying so; a conference's roster is then what the
 * driver set up itself, and the subscription is retried now and then.
 *
 * Several conferences per MCU (issue 10): `conference(uri)` gives the handle
 * of one of them (src/mcu/conference.ts), each with its own control dialog,
 * subscription and command lanes. The MCU's first URI is its default
 * ("lobby") conference: `connect()` opens it, its control dialog is the
 * MCU's health channel, and the driver's own conference-level methods and
 * roster/link events are its.
 *
 * Supervision: from the first connect() or open() until close(), one timer
 * ticks every healthIntervalMs and every open conference sends OPTIONS in its
 * control dialog; `healthFailures` failures in a row or the end of a control
 * dialog (a far-end BYE at any moment, also during connect) mark that
 * conference down (the lobby: the MCU), and a tick re-opens it (the MCU's
 * full roster state is then taken afresh, never trusted from memory). A 481
 * in any conference means the MCU restarted: every conference of it is
 * re-opened, and re-opened at once when the MCU comes back up.
 */
import type { Logger } from 'pino';
import { type Clock, onceClose, realClock, type TimerHandle, TypedEmitter } from '../core/index.js';
import { conferenceKey } from '../inventory/index.js';
import type { DigestCredentials, TransportName, UserAgent } from '../sip/index.js';
import { ConferenceControl, type DriverSettings, type McuContext, type SdpForm } from './conference.js';
import { McuError } from './errors.js';
import type { LayoutName } from './layouts.js';
import type {
  Conference,
  ConferenceStateName,
  LinkState,
  McuCapabilities,
  McuDriver,
  McuDriverEvents,
  McuHealth,
  ReferMode,
  RosterEntry,
  SwitchOptions,
  SwitchTiming,
} from './types.js';

export type { SdpForm };

export interface SipMsmlDriverOptions {
  /** The user agent to send from; shared by every driver of the daemon and owned by the caller. */
  readonly ua: UserAgent;
  /**
   * The MCU: its id, its address (the default, "lobby", conference and the
   * health channel) and, when the inventory lists them, the URIs of its
   * conferences (`conferenceUris`): `conference()` then takes only those.
   */
  readonly mcu: { readonly id: string; readonly uri: string; readonly conferences?: readonly string[] };
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
   * Where REFERs go (links, participants, hang-ups): 'out-of-dialog' (default) to the conference URI, each with a
   * subscription dialog of its own (RFC 4579 5.5); 'in-dialog' in the control dialog. An MCU that refuses
   * one outside a dialog (403, 405, 481, 501) gets it in the control dialog, and every later one
   * (`capabilities.refer`, `lacks`).
   */
  readonly refer?: ReferMode;
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
  /**
   * Subscribe every open conference to the MCU's call quality reports (RFC
   * 6035 vq-rtcpxr; event `quality` of each conference). Default false: an
   * MCU without the package answers each attempt 489, and strict peers fail
   * on a SUBSCRIBE they were not scripted for.
   */
  readonly qualityReports?: boolean;
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

/** A sip-msml driver as its owner (the pool) sees it: a driver whose credentials can be replaced. */
export interface SipMsmlDriver extends McuDriver {
  /**
   * Replace the secret (a rotated password file, SIGHUP). The driver's one credentials object is updated in
   * place: the dialogs and subscriptions already made with it (src/sip keeps the object) answer their next
   * challenge with the new secret too.
   */
  setCredentials(credentials: DigestCredentials): void;
}

export function createSipMsmlDriver(options: SipMsmlDriverOptions): SipMsmlDriver {
  return new Driver(options);
}

class Driver extends TypedEmitter<McuDriverEvents> implements SipMsmlDriver {
  readonly mcuId: string;
  readonly uri: string;
  readonly #clock: Clock;
  readonly #log?: Logger;
  readonly #ctx: McuContext;
  /** The credentials every conference of this MCU reads at each request (McuContext.auth). */
  readonly #auth: { credentials?: { username: string; password: string; realm?: string } };
  readonly #lobby: ConferenceControl;
  readonly #conferences = new Map<string, ConferenceControl>();
  /** Keys (conferenceKey) of the URIs `conference()` takes; undefined: any SIP URI. */
  readonly #allowed?: ReadonlySet<string>;
  #health: McuHealth;
  #supervising = false;
  #healthTimer?: TimerHandle;
  #closed = false;
  readonly close: () => Promise<void>;

  constructor(opts: SipMsmlDriverOptions) {
    super();
    this.mcuId = opts.mcu.id;
    this.uri = opts.mcu.uri;
    this.#clock = opts.clock ?? realClock;
    this.#log = opts.logger?.child({ module: 'mcu', mcu: opts.mcu.id });
    const o: DriverSettings = {
      requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      dialTimeoutMs: opts.dialTimeoutMs ?? DEFAULTS.dialTimeoutMs,
      healthIntervalMs: opts.healthIntervalMs ?? DEFAULTS.healthIntervalMs,
      healthFailures: opts.healthFailures ?? DEFAULTS.healthFailures,
      subscribeExpires: opts.subscribeExpires ?? DEFAULTS.subscribeExpires,
      resubscribeIntervalMs: opts.resubscribeIntervalMs ?? DEFAULTS.resubscribeIntervalMs,
      qualityReports: opts.qualityReports === true,
      ...(opts.sessionExpires === undefined ? {} : { sessionExpires: opts.sessionExpires }),
    };
    this.#auth = opts.credentials === undefined ? {} : { credentials: { ...opts.credentials } };
    this.#ctx = {
      mcuId: opts.mcu.id,
      ua: opts.ua,
      clock: this.#clock,
      ...(this.#log === undefined ? {} : { log: this.#log }),
      o,
      auth: this.#auth,
      ...(opts.transport === undefined ? {} : { transport: opts.transport }),
      ...(opts.subscribeTransport === undefined ? {} : { subscribeTransport: opts.subscribeTransport }),
      sdp: opts.sdp ?? 'answer',
      subscribeOverControl: false,
      refer: opts.refer ?? 'out-of-dialog',
      referRefused: (status, reason) => this.#referRefused(status, reason),
      closed: () => this.#closed,
      supervise: () => this.#supervise(),
      restarted: (from) => this.#restarted(from),
      changed: (from, state, reason) => this.#changed(from, state, reason),
    };
    if (opts.mcu.conferences !== undefined)
      this.#allowed = new Set([opts.mcu.uri, ...opts.mcu.conferences].map(conferenceKey));
    this.#lobby = new ConferenceControl(this.#ctx, opts.mcu.uri, true);
    this.#conferences.set(this.uri, this.#lobby);
    // The lobby's roster and links are the driver's own (as before the MCU had several conferences).
    this.#lobby.on('roster', (u) => this.safeEmit('roster', u));
    this.#lobby.on('link', (l) => this.safeEmit('link', l));
    this.#lobby.on('capabilities', (c) => this.safeEmit('capabilities', c));
    this.#health = { up: false, reason: 'not connected', since: this.#clock.wallNow() };
    this.onListenerError((err, event) => this.#log?.error({ err, event }, 'MCU driver listener threw'));
    this.close = onceClose(() => this.#close());
  }

  setCredentials(credentials: DigestCredentials): void {
    const mine = this.#auth.credentials;
    if (mine === undefined) {
      this.#auth.credentials = { ...credentials };
      return;
    }
    mine.username = credentials.username;
    mine.password = credentials.password;
    if (credentials.realm === undefined) delete mine.realm;
    else mine.realm = credentials.realm;
  }

  get health(): McuHealth {
    return this.#health;
  }

  get capabilities(): McuCapabilities {
    return this.#lobby.capabilities;
  }

  get roster(): ReadonlyMap<string, RosterEntry> {
    return this.#lobby.roster;
  }

  get conferences(): ReadonlyMap<string, Conference> {
    return this.#conferences;
  }

  conference(uri: string): Conference {
    const known = this.#conferences.get(uri);
    if (known !== undefined) return known;
    if (this.#allowed !== undefined && !this.#allowed.has(conferenceKey(uri)))
      throw new McuError('MCU_ERR_INVALID_ARGUMENT', `MCU ${this.mcuId} has no conference ${uri}`, {
        details: { mcu: this.mcuId, conference: uri },
      });
    const c = new ConferenceControl(this.#ctx, uri, false);
    this.#conferences.set(uri, c);
    return c;
  }

  // ---- connection and supervision ------------------------------------------

  /** Opens the lobby conference and holds it open until close(): it is the MCU's health channel. */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new McuError('MCU_ERR_CLOSED', `MCU driver ${this.mcuId} is closed`));
    this.#lobby.pin();
    return this.#lobby.open();
  }

  #supervise(): void {
    if (this.#supervising || this.#closed) return;
    this.#supervising = true;
    this.#scheduleHealth();
  }

  #scheduleHealth(): void {
    this.#healthTimer = this.#clock.setTimeout(() => {
      this.#healthTick().finally(() => {
        if (!this.#closed) this.#scheduleHealth();
      });
    }, this.#ctx.o.healthIntervalMs);
  }

  /**
   * Every conference at once, none waiting for another: the next tick is
   * timed from the lobby's (the MCU's health, as with one conference); a
   * room whose check or re-opening is still running skips a tick. While the
   * MCU is down (its lobby) only the lobby dials again: the rooms follow at
   * once when it is back (see #changed).
   */
  async #healthTick(): Promise<void> {
    if (this.#closed) return;
    const mcuDown = this.#lobby.state === 'down';
    for (const c of this.#conferences.values()) if (c !== this.#lobby) c.tickOnce(!mcuDown);
    await this.#lobby.tick();
  }

  #referRefused(status: number, reason: string): void {
    if (this.#ctx.refer === 'in-dialog') return;
    this.#ctx.refer = 'in-dialog';
    this.#ctx.referLack = {
      feature: 'out-of-dialog-refer',
      reason: `REFER outside a dialog refused: ${status} ${reason}`,
      sipStatus: status,
    };
    this.#log?.warn(
      { sipStatus: status },
      'MCU refused a REFER outside the control dialog: REFERs go in the control dialog from now on (control.refer: in-dialog)',
    );
    for (const c of this.#conferences.values()) c.referModeChanged();
  }

  #restarted(from: ConferenceControl): void {
    for (const c of this.#conferences.values()) if (c !== from) c.forgotten();
  }

  #changed(from: ConferenceControl, state: ConferenceStateName, reason: string): void {
    if (from !== this.#lobby) return;
    if (state === 'open') {
      this.#setHealth(true, reason);
      for (const c of this.#conferences.values()) if (c !== from) c.reopenSoon();
    } else if (state !== 'opening') this.#setHealth(false, reason);
  }

  #setHealth(up: boolean, reason: string): void {
    if (this.#health.up === up && (up || this.#health.reason === reason)) return;
    const changed = this.#health.up !== up;
    this.#health = { up, reason, since: this.#clock.wallNow() };
    if (changed) {
      if (up) this.#log?.info({ reason, capabilities: this.capabilities }, 'MCU up');
      // Our own close is no news for an operator: 74 warnings at every daemon stop read like an outage.
      else if (this.#closed) this.#log?.debug({ reason }, 'MCU driver closed');
      else this.#log?.warn({ reason }, 'MCU down');
    }
    this.safeEmit('health', this.#health);
  }

  // ---- the lobby conference's commands -----------------------------------------

  dialLink(target: string): Promise<LinkState> {
    return this.#lobby.dialLink(target);
  }

  hangUpLink(target: string): Promise<void> {
    return this.#lobby.hangUpLink(target);
  }

  setLayout(output: string, layout: LayoutName): Promise<void> {
    return this.#lobby.setLayout(output, layout);
  }

  showSource(output: string, region: number, source: string): Promise<void> {
    return this.#lobby.showSource(output, region, source);
  }

  mute(source: string): Promise<void> {
    return this.#lobby.mute(source);
  }

  unmute(source: string): Promise<void> {
    return this.#lobby.unmute(source);
  }

  requestKeyframe(output: string): Promise<void> {
    return this.#lobby.requestKeyframe(output);
  }

  switchOutput(
    output: string,
    layout: LayoutName,
    sources: readonly string[],
    options?: SwitchOptions,
  ): Promise<SwitchTiming> {
    return this.#lobby.switchOutput(output, layout, sources, options);
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#clock.clearTimeout(this.#healthTimer);
    await Promise.allSettled([...this.#conferences.values()].map((c) => c.shutDown()));
    this.#setHealth(false, 'closed');
  }
}
