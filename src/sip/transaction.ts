import type { Clock, TimerHandle } from '../core/index.js';
import { SipError } from './errors.js';
import { detach, splitList } from './grammar.js';
import { SipHeaders } from './headers.js';
import { buildResponse, SipRequest, type SipResponse, serialize } from './message.js';
import type { Destination, Flow, Inbound, SentOver, TransportName } from './transport.js';

/** What transactions need from the transport layer (a recording fake in tests). */
export interface TransportSink {
  /** Returns the stream connection the message went out on, if any. */
  send(buf: Buffer, dest: Destination, flow?: Flow, onError?: (err: SipError) => void): SentOver | undefined;
}

/** Protocol timer base values in ms (RFC 3261 17.1.1.1 and Table 4). */
export interface TimerConfig {
  /** RTT estimate, default 500 ms. */
  readonly t1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s. */
  readonly t2: number;
  /** Maximum duration a message stays in the network, default 5 s. */
  readonly t4: number;
  /** How long an INVITE may wait for a final response after a provisional one before it is cancelled (Timer C, > 3 min). */
  readonly timerC: number;
  /** Delay before the INVITE server transaction sends 100 Trying if the TU has not answered (RFC 3261 17.2.1: 200 ms). */
  readonly trying: number;
}

export const DEFAULT_TIMERS: TimerConfig = {
  t1: 500, // ms, RFC 3261 17.1.1.1
  t2: 4_000, // ms
  t4: 5_000, // ms
  timerC: 180_000, // ms, "greater than 3 minutes" for proxies (RFC 3261 16.6); we use exactly 3 min
  trying: 200, // ms
};

const MAGIC = 'z9hG4bK'; // RFC 3261 8.1.1.7 branch magic cookie
/** An `rport` Via parameter without a value (RFC 3581 4: the server fills it in). */
const RPORT_EMPTY = /;\s*rport(?=\s*(;|$))/i;
const EMPTY = Buffer.alloc(0);
/** The callbacks of a client transaction whose TU has had its final answer. */
const DONE: ClientCallbacks = { onProvisional: () => {}, onFinal: () => {}, onError: () => {} };

/** One finished transaction, for metrics (the `transaction` event of the user agent). */
export interface TransactionRecord {
  readonly role: 'uac' | 'uas';
  readonly method: string;
  /** Final status, or 408 for a timeout and 503 for a transport error (RFC 3261 8.1.3.1). */
  readonly status: number;
  readonly durationMs: number;
  readonly transport: TransportName;
  readonly peer: string;
  readonly errorCode?: string;
}

export interface ClientCallbacks {
  onProvisional(res: SipResponse): void;
  onFinal(res: SipResponse): void;
  onError(err: SipError): void;
  /** Timer C fired for an INVITE with a provisional response: the TU should CANCEL. */
  onTimerC?(): void;
}

type ClientState = 'calling' | 'proceeding' | 'completed' | 'terminated';
type ServerState = 'trying' | 'proceeding' | 'completed' | 'accepted' | 'confirmed' | 'terminated';

/**
 * Client transaction: INVITE (RFC 3261 17.1.1, figure 5) or non-INVITE
 * (17.1.2, figure 6). Retransmits over UDP only (Timers A and E), times out
 * with Timer B or F, absorbs retransmitted final responses (Timer D or K).
 * An INVITE stuck after a provisional response is reported through Timer C.
 */
