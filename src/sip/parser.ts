import { SipError } from './errors.js';
import { isToken } from './grammar.js';
import { type KnownName, knownHeaderName, parseCSeq, parseDecimal, parseNameAddr, SipHeaders } from './headers.js';
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

/**
 * Default limit of a header section (start line and header fields) over TCP
 * or TLS, in bytes. A stream gives no datagram bound, so a peer that never
 * ends its header section would otherwise make us buffer up to the message
 * limit; 64 KiB is far beyond any header an MCU sends (a few hundred bytes to
 * a few KiB) and is checked before any body byte is buffered.
 */
export const DEFAULT_MAX_HEADER_SIZE = 65_536;

type ParseError = {
  readonly kind: 'error';
  readonly error: SipError;
  /** The request as far as it was understood, so that it can still be answered (400, 505). */
  readonly request?: SipRequest;
  /** The status to answer a request with. */
  readonly status: number;
};

export type ParseOutcome =
  | { readonly kind: 'message'; readonly message: SipMessage; readonly end: number }
  | { readonly kind: 'incomplete' }
  | ParseError;

/** What a stream framer yields: whole messages, and at most one fatal error. */
export type StreamOutcome = { readonly kind: 'message'; readonly message: SipMessage } | ParseError;

/** A parsed header section: the message without its body, and its Content-Length (undefined when absent). */
interface Head {
  readonly kind: 'head';
  readonly message: SipMessage;
  readonly length: number | undefined;
  /** The request when it can still be answered should its body be refused. */
  readonly partial: SipRequest | undefined;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const DATE_RE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

function fail(
  message: string,
  request?: SipRequest,
  status = 400,
  code: 'SIP_ERR_PARSE' | 'SIP_ERR_VERSION' | 'SIP_ERR_TOO_LARGE' = 'SIP_ERR_PARSE',
): ParseError {
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
 * 'incomplete' asks for more bytes (StreamFramer does this incrementally).
 * Never throws.
 */
export function parseMessage(
  buf: Buffer,
  datagram: boolean,
  maxSize = datagram ? DEFAULT_MAX_MESSAGE_SIZE : DEFAULT_MAX_STREAM_MESSAGE_SIZE,
  maxHeaderSize = DEFAULT_MAX_HEADER_SIZE,
): ParseOutcome {
  let start = 0;
  // Leading CRLFs are keep-alives or stray line ends (RFC 3261 7.5): skip them.
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  if (datagram && buf.length > maxSize)
    return fail(`message of ${buf.length} bytes exceeds ${maxSize}`, undefined, 513, 'SIP_ERR_TOO_LARGE');
  let hdrEnd = buf.indexOf(CRLFCRLF, start);
  let bodyStart: number;
  if (hdrEnd < 0) {
    if (!datagram) return buf.length - start > maxHeaderSize ? headerTooLarge(maxHeaderSize) : { kind: 'incomplete' };
    hdrEnd = buf.length;
    bodyStart = buf.length;
  } else bodyStart = hdrEnd + 4;
  if (start >= hdrEnd) return datagram ? fail('empty message') : { kind: 'incomplete' };
  if (!datagram && hdrEnd - start > maxHeaderSize) return headerTooLarge(maxHeaderSize);
  const head = parseHead(buf, start, hdrEnd, datagram);
  if (head.kind === 'error') return head;
  const msg = head.message;
  const length = head.length ?? (datagram ? buf.length - bodyStart : 0);
  if (length > maxSize)
    return fail(`body of ${length} bytes exceeds ${maxSize}`, head.partial, 513, 'SIP_ERR_TOO_LARGE');
  const end = bodyStart + length;
  if (end > buf.length) {
    if (datagram) return fail('Content-Length beyond the end of the datagram', head.partial);
    return { kind: 'incomplete' };
  }
  if (length > 0) msg.setBody(datagram ? buf.subarray(bodyStart, end) : Buffer.from(buf.subarray(bodyStart, end)));
  return { kind: 'message', message: msg, end };
}

function headerTooLarge(max: number): ParseError {
  // Nothing was parsed, so nothing can be answered: the connection is closed.
  return fail(`header section exceeds ${max} bytes`, undefined, 513, 'SIP_ERR_TOO_LARGE');
}

/** Start line and header fields in buf[start, hdrEnd), with the checks every layer relies on. */
function parseHead(buf: Buffer, start: number, hdrEnd: number, datagram: boolean): Head | ParseError {
  const text = buf.toString('utf8', start, hdrEnd);
  let firstEnd = text.indexOf('\r\n');
  if (firstEnd < 0) firstEnd = text.length;
  const first = text.slice(0, firstEnd);
  const lines = firstEnd + 2;
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
    // Exactly two spaces: three parts, none empty but the Request-URI's (as split(' ') would give).
    const sp1 = first.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : first.indexOf(' ', sp1 + 1);
    if (sp2 < 0 || first.indexOf(' ', sp2 + 1) >= 0) {
      // Still answer 400 if the headers allow it (RFC 4475 lwsruri, lwsstart, trws).
      const m = sp1 < 0 ? first : first.slice(0, sp1);
      const h = new SipHeaders();
      const ok = isToken(m) && parseHeaderLines(text, lines, h) === undefined;
      return fail('malformed request line', ok ? new SipRequest(m, '', h) : undefined);
    }
    const method = first.slice(0, sp1);
    const uri = first.slice(sp1 + 1, sp2);
    const version = first.slice(sp2 + 1);
    if (!isToken(method)) return fail('malformed method');
    // One object both ways: the message, or the request as far as understood when it must be refused.
    const req = new SipRequest(method, uri, new SipHeaders());
    const v2 = version === 'SIP/2.0';
    if (!v2 && !/^SIP\/\d+\.\d+$/i.test(version)) return fail('malformed version');
    const r = parseHeaderLines(text, lines, req.headers);
    if (!v2 && version.toUpperCase() !== 'SIP/2.0')
      return fail(`unsupported version ${version}`, r ? undefined : req, 505, 'SIP_ERR_VERSION');
    if (r !== undefined) return fail(r, req);
    // Parsed once here; the UAS checks reuse the cached value.
    const ruri = req.requestUri;
    if (ruri === undefined) return fail('malformed Request-URI', req);
    // Headers are not allowed in a Request-URI (RFC 3261 19.1.1 table 1; RFC 4475 escruri).
    if (ruri.headers !== undefined) return fail('Request-URI carries headers', req);
    const err = checkHeaders(req);
    if (err !== undefined) return fail(err, req);
    return contentLength(req, datagram, req);
  }
  const r = parseHeaderLines(text, lines, msg.headers);
  if (r !== undefined) return fail(r);
  const err = checkHeaders(msg);
  if (err !== undefined) return fail(err);
  return contentLength(msg, datagram, undefined);
}

/**
 * The header lines of `text` from index `from`, with folding (RFC 3261 7.3.1:
 * a line starting with SP or HTAB continues the previous one). Scanned by
 * index: one slice for a name and one for a value, no array of lines.
 */
function parseHeaderLines(text: string, from: number, into: SipHeaders): string | undefined {
  const n = text.length;
  if (from > n) return undefined;
  let name: string | undefined;
  let known: KnownName | undefined;
  let vs = 0; // the pending value is text[vs, ve) ...
  let ve = 0;
  let folded: string | undefined; // ... or this, once a continuation line was added
  let pos = from;
  for (;;) {
    let eol = text.indexOf('\r\n', pos);
    const last = eol < 0;
    if (last) eol = n;
    // A datagram whose header section ends without the empty line (RFC 4475 baddn) leaves one empty line.
    if (last && eol === pos) break;
    const c = text.charCodeAt(pos);
    if (c === 32 || c === 9) {
      if (name === undefined) return 'continuation line before any header';
      folded = `${folded ?? text.slice(vs, ve)} ${trimmed(text, pos, eol)}`;
    } else {
      if (name !== undefined) add(into, name, known, folded === undefined ? trimmed(text, vs, ve) : folded.trim());
      const colon = text.indexOf(':', pos);
      if (colon <= pos || colon >= eol) return 'header line without a name or colon';
      let ne = colon;
      // HCOLON = *( SP / HTAB ) ":" SWS (RFC 3261 25.1)
      while (ne > pos && (text.charCodeAt(ne - 1) === 32 || text.charCodeAt(ne - 1) === 9)) ne--;
      known = knownHeaderName(text, pos, ne);
      if (known !== undefined) name = known.name;
      else {
        name = text.slice(pos, ne);
        if (!isToken(name)) return 'malformed header name';
      }
      vs = colon + 1;
      ve = eol;
      folded = undefined;
    }
    if (last) break;
    pos = eol + 2;
  }
  if (name !== undefined) add(into, name, known, folded === undefined ? trimmed(text, vs, ve) : folded.trim());
  return undefined;
}

/** A known name needs no key computed (the common names of every message). */
function add(into: SipHeaders, name: string, known: KnownName | undefined, value: string): void {
  if (known !== undefined) into.appendKey(known.key, known.name, value);
  else into.append(name, value);
}

/** text[from, to) without leading and trailing whitespace, as String.prototype.trim would leave it. */
function trimmed(text: string, from: number, to: number): string {
  while (from < to && isAsciiSpace(text.charCodeAt(from))) from++;
  while (to > from && isAsciiSpace(text.charCodeAt(to - 1))) to--;
  const s = text.slice(from, to);
  // Non-ASCII at either end may be Unicode whitespace: let trim() decide (rare).
  return s.length > 0 && (s.charCodeAt(0) >= 128 || s.charCodeAt(s.length - 1) >= 128) ? s.trim() : s;
}

function isAsciiSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** Syntax of the headers every layer relies on; their presence is checked later (RFC 4475 insuf). */
function checkHeaders(msg: SipMessage): string | undefined {
  const h = msg.headers;
  // The message's own getters parse (and cache) the first values; extra lines are checked apart (RFC 4475 multi01).
  // A getter gives undefined for a header absent or malformed: asked first, since it is usually present and well formed.
  if (msg.via === undefined && h.has('via')) return 'malformed Via';
  if (msg.from === undefined && h.has('from')) return 'malformed from';
  if (msg.to === undefined && h.has('to')) return 'malformed to';
  if (msg.cseq === undefined && h.has('cseq')) return 'malformed CSeq';
  // Values past the first line are rare: read as a list only when present (getAll makes an array).
  for (const name of ['from', 'to'] as const) {
    if (h.count(name) < 2) continue;
    const all = h.getAll(name);
    for (let i = 1; i < all.length; i++) if (parseNameAddr(all[i]!) === undefined) return `malformed ${name}`;
  }
  if (h.count('cseq') > 1) {
    const cseqs = h.getAll('cseq');
    for (let i = 1; i < cseqs.length; i++) if (parseCSeq(cseqs[i]!) === undefined) return 'malformed CSeq';
  }
  const callId = h.get('call-id');
  if (callId !== undefined) {
    if (!callIdOk(callId)) return 'malformed Call-ID';
    if (h.count('call-id') > 1) for (const v of h.getAll('call-id')) if (!callIdOk(v)) return 'malformed Call-ID';
  }
  // Max-Forwards is conventionally 0..255 (RFC 3261 20.22; RFC 4475 scalar02).
  const mf = h.get('max-forwards');
  if (mf !== undefined) {
    if (parseDecimal(mf, 255) === undefined) return 'malformed Max-Forwards';
    if (h.count('max-forwards') > 1)
      for (const v of h.getAll('max-forwards')) if (parseDecimal(v, 255) === undefined) return 'malformed Max-Forwards';
  }
  if (h.has('contact') && msg.contact === undefined) return 'malformed Contact';
  for (const name of ['route', 'record-route'] as const)
    if (h.has(name) && msg.routes(name) === undefined) return `malformed ${name}`;
  const date = h.get('date');
  if (date !== undefined && !DATE_RE.test(date)) return 'malformed Date (RFC 3261 20.17 requires GMT)';
  if (msg.kind === 'request' && msg.cseq !== undefined && h.count('cseq') === 1 && msg.cseq.method !== msg.method)
    return 'CSeq method does not match the request method';
  return undefined;
}

function callIdOk(v: string): boolean {
  return v.length > 0 && !/\s/.test(v);
}

function contentLength(msg: SipMessage, datagram: boolean, partial: SipRequest | undefined): Head | ParseError {
  const h = msg.headers;
  const first = h.get('content-length');
  if (first === undefined) return { kind: 'head', message: msg, length: undefined, partial };
  const length = parseDecimal(first, 0xffffffff);
  if (length === undefined) return fail('malformed Content-Length', partial);
  if (h.count('content-length') > 1)
    for (const v of h.getAll('content-length')) {
      const n = parseDecimal(v, 0xffffffff);
      if (n === undefined) return fail('malformed Content-Length', partial);
      if (n !== length && !datagram) return fail('conflicting Content-Length values');
    }
  return { kind: 'head', message: msg, length, partial };
}

/** Where a stream framer stands in the message it is assembling. */
interface PendingBody {
  readonly message: SipMessage;
  /** Offsets into the framer's arena. */
  bodyStart: number;
  end: number;
}

const EMPTY = Buffer.alloc(0);
const MIN_ARENA = 4_096; // bytes: the first copy of a split message; doubled as bytes arrive
const SHRINK_ABOVE = 65_536; // bytes: a larger arena mostly consumed is copied down (see #compact)

/**
 * Frames messages out of a byte stream (TCP, TLS) by Content-Length
 * (RFC 3261 18.3), with work linear in the bytes received: the end of the
 * header section is searched from where the last search stopped, the header
 * is parsed once, then only the body's byte count is awaited. A message that
 * arrives whole in one chunk is parsed in place; a split one is assembled in
 * an arena that grows by doubling as bytes arrive (never to what a
 * Content-Length merely claims). The header section is bounded apart from
 * the message (`maxHeaderSize`) and checked before any body byte is kept.
 * A framing error is fatal for the connection: the caller must close it,
 * since where the next message starts is unknown (RFC 4475 ncl, mcl01); the
 * framer ignores whatever arrives after it.
 */
export class StreamFramer {
  /** Unconsumed bytes are arena[start, end); the arena is a borrowed chunk unless owned. */
  #arena: Buffer = EMPTY;
  #owned = false;
  #start = 0;
  #end = 0;
  /** Where the search for the end of the header section resumes. */
  #scan = 0;
  #pending?: PendingBody;
  #failed = false;
  readonly #maxSize: number;
  readonly #maxHeader: number;

