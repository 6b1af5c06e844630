import {
  detach,
  newParams,
  type Params,
  parseParams,
  scanQuoted,
  scanToken,
  skipWs,
  splitList,
  TOKEN,
} from './grammar.js';
import { parseUri, type SipUri } from './uri.js';

/** Compact header forms (RFC 3261 7.3.3, RFC 3515, RFC 4028, RFC 6665). */
const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event',
  r: 'refer-to',
  b: 'referred-by',
  u: 'allow-events',
  x: 'session-expires',
};

/** Canonical spelling used when we serialize a header we know. */
const CANONICAL: Record<string, string> = {
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  'www-authenticate': 'WWW-Authenticate',
  'min-se': 'Min-SE',
  rseq: 'RSeq',
  rack: 'RAck',
};

const KEY_CACHE_MAX = 512; // names: the few dozen SIP defines, spelled a few ways; beyond, computed each time
const keyCache = new Map<string, string>();

/**
 * Header names most messages carry, in their canonical spelling: the parser
 * recognises them in place (no slice of the name, no key computed), and a
 * message stores them spelled so.
 */
const KNOWN_NAMES = [
  'Via',
  'From',
  'To',
  'Call-ID',
  'CSeq',
  'Contact',
  'Max-Forwards',
  'Content-Length',
  'Content-Type',
  'Record-Route',
  'Route',
  'User-Agent',
  'Server',
  'Allow',
  'Supported',
  'Require',
  'Accept',
  'Expires',
  'Event',
  'Subscription-State',
  'Session-Expires',
  'Min-SE',
  'Authorization',
  'WWW-Authenticate',
  'Proxy-Authorization',
  'Proxy-Authenticate',
  'Refer-To',
  'Referred-By',
  'Allow-Events',
  'Content-Disposition',
  'Date',
  'Reason',
];
/** A known header name: its canonical spelling and its key (what `headerKey` gives). */
export interface KnownName {
  readonly name: string;
  readonly key: string;
}
const KNOWN_BY_LENGTH: KnownName[][] = [];
for (const name of KNOWN_NAMES) {
  const list = KNOWN_BY_LENGTH[name.length] ?? [];
  list.push({ name, key: name.toLowerCase() });
  KNOWN_BY_LENGTH[name.length] = list;
}

/** text[a, b) when it is one of KNOWN_NAMES, compared without regard to case. */
export function knownHeaderName(text: string, a: number, b: number): KnownName | undefined {
  const candidates = KNOWN_BY_LENGTH[b - a];
  if (candidates === undefined) return undefined;
  next: for (const known of candidates) {
    const n = known.name;
    for (let k = 0; k < n.length; k++) {
      const c = text.charCodeAt(a + k);
      const m = n.charCodeAt(k);
      if (c !== m && (c >= 65 && c <= 90 ? c + 32 : c >= 97 && c <= 122 ? c - 32 : -1) !== m) continue next;
    }
    return known;
  }
  return undefined;
}

/** Lowercase long form of a header name (cached: every message looks up the same names). */
export function headerKey(name: string): string {
  const hit = keyCache.get(name);
  if (hit !== undefined) return hit;
  const lower = name.toLowerCase();
  const key = lower.length === 1 ? (COMPACT[lower] ?? lower) : lower;
  if (keyCache.size < KEY_CACHE_MAX) keyCache.set(name, key);
  return key;
}

function canonicalName(key: string): string {
  const c = CANONICAL[key];
  if (c !== undefined) return c;
  return key.replace(/(^|-)([a-z])/g, (_m, d: string, ch: string) => d + ch.toUpperCase());
}

interface Entry {
  readonly key: string;
  name: string;
  /**
   * The line's value, or every line's value once there are several or once
   * `getAll` asked: most names have one line, and an array per line was a
   * third of what parsing a message allocated.
   */
  v: string | string[];
}

/** Past this many distinct names a message gets a Map index, so a flood of header names stays linear. */
const INDEX_ABOVE = 16;