export class ClientTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly dest: Destination;
  state: ClientState = 'calling';
  readonly #mgr: TransactionManager;
  #buf: Buffer;
  readonly #flow?: Flow;
  #cb: ClientCallbacks;
  readonly #invite: boolean;
  readonly #reliable: boolean;
  readonly #started: number;
  #interval: number;
  #retransmit?: TimerHandle;
  #timeout?: TimerHandle;
  #timerC?: TimerHandle;
  #ack?: Buffer;
  /** The stream connection the request went out on, watched until the final response. */
  #over?: SentOver;
  #onClosed?: (err: SipError) => void;

  constructor(
    mgr: TransactionManager,
    request: SipRequest,
    branch: string,
    dest: Destination,
    cb: ClientCallbacks,
    flow?: Flow,
  ) {
    this.#mgr = mgr;
    this.request = request;
    this.dest = dest;
    this.#cb = cb;
    this.#flow = flow;
    this.#invite = request.method === 'INVITE';
    this.#reliable = dest.transport !== 'udp';
    this.key = `${branch}:${request.method}`;
    this.#buf = serialize(request);
    this.#started = mgr.clock.now();
    this.#interval = mgr.timers.t1;
  }

  start(): void {
    const { clock, timers } = this.#mgr;
    this.#send(this.#buf);
    // The transport may fail at once (no connection possible, or it closed): nothing is left to time.
    if (this.state === 'terminated') return;
    if (!this.#reliable) this.#retransmit = clock.setTimeout(() => this.#onRetransmit(), this.#interval);
    // Timer B (INVITE) or F (non-INVITE) = 64*T1 (RFC 3261 17.1.1.2, 17.1.2.2).
    this.#timeout = clock.setTimeout(
      () => this.#fail(new SipError('SIP_ERR_TIMEOUT', `${this.request.method} timed out (no final response)`), 408),
      64 * timers.t1,
    );
  }

  #send(buf: Buffer): void {
    const over = this.#mgr.transport.send(buf, this.dest, this.#flow, (err) => this.#fail(err, 503));
    // A connection that closes before the final response is a transport error for the TU at once (RFC 3261
    // 8.1.3.1, 18.4), not a Timer B or F timeout 32 s later.
    if (over !== undefined && over !== this.#over && (this.state === 'calling' || this.state === 'proceeding')) {
      this.#over?.unwatch(this.#onClosed!);
      this.#onClosed ??= (err) => this.#fail(err, 503);
      if (over.closed) this.#fail(new SipError('SIP_ERR_TRANSPORT', 'connection closed'), 503);
      else {
        this.#over = over;
        over.watch(this.#onClosed);
      }
    }
  }

  #onRetransmit(): void {
    if (this.state !== 'calling' && this.state !== 'proceeding') return;
    this.#send(this.#buf);
    // Timer A doubles without bound (17.1.1.2); Timer E doubles up to T2, and stays at T2 once proceeding (17.1.2.2).
    this.#interval = this.#invite ? this.#interval * 2 : Math.min(this.#interval * 2, this.#mgr.timers.t2);
    this.#retransmit = this.#mgr.clock.setTimeout(() => this.#onRetransmit(), this.#interval);
  }

  receive(res: SipResponse): void {
    const { clock, timers } = this.#mgr;
    if (this.state === 'terminated') return;
    if (res.status < 200) {
      if (this.state === 'completed') return;
      if (this.state === 'calling') {
        this.state = 'proceeding';
        if (this.#invite) {
          clock.clearTimeout(this.#retransmit);
          clock.clearTimeout(this.#timeout);
          this.#retransmit = undefined;
          this.#timeout = undefined;
        } else {
          // The running Timer E fires as planned, then every T2 (17.1.2.2).
          this.#interval = timers.t2;
        }
      }
      if (this.#invite) {
        clock.clearTimeout(this.#timerC);
        this.#timerC = clock.setTimeout(() => this.#onTimerC(), timers.timerC);
      }
      this.#cb.onProvisional(res);
      return;
    }
    if (this.state === 'completed') {
      // A retransmitted final response: re-send the ACK (17.1.1.2).
      if (this.#ack !== undefined) this.#send(this.#ack);
      return;
    }
    this.#clearTimers();
    this.#mgr.record(this, 'uac', res.status);
    if (this.#invite && res.status < 300) {
      // 2xx: the TU owns the ACK and absorbs retransmissions (17.1.1.2, RFC 6026 Timer M is the UA core's dialog lookup).
      this.#terminate();
      this.#cb.onFinal(res);
      return;
    }
    this.state = 'completed';
    if (this.#invite) {
      this.#ack = serialize(ackForNonSuccess(this.request, res));
      this.#send(this.#ack);
    }
    const cb = this.#cb;
    // From here on the transaction only absorbs retransmitted finals: it must not keep the TU's
    // callbacks (and through them its dialog) or the request bytes alive for Timer D or K.
    this.#cb = DONE;
    this.#buf = EMPTY;
    cb.onFinal(res);
    // Timer D (INVITE, >= 32 s: the ACK is sent again for each retransmitted final) or K (T4: a
    // non-INVITE has nothing to resend, so a key in the manager's lingering table does) over UDP;
    // zero over reliable transports.
    if (this.#reliable) this.#terminate();
    else if (!this.#invite) {
      this.#terminate();
      this.#mgr.lingerClient(this.key);
    } else this.#timeout = clock.setTimeout(() => this.#terminate(), Math.max(32_000, 64 * timers.t1));
  }

  #onTimerC(): void {
    if (this.state !== 'proceeding') return;
    if (this.#cb.onTimerC !== undefined) this.#cb.onTimerC();
    // If even the CANCEL brings no final response, give up after 64*T1 (RFC 3261 9.1, 16.8).
    this.#timeout = this.#mgr.clock.setTimeout(
      () => this.#fail(new SipError('SIP_ERR_TIMEOUT', 'INVITE got no final response after Timer C and CANCEL'), 408),
      64 * this.#mgr.timers.t1,
    );
  }

  /** Stop waiting for this INVITE after a CANCEL: a final response must come within 64*T1. */
  armCancelDeadline(): void {
    if (this.state !== 'calling' && this.state !== 'proceeding') return;
    this.#mgr.clock.clearTimeout(this.#timerC);
    if (this.#timeout === undefined)
      this.#timeout = this.#mgr.clock.setTimeout(
        () => this.#fail(new SipError('SIP_ERR_TIMEOUT', 'no final response to a cancelled INVITE'), 408),
        64 * this.#mgr.timers.t1,
      );
  }

  #fail(err: SipError, status: number): void {
    // Once a final response arrived, a late transport error changes nothing.
    if (this.state === 'terminated' || this.state === 'completed') return;
    this.#clearTimers();
    this.#mgr.record(this, 'uac', status, err.code);
    this.#terminate();
    this.#cb.onError(err);
  }

  #clearTimers(): void {
    const { clock } = this.#mgr;
    clock.clearTimeout(this.#retransmit);
    clock.clearTimeout(this.#timeout);
    clock.clearTimeout(this.#timerC);
    this.#retransmit = this.#timeout = this.#timerC = undefined;
    if (this.#over !== undefined) {
      this.#over.unwatch(this.#onClosed!);
      this.#over = undefined;
    }
  }

  #terminate(): void {
    if (this.state === 'terminated') return;
    this.#clearTimers();
    this.state = 'terminated';
    this.#mgr.removeClient(this);
  }

  /** Whether the TU still waits on this transaction (abort must tell it). */
  get #pending(): boolean {
    return this.state === 'calling' || this.state === 'proceeding';
  }

  /** Abort without a network outcome (user agent closing). */
  abort(err: SipError): void {
    if (this.state === 'terminated') return;
    const pending = this.#pending;
    const cb = this.#cb;
    this.#terminate();
    if (pending) cb.onError(err);
  }

  get startedAt(): number {
    return this.#started;
  }
}

/** The ACK for a non-2xx final response, part of the INVITE transaction (RFC 3261 17.1.1.3). */
function ackForNonSuccess(req: SipRequest, res: SipResponse): SipRequest {
  const h = new SipHeaders();
  h.set('Via', splitList(req.headers.getAll('via')[0]!)[0]!);
  const route = req.headers.getAll('route');
  if (route.length > 0) h.set('Route', route);
  h.set('Max-Forwards', '70');
  h.set('From', req.headers.get('from')!);
  h.set('To', res.headers.get('to') ?? req.headers.get('to')!);
  h.set('Call-ID', req.headers.get('call-id')!);
  h.set('CSeq', `${req.cseq?.seq ?? 1} ACK`);
  return new SipRequest('ACK', req.uri, h);
}

/**
 * Server transaction: INVITE (RFC 3261 17.2.1 with the Accepted state of
 * RFC 6026) or non-INVITE (17.2.2). Retransmitted requests get the last
 * response again; final non-2xx responses to INVITE are retransmitted over UDP
 * until the ACK (Timers G and H); Timers I, J and L keep the transaction to
 * absorb late retransmissions.
 */
export class ServerTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly inbound: Inbound;
  readonly dest: Destination;
  state: ServerState;
  /** Set when the TU must hear about a CANCEL or ACK for this INVITE. */
  onCancel?: () => void;
  onAck?: () => void;
  /**
   * Another transaction has this request's From tag, Call-ID and CSeq but
   * another branch: the request reached us twice, merged or looped through
   * proxies (RFC 3261 8.2.2.2); the UA core answers it 482.
   */
  merged = false;
  /** Its key in the table of merged-request detection, when it is there. */
  origin?: string;
  readonly #mgr: TransactionManager;
  readonly #invite: boolean;
  readonly #reliable: boolean;
  readonly #started: number;
  readonly #viaPatch?: string[];
  #last?: Buffer;
  #lastStatus = 0;
  /** The transaction record went out (once per transaction). */
  #recorded = false;
  #timer?: TimerHandle;
  #timeout?: TimerHandle;
  #interval = 0;

  constructor(mgr: TransactionManager, key: string, inbound: Inbound) {
    this.#mgr = mgr;
    this.key = key;
    this.inbound = inbound;
    this.request = inbound.message as SipRequest;
    this.#invite = this.request.method === 'INVITE';
    this.#reliable = inbound.transport !== 'udp';
    this.state = this.#invite ? 'proceeding' : 'trying';
    this.#started = mgr.clock.now();
    const { dest, viaPatch } = responseTarget(inbound, mgr.forceRport);
    this.dest = dest;
    this.#viaPatch = viaPatch;
  }

  /**
   * After the TU has seen the request: an INVITE it did not answer at once gets 100 Trying if it still
   * has no answer after 200 ms (RFC 3261 17.2.1). An INVITE answered at once (a 2xx from the
   * handler, as the MCU side does) needs no timer.
   */
  armTrying(): void {
    if (this.#invite && this.state === 'proceeding' && this.#lastStatus === 0 && this.#timer === undefined)
      this.#timer = this.#mgr.clock.setTimeout(() => this.#sendTrying(), this.#mgr.timers.trying);
  }

  #sendTrying(): void {
    this.#timer = undefined;
    if (this.state === 'proceeding' && this.#lastStatus === 0) this.respond(buildResponse(this.request, 100));
  }

  /** Whether a final response was sent. */
  get answered(): boolean {
    return this.#lastStatus >= 200;
  }

  get lastStatus(): number {
    return this.#lastStatus;
  }

  /** The bytes of the last response sent (the UA core retransmits a 2xx to INVITE itself). */
  get lastBuffer(): Buffer | undefined {
    return this.#last;
  }

  /** Send a response from the TU; ignored once a final response went out (the TU retransmits 2xx itself). */
  respond(res: SipResponse): void {
    if (this.#lastStatus >= 200 || this.state === 'terminated') return;
    const { clock, timers } = this.#mgr;
    if (this.#viaPatch !== undefined) res.headers.set('Via', this.#viaPatch);
    this.#last = serialize(res);
    this.#lastStatus = res.status;
    this.#send(this.#last);
    if (res.status < 200) {
      if (this.state === 'trying') this.state = 'proceeding';
      return;
    }
    clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    // A non-2xx to INVITE is recorded when its ACK comes or Timer H gives up on it.
    if (!this.#invite || res.status < 300) this.#record(res.status);
    if (this.#invite && res.status < 300) {
      // RFC 6026 Accepted: absorb INVITE retransmissions for Timer L = 64*T1 (the 2xx is the TU's to resend).
      this.state = 'accepted';
      this.#linger(undefined);
    } else if (this.#invite) {
      this.state = 'completed';
      if (!this.#reliable) {
        this.#interval = timers.t1;
        this.#timer = clock.setTimeout(() => this.#onTimerG(), this.#interval);
      }
      // Timer H = 64*T1: give up waiting for the ACK, and say so in the record (17.2.1: a transport failure).
      this.#timeout = clock.setTimeout(() => {
        this.#record(this.#lastStatus, 'SIP_ERR_TIMEOUT');
        this.#terminate();
      }, 64 * timers.t1);
    } else {
      this.state = 'completed';
      // Timer J = 64*T1 over UDP, zero over reliable transports.
      if (this.#reliable) this.#terminate();
      else this.#linger(this.#last);
    }
  }

  /** Only absorbing retransmissions is left: the manager keeps a small record of it instead of this object. */
  #linger(last: Buffer | undefined): void {
    this.onCancel = this.onAck = undefined;
    this.#mgr.linger(this, last, this.inbound.flow);
  }

  #onTimerG(): void {
    if (this.state !== 'completed' || this.#last === undefined) return;
    this.#send(this.#last);
    this.#interval = Math.min(this.#interval * 2, this.#mgr.timers.t2);
    this.#timer = this.#mgr.clock.setTimeout(() => this.#onTimerG(), this.#interval);
  }

  /** A retransmission of the request. */
  retransmitted(): void {
    if ((this.state === 'proceeding' || this.state === 'completed') && this.#last !== undefined) this.#send(this.#last);
  }

  /** The ACK for our non-2xx final response (17.2.1). */
  ack(): void {
    if (this.state !== 'completed' || !this.#invite) return;
    const { clock, timers } = this.#mgr;
    clock.clearTimeout(this.#timer);
    clock.clearTimeout(this.#timeout);
    this.#timer = undefined;
    this.state = 'confirmed';
    this.#record(this.#lastStatus);
    this.onAck?.();
    // Timer I = T4 over UDP, zero over reliable transports.
    if (this.#reliable) this.#terminate();
    else this.#timeout = clock.setTimeout(() => this.#terminate(), timers.t4);
  }

  #send(buf: Buffer): void {
    this.#mgr.transport.send(buf, this.dest, this.inbound.flow, (err) => {
      // A response that cannot be delivered ends the transaction (RFC 3261 17.2.4).
      this.#record(this.answered ? this.#lastStatus : 503, err.code);
      this.#terminate();
    });
  }

  #record(status: number, errorCode?: string): void {
    if (this.#recorded) return;
    this.#recorded = true;
    this.#mgr.record(this, 'uas', status, errorCode);
  }

  #terminate(): void {
    if (this.state === 'terminated') return;
    const { clock } = this.#mgr;
    clock.clearTimeout(this.#timer);
    clock.clearTimeout(this.#timeout);
    this.#timer = this.#timeout = undefined;
    this.state = 'terminated';
    this.#mgr.removeServer(this);
    this.#mgr.forgetOrigin(this.origin, this.key);
  }

  /** The user agent is closing: a non-2xx still waiting for its ACK is recorded as such. */
  abort(): void {
    if (this.state === 'completed' && this.#invite) this.#record(this.#lastStatus, 'SIP_ERR_CLOSED');
    this.#terminate();
  }

  get startedAt(): number {
    return this.#started;
  }
}

/**
 * Where responses go (RFC 3261 18.2.2 with RFC 3581). Stream transports: back
 * over the connection the request came on (the flow) while it is open; once
 * it closed, a new connection to the source address (`received`) at the Via
 * sent-by port, 5060 or 5061 by default, never the peer's ephemeral source
 * port, where nothing listens. UDP: from the socket the request arrived on,
 * to the source address, at the source port when the Via asks for rport,
 * else at the Via port. The top Via gains `received` (the source address
 * differs from sent-by, 18.2.1) and the rport value.
 */
function responseTarget(inb: Inbound, forceRport: boolean): { dest: Destination; viaPatch?: string[] } {
  const req = inb.message as SipRequest;
  const via = req.topVia!;
  const rport = forceRport || via.params.rport !== undefined;
  const port =
    inb.transport !== 'udp'
      ? (via.port ?? (inb.transport === 'tls' ? 5061 : 5060))
      : rport
        ? inb.remote.port
        : (via.port ?? 5060);
  const dest: Destination = { transport: inb.transport, host: inb.remote.host, port };
  let viaPatch: string[] | undefined;
  if (via.host !== inb.remote.host || via.params.rport === null) {
    const lines = [...req.headers.getAll('via')];
    // A line of one Via (no comma at all) is the usual case: no list to split and join again.
    const els = lines[0]!.indexOf(',') < 0 ? undefined : splitList(lines[0]!);
    let top = els === undefined ? lines[0]! : els[0]!;
    if (via.host !== inb.remote.host && via.params.received === undefined) top += `;received=${inb.remote.host}`;
    if (via.params.rport === null) top = top.replace(RPORT_EMPTY, `;rport=${inb.remote.port}`);
    if (els === undefined) lines[0] = top;
    else {
      els[0] = top;
      lines[0] = els.join(', ');
    }
    viaPatch = lines;
  }
  return { dest, viaPatch };
}

export interface TransactionUser {
  /** A new request (not a retransmission, not an ACK matching a transaction). */
  onRequest(tx: ServerTransaction): void;
  /** An ACK outside any transaction: the ACK for a 2xx (RFC 3261 17.1.1.3, 13.3.1.4). */
  onAck(inbound: Inbound): void;
  /** A response matching no client transaction: 2xx retransmissions, forked 2xx (RFC 3261 13.2.2.4). */
  onStrayResponse(inbound: Inbound): void;
  onRecord(rec: TransactionRecord): void;
}

/**
 * What is left of a server transaction whose only duty is to absorb
 * retransmissions for 64*T1: an INVITE in Accepted (Timer L, RFC 6026; the
 * TU resends the 2xx) or a non-INVITE in Completed over UDP (Timer J, its
 * final response sent again). The transaction object itself, with the parsed
 * request and whatever the TU hung on it, is not kept that long: at a few
 * thousand calls a second, 64*T1 of full transactions was most of the heap
 * and of the garbage collector's work.
 */
interface Lingering {
  readonly last: Buffer | undefined;
  /** Key in the merged-request table (RFC 3261 8.2.2.2): the transaction still counts as ongoing. */
  readonly origin: string | undefined;
  readonly dest: Destination;
  readonly flow: Flow | undefined;
  /** Clock time at which it ends. */
  readonly until: number;
}

/**
 * How late at most an expired entry is swept, ms. Entries count as gone from
 * their expiry on (`get`, `has`, `size`), so the protocol timers stay exact;
 * only the memory is released in batches. A sweep per expiry woke the event
 * loop for each transaction (a chair command's six INFOs, six wake-ups five
 * seconds later), and on these machines a wake-up from idle costs more CPU
 * than the sweep itself.
 */
export const SWEEP_MS = 1_000;

/**
 * Entries that all live the same time: insertion order is expiry order, so
 * one timer sweeps them from the front (instead of a timer each), at most
 * once per `SWEEP_MS`.
 */
class Expiring<V> {
  readonly #map = new Map<string, V>();
  readonly #clock: Clock;
  readonly #until: (v: V) => number;
  readonly #expired?: (key: string, v: V) => void;
  #timer?: TimerHandle;

  constructor(clock: Clock, until: (v: V) => number, expired?: (key: string, v: V) => void) {
    this.#clock = clock;
    this.#until = until;
    this.#expired = expired;
  }

  add(key: string, v: V, ttl: number): void {
    // To the back, where its expiry belongs (an expired entry of that key may still be there, unswept).
    this.#map.delete(key);
    this.#map.set(key, v);
    if (this.#timer === undefined) this.#arm(ttl + SWEEP_MS);
  }

  /** The entry, unless it expired (swept or not). */
  get(key: string): V | undefined {
    const v = this.#map.get(key);
    return v === undefined || this.#until(v) <= this.#clock.now() ? undefined : v;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  get size(): number {
    this.#sweep(this.#clock.now());
    return this.#map.size;
  }

  /** Drops the expired entries; the expiry of the first one left. */
  #sweep(now: number): number | undefined {
    for (const [k, v] of this.#map) {
      const until = this.#until(v);
      if (until > now) return until;
      this.#map.delete(k);
      this.#expired?.(k, v);
    }
    return undefined;
  }

  #arm(ms: number): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const now = this.#clock.now();
      const next = this.#sweep(now);
      if (next !== undefined) this.#arm(next - now + SWEEP_MS);
    }, ms);
  }

  clear(): void {
    this.#map.clear();
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** What a CANCEL needs of the INVITE transaction it names (RFC 3261 9.2). */
export interface CancelTarget {
  readonly answered: boolean;
  readonly onCancel?: () => void;
}

const ANSWERED: CancelTarget = { answered: true };

/** Matches messages to transactions (RFC 3261 17.1.3 and 17.2.3) and owns the transaction tables. */
export class TransactionManager {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly transport: TransportSink;
  /** Answer UDP requests at their source port even without rport (RFC 3581 behaviour forced, as proxies' force_rport). */
  readonly forceRport: boolean;
  readonly #tu: TransactionUser;
  readonly #clients = new Map<string, ClientTransaction>();
  readonly #servers = new Map<string, ServerTransaction>();
  /** Server transactions absorbing retransmissions for 64*T1 (Timers J and L). */
  readonly #lingering: Expiring<Lingering>;
  /** Non-INVITE client transactions absorbing retransmitted finals for T4 (Timer K): the clock time each ends. */
  readonly #lingeringClients: Expiring<number>;
  /**
   * Transactions of requests without a To tag, by From tag, Call-ID and CSeq
   * (RFC 3261 8.2.2.2), to their transaction key: while that transaction is
   * ongoing or lingering, the same request by another branch is merged.
   */
  readonly #origins = new Map<string, string>();

  constructor(transport: TransportSink, clock: Clock, timers: TimerConfig, tu: TransactionUser, forceRport = false) {
    this.forceRport = forceRport;
    this.transport = transport;
    this.clock = clock;
    this.timers = timers;
    this.#tu = tu;
    this.#lingering = new Expiring(
      clock,
      (l) => l.until,
      (key, l) => this.forgetOrigin(l.origin, key),
    );
    this.#lingeringClients = new Expiring(clock, (until) => until);
  }

  get size(): { clients: number; servers: number } {
    return {
      clients: this.#clients.size + this.#lingeringClients.size,
      servers: this.#servers.size + this.#lingering.size,
    };
  }

  /** Start a client transaction for a request whose top Via carries `branch`. */
  request(req: SipRequest, branch: string, dest: Destination, cb: ClientCallbacks, flow?: Flow): ClientTransaction {
    const tx = new ClientTransaction(this, req, branch, dest, cb, flow);
    this.#clients.set(tx.key, tx);
    tx.start();
    return tx;
  }

  /** Route an inbound message; returns a refusal status when the request must be answered statelessly. */
  receive(inb: Inbound): void {
    const msg = inb.message;
    if (msg.kind === 'response') {
      const vias = msg.via;
      const cseq = msg.cseq;
      // More than one Via: the response was meant for an element above us, not for us (RFC 3261 8.1.3.3).
      if (vias?.length !== 1 || cseq === undefined) return;
      const branch = vias[0]!.branch;
      if (branch === undefined) return;
      const key = `${branch}:${cseq.method === 'ACK' ? 'INVITE' : cseq.method}`;
      const tx = this.#clients.get(key);
      if (tx !== undefined) tx.receive(msg);
      // A retransmitted final of a completed non-INVITE is absorbed (Timer K).
      else if (!this.#lingeringClients.has(key)) this.#tu.onStrayResponse(inb);
      return;
    }
    if (msg.topVia === undefined) return;
    const key = serverKey(msg);
    if (key === undefined) {
      // A bare magic cookie is no transaction identifier (RFC 4475 badbranch): refuse statelessly.
      if (msg.method !== 'ACK') this.#stateless(inb, 400, 'Bad Request (invalid branch)');
      return;
    }
    if (msg.method === 'ACK') {
      const tx = this.#servers.get(`${key}:INVITE`);
      if (tx !== undefined && tx.state !== 'accepted') tx.ack();
      else this.#tu.onAck(inb);
      return;
    }
    // The key may outlive the request by 64*T1 (lingering, merged-request table): it must not pin the
    // message's text. Detached once, before the lookups (which would otherwise flatten a copy of their own).
    const txKey = detach(`${key}:${msg.method}`);
    const existing = this.#servers.get(txKey);
    if (existing !== undefined) {
      existing.retransmitted();
      return;
    }
    const lingering = this.#lingering.get(txKey);
    if (lingering !== undefined) {
      // A retransmission: a non-INVITE gets its final response again, an accepted INVITE is absorbed.
      if (lingering.last !== undefined) this.transport.send(lingering.last, lingering.dest, lingering.flow);
      return;
    }
    const tx = new ServerTransaction(this, txKey, inb);
    this.#servers.set(tx.key, tx);
    // A retransmission matched its transaction above; the same request by another branch is merged or looped.
    if (msg.to?.params.tag == null) {
      const origin = detach(`${msg.callId}|${msg.from?.params.tag ?? ''}|${msg.cseq?.seq} ${msg.cseq?.method}`);
      const first = this.#origins.get(origin);
      if (first !== undefined && (this.#servers.has(first) || this.#lingering.has(first))) tx.merged = true;
      else {
        tx.origin = origin;
        this.#origins.set(origin, tx.key);
      }
    }
    try {
      this.#tu.onRequest(tx);
    } finally {
      tx.armTrying();
    }
  }

  /** The INVITE server transaction a CANCEL refers to (RFC 3261 9.2: same branch and sent-by). */
  findInviteFor(cancel: SipRequest): CancelTarget | undefined {
    const key = serverKey(cancel);
    if (key === undefined) return undefined;
    return this.#servers.get(`${key}:INVITE`) ?? (this.#lingering.has(`${key}:INVITE`) ? ANSWERED : undefined);
  }

  /** A server transaction hands over to a lingering record for 64*T1. */
  linger(tx: ServerTransaction, last: Buffer | undefined, flow: Flow | undefined): void {
    this.removeServer(tx);
    const ms = 64 * this.timers.t1;
    this.#lingering.add(tx.key, { last, origin: tx.origin, dest: tx.dest, flow, until: this.clock.now() + ms }, ms);
  }

  /** A completed non-INVITE client transaction is remembered by key for Timer K (T4). */
  lingerClient(key: string): void {
    this.#lingeringClients.add(detach(key), this.clock.now() + this.timers.t4, this.timers.t4);
  }

  #stateless(inb: Inbound, status: number, reason: string): void {
    this.transport.send(
      serialize(buildResponse(inb.message as SipRequest, status, reason)),
      responseTarget(inb, this.forceRport).dest,
      inb.flow,
    );
  }

  record(tx: ClientTransaction | ServerTransaction, role: 'uac' | 'uas', status: number, errorCode?: string): void {
    const d = tx.dest;
    this.#tu.onRecord({
      role,
      method: tx.request.method,
      status,
      durationMs: this.clock.now() - tx.startedAt,
      transport: d.transport,
      peer: `${d.host}:${d.port}`,
      errorCode,
    });
  }

  /** A transaction that was first with its From tag, Call-ID and CSeq has ended (or stopped lingering). */
  forgetOrigin(origin: string | undefined, txKey: string): void {
    if (origin !== undefined && this.#origins.get(origin) === txKey) this.#origins.delete(origin);
  }

  removeClient(tx: ClientTransaction): void {
    if (this.#clients.get(tx.key) === tx) this.#clients.delete(tx.key);
  }

  removeServer(tx: ServerTransaction): void {
    if (this.#servers.get(tx.key) === tx) this.#servers.delete(tx.key);
  }

  /** Abort everything (user agent closing): pending client transactions reject with `err`. */
  close(err: SipError): void {
    for (const tx of [...this.#clients.values()]) tx.abort(err);
    for (const tx of [...this.#servers.values()]) tx.abort();
    this.#lingering.clear();
    this.#lingeringClients.clear();
    this.#origins.clear();
  }
}

/**
 * The server transaction key without the method: branch and sent-by for RFC
 * 3261 branches; for RFC 2543 requests without the magic cookie (RFC 4475
 * inv2543) the Call-ID, CSeq number, From tag and top Via stand in (17.2.3).
 * Undefined for a bare magic cookie.
 */
function serverKey(req: SipRequest): string | undefined {
  const via = req.topVia;
  if (via === undefined) return undefined;
  const sentBy = `${via.host}:${via.port ?? ''}`;
  const b = via.branch;
  if (b?.startsWith(MAGIC)) return b.length === MAGIC.length ? undefined : `${b}|${sentBy}`;
  return `2543|${req.callId}|${req.cseq?.seq}|${req.from?.params.tag ?? ''}|${sentBy}|${b ?? ''}`;
}
