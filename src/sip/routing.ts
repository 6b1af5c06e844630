/**
 * What the user agent core, its dialogs and subscriptions share: the UaCore
 * and Outgoing interfaces, next-hop resolution and header helpers. Both sides
 * import this module, so neither imports the other (user-agent.ts imports
 * dialog.ts and subscription.ts, never the reverse).
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/index.js';
import type { DigestCredentials } from './auth.js';
import { SipError } from './errors.js';
import { parseNameAddr, type SipHeaders } from './headers.js';
import type { SipRequest, SipResponse } from './message.js';
import type { ClientTransaction, TimerConfig } from './transaction.js';
import type { Destination, Flow, TransportName } from './transport.js';
import type { ExtraHeaders, SessionTimerOptions } from './types.js';
import { parseUri } from './uri.js';

/** Methods we implement (Allow). */
export const ALLOW = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'INFO', 'REFER', 'SUBSCRIBE', 'NOTIFY', 'MESSAGE'];
/** Option tags we support (Supported): session timers (RFC 4028), REFER without subscription (RFC 4488). */
export const SUPPORTED = ['timer', 'norefersub'];
// Header values built once: INVITEs and their 2xx carry both.
export const ALLOW_VALUE = ALLOW.join(', ');
export const SUPPORTED_VALUE = SUPPORTED.join(', ');

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
  /** Our listening address for a transport (the host of our Via and Contact, and of our SDP). */
  localHost(transport: TransportName): string;
  send(o: Outgoing): Promise<SipResponse>;
  /** A request close() lets finish (bounded) before the sockets close: a BYE in flight. */
  drainOnClose(p: Promise<unknown>): void;
  /** Send bytes outside any transaction (ACK for 2xx, 2xx retransmissions). */
  sendRaw(buf: Buffer, dest: Destination, flow?: Flow): void;
  /**
   * The ACK sent for a 2xx to our INVITE with this CSeq: re-sent for each
   * retransmitted 2xx for 64*T1. `initial` marks the ACK of the INVITE that
   * made the dialog: another 2xx to it (another To tag) is then a fork.
   */
  rememberAck(d: AckOwner, cseq: number, text: string, dest: Destination, flow?: Flow, initial?: ForkSource): void;
  newTag(): string;
  newBranch(): string;
  localVia(transport: TransportName, branch: string): string;
}

/** The dialog an ACK belongs to. */
export interface AckOwner {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
}

/** What ending a fork of an INVITE needs (RFC 3261 13.2.2.4): whether the INVITE offered, its credentials. */
export interface ForkSource {
  readonly offered: boolean;
  readonly credentials?: DigestCredentials;
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
  /** For this request's 401/407 challenges instead of the user agent's (per MCU). */
  readonly credentials?: DigestCredentials;
  /** A request inside a dialog: never sent with credentials before it is challenged (see UserAgent.send). */
  readonly inDialog?: boolean;
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
