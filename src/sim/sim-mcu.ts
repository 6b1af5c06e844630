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
  CONFERENCE_INFO_CONTENT_TYPE,
  type ConferenceUser,
  isLayoutName,
  layoutRegions,
  MEDIA_CONTROL_CONTENT_TYPE,
  MSML_CONTENT_TYPE,
  type MsmlCommand,
  type MsmlResult,
  parseMsml,
  parsePictureFastUpdate,
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
  type SipUri,
  type TimerConfig,
  type UserAgent,
} from '../sip/index.js';
import { DigestGuard } from './digest.js';
import { EMPTY_OUTPUT, type McuDisplayState, type OutputState, type ParticipantState } from './display.js';
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
  readonly timers?: Partial<TimerConfig>;
  readonly logger?: Logger;
  /** Also listen on TCP on the same port (default true: large rosters do not fit a datagram). */
  readonly tcp?: boolean;
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
  /** Control dialogs ended with BYE because the ACK carried no valid answer to our offer. */
  offersUnanswered: number;
}

export interface SimParticipant extends ParticipantState {
  readonly entity: string;
  readonly displayText?: string;
  readonly status: 'connected' | 'dialing-out';
}

export interface SimMcu {
  readonly id: string;
  /** The conference URI actually served (with the bound port). */
  readonly uri: string;
  readonly participants: ReadonlyMap<string, SimParticipant>;
  readonly outputs: ReadonlyMap<string, OutputState>;
  /** Control dialogs open from drivers. */
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
  /** Add a simulated endpoint (no SIP of its own). Throws SIM_ERR_FULL when the ports are used up. */
  join(entity: string, displayText?: string): void;
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
  /** Drop a cascade link from this side (BYE), as a failing MCU or line would. */
  dropLink(entity: string): Promise<void>;
  /** Crash and come back after `downMs`: every call and subscription is lost without a BYE. */
  restart(downMs?: number): Promise<void>;
  display(): McuDisplayState;
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
const PORT_PROBE_ATTEMPTS = 5;

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
  audioMuted: boolean;
  status: 'connected' | 'dialing-out';
  callId?: string;
  dialog?: Dialog;
}

