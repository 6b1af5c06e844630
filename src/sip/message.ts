import { splitList } from './grammar.js';
import {
  type CSeq,
  type NameAddr,
  parseCSeq,
  parseDecimal,
  parseNameAddr,
  parseVia,
  SipHeaders,
  type Via,
} from './headers.js';
import { parseUri, type SipUri } from './uri.js';

const EMPTY = Buffer.alloc(0);

/**
 * Parsed views of the headers every layer needs, computed on first use and
 * cached. A message is treated as immutable once built or parsed: builders
 * produce complete header sets, so the caches never go stale.
 */
abstract class SipMessageBase {
  readonly headers: SipHeaders;
  #body: Buffer;
  #via?: Via[] | null;
  #from?: NameAddr | null;
  #to?: NameAddr | null;
  #cseq?: CSeq | null;
  #contact?: NameAddr[] | null;

  constructor(headers: SipHeaders, body: Buffer | undefined) {
    this.headers = headers;
    this.#body = body ?? EMPTY;
  }

  get body(): Buffer {
    return this.#body;
  }

  /** For the parser only: the body is framed after the headers are checked. */
  setBody(body: Buffer): void {
    this.#body = body;
  }

  /** Via values, topmost first; undefined when a value is malformed. */
  get via(): Via[] | undefined {
    if (this.#via === undefined) {
      const h = this.headers;
      const first = h.get('via');
      // One Via on one line is the usual case: no list to make or split.
      if (first !== undefined && h.count('via') === 1 && first.indexOf(',') < 0) {
        const v = parseVia(first.trim());
        this.#via = v === undefined ? null : [v];
        return v === undefined ? undefined : this.#via!;
      }
      const out: Via[] = [];
      for (const line of h.getAll('via')) {
        for (const el of splitList(line)) {
          const v = parseVia(el);
          if (v === undefined) {
            this.#via = null;
            return undefined;
          }
          out.push(v);
        }
      }
      this.#via = out;
    }
    return this.#via ?? undefined;
  }

  get topVia(): Via | undefined {
    return this.via?.[0];
  }

  get from(): NameAddr | undefined {
    if (this.#from === undefined) {
      const v = this.headers.get('from');
      this.#from = (v === undefined ? undefined : parseNameAddr(v)) ?? null;
    }
    return this.#from ?? undefined;
  }

  get to(): NameAddr | undefined {
    if (this.#to === undefined) {
      const v = this.headers.get('to');
      this.#to = (v === undefined ? undefined : parseNameAddr(v)) ?? null;
    }
    return this.#to ?? undefined;
  }

  get callId(): string | undefined {
    return this.headers.get('call-id');
  }

  get cseq(): CSeq | undefined {
    if (this.#cseq === undefined) {
      const v = this.headers.get('cseq');
      this.#cseq = (v === undefined ? undefined : parseCSeq(v)) ?? null;
    }
    return this.#cseq ?? undefined;
  }

  /** Contact values; undefined when one is malformed; `*` is not a name-addr and yields []. */
  get contact(): NameAddr[] | undefined {
    if (this.#contact === undefined) {
      const h = this.headers;
      const first = h.get('contact');
      // One Contact on one line is the usual case: no list to make or split.
      if (first !== undefined && h.count('contact') === 1 && first.indexOf(',') < 0) {
        const one = first.trim();
        const n = one === '*' ? undefined : parseNameAddr(one);
        this.#contact = one === '*' ? [] : n === undefined ? null : [n];
        return this.#contact ?? undefined;
      }
      const out: NameAddr[] = [];
      for (const line of h.getAll('contact')) {
        if (line.trim() === '*') continue;
        for (const el of splitList(line)) {
          const n = parseNameAddr(el);
          if (n === undefined) {
            this.#contact = null;
            return undefined;
          }
          out.push(n);
        }
      }
      this.#contact = out;
    }
    return this.#contact ?? undefined;
  }