/**
 * Header fields by case-insensitive name. Values are kept as the text of each
 * header line (after unfolding); `list()` splits comma-separated values.
 * The order of lines with the same name is kept, which is all SIP requires
 * (RFC 3261 7.3.1). Entries sit in an array searched linearly: a message has
 * a dozen names, and a Map per message (built and grown for each of the
 * millions of messages of a busy day) cost more than the search; a message
 * with more names than INDEX_ABOVE gets a Map index as well.
 */
export class SipHeaders {
  readonly #entries: Entry[] = [];
  #index?: Map<string, Entry>;

  #find(key: string): Entry | undefined {
    if (this.#index !== undefined) return this.#index.get(key);
    const es = this.#entries;
    for (let i = 0; i < es.length; i++) if (es[i]!.key === key) return es[i];
    return undefined;
  }

  #add(e: Entry, front = false): void {
    if (front) this.#entries.unshift(e);
    else this.#entries.push(e);
    if (this.#index !== undefined) this.#index.set(e.key, e);
    else if (this.#entries.length > INDEX_ABOVE) this.#index = new Map(this.#entries.map((x) => [x.key, x]));
  }

  /** First value of a header, or undefined. */
  get(name: string): string | undefined {
    const e = this.#find(headerKey(name));
    if (e === undefined) return undefined;
    return typeof e.v === 'string' ? e.v : e.v[0];
  }

  /** Every line's value of a header (not comma-split). */
  getAll(name: string): readonly string[] {
    const e = this.#find(headerKey(name));
    if (e === undefined) return NONE;
    if (typeof e.v === 'string') e.v = [e.v];
    return e.v;
  }

  /** Every comma-separated element across all lines of a header. */
  list(name: string): string[] {
    const e = this.#find(headerKey(name));
    if (e === undefined) return [];
    if (typeof e.v === 'string') return splitList(e.v).filter((x) => x.length > 0);
    const out: string[] = [];
    for (const v of e.v) for (const x of splitList(v)) if (x.length > 0) out.push(x);
    return out;
  }

  has(name: string): boolean {
    return this.#find(headerKey(name)) !== undefined;
  }

  /** Number of lines of a header. */
  count(name: string): number {
    const e = this.#find(headerKey(name));
    return e === undefined ? 0 : typeof e.v === 'string' ? 1 : e.v.length;
  }

  set(name: string, value: string | readonly string[]): this {
    const key = headerKey(name);
    let v: string | string[];
    if (typeof value === 'string') v = value;
    else if (value.length === 0) return this.delete(name);
    else v = value.length === 1 ? value[0]! : [...value];
    const written = name.length === 1 || name === key ? canonicalName(key) : name;
    const e = this.#find(key);
    if (e === undefined) this.#add({ key, name: written, v });
    else {
      // Replaced in place: a header keeps its position, as a Map entry would.
      e.name = written;
      e.v = v;
    }
    return this;
  }

  append(name: string, value: string): this {
    const key = headerKey(name);
    return this.appendKey(key, name.length === 1 || name === key ? canonicalName(key) : name, value);
  }

  /** `append` for a name already resolved to its key and spelling (the parser's known names). */
  appendKey(key: string, name: string, value: string): this {
    const e = this.#find(key);
    if (e === undefined) this.#add({ key, name, v: value });
    else if (typeof e.v === 'string') e.v = [e.v, value];
    else e.v.push(value);
    return this;
  }

  /** Append every line of `other`, in order (a request built from a template: no name is looked up again). */
  appendAll(other: SipHeaders): this {
    for (const e of other.#entries) {
      const mine = this.#find(e.key);
      if (mine === undefined) this.#add({ key: e.key, name: e.name, v: typeof e.v === 'string' ? e.v : e.v.slice() });
      else if (typeof e.v === 'string') this.appendKey(e.key, e.name, e.v);
      else for (const v of e.v) this.appendKey(e.key, e.name, v);
    }
    return this;
  }

  /** Insert values before the existing ones (a proxy's Via, a Record-Route). */
  prepend(name: string, value: string): this {
    const key = headerKey(name);
    const e = this.#find(key);
    if (e === undefined) this.#add({ key, name: canonicalName(key), v: value }, true);
    else if (typeof e.v === 'string') e.v = [value, e.v];
    else e.v.unshift(value);
    return this;
  }

  delete(name: string): this {
    const key = headerKey(name);
    const i = this.#entries.findIndex((e) => e.key === key);
    if (i >= 0) this.#entries.splice(i, 1);
    this.#index?.delete(key);
    return this;
  }

  /** Each line in serialization order, without the generator and tuple of `entries()` (hot paths: serialize, copies). */
  forEachLine(fn: (name: string, value: string) => void): void {
    const es = this.#entries;
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      if (typeof e.v === 'string') fn(e.name, e.v);
      else for (let j = 0; j < e.v.length; j++) fn(e.name, e.v[j]!);
    }
  }

