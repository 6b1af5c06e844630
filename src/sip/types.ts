import type { Logger } from 'pino';
import type { Clock, TypedEmitter } from '../core/index.js';
import type { DigestCredentials } from './auth.js';
import type { SipError } from './errors.js';
import type { NameAddr } from './headers.js';
import type { SipRequest, SipResponse } from './message.js';
import type { TimerConfig, TransactionRecord } from './transaction.js';
import type { Destination, ListenOptions, TlsOptions, TransportName, TransportStats } from './transport.js';

/** Extra header fields for an outgoing message: name to one value or several lines. */
export type ExtraHeaders = Readonly<Record<string, string | readonly string[]>>;

/** A message body with its media type. */
export interface BodyOptions {
  readonly contentType?: string;
  readonly body?: string | Buffer;
  readonly headers?: ExtraHeaders;
}

export interface SessionTimerOptions {
  /** Session interval we ask for, in seconds (RFC 4028 Session-Expires; default 1800). */
  readonly expires?: number;
  /** Smallest interval we accept, in seconds (RFC 4028 Min-SE; the RFC floor is 90, lower values are for tests). */
  readonly minSE?: number;
}

export interface UserAgentOptions {
  /** Addresses to listen on (several at once; port 0 picks one). */
  readonly listen: readonly ListenOptions[];
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly timers?: Partial<TimerConfig>;
  readonly tls?: TlsOptions;
  /** User part of our From and Contact URIs (default 'cascaded'). */
  readonly user?: string;
  /**
   * Header field parameters of every Contact we send, e.g. `{ isfocus: true }`
   * for a conference focus (RFC 4579 3.3, the RFC 3840 feature tag). `true`
   * writes the name alone; a string value must be a token or a quoted-string.
   */
  readonly contactParams?: Readonly<Record<string, string | true>>;
  /** Value of User-Agent / Server (default 'cascaded'). */
  readonly userAgent?: string;
  /**
   * Largest message accepted, in bytes (513 or a dropped datagram beyond it).
   * Over UDP the default is the datagram bound, 65,507; a value given here
   * also applies to TCP/TLS unless maxStreamMessageSize is set.
   */
  readonly maxMessageSize?: number;
  /** Largest message accepted over TCP/TLS, in bytes (default 2 MiB: a national MCU's conference state, RFC 4575). */
  readonly maxStreamMessageSize?: number;
  /**
   * Largest header section (start line and header fields) accepted over
   * TCP/TLS, in bytes, checked before any body byte is buffered (default
   * 65,536: DEFAULT_MAX_HEADER_SIZE). Beyond it the connection is closed.
   */
  readonly maxHeaderSize?: number;
  /**
   * Close TCP/TLS connections that complete no message for this many ms
   * (default 120,000). Bytes of a message that never completes do not count
   * (slowloris).
   */
  readonly idleTimeoutMs?: number;
  /**
   * Receive buffer asked of the kernel for each UDP socket, in bytes (default 4 MiB: DEFAULT_UDP_RECEIVE_BUFFER).
   * Linux grants at most `net.core.rmem_max`; a smaller grant is logged as a warning.
   */
  readonly udpReceiveBufferBytes?: number;
  /**
   * Bytes one TCP/TLS connection may hold unsent: its write backlog (the peer
   * reads slower than we write) and its queue while it is being opened
   * (default 1 MiB: DEFAULT_MAX_QUEUED_BYTES). A send past it fails with
   * SIP_ERR_TRANSPORT; an open connection is then closed, one being opened
   * keeps what it queued. One message is always accepted on a connection
   * with nothing queued.
   */
  readonly maxQueuedBytes?: number;
  /** TCP/TLS connections open at once, both directions (default 1,024); beyond it inbound ones are refused, outbound sends fail. */
  readonly maxConnections?: number;
  /** Inbound TCP/TLS connections from one IP address (default 32); beyond it they are refused. */
  readonly maxConnectionsPerAddress?: number;
  /** Media types we accept in request bodies (415 otherwise). */
  readonly accept?: readonly string[];
  /** Credentials for 401/407 challenges (RFC 3261 22.2). */
  readonly credentials?: DigestCredentials;
  /** Session timers (RFC 4028) on INVITE dialogs; absent: not requested, but honoured when the peer asks. */
  readonly sessionTimer?: SessionTimerOptions;
  /** Answer UDP requests at their source port even when the Via has no rport (default false: RFC 3261 18.2.2). */
  readonly forceRport?: boolean;
  /** How long a handler may take to answer a non-INVITE request before we answer 500 (ms, default 16 s). */
  readonly handlerTimeoutMs?: number;
}

export interface RequestOptions extends BodyOptions {
  /** Our From URI (default: sip:user@our-address). */
  readonly from?: string;
  /** Preloaded route set (outbound proxy), as SIP URIs. */
  readonly route?: readonly string[];
  /**
   * Credentials for the 401/407 challenges of this request (per peer, e.g. per
   * MCU), instead of the user agent's. A dialog or subscription created by the
   * request keeps them for its in-dialog requests and refreshes.
   */
  readonly credentials?: DigestCredentials;
}

