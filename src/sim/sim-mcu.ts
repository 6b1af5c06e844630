/**
 * One simulated MCU: a conference focus on our SIP stack (signalling only, no
 * media). It serves everything the sip-msml driver uses:
 *
 * - INVITE without a body: a control dialog, with the MCU's offer in its 200
 *   and the answer expected in the ACK (RFC 3261 13.3.1.4, 13.2.2.4; an ACK
 *   without a valid answer ends the dialog with BYE, as real MCUs did); an
 *   INVITE whose offer carries no media (every stream inactive) is a control
 *   dialog too, its offer answered in the 200; INFO in it carries MSML (RFC 5707), after the MCU's INFO
 *   processing delay, or a picture fast update (RFC 5168); REFER in it dials a cascade link
 *   (RFC 4579: the focus sends a real INVITE to the Refer-To URI and reports
 *   progress in message/sipfrag NOTIFYs), or with `method=BYE` hangs one up;
 * - INVITE with SDP: a participant (a cascade link when the caller is another
 *   conference focus, else an endpoint), refused 486/503 when the ports are full;
 * - SUBSCRIBE to the conference package (RFC 4575): full state, then partial
 *   notifications with increasing versions;
 * - OPTIONS out of dialog: 200.
 *
 * Simulated endpoints join without SIP of their own (`join()`), so a national
 * roster costs memory, not sockets. Faults and impairments are set at run time.
 *
 * Conferences (issue 10): the MCU hosts its lobby (the user part of its URI)
 * and, when given `rooms`, one conference per room, selected by the
 * Request-URI's user part (404 for another). Everything above happens per
 * conference: control dialogs, MSML, subscriptions, participants, outputs;
 * the ports are the MCU's, shared by all its conferences. A REFER to a
 * simulated endpoint "dials it out": it leaves the conference it was in (on
 * this MCU or another) and joins this one; a hang-up sends it back to the
 * lobby, idle. Cascade links are INVITEs from the dialing room's URI (so the
 * far end names the link by it) to the far room's, with session timers (RFC
 * 4028), so both ends notice a half-dead link.
 *
 * Profiles, as real MCUs differ (docs/sim.md): `full` does all of the above;
 * `no-conference-events` answers SUBSCRIBE with 489 Bad Event (RFC 6665
 * 8.3.2); `full-state-only` sends every RFC 4575 notification as full state;
 * `challenging` asks for digest credentials (src/sim/digest.ts) on every
 * request outside a dialog and on re-INVITEs, except from the other
 * conference foci of the network (cascade neighbours, trusted by address).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { onceClose, seededRandom } from '../core/index.js';
import type { McuSimProfile } from '../inventory/index.js';
import {
  buildConferenceInfo,
  buildResult,
  buildVqReport,
  CONFERENCE_INFO_CONTENT_TYPE,
  type ConferenceUser,
  isLayoutName,
  layoutRegions,
  MEDIA_CONTROL_CONTENT_TYPE,
  MSML_CONTENT_TYPE,
  type MsmlCommand,
  type MsmlResult,
  parseMsmlRequest,
  parsePictureFastUpdate,
  VQ_RTCPXR_CONTENT_TYPE,
  VQ_RTCPXR_EVENT,
  type VqMetrics,
} from '../mcu/index.js';
import {
  createUserAgent,
  type Dialog,
  type IncomingInvite,
  type IncomingRefer,
  type IncomingRequest,
  type IncomingSubscribe,
  parseUri,
  type ServerSubscription,
  type SessionTimerOptions,
  type SipUri,
  type TimerConfig,
  type UserAgent,
} from '../sip/index.js';
import { DigestGuard } from './digest.js';
import { type ConferenceDisplayState, EMPTY_OUTPUT, type OutputState, type ParticipantState } from './display.js';
import { SimError } from './errors.js';
import { attachNetem, type Impairment, type NetemPort, NO_IMPAIRMENT, type WireStats } from './netem.js';
import { answerProblem, carriesNoMedia, mcuAnswer, mcuOffer, SDP_TYPE } from './sdp.js';

export interface SimFaults {
  /** Stop answering anything (datagrams are dropped on arrival; stream requests go unanswered). */
  readonly silent: boolean;
  /** Answer every INFO with this SIP status (e.g. 500) instead of executing it. */
  readonly infoStatus?: number;
}

export interface SimMcuOptions {
  readonly id: string;
  /** The conference URI to serve, e.g. sip:conf@127.0.1.7:5060 (port 0 picks one; see `uri`). */
  readonly uri: string;
  /** Call ports: endpoints plus cascade links. */
  readonly ports: number;
  readonly displayText?: string;
  /** Status for an INVITE when the ports are full (default 486 Busy Here). */
  readonly busyStatus?: 486 | 503;
  /** Delay before the MCU handles each request, ms (default 0). */
  readonly processingDelayMs?: number;
  /**
   * How long the MCU takes to carry out an INFO (MSML or picture fast update) before it answers, ms.
   * Default: drawn per MCU from its id, 20..79 ms, as real MCUs take tens of milliseconds; 0 only when asked.
   */
  readonly infoDelayMs?: number;
  /** Behaviour profile (default 'full'). */
  readonly profile?: McuSimProfile;
  /** The credentials the `challenging` profile asks for (required by it). */
  readonly auth?: SimAuth;
  /** `challenging`: refuse every n-th correctly authenticated request as stale (default 3; 0: never). */
  readonly staleEvery?: number;
  readonly impairment?: Partial<Impairment>;
  /** Is this URI another conference focus? (RFC 4579 isfocus, known here from the inventory.) */
  readonly isFocus?: (entity: string) => boolean;
  /**
   * Rooms besides the lobby (the user part of `uri`), by user part (`8001`) or
   * as URIs whose user part is taken (the host and port are the MCU's).
   * Absent: the lobby alone, and every Request-URI reaches it.
   */
  readonly rooms?: readonly string[];
  /** Where the simulated endpoints are, network-wide; absent: this MCU's own (and any `.invalid` URI). */
  readonly endpoints?: SimEndpointDirectory;
  /**
   * RFC 4028 session timer of the cascade links (and calls) this MCU dials;
   * default 90 s, the RFC's smallest interval; false for none. Its `minSE`
   * is also the smallest interval the MCU accepts from callers.
   */
  readonly sessionTimer?: SessionTimerOptions | false;
  readonly timers?: Partial<TimerConfig>;
  readonly logger?: Logger;
  /** Also listen on TCP on the same port (default true: large rosters do not fit a datagram). */
  readonly tcp?: boolean;
  /**
   * Pace of the call quality reports (RFC 6035) to each vq-rtcpxr subscriber, ms: one report per tick,
   * for the conference's calls in turn (default 1000: a bounded load whatever the roster's size).
   */
  readonly qualityReportMs?: number;
}

/** Where the simulated endpoints are: a dial-out takes one from wherever it sits. */
export interface SimEndpointDirectory {
  /** Is this a simulated endpoint (no SIP of its own)? */
  has(entity: string): boolean;
  /** Take it out of the conference it is in, on any MCU but `to`. */
  release(entity: string, to: SimMcu): void;
}

export interface SimAuth {
  readonly username: string;
  readonly password: string;
  /** Realm of the challenges (default: the MCU id). */
  readonly realm?: string;
}

