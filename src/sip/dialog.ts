import type { Logger } from 'pino';
import type { TimerHandle } from '../core/index.js';
import { TypedEmitter } from '../core/index.js';
import type { DigestCredentials } from './auth.js';
import { SipError, SipResponseError } from './errors.js';
import { mediaType, parseNameAddr, SipHeaders } from './headers.js';
import { buildResponse, SipRequest, type SipResponse, serializeHead } from './message.js';
import { addHeaders, type ForkSource, nextHop, type Outgoing, toBody, type UaCore } from './routing.js';
import { rejectOffer } from './sdp.js';
import type { ServerTransaction } from './transaction.js';
import type { Destination, Flow, TransportName } from './transport.js';
import type {
  BodyOptions,
  Dialog,
  DialogEndReason,
  DialogEvents,
  IncomingRequest,
  OfferAnswerer,
  ReferSubscription,
} from './types.js';

/** What a dialog needs from the user agent beyond UaCore: its dialog table, dispatching new usages, handler objects. */
export interface DialogHost extends UaCore {
  registerDialog(d: DialogImpl): void;
  unregisterDialog(d: DialogImpl): void;
  dispatchSubscribeIn(tx: ServerTransaction, dialog: DialogImpl): void;
  dispatchReferIn(tx: ServerTransaction, dialog: DialogImpl): void;
  incoming(tx: ServerTransaction, dialog: DialogImpl): IncomingRequest & { armDeadline(): void };
  startRefer(dialog: DialogImpl, target: string, opts: BodyOptions): Promise<ReferSubscription>;
}

/** Session-Expires = delta-seconds *(;se-params), refresher=uac|uas (RFC 4028 4). */
export function parseSessionExpires(
  v: string | undefined,
): { interval: number; refresher?: 'uac' | 'uas' } | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*(\d{1,10})\s*(.*)$/.exec(v);
  if (m === null) return undefined;
  const r = /;\s*refresher\s*=\s*(uac|uas)/i.exec(m[2]!);
  return { interval: Number(m[1]), refresher: r === null ? undefined : (r[1]!.toLowerCase() as 'uac' | 'uas') };
}

/** A subscription sharing a dialog (RFC 6665 4.5.2), either side: what the dialog routes to it. */
export type DialogUsage =
  | {
      readonly kind: 'subscriber';
      receiveNotify(tx: ServerTransaction): void;
      /** A NOTIFY of this subscription was refused 500 for arriving out of order (RFC 3261 12.2.2). */
      refusedNotify(): void;
      dialogEnded(reason: DialogEndReason): void;
    }
  | {
      readonly kind: 'notifier';
      receiveSubscribe(tx: ServerTransaction): void;
      dialogEnded(reason: DialogEndReason): void;
    };

function supportsTimer(m: SipRequest | SipResponse): boolean {
  return [...m.headers.list('supported'), ...m.headers.list('require')].some((t) => t.toLowerCase() === 'timer');
}

const TARGET_REFRESH = new Set(['INVITE', 'UPDATE', 'SUBSCRIBE', 'NOTIFY', 'REFER']);

interface DialogInit {
  role: 'uac' | 'uas';
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our From (UAC) or To (UAS) value, with our tag. */
  localHeader: string;
  remoteHeader: string;
  remoteTarget: string;
  routeSet: string[];
  transport: TransportName;
  flow?: Flow;
  localSeq: number;
  remoteSeq?: number;
  usage: 'invite' | 'subscription';
  remoteBody?: Buffer;
  remoteContentType?: string;
  localBody?: Buffer;
  localContentType?: string;
  /** For the 401/407 challenges of our requests in this dialog (else the user agent's). */
  credentials?: DigestCredentials;
  /** Answers an offer in the 2xx to a body-less (re-)INVITE of ours. */
  answer?: OfferAnswerer;
  /** Min-SE of our refreshes (RFC 4028 7.4: as in the INVITE that made the dialog, raised by any 422). */
  minSE?: number;
}

/** A session description with its media type, as sent in an ACK. */
interface Described {
  readonly contentType?: string;
  readonly body: Buffer;
}

/**
 * An answer refusing every stream of an SDP offer (port 0), for the ACK of a
 * 2xx whose session we end at once (RFC 3261 13.2.2.4); undefined when the
 * offer is not SDP we can read.
 */
function refusal(res: SipResponse, host: string): Described | undefined {
  try {
    const r = rejectOffer({ contentType: res.contentType, body: res.body }, { host });
    return { contentType: r.contentType, body: Buffer.from(r.body, 'utf8') };
  } catch {
    return undefined;
  }
}

/**
 * How long to wait before retrying a re-INVITE refused with 491 (RFC 3261
 * 14.1): the owner of the Call-ID (the dialog's UAC) waits 2.1 to 4 s, the
 * other side 0 to 2 s, both in units of 10 ms, so the two retries do not
 * collide again.
 */