  /** Lines in serialization order: [name as written, value]. */
  *entries(): IterableIterator<[string, string]> {
    for (const e of this.#entries)
      if (typeof e.v === 'string') yield [e.name, e.v];
      else for (const v of e.v) yield [e.name, v];
  }

  /** Keys (lowercase long names) present. */
  *keys(): IterableIterator<string> {
    for (const e of this.#entries) yield e.key;
  }

  clone(): SipHeaders {
    const h = new SipHeaders();
    for (const e of this.#entries) h.#add({ key: e.key, name: e.name, v: typeof e.v === 'string' ? e.v : [...e.v] });
    return h;
  }
}

const NONE: readonly string[] = Object.freeze([]);

/** A Via value (RFC 3261 20.42). */
export interface Via {
  /** Transport in upper case: UDP, TCP, TLS, SCTP or any other token. */
  readonly transport: string;
  readonly host: string;
  readonly port?: number;
  readonly params: Params;
  readonly branch?: string;
}

const TRANSPORTS = ['UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'];

/** The transport token s[a, b) in upper case: one of the usual ones as a shared constant, else a copy. */
function transportAt(s: string, a: number, b: number): string {
  next: for (const t of TRANSPORTS) {
    if (t.length !== b - a) continue;
    for (let k = 0; k < t.length; k++) {
      const c = s.charCodeAt(a + k);
      if ((c >= 97 && c <= 122 ? c - 32 : c) !== t.charCodeAt(k)) continue next;
    }
    return t;
  }
  return s.slice(a, b).toUpperCase();
}

/** Parse one Via element; undefined when malformed. */
export function parseVia(s: string): Via | undefined {
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport, LWS allowed around SLASH.
  let i = skipWs(s, 0);
  let ts = 0;
  let te = 0;
  for (let k = 0; k < 3; k++) {
    const e = scanToken(s, i);
    if (e === i) return undefined;
    // protocol-name "SIP", any case (RFC 3261 7.3.1: tokens compare case-insensitively)
    if (
      k === 0 &&
      (e - i !== 3 ||
        (s.charCodeAt(i) | 32) !== 115 ||
        (s.charCodeAt(i + 1) | 32) !== 105 ||
        (s.charCodeAt(i + 2) | 32) !== 112)
    )
      return undefined;
    ts = i;
    te = e;
    i = skipWs(s, e);
    if (k < 2) {
      if (s.charCodeAt(i) !== 47) return undefined;
      i = skipWs(s, i + 1);
    }
  }
  const transport = transportAt(s, ts, te);
  const hs = i;
  if (s.charCodeAt(i) === 91) {
    const close = s.indexOf(']', i);
    if (close < 0) return undefined;
    i = close + 1;
  } else {
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95))
        break;
      i++;
    }
  }
  if (i === hs) return undefined;
  const host = s.slice(hs, i);
  let port: number | undefined;
  let j = skipWs(s, i);
  if (s.charCodeAt(j) === 58) {
    j = skipWs(s, j + 1);
    const ps = j;
    while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
    if (j === ps || j - ps > 5) return undefined;
    port = Number(s.slice(ps, j));
    if (port > 65535) return undefined;
    i = j;
  }
  const params = newParams();
  const end = parseParams(s, i, params);
  if (end < 0 || skipWs(s, end) !== s.length) return undefined;
  const branch = params.branch;
  return { transport, host, port, params, branch: branch ?? undefined };
}

/** A name-addr or addr-spec with header parameters (From, To, Contact, Route, Refer-To ...). */
export interface NameAddr {
  readonly displayName?: string;
  readonly uri: SipUri;
  readonly params: Params;
}

