import type { TypedEmitter } from '../core/index.js';
import type { ParticipantKind, ParticipantStatus } from './conference-info.js';
import type { LayoutName } from './layouts.js';
import type { VqMetrics, VqReportType } from './vq-rtcpxr.js';

/** Up or down, with why, since when (wall-clock ms). */
export interface McuHealth {
  readonly up: boolean;
  readonly reason: string;
  readonly since: number;
}

/** One participant of the MCU's conference: an endpoint, or a cascade link to another MCU. */
export interface RosterEntry {
  /** The participant's URI: what `showSource`, `mute` and outputs name. */
  readonly entity: string;
  readonly kind: ParticipantKind;
  readonly status: ParticipantStatus;
  readonly audioMuted: boolean;
  readonly displayText?: string;
  readonly callId?: string;
}

/**
 * A roster notification: the whole roster (`full`) or what changed since the
 * previous version. `source` says where it came from: the MCU's conference
 * event package (RFC 4575; `version` is the document's), or, for an MCU
 * without it, what the driver itself set up and saw accepted (`version` then
 * counts the driver's own updates).
 */
export interface RosterUpdate {
  readonly source: 'conference-events' | 'driver';
  readonly full: boolean;
  readonly version: number;
  readonly changed: readonly RosterEntry[];
  readonly removed: readonly string[];
}

/** Something the driver uses that this MCU does not offer, and how it showed. */
export interface McuLack {
  readonly feature: 'conference-events' | 'out-of-dialog-refer' | 'quality-reports';
  readonly reason: string;
  /** The SIP status the MCU refused with, when it answered at all. */
  readonly sipStatus?: number;
}

/**
 * What this MCU offers of what the driver uses. `conferenceEvents` is
 * 'unknown' until the first subscription attempt settles; 'missing' means the
 * MCU is up but the roster comes from the driver's own actions, and the
 * driver keeps trying to subscribe.
 */
export interface McuCapabilities {
  readonly conferenceEvents: 'available' | 'missing' | 'unknown';
  /**
   * Where the driver sends this MCU's REFERs (links, participants, hang-ups): the configured
   * `control.refer`, or 'in-dialog' once the MCU refused one outside the control dialog (then also in `lacks`).
   */
  readonly refer: ReferMode;
  /**
   * The voice quality event package (RFC 6035), present only when the driver
   * was asked to subscribe to it (`qualityReports`): 'missing' when the MCU
   * refused or did not answer (the driver asks again at the resubscribe
   * interval); nothing else depends on it.
   */
  readonly qualityReports?: 'available' | 'missing' | 'unknown';
  readonly lacks: readonly McuLack[];
}

/**
 * 'out-of-dialog': each REFER goes to the conference URI outside any dialog (RFC 3515 2.4.1, RFC 4579 5.5)
 * and its implicit subscription has a dialog of its own; 'in-dialog': in the conference's control dialog.
 */
export type ReferMode = 'in-dialog' | 'out-of-dialog';

/**
 * One call's quality as its MCU reported it (RFC 6035 vq-rtcpxr): an
 * endpoint's call or a cascade link of the conference.
 */
export interface QualityReport {
  /** The conference URI the report came from (the subscription's). */
  readonly conference: string;
  /** The participant at the far end of the call: the report's RemoteID URI (an endpoint, or the far conference of a link). */
  readonly entity: string;
  readonly callId: string;
  readonly type: VqReportType;
  /** The call's last report (`VQSessionReport: CallTerm`). */
  readonly callTerm: boolean;
  /** The stream the MCU received from the participant. */
  readonly local?: VqMetrics;
  /** The stream the participant received, as it reported it to the MCU (RTCP XR). */
  readonly remote?: VqMetrics;
  /** When the driver received it (the driver's clock, wall time ms). */
  readonly at: number;
}

export type LinkStateName = 'dialing' | 'connected' | 'failed' | 'disconnected';

/** A cascade link as seen from this MCU; `target` is the conference URI at its other end. */
export interface LinkState {
  readonly target: string;
  readonly state: LinkStateName;
  readonly reason?: string;
  /** The SIP status the far MCU answered, for a failed dial. */
  readonly sipStatus?: number;
}

