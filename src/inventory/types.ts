/**
 * The inventory: the network as data. Levels, provinces and operators are
 * declared by each deployment (a 4-level 2021 network and a 3-level post-2025
 * one load alike); nothing below hard-codes a level name.
 *
 * Capacity semantics, shared with the planner: an endpoint takes one port on
 * its MCU; a cascade link takes one port on both MCUs and one cascade port on
 * the parent.
 */

export type ConnectionModel = 'direct' | 'via-operator' | 'relay';
export type McuRole = 'master' | 'slave';
export type OperatorKind = 'central' | 'province' | 'telco';
export type McuDriverName = 'sip-msml';

export interface Level {
  readonly id: string;
  readonly name: string;
}

export interface Province {
  readonly id: string;
  readonly name: string;
}

export interface Operator {
  readonly id: string;
  readonly name: string;
  readonly kind: OperatorKind;
  /** The province a provincial unit belongs to (kind `province`). */
  readonly province?: string;
}

export interface McuCapacity {
  /** Total call ports: endpoints plus cascade links at either end. */
  readonly ports: number;
  /** How many child MCUs may cascade into this one. */
  readonly cascadePorts: number;
}

/**
 * Digest credentials for one MCU (RFC 3261 22, RFC 8760). Only where the
 * secret lives is recorded here, never the secret: exactly one of
 * passwordFile (an absolute path after loading), passwordEnv or credential
 * (a file in $CREDENTIALS_DIRECTORY, systemd LoadCredential=).
 */
export interface McuAuth {
  readonly username: string;
  readonly passwordFile?: string;
  readonly passwordEnv?: string;
  readonly credential?: string;
  /** Only answer challenges of this realm. */
  readonly realm?: string;
}

/** Per-MCU driver settings; each overrides the daemon-wide `daemon.mcu` value or the driver default. */
export interface McuControl {
  readonly transport?: 'udp' | 'tcp' | 'tls';
  /** RFC 4028 session interval asked for on the control dialog, s. */
  readonly sessionExpires?: number;
  readonly healthIntervalMs?: number;
  /** answer: INVITE without SDP, answer the MCU's offer in the ACK; offer: send an inactive offer. */
  readonly sdp?: 'answer' | 'offer';
  /** Where REFERs go: out-of-dialog (to the conference URI, RFC 4579 5.5) or in-dialog (the control dialog). */
  readonly refer?: 'in-dialog' | 'out-of-dialog';
}

/** How a simulated MCU behaves (cascaded-sim, docs/sim.md): real MCUs differ. */
export type McuSimProfile = 'full' | 'no-conference-events' | 'full-state-only' | 'challenging';

/** Settings of the MCU simulator for this MCU; the daemon ignores them. */
export interface McuSim {
  readonly profile?: McuSimProfile;
  /** How long the simulated MCU takes to carry out an INFO, ms; absent: drawn per MCU (tens of ms). */
  readonly processingDelayMs?: number;
}

/**
 * How an MCU's conferences (meeting rooms) are addressed: a URI template with
 * a room number over a range of rooms, or a list of meeting-room URIs. One
 * conference per live session (docs/mcu.md, "Several conferences per MCU").
 */
export type McuConferences = McuRoomRange | McuRoomList;

export interface McuRoomRange {
  /** A SIP URI with `{room}` where the room number goes, e.g. `sip:{room}@10.1.2.3:5060`. */
  readonly template: string;
  /** Room numbers, both ends included. */
  readonly rooms: { readonly from: number; readonly to: number };
}

export interface McuRoomList {
  readonly uris: readonly string[];
}

export interface Mcu {
  readonly id: string;
  readonly name: string;
  readonly operator: string;
  readonly role: McuRole;
  readonly driver: McuDriverName;
  /**
   * Conference-focus SIP URIs, preferred first. The first is the MCU's
   * address for health checks and its default ("lobby") conference.
   */
  readonly sip: readonly string[];
  /** The MCU's conferences for sessions; absent: one, the first `sip` URI (see `conferenceUris`). */
  readonly conferences?: McuConferences;
  /** Optional H.323 signalling address, host:port. */
  readonly h323?: string;
  readonly vendor: string;
  readonly capacity: McuCapacity;
  /** MCUs this one may cascade into (its parent candidates), preferred first. Empty for the master. */
  readonly parents: readonly string[];
  readonly province?: string;
  readonly auth?: McuAuth;
  readonly control?: McuControl;
  readonly sim?: McuSim;
}

export interface Endpoint {
  readonly id: string;
  readonly name: string;
  readonly level: string;
  readonly province?: string;
  /** Candidate MCUs in preference order (empty only for `relay`). */
  readonly mcus: readonly string[];
  readonly connection: ConnectionModel;
  /** The telecom operator serving a `via-operator` endpoint. */
  readonly operator?: string;
  /** For `relay`: the endpoint whose picture and sound the AV matrix relays. */
  readonly relayVia?: string;
  /** The VCS (terminal) model in the room. */
  readonly vcs: string;
  /** The endpoint's own SIP URI, where MCUs dial it. */
  readonly sip?: string;
}

export interface Inventory {
  readonly levels: readonly Level[];
  readonly provinces: readonly Province[];
  readonly operators: readonly Operator[];
  readonly mcus: readonly Mcu[];
  readonly endpoints: readonly Endpoint[];
}