  constructor(maxSize = DEFAULT_MAX_STREAM_MESSAGE_SIZE, maxHeaderSize = DEFAULT_MAX_HEADER_SIZE) {
    this.#maxSize = maxSize;
    this.#maxHeader = maxHeaderSize;
  }

  /** Bytes held waiting for the rest of a message. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Add bytes; returns the complete messages and at most one error (after which the stream is unusable). */
  push(chunk: Buffer): StreamOutcome[] {
    const out: StreamOutcome[] = [];
    if (this.#failed || chunk.length === 0) return out;
    this.#append(chunk);
    for (;;) {
      let p = this.#pending;
      if (p === undefined) {
        const a = this.#arena;
        // CRLFs between messages are keep-alives (RFC 5626 3.5.1) or stray line ends (RFC 3261 7.5).
        while (this.#start < this.#end && (a[this.#start] === 13 || a[this.#start] === 10)) this.#start++;
        if (this.#start === this.#end) {
          this.#release();
          break;
        }
        if (this.#scan < this.#start) this.#scan = this.#start;
        const view = this.#end === a.length ? a : a.subarray(0, this.#end);
        const hdrEnd = view.indexOf(CRLFCRLF, this.#scan);
        if (hdrEnd < 0) {
          if (this.#end - this.#start > this.#maxHeader) return this.#fail(out, headerTooLarge(this.#maxHeader));
          // The terminator may straddle this chunk and the next.
          this.#scan = Math.max(this.#start, this.#end - 3);
          break;
        }
        if (hdrEnd - this.#start > this.#maxHeader) return this.#fail(out, headerTooLarge(this.#maxHeader));
        const head = parseHead(a, this.#start, hdrEnd, false);
        if (head.kind === 'error') return this.#fail(out, head);
        const length = head.length ?? 0;
        if (length > this.#maxSize)
          return this.#fail(
            out,
            fail(`body of ${length} bytes exceeds ${this.#maxSize}`, head.partial, 513, 'SIP_ERR_TOO_LARGE'),
          );
        p = { message: head.message, bodyStart: hdrEnd + 4, end: hdrEnd + 4 + length };
        this.#pending = p;
      }
      if (this.#end < p.end) break;
      if (p.end > p.bodyStart) p.message.setBody(this.#body(p));
      out.push({ kind: 'message', message: p.message });
      this.#pending = undefined;
      this.#start = this.#scan = p.end;
    }
    this.#compact();
    return out;
  }

  /**
   * The body outlives the arena. An arena of ours is reused, so its bytes are copied; a chunk read in
   * place that holds this one message and owns its memory (a socket read: one allocation per read) is
   * not touched again, so a view of it pins nothing but this message. A chunk that holds several
   * messages is copied from, so that a kept body does not pin the others.
   */
  #body(p: PendingBody): Buffer {
    const a = this.#arena;
    const view = a.subarray(p.bodyStart, p.end);
    return !this.#owned &&
      this.#start === 0 &&
      p.end === a.length &&
      a.byteOffset === 0 &&
      a.buffer.byteLength === a.length
      ? view
      : Buffer.from(view);
  }

  #append(chunk: Buffer): void {
    const live = this.#end - this.#start;
    if (live === 0) {
      // Nothing pending: read the chunk in place.
      this.#arena = chunk;
      this.#owned = false;
      this.#start = this.#scan = 0;
      this.#end = chunk.length;
      return;
    }
    if (this.#owned && this.#end + chunk.length <= this.#arena.length) {
      chunk.copy(this.#arena, this.#end);
      this.#end += chunk.length;
      return;
    }
    const need = live + chunk.length;
    // Doubling keeps the copies linear; a known message end caps the growth.
    let size = Math.max(need, 2 * live, MIN_ARENA);
    const p = this.#pending;
    if (p !== undefined) size = Math.max(need, Math.min(size, p.end - this.#start));
    this.#move(size, live);
    chunk.copy(this.#arena, live);
    this.#end = need;
  }

  /** Copy the live bytes to the front of a new arena of `size` bytes, shifting every offset. */
  #move(size: number, live: number): void {
    const arena = Buffer.allocUnsafe(size);
    this.#arena.copy(arena, 0, this.#start, this.#start + live);
    const shift = this.#start;
    this.#scan -= shift;
    if (this.#pending !== undefined) {
      this.#pending.bodyStart -= shift;
      this.#pending.end -= shift;
    }
    this.#arena = arena;
    this.#owned = true;
    this.#start = 0;
    this.#end = live;
  }

  /**
   * Keep what a connection holds proportional to what is pending: a large
   * arena whose messages were consumed is copied down to its remainder (a
   * copy charged to the bytes that filled it, so the work stays linear).
   */
  #compact(): void {
    const live = this.#end - this.#start;
    if (live === 0) this.#release();
    else if (this.#owned && this.#arena.length > SHRINK_ABOVE && live * 8 < this.#arena.length)
      this.#move(Math.max(live, MIN_ARENA), live);
    else if (!this.#owned) {
      // A borrowed chunk may be a slice of a larger read buffer: keep only the remainder.
      this.#move(Math.max(2 * live, MIN_ARENA), live);
    }
  }

  #release(): void {
    this.#arena = EMPTY;
    this.#owned = false;
    this.#start = this.#end = this.#scan = 0;
  }

  #fail(out: StreamOutcome[], err: ParseError): StreamOutcome[] {
    out.push(err);
    this.#failed = true;
    this.#pending = undefined;
    this.#release();
    return out;
  }
}
