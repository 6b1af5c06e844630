import { SipError } from './errors.js';
import { isToken } from './grammar.js';
import { parseCSeq, parseDecimal, parseNameAddr, SipHeaders } from './headers.js';
import { type SipMessage, SipRequest, SipResponse } from './message.js';

/** Default maximum message size in bytes: the largest UDP payload over IPv4 loopback. */
export const DEFAULT_MAX_MESSAGE_SIZE = 65_507;
/**
 * Default maximum size of a message over TCP or TLS, where no datagram bounds
 * it (RFC 3261 18.3). A national MCU's full conference state (RFC 4575, about
 * 370 bytes per participant) fits; a connection still cannot make us buffer
 * more than this for one message.
 */
export const DEFAULT_MAX_STREAM_MESSAGE_SIZE = 2 * 1_048_576;

export type ParseOutcome =
  | { readonly kind: 'message'; readonly message: SipMessage; readonly end: number }
  | { readonly kind: 'incomplete' }
  | {
      readonly kind: 'error';
      readonly error: SipError;
      /** The request as far as it was understood, so that it can still be answered (400, 505). */
      readonly request?: SipRequest;
      /** The status to answer a request with. */
      readonly status: number;
    };

const CRLFCRLF = Buffer.from('\r\n\r\n');
const DATE_RE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

function fail(
  message: string,
  request?: SipRequest,
  status = 400,
  code: 'SIP_ERR_PARSE' | 'SIP_ERR_VERSION' | 'SIP_ERR_TOO_LARGE' = 'SIP_ERR_PARSE',
): ParseOutcome {
  return { kind: 'error', error: new SipError(code, message), request, status };
}

/**
 * Parse one message from `buf`.
 *
 * Datagram mode (RFC 3261 18.3): the datagram is the whole message; a missing
 * Content-Length means the body runs to its end (RFC 4475 inv2543), bytes
 * beyond Content-Length are ignored (dblreq) and a Content-Length beyond the
 * end is an error (clerr); the header section may end at the end of the
 * datagram (baddn). Stream mode: Content-Length frames the message and
 * 'incomplete' asks for more bytes. Never throws.
 */
export function parseMessage(
  buf: Buffer,
  datagram: boolean,
  maxSize = datagram ? DEFAULT_MAX_MESSAGE_SIZE : DEFAULT_MAX_STREAM_MESSAGE_SIZE,
): ParseOutcome {
  let start = 0;
  // Leading CRLFs are keep-alives or stray line ends (RFC 3261 7.5): skip them.
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  if (datagram && buf.length > maxSize)
    return fail(`message of ${buf.length} bytes exceeds ${maxSize}`, undefined, 513, 'SIP_ERR_TOO_LARGE');
  let hdrEnd = buf.indexOf(CRLFCRLF, start);
  let bodyStart: number;
  if (hdrEnd < 0) {
    if (!datagram) {
      if (buf.length - start > maxSize)
        return fail(`header section exceeds ${maxSize} bytes`, undefined, 513, 'SIP_ERR_TOO_LARGE');
      return { kind: 'incomplete' };
    }
    hdrEnd = buf.length;
    bodyStart = buf.length;
  } else bodyStart = hdrEnd + 4;
  if (start >= hdrEnd) return datagram ? fail('empty message') : { kind: 'incomplete' };

  const text = buf.toString('utf8', start, hdrEnd);
  const lines = text.split('\r\n');
  const first = lines[0]!;
  let msg: SipMessage;
  if (first.startsWith('SIP/')) {
    const sp1 = first.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : first.indexOf(' ', sp1 + 1);
    const version = sp1 < 0 ? first : first.slice(0, sp1);
    if (version.toUpperCase() !== 'SIP/2.0')
      return fail(`unsupported version ${version}`, undefined, 505, 'SIP_ERR_VERSION');
    const code = sp2 < 0 ? first.slice(sp1 + 1) : first.slice(sp1 + 1, sp2);
    if (!/^[1-6]\d\d$/.test(code)) return fail(`bad status code ${code.slice(0, 16)}`);
    msg = new SipResponse(Number(code), sp2 < 0 ? '' : first.slice(sp2 + 1), new SipHeaders());
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF, single spaces (RFC 4475 lwsstart, trws, lwsruri).
    const parts = first.split(' ');
    if (parts.length !== 3) {
      // Still answer 400 if the headers allow it (RFC 4475 lwsruri, lwsstart, trws).
      const h = new SipHeaders();
      const ok = isToken(parts[0]!) && parseHeaderLines(lines, h) === undefined;
      return fail('malformed request line', ok ? new SipRequest(parts[0]!, '', h) : undefined);
    }
    const [method, uri, version] = parts as [string, string, string];
    if (!isToken(method)) return fail('malformed method');
    // One object both ways: the message, or the request as far as understood when it must be refused.
    const req = new SipRequest(method, uri, new SipHeaders());
    if (!/^SIP\/\d+\.\d+$/i.test(version)) return fail('malformed version');
    const r = parseHeaderLines(lines, req.headers);
    if (version.toUpperCase() !== 'SIP/2.0')
      return fail(`unsupported version ${version}`, r ? undefined : req, 505, 'SIP_ERR_VERSION');
    if (r !== undefined) return fail(r, req);
    // Parsed once here; the UAS checks reuse the cached value.
    const ruri = req.requestUri;
    if (ruri === undefined) return fail('malformed Request-URI', req);
    // Headers are not allowed in a Request-URI (RFC 3261 19.1.1 table 1; RFC 4475 escruri).
    if (ruri.headers !== undefined) return fail('Request-URI carries headers', req);
    const err = checkHeaders(req);
    if (err !== undefined) return fail(err, req);
    return frame(buf, req, bodyStart, datagram, maxSize, req);
  }
  const r = parseHeaderLines(lines, msg.headers);
  if (r !== undefined) return fail(r);
  const err = checkHeaders(msg);
  if (err !== undefined) return fail(err);
  return frame(buf, msg, bodyStart, datagram, maxSize, undefined);
}

