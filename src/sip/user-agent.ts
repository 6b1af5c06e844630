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
import { authorize, type DigestCredentials, parseChallenge } from './auth.js';
import { type DialogHost, DialogImpl, parseSessionExpires } from './dialog.js';
import { SipError, SipResponseError } from './errors.js';
import { isToken, scanQuoted } from './grammar.js';
import { type NameAddr, parseNameAddr, SipHeaders } from './headers.js';
import { buildResponse, type SipRequest, SipRequest as SipRequestClass, type SipResponse } from './message.js';
import { NotifierImpl, SubscriberImpl } from './subscription.js';
import {
  type ClientTransaction,
  DEFAULT_TIMERS,
  type ServerTransaction,
  type TimerConfig,
  TransactionManager,
} from './transaction.js';
import { type Destination, type Flow, type Inbound, TransportLayer, type TransportName } from './transport.js';
import type {
  BodyOptions,
  Dialog,
  ExtraHeaders,
  IncomingInvite,
  IncomingRefer,
  IncomingRequest,
  IncomingSubscribe,
  InviteOptions,
  NotifyContent,
  ReferNotifier,
  ReferSubscription,
  RequestOptions,
  ResponseOptions,
  ServerSubscription,
  SessionTimerOptions,
  SubscribeOptions,
  Subscription,
  UserAgent,
  UserAgentEvents,
  UserAgentOptions,
  UserAgentStats,
} from './types.js';
import { parseUri } from './uri.js';
import { checkRequest, responseAcceptable, type UasPolicy } from './validate.js';

const MAGIC = 'z9hG4bK'; // RFC 3261 8.1.1.7
const DEFAULT_HANDLER_TIMEOUT = 16_000; // ms: answer before the peer's Timer F (64*T1 = 32 s) fires
const DEFAULT_ACCEPT = [
  'application/sdp',
  'application/msml+xml',
  'application/xml',
  'application/media_control+xml',
  'application/conference-info+xml',
  'message/sipfrag',
  'text/plain',
  'multipart/mixed',
];
const ALLOW = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'INFO', 'REFER', 'SUBSCRIBE', 'NOTIFY', 'MESSAGE'];
const SUPPORTED = ['timer', 'norefersub'];
// Header values built once: INVITEs and their 2xx carry both.
const ALLOW_VALUE = ALLOW.join(', ');
const SUPPORTED_VALUE = SUPPORTED.join(', ');
const DEFAULT_MIN_SE = 90; // s, RFC 4028 4

/** What the dialog and subscription layers need from the user agent. */
export interface UaCore {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly log?: Logger;
  readonly userAgent: string;
  readonly closed: boolean;
  readonly sessionTimer: SessionTimerOptions | undefined;
  readonly minSE: number;
  readonly handlerTimeoutMs: number;
  contactFor(transport: TransportName): string;
  send(o: Outgoing): Promise<SipResponse>;
  /** Send bytes outside any transaction (ACK for 2xx, 2xx retransmissions). */
  sendRaw(buf: Buffer, dest: Destination, flow?: Flow): void;
  /** The ACK sent for a 2xx to our INVITE with this CSeq: retransmitted for each retransmitted 2xx for 64*T1. */
  rememberAck(dialogId: string, cseq: number, text: string, dest: Destination, flow?: Flow): void;
  registerDialog(d: DialogImpl): void;
  unregisterDialog(d: DialogImpl): void;
  newTag(): string;
  newBranch(): string;
  localVia(transport: TransportName, branch: string): string;
}

/** An outgoing request before Via, CSeq and Max-Forwards are added. */
export interface Outgoing {
  readonly method: string;
  readonly ruri: string;
  readonly dest: Destination;
  readonly flow?: Flow;
  /** From, To, Call-ID, Route, Contact, Content-Type and the rest. */
  readonly headers: SipHeaders;
  readonly body?: Buffer;
  /** Next CSeq number; called again for each authentication retry (RFC 3261 22.2). */
  nextCSeq(): number;
  onProvisional?(res: SipResponse): void;
  onTx?(tx: ClientTransaction, req: SipRequest): void;
  onTimerC?(): void;
}

