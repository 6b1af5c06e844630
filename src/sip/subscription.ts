import type { TimerHandle } from '../core/index.js';
import { TypedEmitter } from '../core/index.js';
import type { DigestCredentials } from './auth.js';
import { type DialogHost, DialogImpl, eventKey } from './dialog.js';
import { SipError, SipResponseError } from './errors.js';
import { newParams, parseParams, scanToken, skipWs } from './grammar.js';
import { SipHeaders } from './headers.js';
import { buildResponse, type SipResponse } from './message.js';
import { toBody } from './routing.js';
import type { ServerTransaction } from './transaction.js';
import type { Destination } from './transport.js';
import type {
  BodyOptions,
  DialogEndReason,
  NotifyContent,
  NotifyEvent,
  ReferSubscription,
  RequestOptions,
  ServerSubscription,
  ServerSubscriptionEvents,
  SubscribeOptions,
  SubscriptionEvents,
} from './types.js';

/**
 * NOTIFYs held for a subscription that has no 'notify' listener yet. The
 * first NOTIFY may precede the SUBSCRIBE's 2xx (RFC 6665 4.1.2.4), i.e. arrive
 * before `subscribe()` resolved and anyone could listen. Bounded because the
 * peer chooses how many it sends; a conference subscriber recovers from a
 * dropped version by asking for the full state again (RFC 4575 4.1).
 */
const HELD_NOTIFY_MAX = 16;

/** Subscription-State = substate-value *( ";" subexp-params ) (RFC 6665 8.2.3). */
export function parseSubscriptionState(
  v: string | undefined,
): { state: NotifyEvent['state']; reason?: string; expires?: number } | undefined {
  if (v === undefined) return undefined;
  const i = skipWs(v, 0);
  const e = scanToken(v, i);
  const state = v.slice(i, e).toLowerCase();
  if (state !== 'active' && state !== 'pending' && state !== 'terminated') return undefined;
  const p = newParams();
  if (parseParams(v, e, p) < 0) return undefined;
  const expires = p.expires == null ? undefined : Number(p.expires);
  return { state, reason: p.reason ?? undefined, expires: Number.isFinite(expires) ? expires : undefined };
}

/** The status line of a message/sipfrag body (RFC 3420), as used by REFER NOTIFYs. */
export function parseSipfrag(body: Buffer): { status: number; reason: string } | undefined {
  const line = body.toString('utf8').split(/\r?\n/, 1)[0] ?? '';
  const m = /^SIP\/2\.0 ([1-6]\d\d) ?(.*)$/.exec(line);
  return m === null ? undefined : { status: Number(m[1]), reason: m[2]! };
}

/**
 * Subscriber side of a subscription (RFC 6665 4.1): SUBSCRIBE, refresh before
 * expiry, NOTIFY handling, unsubscribe; Timer N bounds the wait for the first
 * NOTIFY. Also the implicit subscription of a REFER (RFC 3515), whose
 * `outcome` resolves with the referee's final sipfrag status.
 */
export class SubscriberImpl extends TypedEmitter<SubscriptionEvents> implements ReferSubscription {
  readonly kind = 'subscriber' as const;
  event: string;
  #dialog?: DialogImpl;
  state: 'pending' | 'active' | 'terminated' = 'pending';
  readonly outcome: Promise<{ status: number; reason: string }>;
  readonly #ua: DialogHost;
  #expires: number;
  #cseq = 0;
  #refreshTimer?: TimerHandle;
  #timerN?: TimerHandle;
  #gotNotify = false;
  /** A refresh after a refused NOTIFY is out (see refusedNotify). */
  #probing = false;
  #resolveOutcome!: (v: { status: number; reason: string }) => void;
  #rejectOutcome!: (err: Error) => void;
  #unsubscribed?: () => void;
  /** Notifications that found no 'notify' listener, in order (see HELD_NOTIFY_MAX). */
  #held: NotifyEvent[] = [];
  #flushQueued = false;
  /** The SUBSCRIBE's own credentials: its dialog keeps them for refreshes (RFC 3261 22). */
  #credentials?: DigestCredentials;

