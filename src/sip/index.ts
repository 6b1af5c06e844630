/**
 * The SIP stack (RFC 3261 and the extensions the MCU drivers use). Only this
 * module's typed interface is public; implementation classes stay private.
 */

export type { DigestAlgorithm, DigestCredentials } from './auth.js';
export { createChallenge, verifyAuthorization } from './auth.js';
export { glareBackoffMs } from './dialog.js';
export type { SipErrorCode } from './errors.js';
export { SIP_ERRORS, SipError, SipResponseError } from './errors.js';
export { detach } from './grammar.js';
export type { CSeq, NameAddr, Via } from './headers.js';
export { SipHeaders } from './headers.js';
export type { SipMessage } from './message.js';
export { SipRequest, SipResponse, serialize } from './message.js';
export type { ParseOutcome } from './parser.js';
export { DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_STREAM_MESSAGE_SIZE, parseMessage } from './parser.js';
export type {
  SdpAttribute,
  SdpBody,
  SdpConnection,
  SdpMedia,
  SdpOrigin,
  SdpTiming,
  SessionDescription,
} from './sdp.js';
export { answerOffer, controlLegOffer, formatSdp, parseSdp, SDP_CONTENT_TYPE } from './sdp.js';
export { parseSipfrag } from './subscription.js';
export type { TimerConfig, TransactionRecord } from './transaction.js';
export { DEFAULT_TIMERS, SWEEP_MS } from './transaction.js';
export type { Destination, ListenOptions, TlsOptions, TransportName } from './transport.js';
export type {
  BodyOptions,
  Dialog,
  DialogEndReason,
  DialogEvents,
  ExtraHeaders,
  IncomingInvite,
  IncomingRefer,
  IncomingRequest,
  IncomingSubscribe,
  InviteOptions,
  NotifyContent,
  NotifyEvent,
  OfferAnswerer,
  ReferNotifier,
  ReferSubscription,
  RequestOptions,
  ResponseOptions,
  ServerSubscription,
  ServerSubscriptionEvents,
  SessionOffer,
  SessionTimerOptions,
  SubscribeOptions,
  Subscription,
  SubscriptionEvents,
  UserAgent,
  UserAgentEvents,
  UserAgentOptions,
  UserAgentStats,
} from './types.js';
export type { SipUri } from './uri.js';
export { formatUri, parseUri, withUriParams } from './uri.js';
export { createUserAgent } from './user-agent.js';