export function glareBackoffMs(ownsCallId: boolean, random: () => number = Math.random): number {
  const steps = ownsCallId ? 191 : 201; // 2100..4000 or 0..2000 ms in 10 ms steps
  const step = Math.min(steps - 1, Math.floor(random() * steps));
  return (ownsCallId ? 2100 : 0) + 10 * step;
}

/** The key of a subscription within a dialog: event package and id (RFC 6665 8.2.1). */
export function eventKey(event: string | undefined): string | undefined {
  if (event === undefined) return undefined;
  const semi = event.indexOf(';');
  const pkg = (semi < 0 ? event : event.slice(0, semi)).trim().toLowerCase();
  const id = semi < 0 ? undefined : /;\s*id\s*=\s*([^;\s]+)/i.exec(event.slice(semi))?.[1];
  return id === undefined ? pkg : `${pkg};id=${id}`;
}

interface Pending2xx {
  buf: Buffer;
  dest: Destination;
  flow?: Flow;
  cseq: number;
  interval: number;
  /** Clock time at which waiting for the ACK ends (64*T1 after the 2xx). */
  until: number;
  /** The next retransmission over UDP, or the end of the wait: one timer does both. */
  timer?: TimerHandle;
  resolve?: (d: Dialog) => void;
  reject?: (err: Error) => void;
}

/**
 * A dialog (RFC 3261 12): its identifiers, CSeq spaces, route set and remote
 * target, the 2xx/ACK exchange of INVITE (13.3.1.4, 13.2.2.4), in-dialog
 * requests both ways, re-INVITE (14), BYE (15), session timers (RFC 4028) and
 * the subscriptions (RFC 6665, RFC 3515) that share it.
 */
export class DialogImpl extends TypedEmitter<DialogEvents> implements Dialog {
  readonly id: string;
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly role: 'uac' | 'uas';
  state: 'confirmed' | 'terminated' = 'confirmed';
  remoteTarget: string;
  readonly routeSet: readonly string[];
  readonly transport: TransportName;
  remoteBody: Buffer;
  remoteContentType?: string;
  sessionTimer?: { interval: number; refresher: 'local' | 'remote' };
  /** Subscriptions sharing this dialog, by event (with id), RFC 6665 4.5.2. */
  readonly subscriptions = new Map<string, DialogUsage>();
  /**
   * The implicit subscription of the first REFER we sent in this dialog: a notifier names only the
   * second and later REFERs of a dialog by `id` (RFC 3515 2.4.6), so a NOTIFY with a bare `refer` is its.
   */
  firstRefer?: DialogUsage;
  /** The dialog's last NOTIFY in turn, settled (`notifyInTurn`). */
  #notifyTail: Promise<void> = Promise.resolve();
  readonly usage: 'invite' | 'subscription';
  readonly #ua: DialogHost;
  readonly #localHeader: string;
  readonly #remoteHeader: string;
  readonly #flow?: Flow;
  #localSeq: number;
  #remoteSeq?: number;
  #localBody?: Buffer;
  #localContentType?: string;
  #pending2xx?: Pending2xx;
  #reinviting = false;
  #stTimer?: TimerHandle;
  #byePromise?: Promise<void>;
  #held?: ServerTransaction[];
  #log?: Logger;
  readonly #credentials?: DigestCredentials;
  readonly #answer?: OfferAnswerer;
  #minSE: number;

  constructor(ua: DialogHost, init: DialogInit) {
    super();
    this.#ua = ua;
    this.role = init.role;
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.id = `${init.callId}|${init.localTag}|${init.remoteTag}`;
    this.#localHeader = init.localHeader;
    this.#remoteHeader = init.remoteHeader;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.transport = init.transport;
    this.#flow = init.flow;
    this.#localSeq = init.localSeq;
    this.#remoteSeq = init.remoteSeq;
    this.usage = init.usage;
    this.remoteBody = init.remoteBody ?? Buffer.alloc(0);
    this.remoteContentType = init.remoteContentType;
    this.#localBody = init.localBody;
    this.#localContentType = init.localContentType;
    this.#credentials = init.credentials;
    this.#answer = init.answer;
    this.#minSE = init.minSE ?? ua.minSE;
    this.onListenerError((err, event) => this.log?.error({ err, event }, 'dialog listener threw'));
  }