export function toBody(b: string | Buffer | undefined): Buffer | undefined {
  if (b === undefined) return undefined;
  return typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
}

export function addHeaders(h: SipHeaders, extra: ExtraHeaders | undefined): void {
  if (extra === undefined) return;
  for (const [k, v] of Object.entries(extra)) {
    if (typeof v === 'string') h.append(k, v);
    else for (const x of v) h.append(k, x);
  }
}

const TARGET_CACHE_MAX = 4096; // entries: one per peer URI in use (an MCU network has ~130 MCUs)
const targetCache = new Map<string, Destination>();

/** Where a request to `uri` goes (RFC 3263 reduced to literal addresses: no DNS on this network). */
export function targetOf(uriText: string, fallback?: TransportName): Destination {
  const key = fallback === undefined ? uriText : `${fallback} ${uriText}`;
  const hit = targetCache.get(key);
  if (hit !== undefined) return hit;
  const d = resolveTarget(uriText, fallback);
  if (targetCache.size >= TARGET_CACHE_MAX) targetCache.clear();
  targetCache.set(key, d);
  return d;
}

function resolveTarget(uriText: string, fallback?: TransportName): Destination {
  const u = parseUri(uriText);
  if (u === undefined || (u.scheme !== 'sip' && u.scheme !== 'sips'))
    throw new SipError('SIP_ERR_INVALID_ARGUMENT', `not a SIP URI: ${uriText}`);
  const tp = u.params.transport?.toLowerCase();
  const transport: TransportName =
    u.scheme === 'sips' || tp === 'tls' ? 'tls' : tp === 'tcp' ? 'tcp' : tp === 'udp' ? 'udp' : (fallback ?? 'udp');
  let host = u.params.maddr ?? u.host;
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (host === 'localhost') host = '127.0.0.1';
  return { transport, host, port: u.port ?? (transport === 'tls' ? 5061 : 5060) };
}

