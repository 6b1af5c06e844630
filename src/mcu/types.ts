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

/** A roster notification: the whole roster (`full`) or what changed since the previous version. */
export interface RosterUpdate {
  readonly full: boolean;
  readonly version: number;
  readonly changed: readonly RosterEntry[];
  readonly removed: readonly string[];
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
  /** The roster as of the last notification, by entity. */
  readonly roster: ReadonlyMap<string, RosterEntry>;
  /**
   * Open the control channel and the roster subscription; resolves when the
   * MCU is up with its full roster. Supervision (health checks, reconnection)
   * runs from the first call until close(), even when the first attempt fails.
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