/** Header lines with folding (RFC 3261 7.3.1: a line starting with SP or HTAB continues the previous one). */
function parseHeaderLines(lines: string[], into: SipHeaders): string | undefined {
  let name: string | undefined;
  let value = '';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    // A datagram whose header section ends without the empty line (RFC 4475 baddn) leaves one empty line.
    if (line.length === 0 && i === lines.length - 1) break;
    const c = line.charCodeAt(0);
    if (c === 32 || c === 9) {
      if (name === undefined) return 'continuation line before any header';
      value += ` ${line.trim()}`;
      continue;
    }
    if (name !== undefined) into.append(name, value.trim());
    const colon = line.indexOf(':');
    if (colon <= 0) return 'header line without a name or colon';
    name = line.slice(0, colon).trimEnd();
    if (!isToken(name)) return 'malformed header name';
    value = line.slice(colon + 1);
  }
  if (name !== undefined) into.append(name, value.trim());
  return undefined;
}

/** Syntax of the headers every layer relies on; their presence is checked later (RFC 4475 insuf). */
function checkHeaders(msg: SipMessage): string | undefined {
  const h = msg.headers;
  // The message's own getters parse (and cache) the first values; extra lines are checked apart (RFC 4475 multi01).
  if (h.has('via') && msg.via === undefined) return 'malformed Via';
  if (h.has('from') && msg.from === undefined) return 'malformed from';
  if (h.has('to') && msg.to === undefined) return 'malformed to';
  if (h.has('cseq') && msg.cseq === undefined) return 'malformed CSeq';
  for (const name of ['from', 'to'] as const) {
    const all = h.getAll(name);
    for (let i = 1; i < all.length; i++) if (parseNameAddr(all[i]!) === undefined) return `malformed ${name}`;
  }
  const cseqs = h.getAll('cseq');
  for (let i = 1; i < cseqs.length; i++) if (parseCSeq(cseqs[i]!) === undefined) return 'malformed CSeq';
  for (const v of h.getAll('call-id')) if (v.length === 0 || /\s/.test(v)) return 'malformed Call-ID';
  // Max-Forwards is conventionally 0..255 (RFC 3261 20.22; RFC 4475 scalar02).
  for (const v of h.getAll('max-forwards')) if (parseDecimal(v, 255) === undefined) return 'malformed Max-Forwards';
  if (h.has('contact') && msg.contact === undefined) return 'malformed Contact';
  for (const name of ['route', 'record-route'] as const)
    if (h.has(name) && msg.routes(name) === undefined) return `malformed ${name}`;
  const date = h.get('date');
  if (date !== undefined && !DATE_RE.test(date)) return 'malformed Date (RFC 3261 20.17 requires GMT)';
  if (msg.kind === 'request' && msg.cseq !== undefined && h.count('cseq') === 1 && msg.cseq.method !== msg.method)
    return 'CSeq method does not match the request method';
  return undefined;
}

function frame(
  buf: Buffer,
  msg: SipMessage,
  bodyStart: number,
  datagram: boolean,
  maxSize: number,
  partial: SipRequest | undefined,
): ParseOutcome {
  const cls = msg.headers.getAll('content-length');
  let length: number | undefined;
  for (const v of cls) {
    const n = parseDecimal(v, 0xffffffff);
    if (n === undefined) return fail('malformed Content-Length', partial);
    if (length !== undefined && n !== length && !datagram) return fail('conflicting Content-Length values');
    length ??= n;
  }
  if (length === undefined) length = datagram ? buf.length - bodyStart : 0;
  if (length > maxSize) return fail(`body of ${length} bytes exceeds ${maxSize}`, partial, 513, 'SIP_ERR_TOO_LARGE');
  const end = bodyStart + length;
  if (end > buf.length) {
    if (datagram) return fail('Content-Length beyond the end of the datagram', partial);
    return { kind: 'incomplete' };
  }
  if (length > 0) msg.setBody(datagram ? buf.subarray(bodyStart, end) : Buffer.from(buf.subarray(bodyStart, end)));
  return { kind: 'message', message: msg, end };
}

/**
 * Frames messages out of a byte stream (TCP, TLS) by Content-Length
 * (RFC 3261 18.3). A framing error is fatal for the connection: the caller
 * must close it, since where the next message starts is unknown
 * (RFC 4475 ncl, mcl01).
 */
export class StreamFramer {
  #buf: Buffer = Buffer.alloc(0);
  readonly #maxSize: number;

  constructor(maxSize = DEFAULT_MAX_STREAM_MESSAGE_SIZE) {
    this.#maxSize = maxSize;
  }

  /** Bytes held waiting for the rest of a message. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** Add bytes; returns the complete messages and at most one error (after which the stream is unusable). */
  push(chunk: Buffer): Array<Exclude<ParseOutcome, { kind: 'incomplete' }>> {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Array<Exclude<ParseOutcome, { kind: 'incomplete' }>> = [];
    for (;;) {
      let s = 0;
      while (s < this.#buf.length && (this.#buf[s] === 13 || this.#buf[s] === 10)) s++;
      if (s > 0) this.#buf = this.#buf.subarray(s);
      if (this.#buf.length === 0) break;
      const r = parseMessage(this.#buf, false, this.#maxSize);
      if (r.kind === 'incomplete') break;
      out.push(r);
      if (r.kind === 'error') {
        this.#buf = Buffer.alloc(0);
        break;
      }
      this.#buf = this.#buf.subarray(r.end);
    }
    return out;
  }
}