/** The first Route (loose routing) or the Request-URI decides the next hop (RFC 3261 8.1.2). */
export function nextHop(ruri: string, routes: readonly string[], fallback?: TransportName): Destination {
  if (routes.length > 0) {
    const r = parseNameAddr(routes[0]!);
    if (r === undefined) throw new SipError('SIP_ERR_INVALID_ARGUMENT', `bad route ${routes[0]}`);
    return targetOf(r.uri.raw, fallback);
  }
  return targetOf(ruri, fallback);
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

class UserAgentImpl extends TypedEmitter<UserAgentEvents> implements UserAgent, DialogHost {
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
  readonly credentials?: DigestCredentials;
  readonly #user: string;
  readonly #dialogs = new Map<string, DialogImpl>();
  /** SUBSCRIBEs awaiting their dialog (a NOTIFY may create it before the 2xx, RFC 6665 4.1.2.4). */
  readonly #pendingSubs = new Map<string, SubscriberImpl>();
  /**
   * ACKs by dialog id. Every entry lives 64*T1, so insertion order is expiry
   * order and one timer sweeps them from the front.
   */
  readonly #acks = new Map<string, SentAck>();
  #ackSweep?: TimerHandle;
  #closed = false;
  #shut = false;
  readonly #contactCache = new Map<TransportName, string>();
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
    this.transport = new TransportLayer({
      listen: opts.listen,
      tls: opts.tls,
      clock: this.clock,
      logger: this.log,
      maxMessageSize: opts.maxMessageSize,
      maxStreamMessageSize: opts.maxStreamMessageSize,
      idleTimeoutMs: opts.idleTimeoutMs,
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
    return `<${this.contactUri(transport)}>${this.#contactParams}`;
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
    return new Promise<SipResponse>((resolve, reject) => {
      let authTries = 0;
      let nc = 0;
      const attempt = (auth?: [string, string]): void => {
        const branch = this.newBranch();
        const h = new SipHeaders();
        try {
          h.set('Via', this.localVia(o.dest.transport, branch));
        } catch (err) {
          reject(err);
          return;
        }
        h.set('Max-Forwards', '70');
        o.headers.forEachLine((n, v) => h.append(n, v));
        h.set('CSeq', `${o.nextCSeq()} ${o.method}`);
        if (auth !== undefined) h.set(auth[0], auth[1]);
        const req = new SipRequestClass(o.method, o.ruri, h, o.body);
        const tx = this.txm.request(
          req,
          branch,
          o.dest,
          {
            onProvisional: (r) => o.onProvisional?.(r),
            onFinal: (r) => {
              if ((r.status === 401 || r.status === 407) && this.credentials !== undefined && authTries < 2) {
                const name = r.status === 401 ? 'www-authenticate' : 'proxy-authenticate';
                for (const c of r.headers.getAll(name)) {
                  const ch = parseChallenge(c);
                  if (ch === undefined) continue;
                  if (this.credentials.realm !== undefined && this.credentials.realm !== ch.realm) continue;
                  // A second challenge is only answered when the first nonce went stale (RFC 7616 3.3).
                  if (authTries > 0 && !ch.stale) break;
                  authTries++;
                  attempt([
                    r.status === 401 ? 'Authorization' : 'Proxy-Authorization',
                    authorize(ch, this.credentials, o.method, o.ruri, ++nc),
                  ]);
                  return;
                }
              }
              if ((r.status === 401 || r.status === 407) && authTries > 0) {
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

  sendRaw(buf: Buffer, dest: Destination, flow?: Flow): void {
    this.transport.send(buf, dest, flow);
  }

  rememberAck(dialogId: string, cseq: number, text: string, dest: Destination, flow?: Flow): void {
    // Re-insert (a re-INVITE's ACK replaces the previous one) to keep the map in expiry order.
    this.#acks.delete(dialogId);
    this.#acks.set(dialogId, { cseq, text, dest, flow, until: this.clock.now() + 64 * this.timers.t1 });
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
  #newRequestHeaders(
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
    const headers = this.#newRequestHeaders(m, uri, dest, opts, this.newTag(), randomToken(12));
    return this.send({ method: m, ruri: uri, dest, headers, body: toBody(opts.body), nextCSeq: () => ++cseq });
  }

  async invite(uri: string, opts: InviteOptions = {}): Promise<Dialog> {
    this.#assertOpen();
    const dest = nextHop(uri, opts.route ?? []);
    const st = opts.sessionTimer === false ? undefined : (opts.sessionTimer ?? this.sessionTimer);
    let se = st === undefined ? undefined : (st.expires ?? 1800);
    const minSE = st?.minSE ?? this.minSE;
    const callId = randomToken(12);
    const fromTag = this.newTag();
    const body = toBody(opts.body);
    let cseq = 0;
    if (opts.signal?.aborted) throw new SipError('SIP_ERR_CANCELLED', 'INVITE aborted before it was sent');
    for (let attempt = 0; ; attempt++) {
      const headers = this.#newRequestHeaders('INVITE', uri, dest, opts, fromTag, callId);
      if (se !== undefined) {
        headers.set('Session-Expires', `${se}`);
        headers.set('Min-SE', `${minSE}`);
      }
      const res = await this.#inviteOnce(uri, dest, headers, body, () => ++cseq, opts);
      if (res.status === 422 && se !== undefined && attempt < 2) {
        // Session interval too small (RFC 4028 7.2): retry with at least the peer's Min-SE.
        const theirs = res.seconds('min-se');
        if (theirs !== undefined && theirs > se) {
          se = theirs;
          continue;
        }
      }
      if (res.status >= 300) throw new SipResponseError(res.status, res.reason, { details: { method: 'INVITE', uri } });
      const dialog = DialogImpl.fromInvite2xx(this, res, {
        uri,
        dest,
        routeFallback: dest.transport,
        requested: se,
        localBody: body,
        localContentType: body === undefined ? undefined : (opts.contentType ?? 'application/sdp'),
        inviteCSeq: cseq,
      });
      if (opts.signal?.aborted) {
        // The 2xx crossed our CANCEL (RFC 3261 9.1): the call exists, so it is ACKed and ended at once.
        await dialog.bye();
        throw new SipError('SIP_ERR_CANCELLED', 'INVITE cancelled after it was answered', { details: { uri } });
      }
      return dialog;
    }
  }

  /** One INVITE transaction, with CANCEL on abort or Timer C (RFC 3261 9.1). */
  #inviteOnce(
    uri: string,
    dest: Destination,
    headers: SipHeaders,
    body: Buffer | undefined,
    nextCSeq: () => number,
    opts: InviteOptions,
  ): Promise<SipResponse> {
    let tx: ClientTransaction | undefined;
    let req: SipRequest | undefined;
    let provisional = false;
    let cancelWanted = false;
    let cancelled = false;
    let timerC = false;
    const cancel = (): void => {
      cancelWanted = true;
      // A CANCEL may only follow a provisional response (RFC 3261 9.1).
      if (!provisional || cancelled || tx === undefined || req === undefined || tx.state !== 'proceeding') return;
      cancelled = true;
      tx.armCancelDeadline();
      const h = new SipHeaders();
      h.set('Via', req.headers.getAll('via')[0]!);
      const route = req.headers.getAll('route');
      if (route.length > 0) h.set('Route', route);
      h.set('Max-Forwards', '70');
      h.set('From', req.headers.get('from')!);
      h.set('To', req.headers.get('to')!);
      h.set('Call-ID', req.headers.get('call-id')!);
      h.set('CSeq', `${req.cseq!.seq} CANCEL`);
      const c = new SipRequestClass('CANCEL', req.uri, h);
      this.txm.request(c, req.topVia!.branch!, dest, { onProvisional: () => {}, onFinal: () => {}, onError: () => {} });
    };
    const onAbort = (): void => cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const p = this.send({
      method: 'INVITE',
      ruri: uri,
      dest,
      headers,
      body,
      nextCSeq,
      onTx: (t, r) => {
        tx = t;
        req = r;
      },
      onProvisional: (r) => {
        provisional = true;
        if (cancelWanted) cancel();
        opts.onProgress?.(r);
      },
      onTimerC: () => {
        timerC = true;
        cancel();
      },
    });
    return p.then(
      (res) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (timerC && res.status === 487)
          throw new SipError('SIP_ERR_TIMEOUT', 'INVITE unanswered within Timer C: cancelled', { details: { uri } });
        if (cancelWanted && res.status === 487)
          throw new SipError('SIP_ERR_CANCELLED', 'INVITE cancelled', { details: { uri } });
        return res;
      },
      (err: unknown) => {
        opts.signal?.removeEventListener('abort', onAbort);
        throw err;
      },
    );
  }

  async subscribe(uri: string, opts: SubscribeOptions): Promise<Subscription> {
    this.#assertOpen();
    const dest = nextHop(uri, opts.route ?? []);
    const callId = randomToken(12);
    const fromTag = this.newTag();
    const headers = this.#newRequestHeaders('SUBSCRIBE', uri, dest, opts, fromTag, callId);
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
    // A retransmitted 2xx to an INVITE whose transaction is gone: our ACK was lost, send it again, also when
    // the dialog already ended with our BYE (RFC 3261 13.2.2.4; the UAS retransmits for 64*T1, 13.3.1.4).
    if (res.status >= 200 && res.status < 300 && res.cseq?.method === 'INVITE') {
      const a = this.#acks.get(`${res.callId}|${res.from?.params.tag ?? ''}|${res.to?.params.tag ?? ''}`);
      if (a !== undefined && a.cseq === res.cseq.seq) this.transport.send(Buffer.from(a.text, 'utf8'), a.dest, a.flow);
    }
  }

  async #close(): Promise<void> {
    this.#closed = true;
    const err = new SipError('SIP_ERR_CLOSED', 'user agent closed');
    // End dialogs with BYE while the sockets are still open, but never wait longer than 2*T1 for the answers.
    const byes = [...this.#dialogs.values()].map((d) => d.closeForShutdown());
    let timer: TimerHandle | undefined;
    await Promise.race([
      Promise.allSettled(byes),
      new Promise<void>((r) => {
        timer = this.clock.setTimeout(r, 2 * this.timers.t1);
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

/** A request awaiting an answer from a handler, with a deadline (style: every pending request has one). */
class IncomingRequestImpl implements IncomingRequest {
  readonly method: string;
  readonly message: SipRequest;
  readonly dialog?: Dialog;
  protected readonly ua: UserAgentImpl;
  protected readonly tx: ServerTransaction;
  protected readonly toTag: string;
  #deadline?: TimerHandle;
  #responded = false;

  constructor(ua: UserAgentImpl, tx: ServerTransaction, dialog: DialogImpl | undefined, toTag: string) {
    this.ua = ua;
    this.tx = tx;
    this.method = tx.request.method;
    this.message = tx.request;
    this.dialog = dialog;
    this.toTag = toTag;
  }

  get transport(): TransportName {
    return this.tx.inbound.transport;
  }

  get remote(): { host: string; port: number } {
    return this.tx.inbound.remote;
  }

  get responded(): boolean {
    return this.#responded;
  }

  /** Answer for the handler if it has not within its deadline. */
  armDeadline(): void {
    if (this.#responded) return;
    const invite = this.method === 'INVITE' && this.dialog === undefined;
    const ms = invite ? this.ua.timers.timerC : this.ua.handlerTimeoutMs;
    this.#deadline = this.ua.clock.setTimeout(() => {
      if (this.#responded) return;
      this.ua.log?.warn({ method: this.method, callId: this.message.callId }, 'request handler did not answer in time');
      this.respond(invite ? 480 : 500, { reason: 'Handler Timeout' });
    }, ms);
  }

  respond(status: number, opts: ResponseOptions = {}): void {
    if (this.#responded) return;
    if (!Number.isInteger(status) || status < 100 || status > 699)
      throw new SipError('SIP_ERR_INVALID_ARGUMENT', `bad status ${status}`);
    if (status >= 200) this.markResponded();
    this.sendResponse(status, opts);
  }

  protected markResponded(): void {
    this.#responded = true;
    this.ua.clock.clearTimeout(this.#deadline);
  }

  protected buildResponse(status: number, opts: ResponseOptions): SipResponse {
    const h = new SipHeaders();
    if (status >= 200 && status < 300 && this.method === 'OPTIONS') {
      h.set('Allow', ALLOW_VALUE);
      h.set('Accept', [...this.ua.policy.accept].join(', '));
      h.set('Supported', SUPPORTED_VALUE);
    }
    h.set('Server', this.ua.userAgent);
    // A response that creates a dialog carries the request's Record-Route (RFC 3261 12.1.1).
    if (status > 100 && status < 300 && this.dialog === undefined) {
      const rr = this.message.headers.getAll('record-route');
      if (rr.length > 0) h.set('Record-Route', rr);
    }
    addHeaders(h, opts.headers);
    const body = toBody(opts.body);
    if (body !== undefined) h.set('Content-Type', opts.contentType ?? 'application/sdp');
    return buildResponse(this.message, status, opts.reason, {
      headers: h,
      toTag: status > 100 ? this.toTag : undefined,
      body,
    });
  }

  protected sendResponse(status: number, opts: ResponseOptions): void {
    const d = this.dialog as DialogImpl | undefined;
    if (d !== undefined && this.method === 'INVITE') {
      d.answerReinvite(this.tx, this.buildResponse(status, opts), status);
      return;
    }
    this.tx.respond(this.buildResponse(status, opts));
  }
}

class IncomingInviteImpl extends IncomingRequestImpl implements IncomingInvite {
  readonly #events = new TypedEmitter<{ cancel: [] }>();
  #cancelled = false;
  #accepting = false;

  constructor(ua: UserAgentImpl, tx: ServerTransaction, toTag: string) {
    super(ua, tx, undefined, toTag);
    tx.onCancel = () => {
      if (this.responded || this.#accepting) return;
      this.#cancelled = true;
      this.respond(487);
      this.#events.safeEmit('cancel');
    };
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  on(event: 'cancel', listener: () => void): this {
    this.#events.on(event, listener);
    return this;
  }

  progress(status = 180, opts: ResponseOptions = {}): void {
    if (status < 101 || status > 199)
      throw new SipError('SIP_ERR_INVALID_ARGUMENT', `not a provisional status: ${status}`);
    if (this.responded) return;
    this.respond(status, opts);
  }

  reject(status: number, opts: ResponseOptions = {}): void {
    if (status < 300) throw new SipError('SIP_ERR_INVALID_ARGUMENT', `not a rejection status: ${status}`);
    this.respond(status, opts);
  }

  accept(opts: ResponseOptions = {}): Promise<Dialog> {
    if (this.responded) return Promise.reject(new SipError('SIP_ERR_DIALOG', 'INVITE already answered'));
    if (this.ua.closed) return Promise.reject(new SipError('SIP_ERR_CLOSED', 'user agent closed'));
    this.markResponded();
    // The dialog sends the 2xx and retransmits it until the ACK (RFC 3261 13.3.1.4).
    const res = this.buildResponse(200, opts);
    const body = toBody(opts.body);
    return DialogImpl.fromIncomingInvite(this.ua, this.tx, this.toTag, res, body, opts.contentType);
  }

  override respond(status: number, opts: ResponseOptions = {}): void {
    if (status >= 200 && status < 300) {
      this.accept(opts).catch((err: unknown) =>
        this.ua.log?.debug({ err }, 'INVITE answered with respond() not acknowledged'),
      );
      return;
    }
    super.respond(status, opts);
  }
}

class IncomingSubscribeImpl extends IncomingRequestImpl implements IncomingSubscribe {
  readonly event: string;
  readonly expires: number;
  readonly #dialog?: DialogImpl;

  constructor(ua: UserAgentImpl, tx: ServerTransaction, dialog: DialogImpl | undefined, toTag: string) {
    super(ua, tx, dialog, toTag);
    this.#dialog = dialog;
    this.event = tx.request.headers.get('event') ?? '';
    this.expires = tx.request.seconds('expires') ?? 3600;
  }

  reject(status: number, opts: ResponseOptions = {}): void {
    this.respond(status, opts);
  }

  async accept(initial: NotifyContent & { expires?: number }): Promise<ServerSubscription> {
    if (this.responded) throw new SipError('SIP_ERR_DIALOG', 'SUBSCRIBE already answered');
    const expires = Math.min(initial.expires ?? this.expires, this.expires);
    const dialog = this.#dialog ?? DialogImpl.fromIncomingRequest(this.ua, this.tx, this.toTag, 'subscription');
    this.respond(200, { headers: { Expires: `${expires}`, Contact: this.ua.contactFor(dialog.transport) } });
    const n = new NotifierImpl(this.ua, dialog, this.event, expires);
    await n.notify(initial);
    return n;
  }
}

class IncomingReferImpl extends IncomingRequestImpl implements IncomingRefer {
  readonly referTo: NameAddr;
  readonly #dialog?: DialogImpl;

  constructor(
    ua: UserAgentImpl,
    tx: ServerTransaction,
    dialog: DialogImpl | undefined,
    toTag: string,
    referTo: NameAddr,
  ) {
    super(ua, tx, dialog, toTag);
    this.#dialog = dialog;
    this.referTo = referTo;
  }

  reject(status: number, opts: ResponseOptions = {}): void {
    this.respond(status, opts);
  }

  async accept(): Promise<ReferNotifier> {
    if (this.responded) throw new SipError('SIP_ERR_DIALOG', 'REFER already answered');
    const dialog = this.#dialog ?? DialogImpl.fromIncomingRequest(this.ua, this.tx, this.toTag, 'subscription');
    this.respond(202, { headers: { Contact: this.ua.contactFor(dialog.transport) } });
    // The implicit subscription is identified by the REFER's CSeq (RFC 3515 2.4.6).
    const n = new NotifierImpl(this.ua, dialog, `refer;id=${this.message.cseq!.seq}`, 60);
    const sipfrag = (status: number, reason: string | undefined): NotifyContent => ({
      contentType: 'message/sipfrag;version=2.0',
      body: `SIP/2.0 ${status} ${reason ?? (status === 100 ? 'Trying' : status < 200 ? 'Ringing' : status < 300 ? 'OK' : 'Failed')}\r\n`,
    });
    await n.notify(sipfrag(100, 'Trying'));
    return {
      progress: (status, reason) => n.notify(sipfrag(status, reason)),
      done: (status, reason) => n.terminate('noresource', sipfrag(status, reason)),
    };
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
