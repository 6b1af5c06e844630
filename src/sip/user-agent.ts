/**
 * The user agent core (RFC 3261 8): request building and sending with digest
 * retries, dispatch of incoming requests to dialogs and handlers, the ACKs
 * kept for 2xx retransmissions, and the orderly close. The INVITE client is in
 * invite-client.ts, the incoming-request objects in incoming.ts.
 */
import type { Logger } from 'pino';
import {
  type Clock,
  onceClose,
  randomHex,
  randomToken,
  realClock,
  type TimerHandle,
  TypedEmitter,
} from '../core/index.js';
import { authorize, type DigestChallenge, type DigestCredentials, parseChallenge } from './auth.js';
import { DialogImpl, parseSessionExpires } from './dialog.js';
import { SipError } from './errors.js';
import { detach, isToken, scanQuoted } from './grammar.js';
import { parseNameAddr, SipHeaders } from './headers.js';
import { IncomingInviteImpl, IncomingReferImpl, IncomingRequestImpl, IncomingSubscribeImpl } from './incoming.js';
import { type InviteHost, sendInvite } from './invite-client.js';
import { buildResponse, type SipRequest, SipRequest as SipRequestClass, type SipResponse } from './message.js';
import {
  type AckOwner,
  ALLOW,
  ALLOW_VALUE,
  addHeaders,
  type ForkSource,
  nextHop,
  type Outgoing,
  SUPPORTED,
  SUPPORTED_VALUE,
  toBody,
} from './routing.js';
import { SubscriberImpl } from './subscription.js';
import { DEFAULT_TIMERS, type ServerTransaction, type TimerConfig, TransactionManager } from './transaction.js';
import { type Destination, type Flow, type Inbound, TransportLayer, type TransportName } from './transport.js';
import type {
  BodyOptions,
  Dialog,
  InviteOptions,
  ReferSubscription,
  RequestOptions,
  SessionTimerOptions,
  SubscribeOptions,
  Subscription,
  UserAgent,
  UserAgentEvents,
  UserAgentOptions,
  UserAgentStats,
} from './types.js';
import { checkRequest, responseAcceptable, type UasPolicy } from './validate.js';

const MAGIC = 'z9hG4bK'; // RFC 3261 8.1.1.7
const DEFAULT_HANDLER_TIMEOUT = 16_000; // ms: answer before the peer's Timer F (64*T1 = 32 s) fires
const DEFAULT_ACCEPT = [
  'application/sdp',
  'application/msml+xml',
  'application/xml',
  'application/media_control+xml',
  'application/conference-info+xml',
  // Call quality reports (RFC 6035) in NOTIFYs of the vq-rtcpxr package.
  'application/vq-rtcpxr',
  'message/sipfrag',
  'text/plain',
  'multipart/mixed',
];
const DEFAULT_MIN_SE = 90; // s, RFC 4028 4
/** close() waits this many T1 (2 s by default) for BYEs to be answered: room for one lost datagram's retransmission. */
const SHUTDOWN_BYE_WAIT_T1 = 4;

/** Digest answers per request: a proxy, the UAS and one stale nonce each (RFC 3261 22.3, RFC 7616 3.3). */
const MAX_AUTH_ANSWERS = 4;

/**
 * The credentials answering a 401/407 (RFC 3261 22.2, 22.3), keyed by header
 * and realm, or undefined when nothing can be answered: no challenge we
 * support in our realm, or one we answered already whose nonce is not stale
 * (our credentials were refused).
 */
function answerChallenge(
  r: SipResponse,
  credentials: DigestCredentials,
  o: Outgoing,
  answered: ReadonlyMap<string, readonly [string, string]>,
): { key: string; header: AuthHeader; value: string; challenge: DigestChallenge } | undefined {
  const proxy = r.status === 407;
  const header = proxy ? 'Proxy-Authorization' : 'Authorization';
  for (const c of r.headers.getAll(proxy ? 'proxy-authenticate' : 'www-authenticate')) {
    const ch = parseChallenge(c);
    if (ch === undefined) continue;
    if (credentials.realm !== undefined && credentials.realm !== ch.realm) continue;
    const key = `${header}|${ch.realm}`;
    if (answered.has(key) && !ch.stale) return undefined;
    // Every challenge brings a fresh nonce, so the nonce count starts at 1 (RFC 7616 3.4).
    return { key, header, value: authorize(ch, credentials, o.method, o.ruri, 1), challenge: ch };
  }
  return undefined;
}