/** A session description offered by the peer (in a 2xx to an INVITE without one, RFC 3261 13.2.2.4). */
export interface SessionOffer {
  readonly contentType?: string;
  readonly body: Buffer;
}

/**
 * Builds our answer to the peer's offer; the answer is sent in the ACK (RFC
 * 3264, RFC 3261 13.2.2.4). Throwing means the offer cannot be answered: the
 * 2xx is ACKed and the dialog ended with BYE.
 */
export type OfferAnswerer = (offer: SessionOffer) => { readonly contentType?: string; readonly body: string | Buffer };

export interface InviteOptions extends RequestOptions {
  /** Called for each provisional response. */
  readonly onProgress?: (res: SipResponse) => void;
  /** Cancels the INVITE (CANCEL, then rejection with SIP_ERR_CANCELLED). */
  readonly signal?: AbortSignal;
  /** Override the user agent's session timer for this call; false to not request one. */
  readonly sessionTimer?: SessionTimerOptions | false;
  /**
   * Answers an offer the peer puts in its 2xx when this INVITE (or a later
   * body-less re-INVITE of the dialog, such as a session refresh) carried none.
   * The dialog keeps it for its re-INVITEs.
   */
  readonly answer?: OfferAnswerer;
}

export interface ResponseOptions extends BodyOptions {
  readonly reason?: string;
}

export interface SubscribeOptions extends RequestOptions {
  /** Event package, e.g. 'conference' (RFC 4575). */
  readonly event: string;
  /** Requested duration in seconds (default 3600). */
  readonly expires?: number;
  /** Accept header for NOTIFY bodies. */
  readonly accept?: string;
}

/** Why a dialog ended. */
export type DialogEndReason =
  | 'bye-sent'
  | 'bye-received'
  | 'ack-timeout'
  | 'session-expired'
  | 'request-failed'
  | 'subscription-ended'
  | 'closed';

export type DialogEvents = {
  /** An in-dialog request (INFO, OPTIONS, re-INVITE, MESSAGE, NOTIFY of no subscription ...): answer it with respond(). */
  request: [IncomingRequest];
  /** A REFER in this dialog (RFC 3515). */
  refer: [IncomingRefer];
  /** A new SUBSCRIBE in this dialog. */
  subscribe: [IncomingSubscribe];
  /** The session was refreshed (re-INVITE, RFC 4028). */
  refreshed: [];
  terminated: [DialogEndReason];
};

export interface Dialog extends TypedEmitter<DialogEvents> {
  readonly id: string;
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly role: 'uac' | 'uas';
  readonly state: 'confirmed' | 'terminated';
  readonly localUri: string;
  readonly remoteUri: string;
  /** Where in-dialog requests go (the peer's Contact). */
  readonly remoteTarget: string;
  readonly routeSet: readonly string[];
  readonly transport: TransportName;
  /** The peer's last session description (the body of its INVITE or 2xx). */
  readonly remoteBody: Buffer;
  readonly remoteContentType?: string;
  /** Negotiated session interval (s) and who refreshes, when session timers are on. */
  readonly sessionTimer?: { readonly interval: number; readonly refresher: 'local' | 'remote' };
  /** Send an in-dialog request; resolves with the 2xx, rejects with SipResponseError for others. */
  request(method: string, opts?: BodyOptions): Promise<SipResponse>;
  /** re-INVITE (RFC 3261 14); with no body, our last session description is sent again. */
  reinvite(opts?: BodyOptions): Promise<SipResponse>;
  /** REFER (RFC 3515): resolves once accepted (202) with the implicit subscription. */
  refer(target: string, opts?: BodyOptions): Promise<ReferSubscription>;
  /** End the dialog with BYE; resolves when the BYE is answered or times out. */
  bye(): Promise<void>;
  /** Same as bye(); idempotent. */
  close(): Promise<void>;
}

export interface IncomingRequest {
  readonly method: string;
  readonly message: SipRequest;
  readonly transport: TransportName;
  readonly remote: { readonly host: string; readonly port: number };
  /** The dialog it belongs to, for in-dialog requests. */
  readonly dialog?: Dialog;
  readonly responded: boolean;
  /** Answer; only the first final response counts. */
  respond(status: number, opts?: ResponseOptions): void;
}

export interface IncomingInvite extends IncomingRequest {
  readonly cancelled: boolean;
  /** Listen for 'cancel' (the request was CANCELled and answered 487). */
  on(event: 'cancel', listener: () => void): this;
  /** Send a provisional response (default 180). */
  progress(status?: number, opts?: ResponseOptions): void;
  /** Answer 200 and create the dialog; resolves when the ACK arrives. */
  accept(opts?: ResponseOptions): Promise<Dialog>;
  reject(status: number, opts?: ResponseOptions): void;
}