export type McuDriverEvents = {
  health: [McuHealth];
  capabilities: [McuCapabilities];
  roster: [RosterUpdate];
  link: [LinkState];
};

export interface SwitchOptions {
  /** Ask for a keyframe of the output after the switch (default true). */
  readonly keyframe?: boolean;
}

/** When the MCU confirmed each part of a `switchOutput`, in ms after the call (queueing in the lane included). */
export interface SwitchTiming {
  readonly switchedMs: number;
  /** Null when no keyframe was asked for. */
  readonly keyframeMs: number | null;
}

export type ConferenceStateName = 'closed' | 'opening' | 'open' | 'down';

export type ConferenceEvents = {
  roster: [RosterUpdate];
  link: [LinkState];
  state: [ConferenceStateName];
  /**
   * While opening: the control dialog is up (the room exists on the MCU), the roster is on its way. A session
   * that nobody but this process can have dialled sends its links' REFERs then (docs/cascade.md, "Order and
   * bounds").
   */
  established: [];
  /** Whether this conference's roster comes from the MCU's conference events or from the driver. */
  capabilities: [McuCapabilities];
  /** A call's quality report (RFC 6035), when the driver subscribes to them (`qualityReports`). */
  quality: [QualityReport];
};

export interface OpenOptions {
  /**
   * Hold the quality report subscription (RFC 6035, when the driver subscribes to them) back until
   * `reportQuality()`, re-opens included: a cascade's first dial, whose rooms' CPU goes to the links first
   * (docs/cascade.md, "The benchmark"). An open() without it lets a held subscription go.
   */
  readonly holdQuality?: boolean;
}

/**
 * One conference (meeting room) of an MCU, controlled through its own
 * control dialog and subscription (or, for an MCU without the conference
 * event package, the driver's own roster). Outputs and sources are
 * participant URIs of its roster. Every call has its own deadline and fails
 * with a coded McuError; nothing waits for another conference's commands.
 */
export interface Conference extends TypedEmitter<ConferenceEvents> {
  readonly mcuId: string;
  readonly uri: string;
  /** closed (not opened, or closed), opening (first attempt), open, down (lost: re-opened at the next health tick). */
  readonly state: ConferenceStateName;
  /** Whether the roster comes from the MCU's conference events ('available') or from the driver ('missing'). */
  readonly capabilities: McuCapabilities;
  /** Conference events, or the driver's own view for an MCU without them; by entity. */
  readonly roster: ReadonlyMap<string, RosterEntry>;
  /**
   * Control dialog (+ conference subscription where the MCU has the event
   * package) to this conference; resolves when open with its full roster.
   * Idempotent; supervised until close(): after an MCU restart or a far-end
   * BYE it is re-opened and the roster re-read in full (state 'down'
   * meanwhile). A failed first attempt rejects, and supervision goes on.
   */
  open(options?: OpenOptions): Promise<void>;
  /**
   * Subscribe to the quality reports held back by `open({ holdQuality: true })` now (when the driver subscribes
   * to them at all: `qualityReports`). Nothing when none are held back. Returns at once.
   */
  reportQuality(): void;
  /**
   * This conference's focus dials a cascade link to `target` (another MCU's conference URI), RFC 4579 REFER.
   * Open, or still opening once its control dialog is up (`established`): the room exists on the MCU. Where REFERs
   * go outside dialogs (`capabilities.refer`), as soon as its first open is under way: the REFER goes to the
   * conference URI, which needs no control dialog of ours.
   */
  dialLink(target: string): Promise<LinkState>;
  hangUpLink(target: string): Promise<void>;
  /** This conference's focus dials a participant (an endpoint URI) into the conference (REFER, RFC 4579 5.5). */
  dialParticipant(uri: string): Promise<void>;
  /** This conference's focus hangs a participant up (REFER with method=BYE, RFC 4579 5.6). */
  hangUpParticipant(uri: string): Promise<void>;
  /**
   * Ask the MCU for its whole roster again: a refresh of the conference subscription, which the notifier
   * answers with the full state (RFC 4575 4.1); a subscription the MCU has dropped fails the refresh, and the
   * driver subscribes anew. Nothing to ask for a roster the driver builds itself. Returns at once.
   */
  refreshRoster(): void;
  setLayout(output: string, layout: LayoutName): Promise<void>;
  /** Put `source`'s video into region `region` (1-based) of `output`'s layout. */
  showSource(output: string, region: number, source: string): Promise<void>;
  mute(source: string): Promise<void>;
  unmute(source: string): Promise<void>;
  /** Ask the encoder of `output` for a keyframe (RFC 5168). */
  requestKeyframe(output: string): Promise<void>;
  /**
   * Switch `output` in one round trip: its layout and the source of each
   * region (from region 1) in one MSML request, which the MCU carries out in
   * order, and, unless `keyframe` is false, a keyframe request for it sent
   * right behind in the same dialog without waiting for the first answer.
   * The dialog's CSeq order makes the MCU take the switch first (RFC 3261
   * 12.2.2); when the switch was answered after the keyframe request (it was
   * lost and sent again, so the keyframe may have come first), the keyframe
   * is asked for once more. Shares the output's lane with setLayout,
   * showSource and requestKeyframe.
   */
  switchOutput(
    output: string,
    layout: LayoutName,
    sources: readonly string[],
    options?: SwitchOptions,
  ): Promise<SwitchTiming>;
  /**
   * Ends the control dialog and subscription only: the conference, its
   * participants and its cascade links stay on the MCU (links run MCU to
   * MCU; a daemon restart drops nothing). Idempotent; open() again later
   * (another session in the same room). Commands meanwhile fail with
   * MCU_ERR_CLOSED. The driver's default conference stays open while the
   * driver is connected: it is the MCU's health channel.
   */
  close(): Promise<void>;
}