interface Subscriber {
  readonly server: ServerSubscription;
  version: number;
  chain: Promise<void>;
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
  readonly #participants = new Map<string, Participant>();
  readonly #outputs = new Map<string, OutputState>();
  readonly #controls = new Set<Dialog>();
  readonly #subscribers = new Set<Subscriber>();
  /** The tail of each dialog's queue of REFER NOTIFYs (see #serially). */
  readonly #dialogQueues = new WeakMap<Dialog, Promise<unknown>>();
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
    offersUnanswered: 0,
  };
  /** INVITEs answered but not yet confirmed: their ports are taken. */
  #pending = 0;
  #closed = false;
  #restarting?: Promise<void>;
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
    return `sip:${this.#user}@${this.#host}:${this.#port}`;
  }

  get participants(): ReadonlyMap<string, SimParticipant> {
    return this.#participants;
  }

  get outputs(): ReadonlyMap<string, OutputState> {
    return this.#outputs;
  }

  get controlDialogs(): number {
    return this.#controls.size;
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
    const ua = await createUserAgent({
      listen: [
        { transport: 'udp', host: this.#host, port: this.#port },
        ...(this.#o.tcp === false ? [] : [{ transport: 'tcp' as const, host: this.#host, port: this.#port }]),
      ],
      user: this.#user,
      userAgent: 'cascaded-sim',
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
    // Attached once the port is known; it outlives restarts (same address, same counters).
    this.#netem ??= attachNetem(this.#host, this.#port, seedOf(this.id));
    this.#applyImpairment();
    // Requests outside a dialog: the ones a challenging MCU asks credentials for.
    ua.on('invite', (inv) => this.#guard(inv, () => this.#onInvite(inv), true));
    ua.on('subscribe', (s) => this.#guard(s, () => this.#onSubscribe(s), true));
    ua.on('refer', (r) =>
      this.#guard(r, async () => r.reject(403, { reason: 'REFER only in a control dialog' }), true),
    );
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
        this.#log?.warn({ err, method: req.method }, 'simulated MCU failed to handle a request');
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

  // ---- participants ----------------------------------------------------------

  join(entity: string, displayText?: string): void {
    this.#assertOpen();
    const u = parseUri(entity);
    if (u === undefined) throw new SimError('SIM_ERR_INVALID_ARGUMENT', `not a URI: ${entity}`);
    const e = entityOf(u);
    if (this.#participants.has(e)) return;
    if (this.#full()) throw new SimError('SIM_ERR_FULL', `MCU ${this.id}: all ${this.#o.ports} ports in use`);
    this.#add({
      entity: e,
      kind: 'endpoint',
      status: 'connected',
      audioMuted: false,
      ...(displayText ? { displayText } : {}),
    });
  }

  leave(entity: string): void {
    this.#remove(entity);
  }

  #full(): boolean {
    return this.#participants.size + this.#pending >= this.#o.ports;
  }

  #add(p: Participant): void {
    this.#participants.set(p.entity, p);
    this.#changed([toUser(p, 'full')]);
  }

  #remove(entity: string): void {
    const p = this.#participants.get(entity);
    if (p === undefined) return;
    this.#participants.delete(entity);
    this.#outputs.delete(entity);
    // A participant that left is no longer shown anywhere.
    for (const [k, out] of this.#outputs)
      if (out.regions.includes(entity))
        this.#outputs.set(k, { ...out, regions: out.regions.map((r) => (r === entity ? null : r)) });
    this.#changed([{ entity, state: 'deleted', kind: p.kind, status: 'disconnected', audioMuted: false }]);
  }

  // ---- INVITE: control dialogs and participants ------------------------------

  async #onInvite(inv: IncomingInvite): Promise<void> {
    if (inv.message.body.length === 0 || carriesNoMedia(inv.message.body.toString('utf8'))) {
      await this.#controlDialog(inv);
      return;
    }
    const from = inv.message.from?.uri;
    if (from === undefined) {
      inv.reject(400);
      return;
    }
    const entity = entityOf(from);
    if (this.#participants.has(entity)) {
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
    const p: Participant = { entity, kind, status: 'connected', audioMuted: false, dialog: d, callId: d.callId };
    this.#add(p);
    this.#watch(p, d);
  }

  /**
   * A control dialog. Without an offer in the INVITE, ours goes in the 200
   * and the answer must come in the ACK (RFC 3261 13.3.1.4, 13.2.2.4); an ACK
   * without a valid one ends the dialog with BYE at once, as real MCUs did.
   * With an offer that carries no media (an MSML client's control leg), the 200 answers it.
   */
  async #controlDialog(inv: IncomingInvite): Promise<void> {
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
    this.#controls.add(d);
    d.on('terminated', () => this.#controls.delete(d));
    d.on('request', (req) => this.#guard(req, () => this.#onControlRequest(req), req.method === 'INVITE'));
    d.on('refer', (r) => this.#guard(r, () => this.#onRefer(r)));
  }

  #watch(p: Participant, d: Dialog): void {
    d.on('request', (req) => {
      // Cascade and endpoint calls carry no control: keep the session alive, refuse the rest.
      if (req.method === 'INVITE') this.#answerReinvite(req);
      else req.respond(req.method === 'OPTIONS' ? 200 : 405);
    });
    d.on('terminated', () => {
      if (this.#participants.get(p.entity) === p) this.#remove(p.entity);
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

  async #onControlRequest(req: IncomingRequest): Promise<void> {
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
      const out = output === undefined ? undefined : this.#outputs.get(output);
      if (output !== undefined && this.#participants.has(output))
        this.#outputs.set(output, { ...(out ?? EMPTY_OUTPUT), keyframes: (out?.keyframes ?? 0) + 1 });
      req.respond(200);
      return;
    }
    if (type !== MSML_CONTENT_TYPE) {
      req.respond(415, { headers: { Accept: `${MSML_CONTENT_TYPE}, ${MEDIA_CONTROL_CONTENT_TYPE}` } });
      return;
    }
    let cmd: MsmlCommand;
    try {
      cmd = parseMsml(req.message.body);
    } catch (err) {
      this.#answer(req, { response: 400, description: (err as Error).message });
      return;
    }
    this.#answer(req, this.#execute(cmd));
  }

  #answer(req: IncomingRequest, result: MsmlResult): void {
    req.respond(200, { contentType: MSML_CONTENT_TYPE, body: buildResult(result) });
  }

  #execute(cmd: MsmlCommand): MsmlResult {
    switch (cmd.op) {
      case 'layout': {
        if (!this.#participants.has(cmd.output)) return { response: 404, description: `unknown output ${cmd.output}` };
        if (!isLayoutName(cmd.layout)) return { response: 400, description: 'unknown layout' };
        const n = layoutRegions(cmd.layout).length;
        const old = this.#outputs.get(cmd.output) ?? EMPTY_OUTPUT;
        const regions = Array.from({ length: n }, (_, i) => old.regions[i] ?? null);
        this.#outputs.set(cmd.output, { layout: cmd.layout, regions, keyframes: old.keyframes });
        return { response: 200 };
      }
      case 'show': {
        if (!this.#participants.has(cmd.output)) return { response: 404, description: `unknown output ${cmd.output}` };
        if (!this.#participants.has(cmd.source)) return { response: 404, description: `unknown source ${cmd.source}` };
        const old = this.#outputs.get(cmd.output) ?? EMPTY_OUTPUT;
        if (cmd.region > old.regions.length)
          return { response: 400, description: `region ${cmd.region} not in layout ${old.layout}` };
        const regions = old.regions.slice();
        regions[cmd.region - 1] = cmd.source;
        this.#outputs.set(cmd.output, { ...old, regions });
        return { response: 200 };
      }
      case 'audio': {
        const p = this.#participants.get(cmd.source);
        if (p === undefined) return { response: 404, description: `unknown source ${cmd.source}` };
        if (p.audioMuted !== cmd.muted) {
          p.audioMuted = cmd.muted;
          this.#changed([toUser(p, 'partial')]);
        }
        return { response: 200 };
      }
    }
  }

  // ---- REFER: dial and hang up cascade links -----------------------------------

  /**
   * The REFER progress NOTIFYs of one dialog go one at a time, each once the
   * previous has its final response. With several in flight over UDP, one
   * lost and retransmitted after a later one is refused 500 by the peer (RFC
   * 3261 12.2.2: a dialog's CSeq must grow), and that REFER's outcome never
   * arrives: seen with 62 links dialed at once through a loaded master.
   */
  #serially<T>(d: Dialog | undefined, send: () => Promise<T>): Promise<T> {
    if (d === undefined) return send();
    const next = (this.#dialogQueues.get(d) ?? Promise.resolve()).then(send, send);
    this.#dialogQueues.set(
      d,
      next.catch(() => {}),
    );
    return next;
  }

  async #onRefer(r: IncomingRefer): Promise<void> {
    const target = r.referTo.uri;
    const entity = entityOf(target);
    const accept = () => this.#serially(r.dialog, () => r.accept());
    if (target.params.method?.toUpperCase() === 'BYE') {
      const p = this.#participants.get(entity);
      const n = await accept();
      if (p === undefined) {
        await this.#serially(r.dialog, () => n.done(404, 'Not Found'));
        return;
      }
      if (p.dialog !== undefined) await p.dialog.bye().catch(() => {});
      this.#remove(entity);
      await this.#serially(r.dialog, () => n.done(200, 'OK'));
      return;
    }
    if (target.scheme !== 'sip' || target.host === '') {
      r.reject(400, { reason: 'Bad Refer-To' });
      return;
    }
    const n = await accept();
    const existing = this.#participants.get(entity);
    if (existing?.status === 'connected') {
      await this.#serially(r.dialog, () => n.done(200, 'OK'));
      return;
    }
    if (existing !== undefined || this.#full()) {
      await this.#serially(r.dialog, () =>
        n.done(existing === undefined ? 503 : 491, existing === undefined ? 'Service Unavailable' : 'Request Pending'),
      );
      return;
    }
    const p: Participant = { entity, kind: 'link', status: 'dialing-out', audioMuted: false };
    this.#add(p);
    const ua = this.#ua!;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), LINK_DIAL_TIMEOUT_MS).unref();
    try {
      const d = await ua.invite(entityOf(target), {
        contentType: SDP_TYPE,
        body: mcuOffer(this.#host),
        signal: abort.signal,
      });
      if (this.#participants.get(entity) !== p || this.#ua !== ua) {
        await d.bye().catch(() => {});
        await this.#serially(r.dialog, () => n.done(487, 'Request Terminated')).catch(() => {});
        return;
      }
      p.dialog = d;
      p.callId = d.callId;
      p.status = 'connected';
      this.#changed([toUser(p, 'full')]);
      this.#watch(p, d);
      await this.#serially(r.dialog, () => n.done(200, 'OK')).catch(() => {});
    } catch (err) {
      if (this.#participants.get(entity) === p) this.#remove(entity);
      const e = err as { sipStatus?: number; reason?: string; code?: string };
      // No answer: 408. Unreachable (transport failure): 480, not the 503 of RFC 3261 8.1.3.1, which a
      // driver would read as "no free port" on the far MCU.
      const status = e.sipStatus ?? (e.code === 'SIP_ERR_TIMEOUT' || e.code === 'SIP_ERR_CANCELLED' ? 408 : 480);
      await n
        .done(status, e.reason ?? (status === 408 ? 'Request Timeout' : 'Temporarily Unavailable'))
        .catch(() => {});
    } finally {
      clearTimeout(timer);
    }
  }

  async dropLink(entity: string): Promise<void> {
    const p = this.#participants.get(entity);
    if (p?.kind !== 'link') throw new SimError('SIM_ERR_UNKNOWN_PARTICIPANT', `MCU ${this.id}: no link ${entity}`);
    await p.dialog?.bye().catch(() => {});
    this.#remove(entity);
  }

  // ---- conference event package ------------------------------------------------

  async #onSubscribe(s: IncomingSubscribe): Promise<void> {
    // 489 Bad Event: the package is not served (RFC 6665 8.3.2); an MCU without it refuses every SUBSCRIBE.
    if (s.event !== 'conference' || this.#profile === 'no-conference-events') {
      this.#counters.subscribesRefused++;
      s.reject(489);
      return;
    }
    const sub: Subscriber = {
      server: undefined as unknown as ServerSubscription,
      version: 1,
      chain: Promise.resolve(),
    };
    const server = await s.accept({
      contentType: CONFERENCE_INFO_CONTENT_TYPE,
      body: this.#fullState(1),
      expires: Math.min(s.expires, 3600),
    });
    (sub as { server: ServerSubscription }).server = server;
    this.#subscribers.add(sub);
    // A refresh asks for the full state again (RFC 4575 4.1: how a subscriber recovers from a lost version).
    server.on('refreshed', () => this.#send(sub, (v) => this.#fullState(v)));
    server.on('terminated', () => this.#subscribers.delete(sub));
  }

  #fullState(version: number): string {
    return buildConferenceInfo({
      entity: this.uri,
      version,
      state: 'full',
      ...(this.#o.displayText === undefined ? {} : { displayText: this.#o.displayText }),
      users: [...this.#participants.values()].map((p) => toUser(p, 'full')),
    });
  }

  #changed(users: ConferenceUser[]): void {
    // Some MCUs never send partial state (RFC 4575 allows full state in any notification): the whole roster each time.
    const partial =
      this.#profile === 'full-state-only'
        ? undefined
        : (version: number) => buildConferenceInfo({ entity: this.uri, version, state: 'partial', users });
    for (const sub of this.#subscribers) this.#send(sub, partial ?? ((v) => this.#fullState(v)));
  }

  /** One NOTIFY at a time per subscriber, in version order (RFC 6665 4.2.2 lets a notifier pace them). */
  #send(sub: Subscriber, body: (version: number) => string): void {
    sub.chain = sub.chain.then(async () => {
      if (sub.server.state === 'terminated') return;
      sub.version++;
      await sub.server.notify({ contentType: CONFERENCE_INFO_CONTENT_TYPE, body: body(sub.version) }).catch(() => {
        this.#subscribers.delete(sub);
      });
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
    this.#participants.clear();
    this.#outputs.clear();
    this.#controls.clear();
    this.#subscribers.clear();
    if (downMs > 0) await sleep(downMs, undefined, { ref: false });
    if (this.#closed) return;
    await this.start();
  }

  display(): McuDisplayState {
    return { id: this.id, participants: this.#participants, outputs: this.#outputs };
  }

  #assertOpen(): void {
    if (this.#closed) throw new SimError('SIM_ERR_CLOSED', `simulated MCU ${this.id} is closed`);
  }

  async #close(): Promise<void> {
    this.#closed = true;
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