type AuthHeader = 'Authorization' | 'Proxy-Authorization';

/** A challenge answered for a next hop, reused for the requests that follow (UserAgent.send). */
interface Protection {
  readonly header: AuthHeader;
  readonly challenge: DigestChallenge;
  readonly credentials: DigestCredentials;
  /** The last nonce count used with its nonce (RFC 7616 3.4: each use counts up). */
  nc: number;
}

/** Next hops whose challenges are remembered: one per MCU (70 to 130) and proxy; cleared when full. */
const MAX_PROTECTIONS = 1_024;

/** The values of a credentials header in an ACK of ours (as we wrote it: one header per line, full name). */
function credentialLines(text: string, name: 'authorization' | 'proxy-authorization'): string[] {
  const out: string[] = [];
  for (const line of text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n'))
    if (line.length > name.length + 1 && line[name.length] === ':' && line.slice(0, name.length).toLowerCase() === name)
      out.push(line.slice(name.length + 1).trim());
  return out;
}

/** `;name` or `;name=value` for each Contact header parameter (RFC 3261 20.10 contact-params), checked once. */
function formatContactParams(params: Readonly<Record<string, string | true>> | undefined): string {
  let out = '';
  for (const [name, value] of Object.entries(params ?? {})) {
    const ok =
      isToken(name) &&
      (value === true || isToken(value) || (value.startsWith('"') && scanQuoted(value, 0) === value.length));
    if (!ok) throw new SipError('SIP_ERR_INVALID_ARGUMENT', `bad Contact parameter ${name}=${String(value)}`);
    out += value === true ? `;${name}` : `;${name}=${value}`;
  }
  return out;
}

/** An ACK for a 2xx, kept to answer the UAS's retransmissions of that 2xx. */
interface SentAck {
  /** The To tag of the 2xx it acknowledges. */
  readonly toTag: string;
  readonly cseq: number;
  /**
   * The ACK as text: a string of its own, where a Buffer from the pool would
   * keep its whole 8 KiB slab alive for 64*T1.
   */
  readonly text: string;
  readonly dest: Destination;
  readonly flow?: Flow;
  /** Clock time after which the UAS has stopped retransmitting (64*T1 after the 2xx). */
  readonly until: number;
}

/**
 * The ACKs of one INVITE of ours, by dialog set (Call-ID and From tag): the
 * dialog's latest ACK, and those of forks we ended (RFC 3261 13.2.2.4). While
 * the set lives (64*T1, RFC 6026 Timer M), a 2xx to the INVITE with another
 * To tag is a fork.
 */
interface AckSet extends SentAck {
  /** CSeq of the INVITE that made the dialog (-1 when unknown: the set was re-made by a re-INVITE's ACK). */
  readonly inviteCseq: number;
  readonly fork?: ForkSource;
  readonly forks?: readonly SentAck[];
}

class UserAgentImpl extends TypedEmitter<UserAgentEvents> implements UserAgent, InviteHost {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly log?: Logger;
  readonly userAgent: string;
  readonly sessionTimer: SessionTimerOptions | undefined;
  readonly minSE: number;
  readonly handlerTimeoutMs: number;
  readonly transport: TransportLayer;
  readonly txm: TransactionManager;
  readonly policy: UasPolicy;
  /** The Accept header value: the media types of the policy, built once. */
  readonly acceptValue: string;
  readonly credentials?: DigestCredentials;
  readonly #user: string;
  readonly #dialogs = new Map<string, DialogImpl>();
  /** SUBSCRIBEs awaiting their dialog (a NOTIFY may create it before the 2xx, RFC 6665 4.1.2.4). */
  readonly #pendingSubs = new Map<string, SubscriberImpl>();
  /**
   * ACKs by dialog id. Every entry lives 64*T1, so insertion order is expiry
   * order and one timer sweeps them from the front.
   */
  readonly #acks = new Map<string, AckSet>();
  /** The last challenge answered per next hop, for the requests outside a dialog that follow (send). */
  readonly #protections = new Map<string, Protection>();
  /** Requests close() lets finish before the sockets close: BYEs in flight (no RST to the MCU). */
  readonly #draining = new Set<Promise<unknown>>();
  #ackSweep?: TimerHandle;
  #closed = false;
  #shut = false;
  readonly #contactCache = new Map<TransportName, string>();
  /** Contact header values by transport: every 2xx and dialog-creating request carries one. */
  readonly #contactValues = new Map<TransportName, string>();
  readonly #fromCache = new Map<TransportName, string>();
  /** Contact header parameters (e.g. isfocus), already formatted. */
  readonly #contactParams: string;
  readonly close: () => Promise<void>;

  constructor(opts: UserAgentOptions) {
    super();
    this.clock = opts.clock ?? realClock;
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.log = opts.logger?.child({ component: 'sip' });
    this.userAgent = opts.userAgent ?? 'cascaded';
    this.#user = opts.user ?? 'cascaded';
    this.#contactParams = formatContactParams(opts.contactParams);
    this.sessionTimer = opts.sessionTimer;
    this.minSE = opts.sessionTimer?.minSE ?? DEFAULT_MIN_SE;
    this.handlerTimeoutMs = opts.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT;
    this.credentials = opts.credentials;
    this.policy = {
      allow: new Set(ALLOW),
      supported: new Set(SUPPORTED),
      accept: new Set((opts.accept ?? DEFAULT_ACCEPT).map((a) => a.toLowerCase())),
    };
    this.acceptValue = [...this.policy.accept].join(', ');
    this.transport = new TransportLayer({
      listen: opts.listen,
      tls: opts.tls,
      clock: this.clock,
      logger: this.log,
      maxMessageSize: opts.maxMessageSize,
      maxStreamMessageSize: opts.maxStreamMessageSize,
      maxHeaderSize: opts.maxHeaderSize,
      maxQueuedBytes: opts.maxQueuedBytes,
      maxConnections: opts.maxConnections,
      maxConnectionsPerAddress: opts.maxConnectionsPerAddress,
      idleTimeoutMs: opts.idleTimeoutMs,
      udpReceiveBufferBytes: opts.udpReceiveBufferBytes,
      onMessage: (inb) => this.txm.receive(inb),
    });
    this.txm = new TransactionManager(
      this.transport,
      this.clock,
      this.timers,
      {
        onRequest: (tx) => this.#onRequest(tx),
        onAck: (inb) => this.#onAck(inb),
        onStrayResponse: (inb) => this.#onStrayResponse(inb),
        onRecord: (rec) => {
          if (this.listenerCount('transaction') > 0) this.safeEmit('transaction', rec);
        },
      },
      opts.forceRport ?? false,
    );
    this.onListenerError((err, event) => this.log?.error({ err, event }, 'sip event listener threw'));
    this.close = onceClose(() => this.#close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  get listening(): readonly Destination[] {
    return this.transport.listening;
  }

  get stats(): UserAgentStats {
    const s = this.txm.size;
    return {
      ...this.transport.stats,
      dialogs: this.#dialogs.size,
      clientTransactions: s.clients,
      serverTransactions: s.servers,
    };
  }

  contactUri(transport: TransportName = this.transport.listening[0]?.transport ?? 'udp'): string {
    // Listening addresses never change after start: build each URI once.
    let uri = this.#contactCache.get(transport);
    if (uri === undefined) {
      uri = this.#buildContactUri(transport);
      this.#contactCache.set(transport, uri);
    }
    return uri;
  }

  #buildContactUri(transport: TransportName): string {
    const l = this.transport.localFor(transport);
    if (l === undefined) throw new SipError('SIP_ERR_TRANSPORT', `not listening on ${transport}`);
    const host = l.host.includes(':') ? `[${l.host}]` : l.host;
    const scheme = transport === 'tls' ? 'sips' : 'sip';
    return `${scheme}:${this.#user}@${host}:${l.port}${transport === 'udp' || transport === 'tls' ? '' : ';transport=tcp'}`;
  }

  contactFor(transport: TransportName): string {
    let v = this.#contactValues.get(transport);
    if (v === undefined) {
      v = `<${this.contactUri(transport)}>${this.#contactParams}`;
      this.#contactValues.set(transport, v);
    }
    return v;
  }

  localHost(transport: TransportName): string {
    const l = this.transport.localFor(transport);
    if (l === undefined) throw new SipError('SIP_ERR_TRANSPORT', `not listening on ${transport}`);
    return l.host;
  }

  newTag(): string {
    return randomHex(6);
  }

  newBranch(): string {
    return MAGIC + randomToken(9);
  }

  localVia(transport: TransportName, branch: string): string {
    const l = this.transport.localFor(transport);
    if (l === undefined) throw new SipError('SIP_ERR_TRANSPORT', `not listening on ${transport}`);
    const host = l.host.includes(':') ? `[${l.host}]` : l.host;
    return `SIP/2.0/${transport.toUpperCase()} ${host}:${l.port};branch=${branch};rport`;
  }

  #assertOpen(): void {
    if (this.#closed) throw new SipError('SIP_ERR_CLOSED', 'user agent closed');
  }

  // ---- sending -------------------------------------------------------------

  send(o: Outgoing): Promise<SipResponse> {
    // Still open while close() sends its BYEs; shut once the transactions are aborted.
    if (this.#shut) return Promise.reject(new SipError('SIP_ERR_CLOSED', 'user agent closed'));
    const credentials = o.credentials ?? this.credentials;
    // A request outside a dialog to a next hop that challenged us before goes with credentials for that
    // challenge's nonce, counted up (RFC 3261 22.3, RFC 7616 3.4): no 401 and second round trip each time (a
    // challenging MCU's room opened in four round trips: INVITE and SUBSCRIBE each challenged). A server that no
    // longer takes the nonce challenges again (stale, or forgotten): answered as ever, the new nonce kept.
    const hop = credentials === undefined || o.inDialog === true ? undefined : this.#hopKey(o);
    let preset = hop === undefined ? undefined : this.#presetAuth(hop, credentials!, o);
    return new Promise<SipResponse>((resolve, reject) => {
      // Our answers to challenges, by header and realm: a proxy (407) and the UAS (401) may both challenge,
      // and every retry carries all the credentials collected so far (RFC 3261 22.3).
      let auth: Map<string, readonly [string, string]> | undefined;
      let answers = 0;
      const attempt = (): void => {
        const branch = this.newBranch();
        const h = new SipHeaders();
        try {
          h.set('Via', this.localVia(o.dest.transport, branch));
        } catch (err) {
          reject(err);
          return;
        }
        h.set('Max-Forwards', '70');
        h.appendAll(o.headers);
        h.set('CSeq', `${o.nextCSeq()} ${o.method}`);
        if (auth !== undefined) for (const [name, value] of auth.values()) h.append(name, value);
        else if (preset !== undefined) h.append(preset[0], preset[1]);
        const req = new SipRequestClass(o.method, o.ruri, h, o.body);
        const tx = this.txm.request(
          req,
          branch,
          o.dest,
          {
            onProvisional: (r) => o.onProvisional?.(r),
            onFinal: (r) => {
              if (r.status !== 401 && r.status !== 407) {
                resolve(r);
                return;
              }
              if (preset !== undefined) {
                // The nonce we reused was refused: forget it, answer this challenge as a first one.
                this.#protections.delete(hop!);
                preset = undefined;
              }
              auth ??= new Map();
              const answer = credentials === undefined ? undefined : answerChallenge(r, credentials, o, auth);
              if (answer !== undefined && answers < MAX_AUTH_ANSWERS) {
                answers++;
                auth.set(answer.key, [answer.header, answer.value]);
                if (hop !== undefined) this.#protect(hop, answer.header, answer.challenge, credentials!);
                attempt();
                return;
              }
              if (auth.size > 0) {
                reject(
                  new SipError('SIP_ERR_AUTH', `${o.method} ${o.ruri}: credentials refused (${r.status})`, {
                    details: { sipStatus: r.status },
                  }),
                );
                return;
              }
              resolve(r);
            },
            onError: reject,
            onTimerC: o.onTimerC,
          },
          o.flow,
        );
        o.onTx?.(tx, req);
      };
      attempt();
    });
  }

  /**
   * Where a request goes, as the protection space of its challenges (a proxy's or the MCU's): its address and
   * port, whatever the transport (an MCU takes its control INVITE over UDP and its conference SUBSCRIBE over TCP).
   */
  #hopKey(o: Outgoing): string {
    return `${o.dest.host} ${o.dest.port}`;
  }

  #protect(hop: string, header: AuthHeader, challenge: DigestChallenge, credentials: DigestCredentials): void {
    if (this.#protections.size >= MAX_PROTECTIONS && !this.#protections.has(hop)) this.#protections.clear();
    // The answer just sent used nonce count 1.
    this.#protections.set(hop, { header, challenge, credentials, nc: 1 });
  }

  /** Credentials for the challenge this hop sent last, with the next nonce count; none for other credentials. */
  #presetAuth(hop: string, credentials: DigestCredentials, o: Outgoing): readonly [AuthHeader, string] | undefined {
    const p = this.#protections.get(hop);
    if (p === undefined) return undefined;
    const c = p.credentials;
    if (c.username !== credentials.username || c.password !== credentials.password) return undefined;
    p.nc++;
    return [p.header, authorize(p.challenge, credentials, o.method, o.ruri, p.nc)];
  }

  drainOnClose(p: Promise<unknown>): void {
    this.#draining.add(p);
    const done = (): void => {
      this.#draining.delete(p);
    };
    p.then(done, done);
  }

  sendRaw(buf: Buffer, dest: Destination, flow?: Flow): void {
    this.transport.send(buf, dest, flow);
  }

  rememberAck(d: AckOwner, cseq: number, text: string, dest: Destination, flow?: Flow, initial?: ForkSource): void {
    // Key and tag are kept 64*T1: detached, so that they do not pin the 2xx the tag was cut from.
    const key = detach(`${d.callId}|${d.localTag}`);
    const toTag = detach(d.remoteTag);
    const until = this.clock.now() + 64 * this.timers.t1;
    const set = this.#acks.get(key);
    // Re-insert in every case: the map stays in expiry order.
    this.#acks.delete(key);
    if (set !== undefined && set.toTag !== toTag && initial === undefined) {
      // A fork we ended: its ACK is kept beside the dialog's, the set lives as long as the newest of them.
      const forks = (set.forks ?? []).filter((f) => f.toTag !== toTag);
      forks.push({ toTag, cseq, text, dest, flow, until });
      this.#acks.set(key, { ...set, until, forks });
    } else {
      this.#acks.set(key, {
        toTag,
        cseq,
        text,
        dest,
        flow,
        until,
        inviteCseq: initial !== undefined ? cseq : (set?.inviteCseq ?? -1),
        fork: initial ?? set?.fork,
        forks: set?.forks,
      });
    }
    if (this.#ackSweep === undefined) this.#armAckSweep(64 * this.timers.t1);
  }

  #armAckSweep(ms: number): void {
    this.#ackSweep = this.clock.setTimeout(() => {
      const now = this.clock.now();
      for (const [id, a] of this.#acks) {
        if (a.until > now) {
          this.#armAckSweep(a.until - now);
          return;
        }
        this.#acks.delete(id);
      }
      this.#ackSweep = undefined;
    }, ms);
  }

  registerDialog(d: DialogImpl): void {
    this.#dialogs.set(d.id, d);
    if (this.listenerCount('dialog') > 0) this.safeEmit('dialog', d);
  }

  unregisterDialog(d: DialogImpl): void {
    if (this.#dialogs.get(d.id) === d) this.#dialogs.delete(d.id);
  }

  /** Headers of a new out-of-dialog request. */
  requestHeaders(
    method: string,
    uri: string,
    dest: Destination,
    opts: RequestOptions,
    fromTag: string,
    callId: string,
  ): SipHeaders {
    const h = new SipHeaders();
    if (opts.route !== undefined && opts.route.length > 0)
      h.set(
        'Route',
        opts.route.map((r) => (r.startsWith('<') ? r : `<${r}>`)),
      );
    let from = opts.from ?? this.#fromCache.get(dest.transport);
    if (from === undefined) {
      from = this.contactUri(dest.transport).replace(/;transport=\w+/, '');
      this.#fromCache.set(dest.transport, from);
    }
    h.set('From', `<${from}>;tag=${fromTag}`);
    h.set('To', `<${uri}>`);
    h.set('Call-ID', callId);
    if (method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER')
      h.set('Contact', this.contactFor(dest.transport));
    h.set('User-Agent', this.userAgent);
    if (method === 'INVITE' || method === 'OPTIONS') {
      h.set('Allow', ALLOW_VALUE);
      h.set('Supported', SUPPORTED_VALUE);
    }
    addHeaders(h, opts.headers);
    // What we take in answers: SDP first, for an offer in the 2xx to a body-less INVITE (RFC 3261 13.2.1, 20.1).
    if ((method === 'INVITE' || method === 'OPTIONS') && !h.has('accept')) h.set('Accept', this.acceptValue);
    if (opts.body !== undefined) h.set('Content-Type', opts.contentType ?? 'application/sdp');
    return h;
  }

  async request(method: string, uri: string, opts: RequestOptions = {}): Promise<SipResponse> {
    this.#assertOpen();
    const m = method.toUpperCase();
    if (m === 'INVITE' || m === 'ACK' || m === 'CANCEL' || m === 'BYE')
      throw new SipError('SIP_ERR_INVALID_ARGUMENT', `use invite() or a dialog for ${m}`);
    const dest = nextHop(uri, opts.route ?? []);
    let cseq = 0;
    const headers = this.requestHeaders(m, uri, dest, opts, this.newTag(), randomToken(12));
    return this.send({
      method: m,
      ruri: uri,
      dest,
      headers,
      body: toBody(opts.body),
      credentials: opts.credentials,
      nextCSeq: () => ++cseq,
    });
  }

  invite(uri: string, opts: InviteOptions = {}): Promise<Dialog> {
    if (this.#closed) return Promise.reject(new SipError('SIP_ERR_CLOSED', 'user agent closed'));
    return sendInvite(this, uri, opts);
  }

  async subscribe(uri: string, opts: SubscribeOptions): Promise<Subscription> {
    this.#assertOpen();
    const dest = nextHop(uri, opts.route ?? []);
    const callId = randomToken(12);
    const fromTag = this.newTag();
    const headers = this.requestHeaders('SUBSCRIBE', uri, dest, opts, fromTag, callId);
    const sub = new SubscriberImpl(this, opts.event, opts.expires ?? 3600);
    const key = `${callId}|${fromTag}`;
    this.#pendingSubs.set(key, sub);
    let cseq = 0;
    try {
      return await sub.start(uri, dest, headers, opts, () => ++cseq);
    } finally {
      this.#pendingSubs.delete(key);
    }
  }

  async refer(uri: string, target: string, opts: RequestOptions = {}): Promise<ReferSubscription> {
    this.#assertOpen();
    const dest = nextHop(uri, opts.route ?? []);
    const callId = randomToken(12);
    const fromTag = this.newTag();
    const headers = this.requestHeaders('REFER', uri, dest, opts, fromTag, callId);
    const sub = new SubscriberImpl(this, 'refer', 0);
    // The first NOTIFY may overtake the 202 (RFC 6665 4.1.2.4): it finds the subscription here.
    const key = `${callId}|${fromTag}`;
    this.#pendingSubs.set(key, sub);
    let cseq = 0;
    try {
      return await sub.startReferOutside(uri, target, dest, headers, opts, () => ++cseq);
    } finally {
      this.#pendingSubs.delete(key);
    }
  }

  // ---- receiving -----------------------------------------------------------

  #onRequest(tx: ServerTransaction): void {
    const req = tx.request;
    const refusal = checkRequest(req, this.policy);
    if (refusal !== undefined) {
      if (req.method === 'ACK') return;
      const h = new SipHeaders();
      for (const [n, v] of refusal.headers ?? []) h.append(n, v);
      tx.respond(buildResponse(req, refusal.status, refusal.reason, { headers: h, toTag: this.newTag() }));
      return;
    }
    if (this.#closed) {
      tx.respond(buildResponse(req, 503, undefined, { toTag: this.newTag() }));
      return;
    }
    if (tx.merged) {
      // The same request by another path (RFC 3261 8.2.2.2): answered once, by the transaction of the first copy.
      tx.respond(buildResponse(req, 482, 'Loop Detected', { toTag: this.newTag() }));
      return;
    }
    if (req.method === 'CANCEL') {
      this.#onCancel(tx);
      return;
    }
    const toTag = req.to!.params.tag;
    if (toTag != null) {
      const d = this.#dialogs.get(`${req.callId}|${toTag}|${req.from!.params.tag ?? ''}`);
      if (d !== undefined) {
        d.receiveRequest(tx);
        return;
      }
      if (req.method === 'NOTIFY') {
        const sub = this.#pendingSubs.get(`${req.callId}|${toTag}`);
        if (sub !== undefined) {
          sub.notifyBeforeDialog(tx);
          return;
        }
      }
      // No such dialog (RFC 3261 12.2.2).
      tx.respond(buildResponse(req, 481));
      return;
    }
    switch (req.method) {
      case 'INVITE':
        this.#onInvite(tx);
        return;
      case 'SUBSCRIBE':
        this.#dispatchSubscribe(tx, undefined);
        return;
      case 'REFER':
        this.#dispatchRefer(tx, undefined);
        return;
      case 'BYE':
      case 'NOTIFY':
        tx.respond(buildResponse(req, 481, undefined, { toTag: this.newTag() }));
        return;
      default: {
        const inc = new IncomingRequestImpl(this, tx, undefined, this.newTag());
        if (this.listenerCount('request') > 0) {
          this.safeEmit('request', inc);
          inc.armDeadline();
        } else if (req.method === 'OPTIONS') inc.respond(200);
        else inc.respond(405, { headers: { Allow: ALLOW_VALUE } });
      }
    }
  }

  #onInvite(tx: ServerTransaction): void {
    const req = tx.request;
    const se = parseSessionExpires(req.headers.get('session-expires'));
    if (se !== undefined && se.interval < this.minSE) {
      // RFC 4028 8.1: too small an interval is refused with our Min-SE.
      const h = new SipHeaders().set('Min-SE', `${this.minSE}`);
      tx.respond(buildResponse(req, 422, undefined, { headers: h, toTag: this.newTag() }));
      return;
    }
    const inc = new IncomingInviteImpl(this, tx, this.newTag());
    if (this.listenerCount('invite') === 0) {
      inc.reject(480);
      return;
    }
    this.safeEmit('invite', inc);
    inc.armDeadline();
  }

  /** A SUBSCRIBE that starts a subscription, outside a dialog or inside `dialog`. */
  dispatchSubscribeIn(tx: ServerTransaction, dialog: DialogImpl): void {
    this.#dispatchSubscribe(tx, dialog);
  }

  dispatchReferIn(tx: ServerTransaction, dialog: DialogImpl): void {
    this.#dispatchRefer(tx, dialog);
  }

  incoming(tx: ServerTransaction, dialog: DialogImpl): IncomingRequestImpl {
    return new IncomingRequestImpl(this, tx, dialog, dialog.localTag);
  }

  startRefer(dialog: DialogImpl, target: string, opts: BodyOptions): Promise<ReferSubscription> {
    return new SubscriberImpl(this, 'refer', 0).startRefer(dialog, target, opts);
  }

  #dispatchSubscribe(tx: ServerTransaction, dialog: DialogImpl | undefined): void {
    const inc = new IncomingSubscribeImpl(this, tx, dialog, dialog?.localTag ?? this.newTag());
    const listeners = dialog === undefined ? this.listenerCount('subscribe') : dialog.listenerCount('subscribe');
    if (listeners === 0) {
      inc.reject(489);
      return;
    }
    if (dialog === undefined) this.safeEmit('subscribe', inc);
    else dialog.safeEmit('subscribe', inc);
    inc.armDeadline();
  }

  #dispatchRefer(tx: ServerTransaction, dialog: DialogImpl | undefined): void {
    const referTo = tx.request.headers.get('refer-to');
    const parsed = referTo === undefined ? undefined : parseNameAddr(referTo);
    // Exactly one valid Refer-To (RFC 3515 2.4.1).
    if (parsed === undefined || tx.request.headers.count('refer-to') !== 1) {
      tx.respond(buildResponse(tx.request, 400, 'Bad Refer-To', { toTag: dialog?.localTag ?? this.newTag() }));
      return;
    }
    const inc = new IncomingReferImpl(this, tx, dialog, dialog?.localTag ?? this.newTag(), parsed);
    const listeners = dialog === undefined ? this.listenerCount('refer') : dialog.listenerCount('refer');
    if (listeners === 0) {
      inc.reject(405);
      return;
    }
    if (dialog === undefined) this.safeEmit('refer', inc);
    else dialog.safeEmit('refer', inc);
    inc.armDeadline();
  }

  #onCancel(tx: ServerTransaction): void {
    const inviteTx = this.txm.findInviteFor(tx.request);
    if (inviteTx === undefined) {
      tx.respond(buildResponse(tx.request, 481, undefined, { toTag: this.newTag() }));
      return;
    }
    tx.respond(buildResponse(tx.request, 200));
    // RFC 3261 9.2: if the INVITE is still unanswered, answer it 487.
    if (!inviteTx.answered) inviteTx.onCancel?.();
  }

  #onAck(inb: Inbound): void {
    const req = inb.message as SipRequest;
    const toTag = req.to?.params.tag;
    if (toTag == null) return;
    const d = this.#dialogs.get(`${req.callId}|${toTag}|${req.from?.params.tag ?? ''}`);
    d?.receiveAck(req);
  }

  #onStrayResponse(inb: Inbound): void {
    const res = inb.message;
    if (res.kind !== 'response' || !responseAcceptable(res)) return;
    if (res.status >= 200 && res.status < 300 && res.cseq?.method === 'INVITE') this.#stray2xx(res, false);
  }

  /**
   * A 2xx to an INVITE whose transaction is gone (RFC 3261 13.2.2.4). A
   * retransmission (our ACK was lost) gets the same ACK again, also when the
   * dialog already ended with our BYE (the UAS retransmits for 64*T1,
   * 13.3.1.4). A 2xx to the INVITE with another To tag comes from a second
   * fork: the first 2xx made the dialog, this one is ACKed and ended with BYE.
   */
  #stray2xx(res: SipResponse, deferred: boolean): void {
    const set = this.#acks.get(`${res.callId}|${res.from?.params.tag ?? ''}`);
    if (set === undefined) {
      // Several 2xx in one TCP read reach us before the first has made its dialog (that takes a few
      // microtasks): look again once they ran.
      if (!deferred && !this.#closed) setImmediate(() => this.#stray2xx(res, true));
      return;
    }
    const toTag = res.to?.params.tag ?? '';
    const seq = res.cseq!.seq;
    const sent = set.toTag === toTag ? set : set.forks?.find((f) => f.toTag === toTag);
    if (sent !== undefined) {
      if (sent.cseq === seq) this.transport.send(Buffer.from(sent.text, 'utf8'), sent.dest, sent.flow);
      return;
    }
    if (toTag === '' || seq !== set.inviteCseq || set.fork === undefined || this.#closed) return;
    this.log?.info({ callId: res.callId, toTag }, 'a second fork answered our INVITE: ACK and BYE');
    DialogImpl.refuse2xx(this, res, {
      transport: set.dest.transport,
      offered: set.fork.offered,
      credentials: set.fork.credentials,
      // The ACK carries the INVITE's credentials: the dialog's first ACK has them already.
      authorization: credentialLines(set.text, 'authorization'),
      proxyAuthorization: credentialLines(set.text, 'proxy-authorization'),
    });
  }

  async #close(): Promise<void> {
    this.#closed = true;
    const err = new SipError('SIP_ERR_CLOSED', 'user agent closed');
    // End dialogs with BYE while the sockets are still open, and let those BYEs and the ones already in flight be
    // answered before the sockets close (a peer answering a closed TCP connection gets a reset), within a bound.
    const byes = [...this.#dialogs.values()].map((d) => d.closeForShutdown());
    let timer: TimerHandle | undefined;
    await Promise.race([
      Promise.allSettled([...byes, ...this.#draining]),
      new Promise<void>((r) => {
        timer = this.clock.setTimeout(r, SHUTDOWN_BYE_WAIT_T1 * this.timers.t1);
      }),
    ]);
    this.clock.clearTimeout(timer);
    for (const d of [...this.#dialogs.values()]) d.terminate('closed');
    for (const s of this.#pendingSubs.values()) s.abort(err);
    this.#shut = true;
    this.clock.clearTimeout(this.#ackSweep);
    this.#acks.clear();
    this.txm.close(err);
    await this.transport.close();
    this.removeAllListeners();
  }
}

/** Create a user agent; resolves once every listening socket is bound. */
export async function createUserAgent(opts: UserAgentOptions): Promise<UserAgent> {
  if (opts.listen.length === 0) throw new SipError('SIP_ERR_INVALID_ARGUMENT', 'listen needs at least one address');
  const ua = new UserAgentImpl(opts);
  try {
    await ua.transport.start();
  } catch (err) {
    await ua.transport.close();
    throw err;
  }
  return ua;
}
