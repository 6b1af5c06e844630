import type { TypedEmitter } from '../core/index.js';
import type { ParticipantKind, ParticipantStatus } from './conference-info.js';
import type { LayoutName } from './layouts.js';

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
  readonly feature: 'conference-events';
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
  readonly lacks: readonly McuLack[];
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

/**
 * One MCU as the daemon drives it (design section 2). Outputs and sources are
 * participant URIs of the roster: an endpoint's screen is the output of its
 * participant, a link's output is what this MCU sends over that link.
 * Every call has a deadline and fails with a coded McuError.
 */
export interface McuDriver extends TypedEmitter<McuDriverEvents> {
  readonly mcuId: string;
  /** The conference URI the driver controls. */
  readonly uri: string;
  readonly health: McuHealth;
  /** What the MCU offers of what the driver uses (the conference event package); the driver degrades without it. */
  readonly capabilities: McuCapabilities;
  /** The roster as of the last notification (or, without the conference event package, the driver's own view), by entity. */
  readonly roster: ReadonlyMap<string, RosterEntry>;
  /**
   * Open the control channel and the roster subscription; resolves when the
   * MCU is up with its full roster, or up without one when the MCU lacks the
   * conference event package (see `capabilities`). Only a failed control
   * dialog fails it. Supervision (health checks, reconnection, re-subscribe
   * attempts) runs from the first call until close(), even when the first
   * attempt fails.
   */
  connect(): Promise<void>;
  /** Ask this MCU to dial a cascade link to `target` (another conference URI); resolves when connected. */
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
  /** End the control dialog and the subscription. Idempotent; later calls fail with MCU_ERR_CLOSED. */
  close(): Promise<void>;
}