/**
 * One MCU as the daemon drives it (design section 2). Outputs and sources are
 * participant URIs of the roster: an endpoint's screen is the output of its
 * participant, a link's output is what this MCU sends over that link.
 * Every call has a deadline and fails with a coded McuError.
 */
export interface McuDriver extends TypedEmitter<McuDriverEvents> {
  readonly mcuId: string;
  /** The MCU's address: its default ("lobby") conference, whose control dialog is the health channel. */
  readonly uri: string;
  readonly health: McuHealth;
  /** What the MCU offers of what the driver uses (the conference event package); the driver degrades without it. */
  readonly capabilities: McuCapabilities;
  /** The default conference's roster as of the last notification (or the driver's own view), by entity. */
  readonly roster: ReadonlyMap<string, RosterEntry>;
  /** The conferences handed out so far (the default one always), by URI. */
  readonly conferences: ReadonlyMap<string, Conference>;
  /**
   * The handle of one of this MCU's conferences, created once per URI: the
   * driver's `uri` (its default conference) or one of `conferenceUris(mcu)`
   * (others: MCU_ERR_INVALID_ARGUMENT, when the driver was given the list).
   */
  conference(uri: string): Conference;
  /**
   * Open the default conference (control channel and roster subscription) and
   * hold it open until close(); resolves when the
   * MCU is up with its full roster, or up without one when the MCU lacks the
   * conference event package (see `capabilities`). Only a failed control
   * dialog fails it. Supervision (health checks, reconnection, re-subscribe
   * attempts) runs from the first call until close(), even when the first
   * attempt fails.
   */
  connect(): Promise<void>;
  /**
   * The default conference's commands (`conference(uri)`'s). Ask this MCU to
   * dial a cascade link to `target` (another conference URI); resolves when connected.
   */
  dialLink(target: string): Promise<LinkState>;
  /** Ask this MCU to hang up its link to `target`. */
  hangUpLink(target: string): Promise<void>;
  setLayout(output: string, layout: LayoutName): Promise<void>;
  /** Put `source`'s video into region `region` (1-based) of `output`'s layout. */
  showSource(output: string, region: number, source: string): Promise<void>;
  mute(source: string): Promise<void>;
  unmute(source: string): Promise<void>;
  /** Ask the encoder of `output` for a keyframe (RFC 5168). */
  requestKeyframe(output: string): Promise<void>;
  /** Switch an output in one round trip (see `Conference.switchOutput`). */
  switchOutput(
    output: string,
    layout: LayoutName,
    sources: readonly string[],
    options?: SwitchOptions,
  ): Promise<SwitchTiming>;
  /** End every conference's control dialog and subscription. Idempotent; later calls fail with MCU_ERR_CLOSED. */
  close(): Promise<void>;
}