  /** A child logger, created on first use (most dialogs never log). */
  get log(): Logger | undefined {
    if (this.#log === undefined && this.#ua.log !== undefined) this.#log = this.#ua.log.child({ callId: this.callId });
    return this.#log;
  }

  get localUri(): string {
    return parseNameAddr(this.#localHeader)?.uri.raw ?? '';
  }

  get remoteUri(): string {
    return parseNameAddr(this.#remoteHeader)?.uri.raw ?? '';
  }

  /** Next local CSeq (shared by every usage of the dialog). */
  nextCSeq(): number {
    return ++this.#localSeq;
  }

  // ---- creation ------------------------------------------------------------

  /** UAC side: a 2xx to our INVITE (RFC 3261 12.1.2); sends the ACK. */
  static fromInvite2xx(
    ua: DialogHost,
    res: SipResponse,
    info: {
      uri: string;
      dest: Destination;
      /** The session interval we asked for (RFC 4028), if any, and the Min-SE the INVITE carried. */
      requested?: number;
      minSE?: number;
      localBody?: Buffer;
      localContentType?: string;
      /** The INVITE that got the 2xx (its last authentication retry): the ACK repeats its credentials. */
      invite: SipRequest;
      credentials?: DigestCredentials;
      answer?: OfferAnswerer;
    },
  ): { dialog: DialogImpl; refused?: SipError } {
    const target = res.contact?.[0]?.uri.raw ?? info.uri;
    const d = new DialogImpl(ua, {
      role: 'uac',
      callId: res.callId!,
      localTag: res.from!.params.tag ?? '',
      remoteTag: res.to!.params.tag ?? '',
      localHeader: res.headers.get('from')!,
      remoteHeader: res.headers.get('to')!,
      remoteTarget: target,
      routeSet: res.headers.list('record-route').reverse(),
      transport: info.dest.transport,
      localSeq: info.invite.cseq!.seq,
      usage: 'invite',
      remoteBody: res.body,
      remoteContentType: res.contentType,
      localBody: info.localBody,
      localContentType: info.localContentType,
      credentials: info.credentials,
      answer: info.answer,
      minSE: info.minSE,
    });
    ua.registerDialog(d);
    // A body-less INVITE makes the 2xx carry the offer (RFC 3261 13.3.1.4): the ACK carries our answer (13.2.2.4).
    const { answer, refused } = info.localBody === undefined ? d.#answerOffer(res) : {};
    const inv = info.invite.headers;
    d.#sendAck(info.invite.cseq!.seq, inv.getAll('authorization'), inv.getAll('proxy-authorization'), answer, {
      offered: info.localBody !== undefined,
      credentials: info.credentials,
    });
    d.#sessionTimerFromResponse(res, info.requested);
    return { dialog: d, refused };
  }

  /**
   * A 2xx that must not make a dialog of ours: from a second fork of our
   * INVITE (RFC 3261 13.2.2.4: the first 2xx made the dialog), or without a To
   * tag. It is ACKed (with an answer rejecting every stream when it carries an
   * offer: the session is refused) and ended at once with BYE. The dialog
   * object exists only for that: never registered nor announced.
   */
  static refuse2xx(
    ua: DialogHost,
    res: SipResponse,
    info: {
      transport: TransportName;
      offered: boolean;
      credentials?: DigestCredentials;
      /** The INVITE's Authorization and Proxy-Authorization values. */
      authorization: readonly string[];
      proxyAuthorization: readonly string[];
    },
  ): void {
    const d = new DialogImpl(ua, {
      role: 'uac',
      callId: res.callId!,
      localTag: res.from!.params.tag ?? '',
      remoteTag: res.to!.params.tag ?? '',
      localHeader: res.headers.get('from')!,
      remoteHeader: res.headers.get('to')!,
      remoteTarget: res.contact?.[0]?.uri.raw ?? res.to!.uri.raw,
      routeSet: res.headers.list('record-route').reverse(),
      transport: info.transport,
      localSeq: res.cseq!.seq,
      usage: 'invite',
      credentials: info.credentials,
    });
    const answer = !info.offered && res.body.length > 0 ? refusal(res, ua.localHost(info.transport)) : undefined;
    d.#sendAck(res.cseq!.seq, info.authorization, info.proxyAuthorization, answer);
    void d.bye();
  }

  /** UAS side of a dialog-creating non-INVITE request (SUBSCRIBE, REFER), RFC 3261 12.1.1. */
  static fromIncomingRequest(
    ua: DialogHost,
    tx: ServerTransaction,
    toTag: string,
    usage: 'invite' | 'subscription',
  ): DialogImpl {
    const req = tx.request;
    const d = new DialogImpl(ua, {
      role: 'uas',
      callId: req.callId!,
      localTag: toTag,
      remoteTag: req.from!.params.tag ?? '',
      localHeader: `${req.headers.get('to')!};tag=${toTag}`,
      remoteHeader: req.headers.get('from')!,
      remoteTarget: req.contact?.[0]?.uri.raw ?? `sip:${tx.inbound.remote.host}:${tx.inbound.remote.port}`,
      routeSet: req.headers.list('record-route'),
      transport: tx.inbound.transport,
      flow: tx.inbound.flow,
      localSeq: 0,
      remoteSeq: req.cseq!.seq,
      usage,
      remoteBody: req.body,
      remoteContentType: req.contentType,
    });
    ua.registerDialog(d);
    return d;
  }

  /** UAS side of INVITE: sends the 2xx, retransmits it until the ACK (13.3.1.4) and resolves then. */
  static fromIncomingInvite(
    ua: DialogHost,
    tx: ServerTransaction,
    toTag: string,
    res: SipResponse,
    localBody: Buffer | undefined,
    localContentType: string | undefined,
  ): Promise<Dialog> {
    const d = DialogImpl.fromIncomingRequest(ua, tx, toTag, 'invite');
    d.#localBody = localBody;
    d.#localContentType = localBody === undefined ? undefined : (localContentType ?? 'application/sdp');
    return new Promise<Dialog>((resolve, reject) => {
      d.#send2xx(tx, res, resolve, reject);
    });
  }

  /** Subscriber side: the dialog is created by a NOTIFY or the SUBSCRIBE's 2xx (RFC 6665 4.1.2.4). */
  static fromSubscriberSide(
    ua: DialogHost,
    msg: SipRequest | SipResponse,
    ourHeader: string,
    localSeq: number,
    via: { fallback: TransportName; flow?: Flow; credentials?: DigestCredentials },
  ): DialogImpl {
    const isReq = msg.kind === 'request';
    const peerHeader = isReq ? msg.headers.get('from')! : msg.headers.get('to')!;
    const peer = parseNameAddr(peerHeader)!;
    const rr = msg.headers.list('record-route');
    const d = new DialogImpl(ua, {
      role: 'uac',
      callId: msg.callId!,
      localTag: parseNameAddr(ourHeader)?.params.tag ?? '',
      remoteTag: peer.params.tag ?? '',
      localHeader: ourHeader,
      remoteHeader: peerHeader,
      remoteTarget: msg.contact?.[0]?.uri.raw ?? peer.uri.raw,
      // A NOTIFY carries the route set in UAS order; a 2xx in UAC order (reversed).
      routeSet: isReq ? rr : rr.reverse(),
      transport: via.fallback,
      flow: via.flow,
      localSeq,
      remoteSeq: isReq ? msg.cseq!.seq : undefined,
      usage: 'subscription',
      credentials: via.credentials,
    });
    ua.registerDialog(d);
    return d;
  }

  // ---- UAS 2xx / ACK -------------------------------------------------------

  #decorate2xx(req: SipRequest, res: SipResponse): void {
    res.headers.set('Contact', this.#ua.contactFor(this.transport));
    if (req.method === 'INVITE') {
      const se = parseSessionExpires(req.headers.get('session-expires'));
      if (se !== undefined) {
        const uacTimer = supportsTimer(req);
        const refresher = se.refresher ?? (uacTimer ? 'uac' : 'uas');
        res.headers.set('Session-Expires', `${se.interval};refresher=${refresher}`);
        if (uacTimer) res.headers.append('Require', 'timer');
        this.#startSessionTimer(se.interval, refresher === 'uas' ? 'local' : 'remote');
      } else if (this.sessionTimer !== undefined && this.sessionTimer.refresher === 'remote') {
        // The peer stopped asking for a session timer in its refresh (RFC 4028 9): stop ours.
        this.#stopSessionTimer();
      }
    }
  }

  #send2xx(
    tx: ServerTransaction,
    res: SipResponse,
    resolve?: (d: Dialog) => void,
    reject?: (err: Error) => void,
  ): void {
    this.#decorate2xx(tx.request, res);
    tx.respond(res);
    const buf = tx.lastBuffer!;
    const { clock, timers } = this.#ua;
    const wait = 64 * timers.t1;
    const p: Pending2xx = {
      buf,
      dest: tx.dest,
      flow: tx.inbound.flow,
      cseq: tx.request.cseq!.seq,
      interval: timers.t1,
      until: clock.now() + wait,
      resolve,
      reject,
    };
    this.#pending2xx = p;
    // Over UDP the 2xx is retransmitted at T1, 2*T1 ... up to T2 until the ACK; over a stream only the wait
    // is timed (RFC 3261 13.3.1.4). One timer per 2xx, not one for each.
    p.timer = clock.setTimeout(
      () => this.#on2xxTimer(p),
      tx.dest.transport === 'udp' ? Math.min(p.interval, wait) : wait,
    );
  }

