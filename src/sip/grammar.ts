/**
 * Character classes and small scanners of the RFC 3261 section 25 grammar,
 * shared by the URI and header parsers. Every scanner returns an index (or -1
 * on a syntax error) instead of throwing: malformed input is normal input for
 * a network parser, and exceptions are expensive on the hot path.
 */

function table(chars: string, alnum: boolean): Uint8Array {
  const t = new Uint8Array(128);
  if (alnum) {
    for (let c = 48; c <= 57; c++) t[c] = 1;
    for (let c = 65; c <= 90; c++) t[c] = 1;
    for (let c = 97; c <= 122; c++) t[c] = 1;
  }
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

/** token (RFC 3261 25.1). */
export const TOKEN = table("-.!%*_+`'~", true);
/** Characters of a generic parameter value besides token: hosts, IPv6 and IPv6 references. */
const GEN_VALUE = table("-.!%*_+`'~:[]", true);
/** unreserved (alphanum / mark). */
const UNRESERVED = "-_.!~*'()";
/** user = 1*( unreserved / escaped / user-unreserved ). */
export const USER_CHARS = table(`${UNRESERVED}&=+$,;?/`, true);
/** password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ). */
export const PASSWORD_CHARS = table(`${UNRESERVED}&=+$,`, true);
/** paramchar = param-unreserved / unreserved / escaped. */
export const PARAM_CHARS = table(`${UNRESERVED}[]/:&+$`, true);
/** hname / hvalue = hnv-unreserved / unreserved / escaped. */
export const HEADER_CHARS = table(`${UNRESERVED}[]/?:+$`, true);
/** Hostname characters (IPv4 too). */
export const HOST_CHARS = table('-.', true);

/** Parameters: lowercase names (case-insensitive, RFC 3261 7.3.1) to value (null when valueless). */
export type Params = Record<string, string | null>;

/**
 * Parameter objects have a prototype with nothing on it and no prototype of
 * its own: a name such as `__proto__` or `constructor` is an ordinary own
 * property, as with Object.create(null), but the objects stay in V8's fast
 * mode (Object.create(null) starts them as hash tables: several times the
 * memory, and each message carries four or five of them).
 */
const PARAMS_PROTO: object = Object.create(null);
function ParamsObject(): void {}
ParamsObject.prototype = PARAMS_PROTO;

export function newParams(): Params {
  return new (ParamsObject as unknown as new () => Params)();
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return false;
  }
  return true;
}

/**
 * A flat copy of `s` that refers to nothing else. V8 keeps substrings as
 * views of the string they were cut from and concatenations as trees of
 * their parts, so a table key built from a message's branch or tag would keep
 * that message's whole header text alive for as long as the key (64*T1 for a
 * lingering transaction). Slicing a fresh concatenation makes V8 flatten it
 * into a new string first; the result views only that copy.
 */
export function detach(s: string): string {
  return ` ${s}`.slice(1);
}

/** s[a, b) in lower case; sliced as is when it has no upper-case ASCII letter (the usual case: no copy). */
export function lowerSlice(s: string, a: number, b: number): string {
  for (let k = a; k < b; k++) {
    const c = s.charCodeAt(k);
    if ((c >= 65 && c <= 90) || c >= 128) return s.slice(a, b).toLowerCase();
  }
  return s.slice(a, b);
}

export function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

export function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

/** End of a token starting at i (== i when there is none). */
export function scanToken(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) break;
    i++;
  }
  return i;
}

/**
 * s[i] must be '"'. Returns the index after the closing quote, or -1 when the
 * quote is never closed (RFC 4475 quotbal). quoted-pair = "\" any char but CR/LF.
 */
export function scanQuoted(s: string, i: number): number {
  i++;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c === 92) {
      const n = s.charCodeAt(i + 1);
      if (Number.isNaN(n) || n === 13 || n === 10) return -1;
      i += 2;
      continue;
    }
    if (c === 13 || c === 10) return -1;
    i++;
  }
  return -1;
}

/** Unquote a quoted-string (with quotes), resolving quoted-pairs; other text is returned as is. */
export function unquote(s: string): string {
  if (s.length < 2 || s.charCodeAt(0) !== 34 || s.charCodeAt(s.length - 1) !== 34) return s;
  const inner = s.slice(1, -1);
  return inner.indexOf('\\') < 0 ? inner : inner.replace(/\\(.)/gs, '$1');
}

/** Quote a string as a quoted-string, escaping '"' and '\'. */
export function quote(s: string): string {
  return `"${s.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * Split a header value on commas that are outside quoted strings and angle
 * brackets (RFC 3261 7.3.1). Elements are trimmed; empty elements are kept so
 * callers that must reject them can (RFC 4475 badinv01).
 */
export function splitList(s: string): string[] {
  if (s.indexOf(',') < 0) return [s.trim()];
  const out: string[] = [];
  let start = 0;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      const e = scanQuoted(s, i);
      if (e < 0) break;
      i = e - 1;
    } else if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && !angle) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

/**
 * Header parameters `*( SEMI generic-param )` from index i, with LWS allowed
 * around ';' and '=' (RFC 3261 25.1 SEMI and EQUAL). Returns the end index
 * (first character that does not continue the list) or -1 on a syntax error,
 * such as a parameter without a name (RFC 4475 badinv01).
 */
export function parseParams(s: string, i: number, into: Params): number {
  for (;;) {
    const j = skipWs(s, i);
    if (j >= s.length || s.charCodeAt(j) !== 59) return i === j ? i : j;
    i = skipWs(s, j + 1);
    const ne = scanToken(s, i);
    if (ne === i) return -1;
    const name = lowerSlice(s, i, ne);
    i = skipWs(s, ne);
    if (s.charCodeAt(i) === 61) {
      i = skipWs(s, i + 1);
      let ve: number;
      if (s.charCodeAt(i) === 34) {
        ve = scanQuoted(s, i);
        if (ve < 0) return -1;
      } else {
        ve = i;
        while (ve < s.length) {
          const c = s.charCodeAt(ve);
          if (c >= 128 || GEN_VALUE[c] === 0) break;
          ve++;
        }
        if (ve === i) return -1;
      }
      into[name] = s.slice(i, ve);
      i = ve;
    } else {
      into[name] = null;
      i = ne;
    }
  }
}

/** Whether s[from..to) consists of chars of `cls` or %HH escapes. */
export function isEscapedRun(s: string, from: number, to: number, cls: Uint8Array): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 37) {
      if (!isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false;
      i += 2;
    } else if (c >= 128 || cls[c] === 0) return false;
  }
  return true;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Decode %HH escapes exactly once (RFC 4475 esc01: v%61lue%25%34%31 is value%41). */
export function unescapeUri(s: string): string {
  if (s.indexOf('%') < 0) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      const b = Buffer.from(s[i] ?? '', 'utf8');
      for (const x of b) bytes.push(x);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Escape every character outside `cls` as %HH (UTF-8 bytes). */
export function escapeUri(s: string, cls: Uint8Array): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || cls[c] === 0) {
      plain = false;
      break;
    }
  }
  if (plain) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b < 128 && cls[b] === 1 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}