  constructor(ua: DialogHost, event: string, expires: number) {
    super();
    this.#ua = ua;
    this.event = event;
    this.#expires = expires;
    this.outcome = new Promise((resolve, reject) => {
      this.#resolveOutcome = resolve;
      this.#rejectOutcome = reject;
    });
    // Nobody may ever look at `outcome` (plain SUBSCRIBE): never an unhandled rejection.
    this.outcome.catch(() => {});
  }

  /** Attaching the first 'notify' listener delivers the held notifications, after the caller's current code. */
  override on<K extends keyof SubscriptionEvents & string>(
    event: K,
    listener: (...args: SubscriptionEvents[K]) => void,
  ): this {
    super.on(event, listener);
    if (event === 'notify') this.#flushHeld();
    return this;
  }

  override once<K extends keyof SubscriptionEvents & string>(
    event: K,
    listener: (...args: SubscriptionEvents[K]) => void,
  ): this {
    super.once(event, listener);
    if (event === 'notify') this.#flushHeld();
    return this;
  }

  #flushHeld(): void {
    if (this.#held.length === 0 || this.#flushQueued) return;
    this.#flushQueued = true;
    // A microtask: the caller finishes attaching its listeners first, and no NOTIFY (I/O) can come in between.
    queueMicrotask(() => {
      this.#flushQueued = false;
      const held = this.#held;
      this.#held = [];
      for (const ev of held) this.#deliver(ev);
    });
  }