  #on2xxTimer(p: Pending2xx): void {
    if (this.#pending2xx !== p) return;
    const { clock, timers } = this.#ua;
    const now = clock.now();
    if (now >= p.until) {
      // No ACK within 64*T1: the session is not established; end it with BYE (RFC 3261 13.3.1.4).
      this.#clear2xx();
      p.reject?.(new SipError('SIP_ERR_TIMEOUT', 'no ACK for our 2xx'));
      void this.#byeAndEnd('ack-timeout');
      return;
    }
    this.#ua.sendRaw(p.buf, p.dest, p.flow);
    p.interval = Math.min(p.interval * 2, timers.t2);
    p.timer = clock.setTimeout(() => this.#on2xxTimer(p), Math.min(p.interval, p.until - now));
  }

  #clear2xx(): Pending2xx | undefined {
    const p = this.#pending2xx;
    if (p === undefined) return undefined;
    this.#ua.clock.clearTimeout(p.timer);
    this.#pending2xx = undefined;
    return p;
  }

  /** An ACK for a 2xx (it bypasses the transaction layer). */
  receiveAck(ack: SipRequest): void {
    const p = this.#pending2xx;
    if (p === undefined || ack.cseq?.seq !== p.cseq) return;
    this.#clear2xx();
    if (ack.body.length > 0) {
      this.remoteBody = ack.body;
      this.remoteContentType = ack.contentType;
    }
    this.#confirmed(p);
  }

