/**
 * The requests handed to the application (RFC 3261 8.2, 13.3): answered once,
 * with a deadline when the handler does not answer; INVITE (accept, reject,
 * CANCEL), SUBSCRIBE (RFC 6665) and REFER (RFC 3515) create their dialogs here.
 */
import { type TimerHandle, TypedEmitter } from '../core/index.js';
import { type DialogHost, DialogImpl } from './dialog.js';
import { SipError } from './errors.js';
import { type NameAddr, SipHeaders } from './headers.js';
import { buildResponse, type SipRequest, type SipResponse } from './message.js';
import { ALLOW_VALUE, addHeaders, SUPPORTED_VALUE, toBody } from './routing.js';
import { NotifierImpl } from './subscription.js';
import type { ServerTransaction } from './transaction.js';
import type { TransportName } from './transport.js';
import type {
  Dialog,
  IncomingInvite,
  IncomingRefer,
  IncomingRequest,
  IncomingSubscribe,
  NotifyContent,
  ReferNotifier,
  ResponseOptions,
  ServerSubscription,
} from './types.js';

/** What the incoming-request objects need from the user agent. */
export interface IncomingHost extends DialogHost {
  /** Our Accept header value (RFC 3261 11.2: an OPTIONS 2xx lists it). */
  readonly acceptValue: string;
}

/** A request awaiting an answer from a handler, with a deadline (style: every pending request has one). */
export class IncomingRequestImpl implements IncomingRequest {
  readonly method: string;
  readonly message: SipRequest;
  readonly dialog?: Dialog;
  protected readonly ua: IncomingHost;
  protected readonly tx: ServerTransaction;
  protected readonly toTag: string;
  #deadline?: TimerHandle;
  #responded = false;

  constructor(ua: IncomingHost, tx: ServerTransaction, dialog: DialogImpl | undefined, toTag: string) {
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
      h.set('Accept', this.ua.acceptValue);
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

export class IncomingInviteImpl extends IncomingRequestImpl implements IncomingInvite {
  /** Made when someone listens: most INVITEs are answered at once and never cancelled. */
  #events?: TypedEmitter<{ cancel: [] }>;
  #cancelled = false;
  #accepting = false;

  constructor(ua: IncomingHost, tx: ServerTransaction, toTag: string) {
    super(ua, tx, undefined, toTag);
    tx.onCancel = () => {
      if (this.responded || this.#accepting) return;
      this.#cancelled = true;
      this.respond(487);
      this.#events?.safeEmit('cancel');
    };
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  on(event: 'cancel', listener: () => void): this {
    this.#events ??= new TypedEmitter();
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

export class IncomingSubscribeImpl extends IncomingRequestImpl implements IncomingSubscribe {
  readonly event: string;
  readonly expires: number;
  readonly #dialog?: DialogImpl;

  constructor(ua: IncomingHost, tx: ServerTransaction, dialog: DialogImpl | undefined, toTag: string) {
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

export class IncomingReferImpl extends IncomingRequestImpl implements IncomingRefer {
  readonly referTo: NameAddr;
  readonly #dialog?: DialogImpl;

  constructor(
    ua: IncomingHost,
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