/** What the MCU's profile did, counted (the control interface shows them). */
export interface SimCounters {
  /** 401s sent (challenges, stale ones included). */
  challenges: number;
  /** Requests whose credentials were wrong (wrong user, password, URI, replayed nonce count). */
  authFailures: number;
  /** Correct credentials refused as stale (a new nonce). */
  staleNonces: number;
  /** SUBSCRIBEs refused (no-conference-events). */
  subscribesRefused: number;
  /** REFERs taken outside a dialog, to a conference URI (RFC 4579 5.5). */
  refersOutside: number;
  /** REFERs refused outside a dialog (403, the no-conference-events profile: in a control dialog only). */
  refersOutsideRefused: number;
  /** Calls ended with BYE because the answer to our offer was missing or invalid (a control dialog's ACK, a dialled call's 200). */
  offersUnanswered: number;
  /** Session refreshes (RFC 4028) of cascade links and calls, sent or answered. */
  sessionRefreshes: number;
  /** Cascade links and calls this MCU ended unrefreshed: their session timer ran out, or a refresh failed (RFC 4028 10). */
  sessionExpiries: number;
}

export interface SimParticipant extends ParticipantState {
  readonly entity: string;
  /** The URI of the conference it is in. */
  readonly conference: string;
  readonly displayText?: string;
  readonly status: 'connected' | 'dialing-out';
}

/** One conference of a simulated MCU. */
export interface SimConference {
  readonly uri: string;
  /** Its user part: `conf` for the lobby, `8001` for a room. */
  readonly room: string;
  readonly participants: ReadonlyMap<string, SimParticipant>;
  readonly outputs: ReadonlyMap<string, OutputState>;
  /** Control dialogs open from drivers. */
  readonly controlDialogs: number;
  /** Conference event subscriptions (RFC 4575). */
  readonly subscribers: number;
  /** Call quality report subscriptions (RFC 6035 vq-rtcpxr). */
  readonly qualitySubscribers: number;
}

export interface SimMcu {
  readonly id: string;
  /** The lobby's URI, the MCU's address (with the bound port). */
  readonly uri: string;
  /** Every conference that has existed since the start or the last restart, lobby first, by URI. */
  readonly conferences: ReadonlyMap<string, SimConference>;
  /** Participants of every conference (an entity in two conferences appears once: see `conferences`). */
  readonly participants: ReadonlyMap<string, SimParticipant>;
  /** Outputs of every conference (by entity, as `participants`). */
  readonly outputs: ReadonlyMap<string, OutputState>;
  /** Control dialogs open from drivers, in every conference. */
  readonly controlDialogs: number;
  readonly faults: SimFaults;
  readonly profile: McuSimProfile;
  /** INFO processing delay, ms. */
  readonly infoDelayMs: number;
  /** Delay before every request, ms. */
  readonly processingDelayMs: number;
  readonly counters: Readonly<SimCounters>;
  readonly impairment: Impairment;
  /** What the network emulator did: datagrams dropped and delayed, and the TCP figures under `tcp`. */
  readonly wire: WireStats;
  /** Stalled TCP until this time (performance.now() ms), 0 when not stalled. */
  readonly tcpStalledUntil: number;
  /** The names of its rooms besides the lobby (`8001`, ...), as configured. */
  readonly rooms: readonly string[];
  /** The URI of a room (`8001`) or of the lobby (its user part); SIM_ERR_UNKNOWN_CONFERENCE for another. */
  roomUri(room: string): string;
  /** The URI of the conference an entity is in here, if any (the first of several). */
  locate(entity: string): string | undefined;
  /**
   * Add a simulated endpoint (no SIP of its own) to the lobby or a room
   * (its user part or URI); one already in another conference here moves.
   * Throws SIM_ERR_FULL when the ports are used up.
   */
  join(entity: string, displayText?: string, room?: string): void;
  /**
   * Seat a simulated endpoint at rest in the lobby: listed there (the network's placement), in no call, so
   * it takes no port until a room dials it; one in a call here leaves it.
   */
  seat(entity: string, displayText?: string): void;
  /** Take an entity out of every conference here (no BYE: for simulated endpoints). */
  leave(entity: string): void;
  setFaults(faults: Partial<SimFaults>): void;
  /** Delay, jitter and loss on the MCU's UDP and TCP traffic (TCP keeps order; loss costs a retransmission timeout). */
  setImpairment(impairment: Partial<Impairment>): void;
  /** Hold every chunk of every TCP connection of this MCU, both directions, for `ms` (0 ends a stall). */
  stallTcp(ms: number): void;
  /** Abort every open TCP connection of this MCU with an RST; returns how many. */
  resetTcp(): number;
  setProcessingDelay(ms: number): void;
  setInfoDelay(ms: number): void;
  /** Drop a cascade link from this side (BYE), as a failing MCU or line would; in `room` only when given. */
  dropLink(entity: string, room?: string): Promise<void>;
  /**
   * Drop an endpoint's call, as a failing line or endpoint would: a SIP call gets a BYE; a simulated
   * endpoint leaves its conference and is in none until dialled again. In `room` only when given.
   */
  dropCall(entity: string, room?: string): Promise<void>;
  /** Crash and come back after `downMs`: every call and subscription is lost without a BYE. */
  restart(downMs?: number): Promise<void>;
  /** Every conference's state for the display model. */
  display(): readonly ConferenceDisplayState[];
  close(): Promise<void>;
}

const INFO_DELAY_MIN_MS = 20;
const INFO_DELAY_SPREAD_MS = 60;
const DEFAULT_STALE_EVERY = 3;

/** The INFO processing delay an MCU gets when none is given: 20..79 ms, the same for the same id. */
export function defaultInfoDelayMs(id: string): number {
  return INFO_DELAY_MIN_MS + Math.floor(seededRandom(seedOf(id))() * INFO_DELAY_SPREAD_MS);
}

const NO_TCP_STATS = { open: 0, connections: 0, delayed: 0, retransmitted: 0, stalled: 0, resets: 0 };
const MAX_STALL_MS = 600_000; // ms: a stall longer than Timer F many times over proves nothing more
const LINK_DIAL_TIMEOUT_MS = 20_000; // ms: a cascade INVITE still unanswered is CANCELled
/** s: the smallest session interval RFC 4028 4 allows: a half-dead link is noticed within about 1.5 minutes. */
const LINK_SESSION_EXPIRES = 90;
const PORT_PROBE_ATTEMPTS = 5;
/** kbit/s: the nominal video bitrate of a cascade link and of an endpoint's call (1080p30 and 720p30 H.264). */
const LINK_KBPS = 4_096;
const ENDPOINT_KBPS = 2_048;

/** The bind failed because the address was taken (the cause chain of a SIP_ERR_TRANSPORT). */
function isAddressInUse(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') return true;
  }
  return false;
}

/** A per-MCU seed (FNV-1a of the id): every MCU draws its own replayable loss and jitter. */
export function seedOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The participant's identity: scheme, user, host and port of its URI, without parameters. */
export function entityOf(u: SipUri): string {
  return `${u.scheme}:${u.user === undefined ? '' : `${u.user}@`}${u.host}${u.port === undefined ? '' : `:${u.port}`}`;
}

interface Participant extends SimParticipant {
  conference: string;
  audioMuted: boolean;
  status: 'connected' | 'dialing-out';
  /**
   * A simulated endpoint at rest in the lobby (seated there by the network, or hung up from a room): listed
   * and reachable, but in no call, so it holds no port. A real endpoint between sessions calls nobody; the
   * inventory's ports (what the planner plans within) are the calls': links, endpoints in rooms, walk-ins.
   */
  idle?: boolean;
  callId?: string;
  dialog?: Dialog;
  /** When its call's last quality report ended (or it joined): the next report's START. */
  reportedAt?: number;
}