  // ---- UAC ACK ---------------------------------------------------------------

  #requestTarget(): { ruri: string; routes: readonly string[] } {
    const routes = this.routeSet;
    if (routes.length > 0) {
      const first = parseNameAddr(routes[0]!);
      // A strict router (no ;lr) takes the Request-URI; the remote target goes last (RFC 3261 12.2.1.1).
      if (first !== undefined && first.uri.params.lr === undefined)
        return { ruri: first.uri.raw, routes: [...routes.slice(1), `<${this.remoteTarget}>`] };
    }
    return { ruri: this.remoteTarget, routes };
  }

  #flowFor(dest: Destination): Flow | undefined {
    const f = this.#flow;
    return f !== undefined &&
      !f.closed &&
      f.transport === dest.transport &&
      f.remote.port === dest.port &&
      f.remote.host === dest.host
      ? f
      : undefined;
  }

  /**
   * The ACK for a 2xx to our (re-)INVITE with CSeq `cseq`: it repeats the
   * INVITE's credentials (RFC 3261 13.2.2.4) and carries our answer when the
   * 2xx carried the offer. `initial` for the INVITE that made the dialog.
   */
  #sendAck(
    cseq: number,
    authorization: readonly string[],
    proxyAuthorization: readonly string[],
    answer?: Described,
    initial?: ForkSource,
  ): void {
    const { ruri, routes } = this.#requestTarget();
    const dest = nextHop(ruri, routes, this.transport);
    const h = new SipHeaders();
    h.set('Via', this.#ua.localVia(dest.transport, this.#ua.newBranch()));
    if (routes.length > 0) h.set('Route', [...routes]);
    h.set('Max-Forwards', '70');
    h.set('From', this.#localHeader);
    h.set('To', this.#remoteHeader);
    h.set('Call-ID', this.callId);
    h.set('CSeq', `${cseq} ACK`);
    for (const v of authorization) h.append('Authorization', v);
    for (const v of proxyAuthorization) h.append('Proxy-Authorization', v);
    if (answer !== undefined) h.set('Content-Type', answer.contentType ?? 'application/sdp');
    // As one string (SDP is UTF-8 text, RFC 4566 5): kept for the retransmitted 2xx without pinning a pooled Buffer.
    const text = serializeHead(new SipRequest('ACK', ruri, h, answer?.body)) + (answer?.body.toString('utf8') ?? '');
    const flow = this.#flowFor(dest);
    this.#ua.sendRaw(Buffer.from(text, 'utf8'), dest, flow);
    // Retransmissions of the 2xx are ACKed by the user agent, even after this dialog ends (RFC 3261 13.2.2.4).
    this.#ua.rememberAck(this, cseq, text, dest, flow, initial);
  }

  /**
   * Our answer to an offer in a 2xx to a body-less (re-)INVITE of ours. When
   * we cannot answer (no answerer, or it threw), the ACK must still carry a
   * valid answer before the BYE (RFC 3261 13.2.2.4): every stream rejected, if
   * the offer is SDP at all, else no body; `refused` says why.
   */
  #answerOffer(res: SipResponse): { answer?: Described; refused?: SipError } {
    if (res.body.length === 0) return {};
    const offer = { contentType: res.contentType, body: res.body };
    let cause: unknown;
    if (this.#answer !== undefined) {
      try {
        const a = this.#answer(offer);
        const body = toBody(a.body);
        if (body === undefined || body.length === 0)
          throw new SipError('SIP_ERR_OFFER', 'the answerer returned no body');
        const contentType = a.contentType ?? 'application/sdp';
        this.#localBody = body;
        this.#localContentType = contentType;
        return { answer: { contentType, body } };
      } catch (err) {
        cause = err;
      }
    }
    const refused = new SipError(
      'SIP_ERR_OFFER',
      cause === undefined
        ? 'the 2xx carries a session offer and the INVITE gave no answerer'
        : 'the answerer could not answer the session offer in the 2xx',
      { cause, details: { callId: this.callId, contentType: res.contentType } },
    );
    return { answer: refusal(res, this.#ua.localHost(this.transport)), refused };
  }

  // ---- outgoing requests -------------------------------------------------------

  outgoing(method: string, opts: BodyOptions = {}): Outgoing {
    const { ruri, routes } = this.#requestTarget();
    const dest = nextHop(ruri, routes, this.transport);
    const h = new SipHeaders();
    if (routes.length > 0) h.set('Route', [...routes]);
    h.set('From', this.#localHeader);
    h.set('To', this.#remoteHeader);
    h.set('Call-ID', this.callId);
    if (TARGET_REFRESH.has(method)) h.set('Contact', this.#ua.contactFor(this.transport));
    addHeaders(h, opts.headers);
    const body = toBody(opts.body);
    if (body !== undefined) h.set('Content-Type', opts.contentType ?? 'application/sdp');
    return {
      method,
      ruri,
      dest,
      flow: this.#flowFor(dest),
      headers: h,
      body,
      credentials: this.#credentials,
      inDialog: true,
      nextCSeq: () => this.nextCSeq(),
    };
  }

  #assertUsable(): void {
    if (this.state === 'terminated') throw new SipError('SIP_ERR_DIALOG', 'dialog terminated');
    if (this.#ua.closed) throw new SipError('SIP_ERR_CLOSED', 'user agent closed');
  }

  async request(method: string, opts: BodyOptions = {}): Promise<SipResponse> {
    const m = method.toUpperCase();
    if (m === 'INVITE') return this.reinvite(opts);
    if (m === 'BYE') {
      await this.bye();
      throw new SipError('SIP_ERR_INVALID_ARGUMENT', 'use bye() to end a dialog');
    }
    if (m === 'ACK' || m === 'CANCEL')
      throw new SipError('SIP_ERR_INVALID_ARGUMENT', `${m} is not sent by the application`);
    this.#assertUsable();
    return this.#send(this.outgoing(m, opts));
  }

  /** Send with the dialog's rules for the answer; a final status other than 2xx and `pass` rejects. */
  async #send(o: Outgoing, pass?: number): Promise<SipResponse> {
    let res: SipResponse;
    try {
      res = await this.#ua.send(o);
    } catch (err) {
      // A timeout in a dialog ends it (RFC 3261 12.2.1.2).
      if (err instanceof SipError && err.code === 'SIP_ERR_TIMEOUT' && o.method !== 'BYE')
        this.terminate('request-failed');
      throw err;
    }
    if (res.status >= 300 && res.status !== pass) {
      if (res.status === 481 || res.status === 408) this.terminate('request-failed');
      throw new SipResponseError(res.status, res.reason, { details: { method: o.method, callId: this.callId } });
    }
    if (TARGET_REFRESH.has(o.method)) {
      const c = res.contact?.[0];
      if (c !== undefined) this.remoteTarget = c.uri.raw;
    }
    return res;
  }

  async reinvite(opts: BodyOptions = {}): Promise<SipResponse> {
    this.#assertUsable();
    if (this.usage !== 'invite') throw new SipError('SIP_ERR_DIALOG', 'not an INVITE dialog');
    // One INVITE transaction at a time in each direction (RFC 3261 14.1).
    if (this.#reinviting || this.#pending2xx !== undefined)
      throw new SipError('SIP_ERR_DIALOG', 'an INVITE is already in progress');
    this.#reinviting = true;
    try {
      const body = toBody(opts.body) ?? this.#localBody;
      const contentType = opts.body !== undefined ? (opts.contentType ?? 'application/sdp') : this.#localContentType;
      let interval = this.sessionTimer?.interval;
      let sent: SipRequest | undefined;
      let res: SipResponse;
      for (let attempt = 0; ; attempt++) {
        const o: Outgoing = {
          ...this.outgoing('INVITE', { ...opts, body, contentType }),
          onTx: (_tx, req) => {
            sent = req;
          },
        };
        o.headers.set('Supported', 'timer');
        if (interval !== undefined) {
          o.headers.set('Session-Expires', `${interval};refresher=uac`);
          o.headers.set('Min-SE', `${this.#minSE}`);
        }
        res = await this.#send(o, interval === undefined || attempt > 0 ? undefined : 422);
        if (res.status < 300) break;
        // Our interval went below a minimum on the path (RFC 4028 7.4): raise both and retry once.
        const theirs = res.seconds('min-se');
        if (interval === undefined || theirs === undefined || (theirs <= interval && theirs <= this.#minSE))
          throw new SipResponseError(res.status, res.reason, { details: { method: 'INVITE', callId: this.callId } });
        interval = Math.max(interval, theirs);
        this.#minSE = Math.max(this.#minSE, theirs);
      }
      // Without a description of ours (a body-less INVITE made the dialog and the 2xx had no offer), the 2xx offers.
      const { answer, refused } = body === undefined ? this.#answerOffer(res) : {};
      const inv = sent!.headers;
      this.#sendAck(sent!.cseq!.seq, inv.getAll('authorization'), inv.getAll('proxy-authorization'), answer);
      if (refused !== undefined) {
        void this.bye();
        throw refused;
      }
      if (body !== undefined && opts.body !== undefined) {
        this.#localBody = body;
        this.#localContentType = contentType;
      }
      if (res.body.length > 0) {
        this.remoteBody = res.body;
        this.remoteContentType = res.contentType;
      }
      if (interval !== undefined) this.#sessionTimerFromResponse(res, interval);
      return res;
    } finally {
      this.#reinviting = false;
    }
  }

  refer(target: string, opts: BodyOptions = {}): Promise<ReferSubscription> {
    try {
      this.#assertUsable();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#ua.startRefer(this, target, opts);
  }

  /**
   * Runs `send` (a subscription's NOTIFY) once the dialog's previous NOTIFY has its final response. Two in
   * flight at once may arrive in the other order over UDP (the first lost and sent again), and the subscriber
   * must refuse the older with 500 (RFC 3261 12.2.2): a failed NOTIFY, which a notifier takes for the end of
   * the subscription (RFC 6665 4.2.2) while the subscriber still counts on it. Per dialog, not per
   * subscription: the REFERs of an INVITE dialog share it, each with its own implicit subscription.
   */
  notifyInTurn(send: () => Promise<void>): Promise<void> {
    const sent = this.#notifyTail.then(send);
    this.#notifyTail = sent.catch(() => {});
    return sent;
  }

  /** Send a request built by a subscription (SUBSCRIBE refresh, NOTIFY), applying dialog rules to the answer. */
  sendUsage(method: string, opts: BodyOptions): Promise<SipResponse> {
    this.#assertUsable();
    return this.#send(this.outgoing(method, opts));
  }

  bye(): Promise<void> {
    this.#byePromise ??= this.#byeAndEnd('bye-sent');
    return this.#byePromise;
  }

  close(): Promise<void> {
    return this.bye();
  }

  /** BYE at user agent shutdown (subscription-only dialogs just end). */
  closeForShutdown(): Promise<void> {
    if (this.usage !== 'invite') return Promise.resolve();
    return this.bye();
  }

  async #byeAndEnd(reason: DialogEndReason): Promise<void> {
    if (this.state === 'terminated') return;
    let o: Outgoing | undefined;
    try {
      o = this.usage === 'invite' ? this.outgoing('BYE') : undefined;
    } catch (err) {
      this.log?.warn({ err }, 'cannot build BYE');
    }
    // The session ends when the BYE is sent, not when it is answered (RFC 3261 15.1.1).
    this.terminate(reason);
    if (o === undefined || (this.#ua.closed && reason !== 'bye-sent')) return;
    const sent = this.#ua.send(o);
    this.#ua.drainOnClose(sent);
    try {
      await sent;
    } catch (err) {
      this.log?.debug({ err }, 'BYE not answered');
    }
  }

  /** End the dialog locally (no BYE): timers stop, subscriptions end, listeners hear 'terminated'. */
  terminate(reason: DialogEndReason): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.#stopSessionTimer();
    const p = this.#clear2xx();
    p?.reject?.(new SipError('SIP_ERR_DIALOG', `dialog ended before the ACK (${reason})`));
    this.#ua.unregisterDialog(this);
    for (const s of [...this.subscriptions.values()]) s.dialogEnded(reason);
    this.safeEmit('terminated', reason);
  }

  // ---- incoming requests -------------------------------------------------------

  /** The subscription a NOTIFY or SUBSCRIBE is for, by its Event header (RFC 6665 4.5.2, RFC 3515 2.4.6). */
  #usageOf(req: SipRequest): DialogUsage | undefined {
    const key = eventKey(req.headers.get('event'));
    const sub = key === undefined ? undefined : this.subscriptions.get(key);
    if (sub === undefined && key === 'refer' && [...this.subscriptions.values()].includes(this.firstRefer!))
      return this.firstRefer;
    return sub;
  }

  receiveRequest(tx: ServerTransaction): void {
    const req = tx.request;
    const seq = req.cseq!.seq;
    // CSeq must grow (RFC 3261 12.2.2).
    if (this.#remoteSeq !== undefined && seq < this.#remoteSeq) {
      tx.respond(buildResponse(req, 500, 'CSeq Out of Order'));
      if (req.method === 'NOTIFY') {
        const sub = this.#usageOf(req);
        if (sub?.kind === 'subscriber') sub.refusedNotify();
      }
      return;
    }
    this.#remoteSeq = seq;
    // Any new request from the peer proves it got our 2xx: treat it as the ACK (reordering through proxies).
    const p = this.#pending2xx;
    if (p !== undefined && req.method !== 'INVITE') {
      this.#clear2xx();
      this.#confirmed(p);
    }
    if (this.#held !== undefined) this.#held.push(tx);
    else this.#dispatch(tx);
  }

  /**
   * The ACK (or a request implying it) arrived: resolve accept(), and hold
   * requests that arrive in the same tick (one TCP read may carry the ACK and
   * an INFO) until the code awaiting accept() has attached its listeners.
   */
  #confirmed(p: Pending2xx): void {
    if (p.resolve === undefined) return;
    p.resolve(this);
    this.#held = [];
    setImmediate(() => {
      const held = this.#held ?? [];
      this.#held = undefined;
      for (const tx of held) this.#dispatch(tx);
    });
  }

  #dispatch(tx: ServerTransaction): void {
    const req = tx.request;
    switch (req.method) {
      case 'BYE':
        tx.respond(buildResponse(req, 200));
        this.terminate('bye-received');
        return;
      case 'INVITE':
        this.#onReinvite(tx);
        return;
      case 'NOTIFY':
      case 'SUBSCRIBE': {
        const sub = this.#usageOf(req);
        if (req.method === 'NOTIFY') {
          if (sub !== undefined && sub.kind === 'subscriber') sub.receiveNotify(tx);
          else tx.respond(buildResponse(req, 481, 'No Such Subscription'));
          return;
        }
        if (sub !== undefined && sub.kind === 'notifier') sub.receiveSubscribe(tx);
        else this.#ua.dispatchSubscribeIn(tx, this);
        return;
      }
      case 'REFER':
        this.#ua.dispatchReferIn(tx, this);
        return;
      default: {
        if (TARGET_REFRESH.has(req.method)) this.#refreshTarget(req);
        const inc = this.#ua.incoming(tx, this);
        if (this.listenerCount('request') > 0) {
          this.safeEmit('request', inc);
          inc.armDeadline();
        } else if (req.method === 'OPTIONS') inc.respond(200);
        else inc.respond(501, { reason: 'No Handler' });
      }
    }
  }

  #refreshTarget(req: SipRequest): void {
    const c = req.contact?.[0];
    if (c !== undefined) this.remoteTarget = c.uri.raw;
  }

  #onReinvite(tx: ServerTransaction): void {
    const req = tx.request;
    if (this.usage !== 'invite') {
      tx.respond(buildResponse(req, 405));
      return;
    }
    // Glare (RFC 3261 14.2): we are re-INVITing too, or our previous 2xx is unacknowledged.
    if (this.#reinviting) {
      tx.respond(buildResponse(req, 491));
      return;
    }
    if (this.#pending2xx !== undefined) {
      tx.respond(buildResponse(req, 500, undefined, { headers: new SipHeaders().set('Retry-After', '1') }));
      return;
    }
    const se = parseSessionExpires(req.headers.get('session-expires'));
    if (se !== undefined && se.interval < this.#ua.minSE) {
      tx.respond(buildResponse(req, 422, undefined, { headers: new SipHeaders().set('Min-SE', `${this.#ua.minSE}`) }));
      return;
    }
    this.#refreshTarget(req);
    if (req.body.length > 0) {
      this.remoteBody = req.body;
      this.remoteContentType = req.contentType;
    }
    const inc = this.#ua.incoming(tx, this);
    if (this.listenerCount('request') > 0) {
      this.safeEmit('request', inc);
      inc.armDeadline();
    } else {
      // A session refresh without a new offer: answer with our current description.
      inc.respond(200, { body: this.#localBody, contentType: this.#localContentType });
    }
  }

  /** The answer of the application to a re-INVITE. */
  answerReinvite(tx: ServerTransaction, res: SipResponse, status: number): void {
    if (status >= 200 && status < 300) {
      if (res.body.length > 0) {
        this.#localBody = res.body;
        this.#localContentType = mediaType(res.contentType) === undefined ? undefined : res.contentType;
      }
      this.#send2xx(tx, res);
      if (this.sessionTimer !== undefined) this.safeEmit('refreshed');
      return;
    }
    tx.respond(res);
  }

  // ---- session timers (RFC 4028) ---------------------------------------------------

  #sessionTimerFromResponse(res: SipResponse, requested: number | undefined): void {
    const se = parseSessionExpires(res.headers.get('session-expires'));
    if (se !== undefined) this.#startSessionTimer(se.interval, se.refresher === 'uas' ? 'remote' : 'local');
    // The UAS did not take part (RFC 4028 7.2): we refresh at the interval we asked for.
    else if (requested !== undefined) this.#startSessionTimer(requested, 'local');
    else this.#stopSessionTimer();
  }

  #startSessionTimer(interval: number, refresher: 'local' | 'remote'): void {
    this.#stopSessionTimer();
    this.sessionTimer = { interval, refresher };
    const { clock } = this.#ua;
    if (refresher === 'local') {
      // Refresh at half the interval (RFC 4028 10).
      this.#stTimer = clock.setTimeout(() => this.#refresh(), (interval * 1000) / 2);
    } else {
      // Without a refresh, end the session at interval minus min(32 s, interval/3) (RFC 4028 10).
      this.#stTimer = clock.setTimeout(
        () => {
          this.log?.info({ interval }, 'session timer expired');
          void this.#byeAndEnd('session-expired');
        },
        (interval - Math.min(32, interval / 3)) * 1000,
      );
    }
  }

  #stopSessionTimer(): void {
    this.#ua.clock.clearTimeout(this.#stTimer);
    this.#stTimer = undefined;
  }

  #refresh(): void {
    if (this.state === 'terminated') return;
    this.reinvite().then(
      () => this.safeEmit('refreshed'),
      (err: unknown) => {
        if (this.state === 'terminated') return;
        if (err instanceof SipResponseError && err.sipStatus === 491) {
          // Glare: both sides re-INVITEd; retry after the random wait of RFC 3261 14.1 (we own the Call-ID as UAC).
          this.#stTimer = this.#ua.clock.setTimeout(() => this.#refresh(), glareBackoffMs(this.role === 'uac'));
          return;
        }
        this.log?.warn({ err }, 'session refresh failed');
        void this.#byeAndEnd('session-expired');
      },
    );
  }
}