/**
 * Parse `[display-name] <URI> *(;param)` or `addr-spec *(;param)`.
 * In the addr-spec form the URI ends at the first ';' (those parameters are
 * header parameters, RFC 3261 20.10 and RFC 4475 cparam01) and may carry no
 * '?headers' (RFC 4475 regbadct). Undefined when malformed.
 */
export function parseNameAddr(s: string): NameAddr | undefined {
  const hit = nameAddrs.get(s);
  if (hit !== undefined) return hit ?? undefined;
  const n = parseNameAddrUncached(s);
  if (nameAddrs.size >= NAME_ADDR_CACHE_MAX) nameAddrs.clear();
  if (n !== undefined) {
    Object.freeze(n.params);
    Object.freeze(n);
  }
  // The value is usually a slice of a message's header text: the key must not keep that text alive.
  nameAddrs.set(detach(s), n ?? null);
  return n;
}

/**
 * Parsed name-addrs by header value. A dialog's From and To (and its peer's
 * Contact) come back unchanged in every message of it: each is parsed once.
 * Results are frozen since they are shared. Bounded: cleared when full.
 */
const nameAddrs = new Map<string, NameAddr | null>();
const NAME_ADDR_CACHE_MAX = 4_096;

function parseNameAddrUncached(s: string): NameAddr | undefined {
  let i = skipWs(s, 0);
  let displayName: string | undefined;
  let uriText: string;
  const c0 = s.charCodeAt(i);
  if (c0 === 34) {
    const e = scanQuoted(s, i);
    if (e < 0) return undefined;
    displayName = s.slice(i, e);
    i = skipWs(s, e);
    if (s.charCodeAt(i) !== 60) return undefined;
  } else if (c0 !== 60) {
    // display-name as *(token LWS) directly before '<' (RFC 4475 lwsdisp), or an addr-spec.
    const lt = s.indexOf('<', i);
    if (lt >= 0) {
      const dn = s.slice(i, lt).trim();
      for (let k = 0; k < dn.length; k++) {
        const c = dn.charCodeAt(k);
        if (c !== 32 && c !== 9 && (c >= 128 || TOKEN[c] === 0)) return undefined;
      }
      if (dn.length > 0) displayName = dn;
      i = lt;
    }
  }
  if (s.charCodeAt(i) === 60) {
    const close = s.indexOf('>', i);
    if (close < 0) return undefined;
    uriText = s.slice(i + 1, close);
    i = close + 1;
  } else {
    const start = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === 32 || c === 9) break;
      i++;
    }
    uriText = s.slice(start, i);
    if (uriText.indexOf('?') >= 0) return undefined;
  }
  const uri = parseUri(uriText);
  if (uri === undefined) return undefined;
  const params = newParams();
  const end = parseParams(s, i, params);
  if (end < 0 || skipWs(s, end) !== s.length) return undefined;
  return { displayName, uri, params };
}

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

/** CSeq = 1*DIGIT LWS Method; the number must fit 32 bits unsigned (RFC 3261 8.1.1.5, RFC 4475 scalar02). */
export function parseCSeq(s: string): CSeq | undefined {
  const i = skipWs(s, 0);
  let j = i;
  while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
  if (j === i || j - i > 10) return undefined;
  const seq = Number(s.slice(i, j));
  if (seq > 0xffffffff) return undefined;
  const k = skipWs(s, j);
  if (k === j) return undefined;
  const e = scanToken(s, k);
  if (e === k || skipWs(s, e) !== s.length) return undefined;
  return { seq, method: s.slice(k, e) };
}

/** A non-negative decimal (Content-Length, Max-Forwards, Expires); undefined when not 1*DIGIT or above max. */
export function parseDecimal(s: string, max: number): number | undefined {
  const t = s.trim();
  if (t.length === 0 || t.length > 10) return undefined;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  const n = Number(t);
  return n > max ? undefined : n;
}

/** The media type of a Content-Type value, lowercased, without parameters. */
export function mediaType(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  const semi = s.indexOf(';');
  return (semi < 0 ? s : s.slice(0, semi)).trim().toLowerCase();
}