/** A vq-rtcpxr subscriber of one conference: the next call it hears about is the one after `last`. */
interface QualitySubscriber {
  readonly server: ServerSubscription;
  last?: string;
  busy: boolean;
}

interface Subscriber {
  /** Undefined until the initial NOTIFY (the full state) has its 2xx. */
  server?: ServerSubscription;
  version: number;
  /** The subscriber's NOTIFYs, one after another: the initial one first. */
  chain: Promise<void>;
  /**
   * Changes not notified yet, by entity (the last given for each): while a NOTIFY is in flight they gather,
   * and the next NOTIFY carries them all. 'full': the whole roster is due.
   */
  pending?: Map<string, ConferenceUser> | 'full';
}

/** One conference's state: the lobby or a room. */
class Room implements SimConference {
  readonly participants = new Map<string, Participant>();
  readonly outputs = new Map<string, OutputState>();
  readonly controls = new Set<Dialog>();
  readonly subs = new Set<Subscriber>();
  readonly quality = new Set<QualitySubscriber>();

  constructor(
    readonly room: string,
    readonly uri: string,
  ) {}

  get controlDialogs(): number {
    return this.controls.size;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  get qualitySubscribers(): number {
    return this.quality.size;
  }
}

export async function createSimMcu(options: SimMcuOptions): Promise<SimMcu> {
  const mcu = new SimMcuImpl(options);
  await mcu.start();
  return mcu;
}

class SimMcuImpl implements SimMcu {
  readonly id: string;
  readonly #o: SimMcuOptions;
  readonly #log?: Logger;
  readonly #host: string;
  readonly #user: string;
  #port: number;
  #ua?: UserAgent;
  #netem?: NetemPort;
  /** Room names (user parts) besides the lobby; undefined: the lobby takes every Request-URI. */
  readonly #roomNames?: ReadonlySet<string>;
  /** The lobby first, then rooms as they were first used (created on demand: a room costs nothing until then). */
  readonly #rooms = new Map<string, Room>();
  /** Participants of every conference: the ports in use. */
  #used = 0;
  #faults: SimFaults = { silent: false };
  #impairment: Impairment;
  #processingDelayMs: number;
  #infoDelayMs: number;
  readonly #profile: McuSimProfile;
  readonly #digest?: DigestGuard;
  readonly #counters: SimCounters = {
    challenges: 0,
    authFailures: 0,
    staleNonces: 0,
    subscribesRefused: 0,
    refersOutside: 0,
    refersOutsideRefused: 0,
    offersUnanswered: 0,
    sessionRefreshes: 0,
    sessionExpiries: 0,
  };
  /** INVITEs answered but not yet confirmed: their ports are taken. */
  #pending = 0;
  #closed = false;
  #restarting?: Promise<void>;
  #qualityTimer?: NodeJS.Timeout;
  readonly close: () => Promise<void>;