  #deliver(ev: NotifyEvent): void {
    // Held ones go first, so a flush pending keeps the order.
    if (this.listenerCount('notify') > 0 && this.#held.length === 0) {
      this.safeEmit('notify', ev);
      return;
    }
    if (this.#held.push(ev) > HELD_NOTIFY_MAX) {
      this.#held.shift();
      this.#ua.log?.warn({ event: this.event }, 'NOTIFY dropped: no notify listener on the subscription');
    }
  }

  get dialog(): DialogImpl {
    if (this.#dialog === undefined) throw new SipError('SIP_ERR_SUBSCRIPTION', 'subscription has no dialog yet');
    return this.#dialog;
  }

  get key(): string {
    return eventKey(this.event)!;
  }

  /** Send the initial SUBSCRIBE; resolves when it is accepted. */
  async start(
    uri: string,
    dest: Destination,
    headers: SipHeaders,
    opts: SubscribeOptions,
    nextCSeq: () => number,
  ): Promise<this> {
    headers.set('Event', this.event);
    headers.set('Expires', `${this.#expires}`);
    if (opts.accept !== undefined) headers.set('Accept', opts.accept);
    this.#credentials = opts.credentials;
    const res = await this.#ua.send({
      method: 'SUBSCRIBE',
      ruri: uri,
      dest,
      headers,
      body: toBody(opts.body),
      credentials: opts.credentials,
      nextCSeq: () => {
        this.#cseq = nextCSeq();
        return this.#cseq;
      },
    });
    if (res.status >= 300) {
      this.#end('rejected', new SipResponseError(res.status, res.reason, { details: { method: 'SUBSCRIBE', uri } }));
      throw new SipResponseError(res.status, res.reason, { details: { method: 'SUBSCRIBE', uri } });
    }
    if (this.state === 'terminated')
      throw new SipError('SIP_ERR_SUBSCRIPTION', 'subscription ended before it was accepted');
    if (this.#dialog === undefined) this.#dialogFrom(res, dest, 'SUBSCRIBE', uri);
    else {
      const c = res.contact?.[0];
      if (c !== undefined && !this.#gotNotify) this.#dialog.remoteTarget = c.uri.raw;
    }
    this.#accepted(res.seconds('expires') ?? this.#expires);
    return this;
  }

  /**
   * The dialog the 2xx to our SUBSCRIBE or REFER makes, where no NOTIFY made it first. Without the notifier's tag
   * it cannot (RFC 3261 12, RFC 6665 4.1.2.1): the subscription is rejected.
   */
  #dialogFrom(res: SipResponse, dest: Destination, method: 'SUBSCRIBE' | 'REFER', uri: string): void {
    if ((res.to?.params.tag ?? '') === '') {
      const err = new SipError('SIP_ERR_PROTOCOL', `the 2xx to our ${method} has no To tag: no dialog can be made`, {
        details: { uri },
      });
      this.#end('rejected', err);
      throw err;
    }
    this.#attach(
      DialogImpl.fromSubscriberSide(this.#ua, res, res.headers.get('from')!, this.#cseq, {
        fallback: dest.transport,
        credentials: this.#credentials,
      }),
    );
  }

  /**
   * A REFER outside any dialog (RFC 3515 2.4.1): the 202 (or a NOTIFY that overtook it) makes the
   * subscription's own dialog, in which this is the first REFER, so a NOTIFY with a bare `refer` is its.
   */
  async startReferOutside(
    uri: string,
    target: string,
    dest: Destination,
    headers: SipHeaders,
    opts: RequestOptions,
    nextCSeq: () => number,
  ): Promise<this> {
    headers.set('Refer-To', target.startsWith('<') ? target : `<${target}>`);
    headers.set('Referred-By', headers.get('from')!.replace(/;tag=[^;]*/, ''));
    this.#credentials = opts.credentials;
    const res = await this.#ua.send({
      method: 'REFER',
      ruri: uri,
      dest,
      headers,
      body: toBody(opts.body),
      credentials: opts.credentials,
      nextCSeq: () => {
        this.#cseq = nextCSeq();
        this.event = `refer;id=${this.#cseq}`;
        return this.#cseq;
      },
    });
    if (res.status >= 300) {
      const err = new SipResponseError(res.status, res.reason, { details: { method: 'REFER', uri, target } });
      this.#end('rejected', err);
      throw err;
    }
    if (this.state === 'terminated') return this;
    if (this.#dialog === undefined) this.#dialogFrom(res, dest, 'REFER', uri);
    this.#accepted(60);
    return this;
  }

  /** A REFER's implicit subscription: registered under `refer;id=CSeq` before the REFER goes out. */
  async startRefer(dialog: DialogImpl, target: string, opts: BodyOptions): Promise<this> {
    const o = dialog.outgoing('REFER', opts);
    o.headers.set('Refer-To', target.startsWith('<') ? target : `<${target}>`);
    o.headers.set('Referred-By', `<${dialog.localUri}>`);
    const next = o.nextCSeq;
    this.#dialog = dialog;
    const res = await this.#ua.send({
      ...o,
      nextCSeq: () => {
        const n = next();
        if (dialog.subscriptions.get(this.key) === this) dialog.subscriptions.delete(this.key);
        this.event = `refer;id=${n}`;
        dialog.subscriptions.set(this.key, this);
        dialog.firstRefer ??= this;
        return n;
      },
    });
    if (res.status >= 300) {
      const err = new SipResponseError(res.status, res.reason, { details: { method: 'REFER', target } });
      this.#end('rejected', err);
      throw err;
    }
    this.#accepted(60);
    return this;
  }

  #attach(d: DialogImpl): void {
    this.#dialog = d;
    d.subscriptions.set(this.key, this);
    if (this.event.startsWith('refer')) d.firstRefer ??= this;
  }

  #accepted(expires: number): void {
    if (this.state === 'terminated') return;
    this.#scheduleRefresh(expires);
    // Timer N = 64*T1: a NOTIFY must follow an accepted SUBSCRIBE (RFC 6665 4.1.2.4).
    if (!this.#gotNotify)
      this.#timerN = this.#ua.clock.setTimeout(() => {
        if (!this.#gotNotify)
          this.#end('timeout', new SipError('SIP_ERR_TIMEOUT', 'no NOTIFY after the subscription was accepted'));
      }, 64 * this.#ua.timers.t1);
  }

  #scheduleRefresh(expires: number): void {
    this.#ua.clock.clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (this.event.startsWith('refer') || expires <= 0) return;
    // Refresh ahead of expiry by min(32 s, a third of it), like the session timer rule of RFC 4028.
    const ahead = Math.min(32, expires / 3);
    this.#refreshTimer = this.#ua.clock.setTimeout(
      () => {
        this.refresh().catch((err: unknown) => this.#end('refresh-failed', err instanceof Error ? err : undefined));
      },
      (expires - ahead) * 1000,
    );
  }

  /** The first NOTIFY arrived before the 2xx: it creates the dialog (RFC 6665 4.1.2.4). */
  notifyBeforeDialog(tx: ServerTransaction): void {
    if (this.#dialog === undefined) {
      const req = tx.request;
      this.#attach(
        DialogImpl.fromSubscriberSide(this.#ua, req, req.headers.get('to')!, this.#cseq, {
          fallback: tx.inbound.transport,
          flow: tx.inbound.flow,
          credentials: this.#credentials,
        }),
      );
    }
    this.receiveNotify(tx);
  }

  receiveNotify(tx: ServerTransaction): void {
    const req = tx.request;
    const ss = parseSubscriptionState(req.headers.get('subscription-state'));
    if (ss === undefined) {
      tx.respond(buildResponse(req, 400, 'Bad Subscription-State'));
      return;
    }
    tx.respond(buildResponse(req, 200));
    this.#gotNotify = true;
    this.#ua.clock.clearTimeout(this.#timerN);
    const ev: NotifyEvent = {
      state: ss.state,
      reason: ss.reason,
      expires: ss.expires,
      contentType: req.contentType,
      body: req.body,
    };
    if (ss.state !== 'terminated') {
      this.state = ss.state;
      if (ss.expires !== undefined) this.#scheduleRefresh(ss.expires);
    }
    this.#deliver(ev);
    if (this.event.startsWith('refer')) {
      const frag = parseSipfrag(req.body);
      if (frag !== undefined && frag.status >= 200) this.#resolveOutcome(frag);
    }
    if (ss.state === 'terminated') this.#end(ss.reason ?? 'terminated');
  }

  /**
   * Our dialog refused one of this subscription's NOTIFYs for coming after a later one (RFC 3261 12.2.2: two
   * NOTIFYs in flight at once, reordered over UDP). A notifier may take any failure of a NOTIFY for the
   * subscriber's end and drop the subscription without a word (RFC 6665 4.2.2): a refresh finds out, and a
   * refused refresh ends ours, so its owner subscribes again instead of waiting on a dead one.
   */
  refusedNotify(): void {
    if (this.state === 'terminated' || this.#probing || this.event.startsWith('refer')) return;
    this.#probing = true;
    this.refresh()
      .catch((err: unknown) => this.#end('refresh-failed', err instanceof Error ? err : undefined))
      .finally(() => {
        this.#probing = false;
      });
  }

  async refresh(expires = this.#expires): Promise<void> {
    if (this.state === 'terminated') throw new SipError('SIP_ERR_SUBSCRIPTION', 'subscription terminated');
    const res = await this.dialog.sendUsage('SUBSCRIBE', { headers: { Event: this.event, Expires: `${expires}` } });
    if (expires > 0) this.#scheduleRefresh(res.seconds('expires') ?? expires);
  }

  async unsubscribe(): Promise<void> {
    if (this.state === 'terminated') return;
    const ended = new Promise<void>((resolve) => {
      this.#unsubscribed = resolve;
    });
    try {
      await this.refresh(0);
    } catch (err) {
      this.#end('unsubscribed');
      if (!(err instanceof SipResponseError)) throw err;
      return;
    }
    // The final NOTIFY should follow; do not wait for it longer than 64*T1.
    let t: TimerHandle | undefined;
    await Promise.race([ended, new Promise<void>((r) => (t = this.#ua.clock.setTimeout(r, 64 * this.#ua.timers.t1)))]);
    this.#ua.clock.clearTimeout(t);
    this.#end('unsubscribed');
  }

  dialogEnded(reason: DialogEndReason): void {
    this.#end(reason, new SipError('SIP_ERR_SUBSCRIPTION', `dialog ended (${reason})`));
  }

  abort(err: SipError): void {
    this.#end('closed', err);
  }

  #end(reason: string, err?: Error): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.#ua.clock.clearTimeout(this.#refreshTimer);
    this.#ua.clock.clearTimeout(this.#timerN);
    this.#rejectOutcome(
      err ?? new SipError('SIP_ERR_SUBSCRIPTION', `subscription ended without a final status (${reason})`),
    );
    this.#unsubscribed?.();
    const d = this.#dialog;
    if (d !== undefined) {
      if (d.subscriptions.get(this.key) === this) d.subscriptions.delete(this.key);
      // A dialog that only carried subscriptions ends with the last one (RFC 6665 4.5.3).
      if (d.usage === 'subscription' && d.subscriptions.size === 0) d.terminate('subscription-ended');
    }
    this.safeEmit('terminated', reason);
  }
}

/** Notifier side (RFC 6665 4.2): NOTIFYs, refreshes, expiry, the final NOTIFY. */
export class NotifierImpl extends TypedEmitter<ServerSubscriptionEvents> implements ServerSubscription {
  readonly kind = 'notifier' as const;
  readonly event: string;
  readonly dialog: DialogImpl;
  state: 'active' | 'terminated' = 'active';
  readonly #ua: DialogHost;
  #expiresAt: number;
  #timer?: TimerHandle;

  constructor(ua: DialogHost, dialog: DialogImpl, event: string, expires: number) {
    super();
    this.#ua = ua;
    this.dialog = dialog;
    this.event = event;
    this.#expiresAt = 0;
    dialog.subscriptions.set(eventKey(event)!, this);
    this.#arm(expires);
  }

  #arm(expires: number): void {
    this.#ua.clock.clearTimeout(this.#timer);
    this.#expiresAt = this.#ua.clock.now() + expires * 1000;
    this.#timer = this.#ua.clock.setTimeout(() => {
      this.terminate('timeout').catch(() => {});
    }, expires * 1000);
  }

  #remaining(): number {
    return Math.max(0, Math.round((this.#expiresAt - this.#ua.clock.now()) / 1000));
  }

  notify(content: NotifyContent): Promise<void> {
    if (this.state === 'terminated')
      return Promise.reject(new SipError('SIP_ERR_SUBSCRIPTION', 'subscription terminated'));
    // One NOTIFY of the dialog in flight at a time (DialogImpl.notifyInTurn).
    return this.dialog.notifyInTurn(() => {
      if (this.state === 'terminated') throw new SipError('SIP_ERR_SUBSCRIPTION', 'subscription terminated');
      return this.#send(`active;expires=${this.#remaining()}`, content);
    });
  }

  async #send(state: string, content: NotifyContent | undefined): Promise<void> {
    try {
      await this.dialog.sendUsage('NOTIFY', {
        headers: { Event: this.event, 'Subscription-State': state },
        contentType: content?.contentType,
        body: content?.body,
      });
    } catch (err) {
      // The subscriber is gone (481) or unreachable: the subscription ends (RFC 6665 4.2.2).
      this.#end('notify-failed');
      throw err;
    }
  }

  async terminate(reason = 'noresource', content?: NotifyContent): Promise<void> {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.#ua.clock.clearTimeout(this.#timer);
    try {
      await this.dialog.notifyInTurn(async () => {
        if (this.dialog.state !== 'terminated') await this.#send(`terminated;reason=${reason}`, content);
      });
    } finally {
      this.#end(reason);
    }
  }

  /** A refreshing or ending SUBSCRIBE (RFC 6665 4.2.1.2, 4.2.1.4). */
  receiveSubscribe(tx: ServerTransaction): void {
    const expires = tx.request.seconds('expires') ?? 3600;
    tx.respond(buildResponse(tx.request, 200, undefined, { headers: new SipHeaders().set('Expires', `${expires}`) }));
    if (expires === 0) {
      this.terminate('timeout').catch(() => {});
      return;
    }
    this.#arm(expires);
    this.safeEmit('refreshed', expires);
    this.notify({}).catch(() => {});
  }

  dialogEnded(reason: DialogEndReason): void {
    this.state = 'terminated';
    this.#end(reason);
  }

  #end(reason: string): void {
    this.state = 'terminated';
    this.#ua.clock.clearTimeout(this.#timer);
    const key = eventKey(this.event)!;
    if (this.dialog.subscriptions.get(key) !== this) return;
    this.dialog.subscriptions.delete(key);
    if (this.dialog.usage === 'subscription' && this.dialog.subscriptions.size === 0)
      this.dialog.terminate('subscription-ended');
    this.safeEmit('terminated', reason);
  }
}