export interface NotifyContent {
  readonly contentType?: string;
  readonly body?: string | Buffer;
}

export interface IncomingSubscribe extends IncomingRequest {
  readonly event: string;
  /** Requested duration in seconds. */
  readonly expires: number;
  /** Answer 200 and send the first NOTIFY (RFC 6665 4.2.1.2); resolves with the notifier side. */
  accept(initial: NotifyContent & { expires?: number }): Promise<ServerSubscription>;
  reject(status: number, opts?: ResponseOptions): void;
}

export interface IncomingRefer extends IncomingRequest {
  readonly referTo: NameAddr;
  /** Answer 202 and send NOTIFY "100 Trying" (RFC 3515 2.4.4); resolves with the notifier. */
  accept(): Promise<ReferNotifier>;
  reject(status: number, opts?: ResponseOptions): void;
}

export interface NotifyEvent {
  readonly state: 'active' | 'pending' | 'terminated';
  readonly reason?: string;
  readonly expires?: number;
  readonly contentType?: string;
  readonly body: Buffer;
}

export type SubscriptionEvents = {
  notify: [NotifyEvent];
  terminated: [reason: string];
};

/** Subscriber side (RFC 6665). */
export interface Subscription extends TypedEmitter<SubscriptionEvents> {
  readonly event: string;
  readonly dialog: Dialog;
  readonly state: 'pending' | 'active' | 'terminated';
  /** Refresh now (it also happens automatically before expiry). */
  refresh(expires?: number): Promise<void>;
  /** SUBSCRIBE with Expires: 0; resolves when the final NOTIFY arrives (or its deadline passes). */
  unsubscribe(): Promise<void>;
}

/** The implicit subscription of a REFER (RFC 3515): NOTIFY bodies are message/sipfrag status lines. */
export interface ReferSubscription extends Subscription {
  /** The final status reported by the referee (sipfrag of the terminating NOTIFY). */
  readonly outcome: Promise<{ status: number; reason: string }>;
}

export type ServerSubscriptionEvents = {
  refreshed: [expires: number];
  terminated: [reason: string];
};

/** Notifier side (RFC 6665). */
export interface ServerSubscription extends TypedEmitter<ServerSubscriptionEvents> {
  readonly event: string;
  readonly dialog: Dialog;
  readonly state: 'active' | 'terminated';
  notify(content: NotifyContent): Promise<void>;
  /** Final NOTIFY with Subscription-State: terminated. */
  terminate(reason?: string, content?: NotifyContent): Promise<void>;
}

/** Notifier of a REFER's progress. */
export interface ReferNotifier {
  /** Report a provisional status (e.g. 180). */
  progress(status: number, reason?: string): Promise<void>;
  /** Report the final status and end the implicit subscription. */
  done(status: number, reason?: string): Promise<void>;
}

export type UserAgentEvents = {
  /** A new INVITE. Without a listener it is answered 480. */
  invite: [IncomingInvite];
  /** A new SUBSCRIBE outside a dialog. Without a listener: 489. */
  subscribe: [IncomingSubscribe];
  /** A REFER outside a dialog. Without a listener: 405. */
  refer: [IncomingRefer];
  /** Any other request outside a dialog (OPTIONS, MESSAGE, INFO ...). Without a listener OPTIONS gets 200, others 405. */
  request: [IncomingRequest];
  /** Every finished transaction, for metrics. */
  transaction: [TransactionRecord];
  /** A dialog was created (either side). */
  dialog: [Dialog];
};

export interface UserAgentStats extends TransportStats {
  readonly dialogs: number;
  readonly clientTransactions: number;
  readonly serverTransactions: number;
}

export interface UserAgent extends TypedEmitter<UserAgentEvents> {
  /** Bound addresses with their actual ports. */
  readonly listening: readonly Destination[];
  readonly stats: UserAgentStats;
  /** Our Contact URI for a transport (what a peer can use to reach us). */
  contactUri(transport?: TransportName): string;
  /** INVITE; resolves with the confirmed dialog (ACK sent), rejects with SipResponseError, SIP_ERR_TIMEOUT ... */
  invite(uri: string, opts?: InviteOptions): Promise<Dialog>;
  /** An out-of-dialog request (OPTIONS, MESSAGE ...); resolves with the final response whatever its status. */
  request(method: string, uri: string, opts?: RequestOptions): Promise<SipResponse>;
  /** SUBSCRIBE (RFC 6665); resolves once accepted (2xx). */
  subscribe(uri: string, opts: SubscribeOptions): Promise<Subscription>;
  /**
   * REFER outside any dialog (RFC 3515 2.4.1, RFC 4579 5.5: to a conference URI): its implicit subscription
   * gets a dialog of its own. Resolves once accepted (2xx), rejects with SipResponseError for a refusal.
   */
  refer(uri: string, target: string, opts?: RequestOptions): Promise<ReferSubscription>;
  /** End dialogs (BYE), reject what is pending, release sockets. Idempotent. */
  close(): Promise<void>;
}

export type { SipError };