  constructor(o: SimMcuOptions) {
    const u = parseUri(o.uri);
    if (u === undefined || u.scheme !== 'sip' || u.host === '')
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${o.id}: not a sip: URI: ${o.uri}`);
    if (!Number.isInteger(o.ports) || o.ports < 1)
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${o.id}: ports must be >= 1`);
    this.id = o.id;
    this.#o = o;
    this.#log = o.logger?.child({ module: 'sim', mcu: o.id });
    this.#host = u.host;
    this.#port = u.port ?? 5060;
    this.#user = u.user ?? 'conf';
    if (o.rooms !== undefined) {
      const names = new Set<string>();
      for (const r of o.rooms) {
        const name = r.startsWith('sip:') ? parseUri(r)?.user : r;
        if (name === undefined || name === '' || /[\s@:;?]/.test(name))
          throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${o.id}: not a room name or room URI: ${r}`);
        if (name !== this.#user) names.add(name);
      }
      this.#roomNames = names;
    }
    this.#impairment = { ...NO_IMPAIRMENT, ...o.impairment };
    this.#processingDelayMs = o.processingDelayMs ?? 0;
    this.#infoDelayMs = o.infoDelayMs ?? defaultInfoDelayMs(o.id);
    if (!(this.#processingDelayMs >= 0) || !(this.#infoDelayMs >= 0))
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${o.id}: delays must be >= 0`);
    this.#profile = o.profile ?? 'full';
    if (this.#profile === 'challenging') {
      if (o.auth === undefined)
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${o.id}: the challenging profile needs auth`);
      this.#digest = new DigestGuard({
        realm: o.auth.realm ?? o.id,
        username: o.auth.username,
        password: o.auth.password,
        staleEvery: o.staleEvery ?? DEFAULT_STALE_EVERY,
      });
    }
    this.close = onceClose(() => this.#close());
  }

  get uri(): string {
    return this.#uriOf(this.#user);
  }

  #uriOf(room: string): string {
    return `sip:${room}@${this.#host}:${this.#port}`;
  }

  /** The lobby (created with the MCU, and again after a restart). */
  get #lobby(): Room {
    return this.#room(this.#user)!;
  }

  /**
   * The conference of a Request-URI user part or a room name; undefined for
   * one this MCU does not host. Without rooms every name is the lobby.
   */
  #room(name: string | undefined): Room | undefined {
    const key = name === undefined || this.#roomNames === undefined ? this.#user : name;
    let r = this.#rooms.get(key);
    if (r === undefined) {
      if (key !== this.#user && !this.#roomNames?.has(key)) return undefined;
      r = new Room(key, this.#uriOf(key));
      this.#rooms.set(key, r);
    }
    return r;
  }

  /** A room by its name or URI, for the API: SIM_ERR_UNKNOWN_CONFERENCE for another. */
  #roomNamed(room: string | undefined): Room {
    const name = room === undefined ? this.#user : room.startsWith('sip:') ? parseUri(room)?.user : room;
    const r = name === undefined ? undefined : this.#room(name);
    if (r === undefined || (name !== this.#user && this.#roomNames === undefined))
      throw new SimError('SIM_ERR_UNKNOWN_CONFERENCE', `MCU ${this.id} has no conference ${room}`);
    return r;
  }

  get rooms(): readonly string[] {
    return [...(this.#roomNames ?? [])];
  }

  roomUri(room: string): string {
    const name = room.startsWith('sip:') ? parseUri(room)?.user : room;
    if (name !== undefined && (name === this.#user || this.#roomNames?.has(name) === true)) return this.#uriOf(name);
    throw new SimError('SIM_ERR_UNKNOWN_CONFERENCE', `MCU ${this.id} has no conference ${room}`);
  }

  get conferences(): ReadonlyMap<string, SimConference> {
    this.#room(this.#user);
    return new Map([...this.#rooms.values()].map((r) => [r.uri, r]));
  }

  get participants(): ReadonlyMap<string, SimParticipant> {
    if (this.#rooms.size === 1) return this.#lobby.participants;
    const all = new Map<string, SimParticipant>();
    for (const r of this.#rooms.values()) for (const [e, p] of r.participants) if (!all.has(e)) all.set(e, p);
    return all;
  }

  get outputs(): ReadonlyMap<string, OutputState> {
    if (this.#rooms.size === 1) return this.#lobby.outputs;
    const all = new Map<string, OutputState>();
    for (const r of this.#rooms.values()) for (const [e, o] of r.outputs) if (!all.has(e)) all.set(e, o);
    return all;
  }

  get controlDialogs(): number {
    let n = 0;
    for (const r of this.#rooms.values()) n += r.controls.size;
    return n;
  }

  locate(entity: string): string | undefined {
    for (const r of this.#rooms.values()) if (r.participants.has(entity)) return r.uri;
    return undefined;
  }

  get faults(): SimFaults {
    return this.#faults;
  }

  get impairment(): Impairment {
    return this.#impairment;
  }

  get profile(): McuSimProfile {
    return this.#profile;
  }

  get infoDelayMs(): number {
    return this.#infoDelayMs;
  }

  get processingDelayMs(): number {
    return this.#processingDelayMs;
  }

  get counters(): Readonly<SimCounters> {
    return { ...this.#counters };
  }

  get wire(): WireStats {
    return this.#netem?.stats() ?? { dropped: 0, delayed: 0, tcp: { ...NO_TCP_STATS } };
  }

  get tcpStalledUntil(): number {
    return this.#netem !== undefined && this.#netem.stalledUntil > performance.now() ? this.#netem.stalledUntil : 0;
  }

  async start(attempt = 1): Promise<void> {
    const st = this.#o.sessionTimer;
    const ua = await createUserAgent({
      listen: [
        { transport: 'udp', host: this.#host, port: this.#port },
        ...(this.#o.tcp === false ? [] : [{ transport: 'tcp' as const, host: this.#host, port: this.#port }]),
      ],
      user: this.#user,
      userAgent: 'cascaded-sim',
      // A conference focus says so in its Contact (RFC 4579 3.3): far ends take its calls as cascade links.
      contactParams: { isfocus: true },
      ...(st === false ? {} : { sessionTimer: { expires: LINK_SESSION_EXPIRES, ...st } }),
      timers: this.#o.timers,
      logger: this.#o.logger,
    });
    if (this.#port === 0) {
      // Port 0 picked an ephemeral UDP port; TCP, if any, picked another: serve on the UDP one.
      const udp = ua.listening.find((l) => l.transport === 'udp')!;
      this.#port = udp.port;
      if (this.#o.tcp !== false) {
        await ua.close();
        try {
          return await this.start();
        } catch (err) {
          // Between the probe and the re-bind another socket (a client's ephemeral
          // port, say) may have taken that number for TCP: probe a new one.
          if (!isAddressInUse(err) || attempt >= PORT_PROBE_ATTEMPTS) throw err;
          this.#port = 0;
          return this.start(attempt + 1);
        }
      }
    }
    this.#ua = ua;
    // The lobby exists from the start (rooms when first used): its URI needs the bound port.
    this.#room(this.#user);
    // Attached once the port is known; it outlives restarts (same address, same counters).
    this.#netem ??= attachNetem(this.#host, this.#port, seedOf(this.id));
    this.#applyImpairment();
    // Requests outside a dialog: the ones a challenging MCU asks credentials for.
    ua.on('invite', (inv) => this.#guard(inv, () => this.#onInvite(inv), true));
    ua.on('subscribe', (s) => this.#guard(s, () => this.#onSubscribe(s), true));
    ua.on('refer', (r) => this.#guard(r, () => this.#onReferOutside(r), true));
    ua.on('request', (req) =>
      this.#guard(
        req,
        async () => {
          req.respond(req.method === 'OPTIONS' ? 200 : 405);
        },
        true,
      ),
    );
  }

  /**
   * Faults and processing delay apply to every request before it is handled;
   * a challenging MCU first checks the credentials of `authenticate` requests.
   */
  #guard(req: IncomingRequest, handle: () => Promise<void>, authenticate = false): void {
    if (this.#faults.silent) return;
    const run = () => {
      if (authenticate && !this.#authenticated(req)) return Promise.resolve();
      return handle().catch((err: unknown) => {
        // Closing cuts short what is in flight (a REFER's final NOTIFY, say): no news then.
        if (this.#closed) this.#log?.debug({ err, method: req.method }, 'request cut short by the close');
        else this.#log?.warn({ err, method: req.method }, 'simulated MCU failed to handle a request');
        if (!req.responded) req.respond(500);
      });
    };
    if (this.#processingDelayMs > 0) sleep(this.#processingDelayMs, undefined, { ref: false }).then(run);
    else void run();
  }

  /** Digest authentication of the challenging profile: true to go on, false when answered 401. */
  #authenticated(req: IncomingRequest): boolean {
    const guard = this.#digest;
    if (guard === undefined) return true;
    // Cascade neighbours are trusted by address, as MCUs are set up to accept their peers' links: another
    // conference focus of the network, calling from the address its URI names.
    const from = req.message.from?.uri;
    if (from !== undefined && from.host === req.remote.host && this.#o.isFocus?.(entityOf(from)) === true) return true;
    const verdict = guard.check(req.message.headers.getAll('authorization'), req.method, req.message.uri);
    if (verdict === 'ok') return true;
    if (verdict === 'invalid') this.#counters.authFailures++;
    if (verdict === 'stale') this.#counters.staleNonces++;
    this.#counters.challenges++;
    req.respond(401, { headers: { 'WWW-Authenticate': guard.challenge(verdict === 'stale') } });
    return false;
  }

  /** The conference a request outside a dialog is for, or undefined after answering 404. */
  #roomOf(req: IncomingRequest, reject: (status: number) => void): Room | undefined {
    const r = this.#room(req.message.requestUri?.user);
    if (r === undefined) reject(404);
    return r;
  }

  // ---- participants ----------------------------------------------------------

  join(entity: string, displayText?: string, room?: string): void {
    this.#place(entity, displayText, this.#roomNamed(room), false);
  }

  seat(entity: string, displayText?: string): void {
    this.#place(entity, displayText, this.#lobby, true);
  }

  #place(entity: string, displayText: string | undefined, to: Room, idle: boolean): void {
    this.#assertOpen();
    const u = parseUri(entity);
    if (u === undefined) throw new SimError('SIM_ERR_INVALID_ARGUMENT', `not a URI: ${entity}`);
    const e = entityOf(u);
    const from = [...this.#rooms.values()].find((r) => r.participants.get(e)?.kind === 'endpoint');
    const was = from?.participants.get(e);
    if (from === to && (was?.idle === true) === idle) return;
    // A call moved between conferences keeps its port; one that starts needs a free one.
    if (!idle && (was === undefined || was.idle === true) && this.#full())
      throw new SimError('SIM_ERR_FULL', `MCU ${this.id}: all ${this.#o.ports} ports in use`);
    if (from !== undefined) this.#remove(from, e);
    const text = displayText ?? was?.displayText;
    this.#add(to, {
      entity: e,
      conference: to.uri,
      kind: 'endpoint',
      status: 'connected',
      audioMuted: false,
      ...(text ? { displayText: text } : {}),
      ...(idle ? { idle } : {}),
    });
  }

  leave(entity: string): void {
    for (const r of this.#rooms.values()) this.#remove(r, entity);
  }

  #full(): boolean {
    return this.#used + this.#pending >= this.#o.ports;
  }

  #add(r: Room, p: Participant): void {
    const before = r.participants.get(p.entity);
    this.#used += (p.idle === true ? 0 : 1) - (before === undefined || before.idle === true ? 0 : 1);
    p.reportedAt = Date.now();
    r.participants.set(p.entity, p);
    this.#changed(r, [toUser(p, 'full')]);
  }

  #remove(r: Room, entity: string): void {
    const p = r.participants.get(entity);
    if (p === undefined) return;
    r.participants.delete(entity);
    if (p.idle !== true) this.#used--;
    r.outputs.delete(entity);
    // A participant that left is no longer shown anywhere.
    for (const [k, out] of r.outputs)
      if (out.regions.includes(entity))
        r.outputs.set(k, { ...out, regions: out.regions.map((x) => (x === entity ? null : x)) });
    this.#changed(r, [{ entity, state: 'deleted', kind: p.kind, status: 'disconnected', audioMuted: false }]);
  }

  /**
   * A simulated endpoint (no SIP of its own): the network's; for an MCU on
   * its own, an endpoint here without a call, or a `.invalid` URI (RFC 6761:
   * it cannot be called anyway).
   */
  #simulated(entity: string, u: SipUri): boolean {
    const dir = this.#o.endpoints;
    if (dir !== undefined) return dir.has(entity);
    for (const r of this.#rooms.values()) {
      const p = r.participants.get(entity);
      if (p !== undefined) return p.kind === 'endpoint' && p.dialog === undefined;
    }
    return u.host.endsWith('.invalid');
  }

  // ---- INVITE: control dialogs and participants ------------------------------

  async #onInvite(inv: IncomingInvite): Promise<void> {
    const room = this.#roomOf(inv, (status) => inv.reject(status, { reason: 'No Such Conference' }));
    if (room === undefined) return;
    if (inv.message.body.length === 0 || carriesNoMedia(inv.message.body.toString('utf8'))) {
      await this.#controlDialog(inv, room);
      return;
    }
    const from = inv.message.from?.uri;
    if (from === undefined) {
      inv.reject(400);
      return;
    }
    const entity = entityOf(from);
    if (room.participants.has(entity)) {
      inv.reject(486, { reason: 'Already in the conference' });
      return;
    }
    if (this.#full()) {
      inv.reject(this.#o.busyStatus ?? 486, { reason: 'All ports in use' });
      return;
    }
    const answer = mcuAnswer(inv.message.body.toString('utf8'), this.#host);
    if (answer === undefined) {
      inv.reject(488, { reason: 'Not Acceptable Here' });
      return;
    }
    const focus = inv.message.contact?.[0]?.params.isfocus !== undefined;
    const kind = this.#o.isFocus?.(entity) === true || focus ? 'link' : 'endpoint';
    // The port is held from the answer on, so concurrent callers cannot overbook it.
    this.#pending++;
    let d: Dialog;
    try {
      d = await inv.accept({ contentType: SDP_TYPE, body: answer });
    } finally {
      this.#pending--;
    }
    if (this.#rooms.get(room.room) !== room) {
      // The MCU restarted while the call was being set up: it no longer exists here.
      await d.bye().catch(() => {});
      return;
    }
    const p: Participant = {
      entity,
      conference: room.uri,
      kind,
      status: 'connected',
      audioMuted: false,
      dialog: d,
      callId: d.callId,
    };
    this.#add(room, p);
    this.#watch(room, p, d);
  }

  /**
   * A control dialog. Without an offer in the INVITE, ours goes in the 200
   * and the answer must come in the ACK (RFC 3261 13.3.1.4, 13.2.2.4); an ACK
   * without a valid one ends the dialog with BYE at once, as real MCUs did.
   * With an offer that carries no media (an MSML client's control leg), the 200 answers it.
   */
  async #controlDialog(inv: IncomingInvite, room: Room): Promise<void> {
    let d: Dialog;
    if (inv.message.body.length === 0) {
      const offer = mcuOffer(this.#host);
      d = await inv.accept({ contentType: SDP_TYPE, body: offer });
      const problem = answerProblem(offer, d.remoteContentType, d.remoteBody);
      if (problem !== undefined) {
        this.#counters.offersUnanswered++;
        this.#log?.warn({ problem, callId: d.callId }, 'control dialog without a valid answer in the ACK: BYE');
        await d.bye().catch(() => {});
        return;
      }
    } else {
      const answer = mcuAnswer(inv.message.body.toString('utf8'), this.#host);
      if (answer === undefined) {
        inv.reject(488, { reason: 'Not Acceptable Here' });
        return;
      }
      d = await inv.accept({ contentType: SDP_TYPE, body: answer });
    }
    room.controls.add(d);
    d.on('terminated', () => room.controls.delete(d));
    d.on('request', (req) => this.#guard(req, () => this.#onControlRequest(req, room), req.method === 'INVITE'));
    d.on('refer', (r) => this.#guard(r, () => this.#onRefer(r, room)));
  }

  #watch(room: Room, p: Participant, d: Dialog): void {
    d.on('request', (req) => {
      // Cascade and endpoint calls carry no control: keep the session alive, refuse the rest.
      if (req.method === 'INVITE') this.#answerReinvite(req);
      else req.respond(req.method === 'OPTIONS' ? 200 : 405);
    });
    d.on('refreshed', () => this.#counters.sessionRefreshes++);
    d.on('terminated', (reason) => {
      if (room.participants.get(p.entity) !== p) return;
      // A far end gone silent: the session timer ends the call on this side too (RFC 4028 10), or the refresh
      // fails (a timeout, or 481 from a far end that restarted: RFC 3261 12.2.1.2 ends the dialog then). Our
      // refreshes are the only requests we send in these dialogs, so a failed request is a failed refresh.
      if (reason === 'session-expired' || reason === 'request-failed') {
        this.#counters.sessionExpiries++;
        this.#log?.info({ entity: p.entity, kind: p.kind }, 'session timer ended a call');
      }
      this.#remove(room, p.entity);
    });
  }

  /** A re-INVITE: answer its offer, or offer in the 200 when it has none (RFC 3261 14.2). */
  #answerReinvite(req: IncomingRequest): void {
    const body =
      req.message.body.length === 0 ? mcuOffer(this.#host) : mcuAnswer(req.message.body.toString('utf8'), this.#host);
    if (body === undefined) req.respond(488, { reason: 'Not Acceptable Here' });
    else req.respond(200, { contentType: SDP_TYPE, body });
  }

  // ---- INFO: MSML and picture fast update ------------------------------------

  async #onControlRequest(req: IncomingRequest, room: Room): Promise<void> {
    if (req.method === 'INVITE') {
      // A session refresh (RFC 4028).
      this.#answerReinvite(req);
      return;
    }
    if (req.method !== 'INFO') {
      // OPTIONS is the driver's health check.
      req.respond(req.method === 'OPTIONS' ? 200 : 405);
      return;
    }
    // The MCU takes a while to carry a command out; the answer says it is done.
    if (this.#infoDelayMs > 0) await sleep(this.#infoDelayMs, undefined, { ref: false });
    if (this.#faults.infoStatus !== undefined) {
      req.respond(this.#faults.infoStatus);
      return;
    }
    const type = req.message.contentType?.toLowerCase();
    if (type === MEDIA_CONTROL_CONTENT_TYPE) {
      let output: string | undefined;
      try {
        output = parsePictureFastUpdate(req.message.body).output;
      } catch {
        req.respond(400, { reason: 'Bad media_control' });
        return;
      }
      const out = output === undefined ? undefined : room.outputs.get(output);
      if (output !== undefined && room.participants.has(output))
        room.outputs.set(output, { ...(out ?? EMPTY_OUTPUT), keyframes: (out?.keyframes ?? 0) + 1 });
      req.respond(200);
      return;
    }
    if (type !== MSML_CONTENT_TYPE) {
      req.respond(415, { headers: { Accept: `${MSML_CONTENT_TYPE}, ${MEDIA_CONTROL_CONTENT_TYPE}` } });
      return;
    }
    let cmds: MsmlCommand[];
    try {
      cmds = parseMsmlRequest(req.message.body);
    } catch (err) {
      this.#answer(req, { response: 400, description: (err as Error).message });
      return;
    }
    // Several operations (an output's switch) are carried out in order; the first that fails ends the request
    // and is the answer (RFC 5707 section 5).
    let result: MsmlResult = { response: 200 };
    for (const cmd of cmds) {
      result = this.#execute(room, cmd);
      if (result.response !== 200) break;
    }
    this.#answer(req, result);
  }

  #answer(req: IncomingRequest, result: MsmlResult): void {
    req.respond(200, { contentType: MSML_CONTENT_TYPE, body: buildResult(result) });
  }

  #execute(room: Room, cmd: MsmlCommand): MsmlResult {
    const { participants, outputs } = room;
    switch (cmd.op) {
      case 'layout': {
        if (!participants.has(cmd.output)) return { response: 404, description: `unknown output ${cmd.output}` };
        if (!isLayoutName(cmd.layout)) return { response: 400, description: 'unknown layout' };
        const n = layoutRegions(cmd.layout).length;
        const old = outputs.get(cmd.output) ?? EMPTY_OUTPUT;
        const regions = Array.from({ length: n }, (_, i) => old.regions[i] ?? null);
        outputs.set(cmd.output, { layout: cmd.layout, regions, keyframes: old.keyframes });
        return { response: 200 };
      }
      case 'show': {
        if (!participants.has(cmd.output)) return { response: 404, description: `unknown output ${cmd.output}` };
        if (!participants.has(cmd.source)) return { response: 404, description: `unknown source ${cmd.source}` };
        const old = outputs.get(cmd.output) ?? EMPTY_OUTPUT;
        if (cmd.region > old.regions.length)
          return { response: 400, description: `region ${cmd.region} not in layout ${old.layout}` };
        const regions = old.regions.slice();
        regions[cmd.region - 1] = cmd.source;
        outputs.set(cmd.output, { ...old, regions });
        return { response: 200 };
      }
      case 'audio': {
        const p = participants.get(cmd.source);
        if (p === undefined) return { response: 404, description: `unknown source ${cmd.source}` };
        if (p.audioMuted !== cmd.muted) {
          p.audioMuted = cmd.muted;
          this.#changed(room, [toUser(p, 'partial')]);
        }
        return { response: 200 };
      }
    }
  }

  // ---- REFER: dial and hang up cascade links and participants -------------------

  /**
   * A REFER outside any dialog, to a conference URI (RFC 4579 5.5, RFC 3515 2.4.1): the same as in a control
   * dialog, its NOTIFYs in the subscription dialog it creates. The `no-conference-events` profile, an MCU of
   * fewer features, takes REFERs only in a control dialog (403), as some MCUs do.
   */
  async #onReferOutside(r: IncomingRefer): Promise<void> {
    if (this.#profile === 'no-conference-events') {
      this.#counters.refersOutsideRefused++;
      r.reject(403, { reason: 'REFER only in a control dialog' });
      return;
    }
    const room = this.#roomOf(r, (status) => r.reject(status, { reason: 'No Such Conference' }));
    if (room === undefined) return;
    this.#counters.refersOutside++;
    await this.#onRefer(r, room);
  }

  async #onRefer(r: IncomingRefer, room: Room): Promise<void> {
    const target = r.referTo.uri;
    const entity = entityOf(target);
    if (target.params.method?.toUpperCase() === 'BYE') {
      // RFC 4579 5.6: remove that participant from this conference: the call it has when the REFER arrives. The
      // 100 Trying NOTIFY's answer can come seconds later under loss; looking the entity up only then hung up a
      // newer call of the same entity, dialled meanwhile by the manager that had given this REFER up.
      const p = room.participants.get(entity);
      const n = await r.accept();
      if (p === undefined) {
        await n.done(404, 'Not Found');
        return;
      }
      const still = room.participants.get(entity) === p;
      await this.#hangUp(room, p);
      // A simulated endpoint hung up from a room is idle again: back in the lobby, in no call (no port).
      if (
        still &&
        p.dialog === undefined &&
        p.kind === 'endpoint' &&
        room !== this.#lobby &&
        this.#rooms.has(room.room)
      )
        this.#add(this.#lobby, { ...p, conference: this.#lobby.uri, audioMuted: false, idle: true });
      await n.done(200, 'OK');
      return;
    }
    if (target.scheme !== 'sip' || target.host === '') {
      r.reject(400, { reason: 'Bad Refer-To' });
      return;
    }
    if (r.dialog === undefined) {
      // Outside a dialog the REFER's NOTIFYs have a dialog of their own, where nothing else can overtake the
      // "100 Trying": the MCU dials at once, as real foci do, and only the final NOTIFY waits for the 100's answer.
      const accepting = r.accept();
      accepting.catch(() => {});
      await this.#dial(room, entity, target, async (status, reason) => {
        await (await accepting).done(status, reason);
      });
      return;
    }
    // Every outcome NOTIFY waits its turn in the dialog (the SIP stack's `notifyInTurn`), the failure's too.
    const n = await r.accept();
    await this.#dial(room, entity, target, async (status, reason) => {
      await n.done(status, reason);
    });
  }

  /** What a REFER asks for (not a hang-up): a participant or a cascade link dialled into `room`; `finish` reports. */
  async #dial(
    room: Room,
    entity: string,
    target: SipUri,
    finish: (status: number, reason: string) => Promise<void>,
  ): Promise<void> {
    const existing = room.participants.get(entity);
    if (existing?.status === 'connected') {
      await finish(200, 'OK');
      return;
    }
    if (existing !== undefined) {
      await finish(491, 'Request Pending');
      return;
    }
    if (this.#simulated(entity, target)) {
      await finish(...this.#dialSimulated(room, entity));
      return;
    }
    if (this.#full()) {
      await finish(503, 'Service Unavailable');
      return;
    }
    // Another conference focus (or, without the network's list, anything): a cascade link. Else an endpoint.
    const kind = this.#o.isFocus === undefined || this.#o.isFocus(entity) ? 'link' : 'endpoint';
    const p: Participant = { entity, conference: room.uri, kind, status: 'dialing-out', audioMuted: false };
    this.#add(room, p);
    const ua = this.#ua!;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), LINK_DIAL_TIMEOUT_MS).unref();
    const offer = mcuOffer(this.#host);
    try {
      const d = await ua.invite(entity, {
        // The far end names the link by the calling conference: this room, not the MCU's lobby.
        from: room.uri,
        contentType: SDP_TYPE,
        body: offer,
        signal: abort.signal,
      });
      if (room.participants.get(entity) !== p || this.#ua !== ua) {
        await d.bye().catch(() => {});
        await finish(487, 'Request Terminated').catch(() => {});
        return;
      }
      // The offer was in the INVITE, so its 2xx must carry the answer (RFC 3261 13.2.1, RFC 3264 6). A call
      // accepted without one carries no media: hung up at once, as a control dialog whose ACK lacks the answer,
      // and reported failed (488) rather than as a link that is up and then silently gone.
      const problem = answerProblem(offer, d.remoteContentType, d.remoteBody, 'the 200');
      if (problem !== undefined) {
        this.#counters.offersUnanswered++;
        this.#log?.warn(
          { problem, callId: d.callId, entity },
          'call answered without a valid answer to our offer: BYE',
        );
        this.#remove(room, entity);
        await d.bye().catch(() => {});
        await finish(488, 'Not Acceptable Here').catch(() => {});
        return;
      }
      p.dialog = d;
      p.callId = d.callId;
      p.status = 'connected';
      this.#changed(room, [toUser(p, 'full')]);
      this.#watch(room, p, d);
      await finish(200, 'OK').catch(() => {});
    } catch (err) {
      if (room.participants.get(entity) === p) this.#remove(room, entity);
      const e = err as { sipStatus?: number; reason?: string; code?: string };
      // No answer: 408. Unreachable (transport failure): 480, not the 503 of RFC 3261 8.1.3.1, which a
      // driver would read as "no free port" on the far MCU.
      const status = e.sipStatus ?? (e.code === 'SIP_ERR_TIMEOUT' || e.code === 'SIP_ERR_CANCELLED' ? 408 : 480);
      await finish(status, e.reason ?? (status === 408 ? 'Request Timeout' : 'Temporarily Unavailable')).catch(
        () => {},
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * "Dial out" a simulated endpoint (it has no SIP of its own): it leaves the
   * conference it was in, here or on another MCU, and joins `room`. A port
   * is taken when its call starts (from another MCU, or out of the lobby
   * where it sat idle), not when a call moves between conferences here. The
   * sipfrag outcome.
   */
  #dialSimulated(room: Room, entity: string): [number, string] {
    const here = [...this.#rooms.values()].find((r) => r.participants.has(entity));
    const was = here?.participants.get(entity);
    // A port is taken by a call that starts: from another MCU, or out of the lobby where it sat idle.
    if ((was === undefined || was.idle === true) && this.#full()) return [503, 'Service Unavailable'];
    this.#o.endpoints?.release(entity, this);
    if (here !== undefined) this.#remove(here, entity);
    this.#add(room, {
      entity,
      conference: room.uri,
      kind: 'endpoint',
      status: 'connected',
      audioMuted: false,
      ...(was?.displayText === undefined ? {} : { displayText: was.displayText }),
    });
    return [200, 'OK'];
  }

  async dropLink(entity: string, room?: string): Promise<void> {
    const rooms = room === undefined ? [...this.#rooms.values()] : [this.#roomNamed(room)];
    const r = rooms.find((x) => x.participants.get(entity)?.kind === 'link');
    const p = r?.participants.get(entity);
    if (r === undefined || p === undefined)
      throw new SimError('SIM_ERR_UNKNOWN_PARTICIPANT', `MCU ${this.id}: no link ${entity}`);
    await this.#hangUp(r, p);
  }

  async dropCall(entity: string, room?: string): Promise<void> {
    const u = parseUri(entity);
    const e = u === undefined ? entity : entityOf(u);
    const rooms = room === undefined ? [...this.#rooms.values()] : [this.#roomNamed(room)];
    const r = rooms.find((x) => x.participants.get(e)?.kind === 'endpoint');
    const p = r?.participants.get(e);
    if (r === undefined || p === undefined)
      throw new SimError('SIM_ERR_UNKNOWN_PARTICIPANT', `MCU ${this.id}: no endpoint call ${entity}`);
    await this.#hangUp(r, p);
  }

  /**
   * Ends a participant's call: it leaves the room at once, as its dialog ends when the BYE is sent (RFC 3261
   * 15.1.1), and the BYE's answer is only waited for. Removing "whoever has that entity" once the BYE was
   * answered removed a later call of the same entity: under loss the answer comes a retransmission (Timer E,
   * 500 ms and more) later, when the cascade manager has already dialled the link again, and the new call then
   * vanished at this end only (the benchmark's link "dropped again 0.5 s after it healed", docs/cascade.md).
   */
  async #hangUp(r: Room, p: Participant): Promise<void> {
    if (r.participants.get(p.entity) === p) this.#remove(r, p.entity);
    await p.dialog?.bye().catch(() => {});
  }

  // ---- conference event package ------------------------------------------------

  async #onSubscribe(s: IncomingSubscribe): Promise<void> {
    if (s.event === VQ_RTCPXR_EVENT && this.#profile !== 'no-conference-events') {
      await this.#onQualitySubscribe(s);
      return;
    }
    // 489 Bad Event: the package is not served (RFC 6665 8.3.2); an MCU without it refuses every SUBSCRIBE.
    if (s.event !== 'conference' || this.#profile === 'no-conference-events') {
      this.#counters.subscribesRefused++;
      s.reject(489);
      return;
    }
    const room = this.#roomOf(s, (status) => s.reject(status, { reason: 'No Such Conference' }));
    if (room === undefined) return;
    // The subscriber counts from the full state on: a change made while the initial NOTIFY is still on its way
    // (its 2xx lost, the NOTIFY sent again 500 ms later) goes in the next NOTIFY, version 2. Registered only once
    // the initial NOTIFY was answered, such a change reached nobody: the subscriber's roster lacked it for good
    // (an endpoint dialled in then was never seen in the room, and dialled again and again).
    const sub: Subscriber = { version: 1, chain: Promise.resolve() };
    room.subs.add(sub);
    const accepted = s.accept({
      contentType: CONFERENCE_INFO_CONTENT_TYPE,
      body: this.#fullState(room, 1),
      expires: Math.min(s.expires, 3600),
    });
    sub.chain = accepted.then(
      (server) => {
        sub.server = server;
        if (server.state === 'terminated') {
          room.subs.delete(sub);
          return;
        }
        // A refresh asks for the full state again (RFC 4575 4.1: how a subscriber recovers from a lost version).
        server.on('refreshed', () => this.#send(room, sub, 'full'));
        server.on('terminated', () => room.subs.delete(sub));
      },
      () => {
        room.subs.delete(sub);
      },
    );
    await sub.chain;
  }

  #fullState(room: Room, version: number): string {
    return buildConferenceInfo({
      entity: room.uri,
      version,
      state: 'full',
      ...(this.#o.displayText === undefined ? {} : { displayText: this.#o.displayText }),
      users: [...room.participants.values()].map((p) => toUser(p, 'full')),
    });
  }

  #changed(room: Room, users: ConferenceUser[]): void {
    if (room.subs.size === 0) return;
    // Some MCUs never send partial state (RFC 4575 allows full state in any notification): the whole roster each time.
    for (const sub of room.subs) this.#send(room, sub, this.#profile === 'full-state-only' ? 'full' : users);
  }

  /**
   * One NOTIFY at a time per subscriber, in version order (RFC 6665 4.2.2 lets a notifier pace them). Changes
   * made while one is in flight go together in the next (RFC 6446, notification rate control: a paced notifier sends the state as it is
   * then, not one notification per change): each user as it is now, or deleted. Without this, a room where 62
   * links come up at once owes its subscriber 124 NOTIFYs, one round trip each.
   */
  #send(room: Room, sub: Subscriber, change: ConferenceUser[] | 'full'): void {
    const idle = sub.pending === undefined;
    if (change === 'full' || sub.pending === 'full') sub.pending = 'full';
    else {
      const pending = sub.pending ?? new Map<string, ConferenceUser>();
      for (const u of change) pending.set(u.entity, u);
      sub.pending = pending;
    }
    if (!idle) return;
    sub.chain = sub.chain.then(async () => {
      const due = sub.pending;
      sub.pending = undefined;
      if (sub.server === undefined || sub.server.state === 'terminated' || due === undefined) return;
      sub.version++;
      const body =
        due === 'full'
          ? this.#fullState(room, sub.version)
          : buildConferenceInfo({
              entity: room.uri,
              version: sub.version,
              state: 'partial',
              // Whatever happened since the last NOTIFY, a user element as the user is now (or deleted).
              users: [...due.values()].map((u) => {
                const p = room.participants.get(u.entity);
                return p === undefined ? u : toUser(p, 'full');
              }),
            });
      await sub.server.notify({ contentType: CONFERENCE_INFO_CONTENT_TYPE, body }).catch(() => {
        room.subs.delete(sub);
      });
    });
  }

  // ---- call quality reports (RFC 6035) -------------------------------------------

  /**
   * A vq-rtcpxr subscription to a conference: accepted with an empty first
   * NOTIFY (RFC 6665 4.2.1 asks for one at once; there is no state to send),
   * then one interval report per pace tick, for the conference's connected
   * calls in turn, so the load is bounded whatever the roster's size.
   */
  async #onQualitySubscribe(s: IncomingSubscribe): Promise<void> {
    const room = this.#roomOf(s, (status) => s.reject(status, { reason: 'No Such Conference' }));
    if (room === undefined) return;
    const server = await s.accept({ contentType: VQ_RTCPXR_CONTENT_TYPE, expires: Math.min(s.expires, 3600) });
    const sub: QualitySubscriber = { server, busy: false };
    room.quality.add(sub);
    server.on('terminated', () => room.quality.delete(sub));
    this.#qualityTimer ??= setInterval(() => this.#reportQuality(), this.#o.qualityReportMs ?? 1_000).unref();
  }

  #reportQuality(): void {
    for (const room of this.#rooms.values())
      for (const sub of room.quality) {
        if (sub.busy || sub.server.state === 'terminated') continue;
        const calls = [...room.participants.values()].filter((p) => p.status === 'connected');
        if (calls.length === 0) continue;
        const i = sub.last === undefined ? -1 : calls.findIndex((p) => p.entity === sub.last);
        const p = calls[(i + 1) % calls.length]!;
        sub.last = p.entity;
        sub.busy = true;
        const body = this.#qualityReport(room, p);
        // A subscription ending meanwhile may refuse at once: the notify is called inside the promise chain.
        Promise.resolve()
          .then(() => sub.server.notify({ contentType: VQ_RTCPXR_CONTENT_TYPE, body }))
          .catch(() => room.quality.delete(sub))
          .finally(() => {
            sub.busy = false;
          });
      }
  }

  /**
   * The figures the MCU's impairment gives a call, as their expected values
   * (not a measurement): loss as set; the RFC 3550 interarrival jitter of a
   * delay uniform over [0, jitter] converges to jitter/3; one-way delay the
   * delay plus the mean jitter; the bitrate the nominal one less what is lost.
   * The impairment acts on both directions, so both blocks carry the same.
   */
  #qualityReport(room: Room, p: Participant): string {
    const { loss, delayMs, jitterMs } = this.#impairment;
    const now = Date.now();
    const start = new Date(p.reportedAt ?? now).toISOString().replace(/\.\d+Z$/, 'Z');
    p.reportedAt = now;
    const m: VqMetrics = {
      start,
      stop: new Date(now).toISOString().replace(/\.\d+Z$/, 'Z'),
      codec: 'H264',
      lossPercent: loss * 100,
      discardPercent: 0,
      jitterMs: jitterMs / 3,
      oneWayMs: delayMs + jitterMs / 2,
      roundTripMs: 2 * (delayMs + jitterMs / 2),
      bitrateKbps: (p.kind === 'link' ? LINK_KBPS : ENDPOINT_KBPS) * (1 - loss),
    };
    return buildVqReport({
      type: 'interval',
      callTerm: false,
      callId: p.callId ?? `sim-${seedOf(`${room.uri} ${p.entity}`).toString(16)}@${this.#host}`,
      localId: `<${room.uri}>`,
      remoteId: `<${p.entity}>`,
      localGroup: this.id,
      local: m,
      remote: m,
    });
  }

  // ---- faults ------------------------------------------------------------------

  setFaults(faults: Partial<SimFaults>): void {
    const next: SimFaults = { ...this.#faults, ...faults };
    if (
      next.infoStatus !== undefined &&
      (!Number.isInteger(next.infoStatus) || next.infoStatus < 300 || next.infoStatus > 699)
    )
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'infoStatus must be a SIP status 300..699');
    this.#faults = next;
    this.#applyImpairment();
  }

  setImpairment(impairment: Partial<Impairment>): void {
    const next = { ...this.#impairment, ...impairment };
    if (next.loss < 0 || next.loss > 1 || next.delayMs < 0 || next.jitterMs < 0)
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'loss must be in 0..1, delays >= 0');
    this.#impairment = next;
    this.#applyImpairment();
  }

  setProcessingDelay(ms: number): void {
    if (!(ms >= 0)) throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'processing delay must be >= 0');
    this.#processingDelayMs = ms;
  }

  setInfoDelay(ms: number): void {
    if (!(ms >= 0)) throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'INFO delay must be >= 0');
    this.#infoDelayMs = ms;
  }

  stallTcp(ms: number): void {
    this.#assertOpen();
    if (!(ms >= 0 && ms <= MAX_STALL_MS))
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', `a stall lasts 0..${MAX_STALL_MS} ms`);
    this.#netem?.stall(ms);
  }

  resetTcp(): number {
    this.#assertOpen();
    return this.#netem?.reset() ?? 0;
  }

  #applyImpairment(crashed = false): void {
    this.#netem?.set({
      ...this.#impairment,
      deaf: this.#impairment.deaf || this.#faults.silent || crashed,
      mute: this.#impairment.mute || crashed,
    });
  }

  restart(downMs = 0): Promise<void> {
    this.#assertOpen();
    this.#restarting ??= this.#restart(downMs).finally(() => {
      this.#restarting = undefined;
    });
    return this.#restarting;
  }

  async #restart(downMs: number): Promise<void> {
    this.#log?.info({ downMs }, 'simulated MCU restarting');
    // Nothing leaves a crashed box: the BYEs and final NOTIFYs the stack sends while closing are lost.
    this.#applyImpairment(true);
    const ua = this.#ua;
    this.#ua = undefined;
    await ua?.close();
    // Every conference, its calls, outputs and subscriptions are gone; the lobby comes back empty.
    this.#rooms.clear();
    this.#used = 0;
    if (downMs > 0) await sleep(downMs, undefined, { ref: false });
    if (this.#closed) return;
    await this.start();
  }

  display(): readonly ConferenceDisplayState[] {
    return [...this.#rooms.values()].map((r) => ({
      id: r.uri,
      mcu: this.id,
      participants: r.participants,
      outputs: r.outputs,
    }));
  }

  #assertOpen(): void {
    if (this.#closed) throw new SimError('SIM_ERR_CLOSED', `simulated MCU ${this.id} is closed`);
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#qualityTimer);
    await this.#restarting?.catch(() => {});
    await this.#ua?.close();
    this.#ua = undefined;
    this.#netem?.detach();
  }
}

function toUser(p: Participant, state: 'full' | 'partial'): ConferenceUser {
  return {
    entity: p.entity,
    state,
    kind: p.kind,
    status: p.status,
    audioMuted: p.audioMuted,
    ...(p.displayText === undefined ? {} : { displayText: p.displayText }),
    ...(p.callId === undefined ? {} : { callId: p.callId }),
  };
}
