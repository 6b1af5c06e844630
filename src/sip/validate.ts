import { splitList } from './grammar.js';
import { mediaType } from './headers.js';
import type { SipRequest, SipResponse } from './message.js';

/** What a user agent server supports: the input of the checks of RFC 3261 8.2. */
export interface UasPolicy {
  /** Methods we implement (Allow). */
  readonly allow: ReadonlySet<string>;
  /** Option tags we support (Supported). */
  readonly supported: ReadonlySet<string>;
  /** Body media types we accept (Accept). */
  readonly accept: ReadonlySet<string>;
}

/** A refusal: the status to answer and headers to add. */
export interface Refusal {
  readonly status: number;
  readonly reason?: string;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
}

/** Methods of RFC 3261 and the extensions a user agent may meet; others are answered 501. */
const KNOWN_METHODS = new Set([
  'INVITE',
  'ACK',
  'BYE',
  'CANCEL',
  'OPTIONS',
  'REGISTER',
  'INFO',
  'PRACK',
  'UPDATE',
  'SUBSCRIBE',
  'NOTIFY',
  'REFER',
  'MESSAGE',
  'PUBLISH',
]);

const SINGLE = ['to', 'from', 'call-id', 'cseq', 'max-forwards'] as const;

/**
 * The checks a UAS runs before a request reaches the application, in the order
 * of RFC 3261 8.2: mandatory headers (8.1.1, RFC 4475 insuf, multi01, mcl01),
 * method (8.2.1: 501 or 405 with Allow), Request-URI scheme (8.2.2.1: 416),
 * Require (8.2.2.3: 420 with Unsupported), body type (8.2.3: 415 with Accept)
 * and, for an offer, whether an answer could be sent at all (Accept: 406).
 * Returns undefined when the request may proceed.
 */
export function checkRequest(req: SipRequest, policy: UasPolicy): Refusal | undefined {
  const h = req.headers;
  if (req.via === undefined || req.via.length === 0) return { status: 400, reason: 'Missing Via' };
  for (const name of SINGLE) {
    const n = h.count(name);
    // Max-Forwards may be absent in RFC 2543 requests (RFC 4475 inv2543); never twice.
    if (n > 1 || (n === 0 && name !== 'max-forwards'))
      return { status: 400, reason: `Missing or repeated ${name} header` };
  }
  if (h.count('content-length') > 1) {
    const cls = h.getAll('content-length');
    if (cls.some((v) => v.trim() !== cls[0]!.trim())) return { status: 400, reason: 'Conflicting Content-Length' };
  }
  if (req.method === 'ACK' || req.method === 'CANCEL') return undefined;
  if (!policy.allow.has(req.method)) {
    const allow: [string, string] = ['Allow', [...policy.allow].join(', ')];
    return { status: KNOWN_METHODS.has(req.method) ? 405 : 501, headers: [allow] };
  }
  const scheme = req.requestUri?.scheme;
  if (scheme !== 'sip' && scheme !== 'sips' && scheme !== 'tel') return { status: 416 };
  const unsupported = h.list('require').filter((t) => !policy.supported.has(t.toLowerCase()));
  if (unsupported.length > 0) return { status: 420, headers: [['Unsupported', unsupported.join(', ')]] };
  if (req.body.length > 0) {
    const type = mediaType(req.contentType) ?? 'application/sdp';
    if (!policy.accept.has(type)) return { status: 415, headers: [['Accept', [...policy.accept].join(', ')]] };
    if (req.method === 'INVITE' && h.has('accept') && !accepts(h.getAll('accept'), type)) {
      // An offer whose answer the caller cannot accept (RFC 4475 sdp01).
      return { status: 406, headers: [['Warning', `399 - "cannot answer with ${type}"`]] };
    }
  }
  return undefined;
}

function accepts(accept: readonly string[], type: string): boolean {
  const major = `${type.slice(0, type.indexOf('/'))}/*`;
  for (const line of accept) {
    for (const el of splitList(line)) {
      const t = mediaType(el);
      if (t === type || t === '*/*' || t === major) return true;
    }
  }
  return false;
}

/**
 * Checks on a response at a UAC (RFC 3261 8.1.3.3): exactly one Via (a response
 * with more is misrouted and discarded, RFC 4475 bcast) and the headers that
 * match it to a transaction.
 */
export function responseAcceptable(res: SipResponse): boolean {
  return (
    res.via?.length === 1 &&
    res.headers.count('cseq') === 1 &&
    res.headers.count('call-id') === 1 &&
    res.headers.count('from') === 1 &&
    res.headers.count('to') === 1 &&
    res.cseq !== undefined
  );
}