  /** Route-like header (Route, Record-Route) values as name-addrs; undefined if malformed. */
  routes(name: 'route' | 'record-route'): NameAddr[] | undefined {
    const out: NameAddr[] = [];
    for (const el of this.headers.list(name)) {
      const n = parseNameAddr(el);
      if (n === undefined) return undefined;
      out.push(n);
    }
    return out;
  }

  get contentType(): string | undefined {
    return this.headers.get('content-type');
  }

  /** Parse an Expires-like header as seconds. */
  seconds(name: string): number | undefined {
    const v = this.headers.get(name);
    return v === undefined ? undefined : parseDecimal(v, 0xffffffff);
  }

  abstract startLine(): string;
}

export class SipRequest extends SipMessageBase {
  readonly kind = 'request' as const;
  readonly method: string;
  /** Request-URI as text. */
  readonly uri: string;
  #ruri?: SipUri | null;

  constructor(method: string, uri: string, headers: SipHeaders, body?: Buffer) {
    super(headers, body);
    this.method = method;
    this.uri = uri;
  }

  get requestUri(): SipUri | undefined {
    if (this.#ruri === undefined) this.#ruri = parseUri(this.uri) ?? null;
    return this.#ruri ?? undefined;
  }

  startLine(): string {
    return `${this.method} ${this.uri} SIP/2.0`;
  }
}

export class SipResponse extends SipMessageBase {
  readonly kind = 'response' as const;
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, headers: SipHeaders, body?: Buffer) {
    super(headers, body);
    this.status = status;
    this.reason = reason;
  }

  startLine(): string {
    return `SIP/2.0 ${this.status} ${this.reason}`;
  }
}

export type SipMessage = SipRequest | SipResponse;

/**
 * Serialize a message. Content-Length always states the body's length in
 * bytes (RFC 3261 20.14), whatever the headers say.
 */
export function serialize(msg: SipMessage): Buffer {
  const head = serializeHead(msg);
  if (msg.body.length === 0) return Buffer.from(head, 'utf8');
  const hlen = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(hlen + msg.body.length);
  out.write(head, 0, 'utf8');
  msg.body.copy(out, hlen);
  return out;
}

/** The start line and header section up to the empty line; the whole message when the body is empty. */
export function serializeHead(msg: SipMessage): string {
  let head = `${msg.startLine()}\r\n`;
  msg.headers.forEachLine((name, value) => {
    if (name.length !== 14 || name.toLowerCase() !== 'content-length') head += `${name}: ${value}\r\n`;
  });
  return `${head}Content-Length: ${msg.body.length}\r\n\r\n`;
}

/** Reason phrases of RFC 3261 21 (and the extensions we use). */
export const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  182: 'Queued',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  422: 'Session Interval Too Small',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  489: 'Bad Event',
  491: 'Request Pending',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  505: 'Version Not Supported',
  603: 'Decline',
};

export function reasonFor(status: number): string {
  return REASONS[status] ?? (status < 200 ? 'Session Progress' : status < 300 ? 'OK' : 'Error');
}

/**
 * A response to `req` (RFC 3261 8.2.6): Via, From, To, Call-ID and CSeq are
 * copied, and a To tag is added when `toTag` is given and the To has none.
 */
export function buildResponse(
  req: SipRequest,
  status: number,
  reason?: string,
  opts: { toTag?: string; headers?: SipHeaders; body?: Buffer } = {},
): SipResponse {
  const h = new SipHeaders();
  const src = req.headers;
  if (src.count('via') === 1) h.set('Via', src.get('via')!);
  else if (src.has('via')) h.set('Via', src.getAll('via'));
  const from = src.get('from');
  if (from !== undefined) h.set('From', from);
  const to = src.get('to');
  if (to !== undefined) {
    h.set('To', opts.toTag !== undefined && req.to?.params.tag == null ? `${to};tag=${opts.toTag}` : to);
  }
  const callId = src.get('call-id');
  if (callId !== undefined) h.set('Call-ID', callId);
  const cseq = src.get('cseq');
  if (cseq !== undefined) h.set('CSeq', cseq);
  if (opts.headers !== undefined) h.appendAll(opts.headers);
  return new SipResponse(status, reason ?? reasonFor(status), h, opts.body);
}
