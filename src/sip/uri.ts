import {
  escapeUri,
  HEADER_CHARS,
  HOST_CHARS,
  isEscapedRun,
  newParams,
  PARAM_CHARS,
  PASSWORD_CHARS,
  type Params,
  USER_CHARS,
  unescapeUri,
} from './grammar.js';

/**
 * A parsed URI (RFC 3261 19.1, RFC 3966 for tel). Components are stored
 * unescaped (escapes decoded exactly once), parameter names lowercased;
 * `raw` keeps the text as received so an unchanged URI is re-sent verbatim.
 * Other schemes (RFC 4475 unkscm, novelsc) keep their text in `opaque`.
 */
export interface SipUri {
  /** Lowercase scheme: 'sip', 'sips', 'tel' or any other. */
  readonly scheme: string;
  /** sip/sips userinfo user, or the tel number. */
  readonly user?: string;
  readonly password?: string;
  /** Host (IPv6 references keep their brackets); '' for tel and other schemes. */
  readonly host: string;
  readonly port?: number;
  readonly params: Params;
  readonly headers?: Readonly<Record<string, string>>;
  /** Text after "scheme:" for schemes other than sip, sips and tel. */
  readonly opaque?: string;
  readonly raw: string;
}

const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*$/;
const OPAQUE_RE = /^[^\s<>"]+$/;

const CACHE_MAX = 1_024; // distinct URIs: peers' addresses and contacts, ours (an MCU network has ~130 MCUs)
const cache = new Map<string, SipUri | null>();

/**
 * Parse a URI; undefined when it is not well-formed. Never throws. The same
 * URIs come back in every message of a peer (From, To, Contact,
 * Request-URI), so results are cached, frozen since they are shared.
 */
export function parseUri(s: string): SipUri | undefined {
  const hit = cache.get(s);
  if (hit !== undefined) return hit ?? undefined;
  const u = parseUncached(s);
  if (cache.size >= CACHE_MAX) cache.clear();
  if (u !== undefined) {
    Object.freeze(u.params);
    if (u.headers !== undefined) Object.freeze(u.headers);
    Object.freeze(u);
  }
  cache.set(s, u ?? null);
  return u;
}

function parseUncached(s: string): SipUri | undefined {
  const colon = s.indexOf(':');
  if (colon <= 0) return undefined;
  const scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSip(s, scheme, colon + 1);
  if (scheme === 'tel') return parseTel(s, colon + 1);
  if (!SCHEME_RE.test(scheme)) return undefined;
  const opaque = s.slice(colon + 1);
  if (opaque.length === 0 || !OPAQUE_RE.test(opaque)) return undefined;
  return { scheme, host: '', params: newParams(), opaque, raw: s };
}

function parseSip(s: string, scheme: string, i: number): SipUri | undefined {
  // No '@' may appear unescaped after the userinfo (RFC 3261 25.1), so the first one ends it.
  const at = s.indexOf('@', i);
  let user: string | undefined;
  let password: string | undefined;
  if (at >= 0) {
    const pc = s.indexOf(':', i);
    const userEnd = pc >= 0 && pc < at ? pc : at;
    if (userEnd === i || !isEscapedRun(s, i, userEnd, USER_CHARS)) return undefined;
    user = unescapeUri(s.slice(i, userEnd));
    if (userEnd < at) {
      if (!isEscapedRun(s, userEnd + 1, at, PASSWORD_CHARS)) return undefined;
      password = unescapeUri(s.slice(userEnd + 1, at));
    }
    i = at + 1;
  }
  let host: string;
  if (s.charCodeAt(i) === 91) {
    const close = s.indexOf(']', i);
    if (close < 0 || !/^\[[0-9A-Fa-f:.]+\]$/.test(s.slice(i, close + 1))) return undefined;
    host = s.slice(i, close + 1);
    i = close + 1;
  } else {
    const start = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c >= 128 || HOST_CHARS[c] === 0) break;
      i++;
    }
    if (i === start) return undefined;
    host = s.slice(start, i);
  }
  let port: number | undefined;
  if (s.charCodeAt(i) === 58) {
    const start = ++i;
    while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    if (i === start || i - start > 5) return undefined;
    port = Number(s.slice(start, i));
    if (port > 65535) return undefined;
  }
  const params = newParams();
  while (s.charCodeAt(i) === 59) {
    const start = ++i;
    while (i < s.length && s.charCodeAt(i) !== 59 && s.charCodeAt(i) !== 63) i++;
    const eq = s.indexOf('=', start);
    const nameEnd = eq >= 0 && eq < i ? eq : i;
    if (nameEnd === start || !isEscapedRun(s, start, nameEnd, PARAM_CHARS)) return undefined;
    if (nameEnd < i && (nameEnd + 1 === i || !isEscapedRun(s, nameEnd + 1, i, PARAM_CHARS))) return undefined;
    params[unescapeUri(s.slice(start, nameEnd)).toLowerCase()] =
      nameEnd < i ? unescapeUri(s.slice(nameEnd + 1, i)) : null;
  }
  let headers: Record<string, string> | undefined;
  if (s.charCodeAt(i) === 63) {
    headers = {};
    for (const part of s.slice(i + 1).split('&')) {
      const eq = part.indexOf('=');
      if (eq <= 0 || !isEscapedRun(part, 0, eq, HEADER_CHARS) || !isEscapedRun(part, eq + 1, part.length, HEADER_CHARS))
        return undefined;
      headers[unescapeUri(part.slice(0, eq))] = unescapeUri(part.slice(eq + 1));
    }
    i = s.length;
  }
  if (i !== s.length) return undefined;
  return { scheme, user, password, host, port, params, headers, raw: s };
}

const TEL_RE = /^[0-9A-Fa-f*#+().\-pPwW]+$/;

function parseTel(s: string, i: number): SipUri | undefined {
  const semi = s.indexOf(';', i);
  const number = s.slice(i, semi < 0 ? s.length : semi);
  if (!TEL_RE.test(number)) return undefined;
  const params = newParams();
  if (semi >= 0) {
    for (const part of s.slice(semi + 1).split(';')) {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      if (name.length === 0 || !isEscapedRun(part, 0, name.length, PARAM_CHARS)) return undefined;
      if (eq >= 0 && !isEscapedRun(part, eq + 1, part.length, PARAM_CHARS)) return undefined;
      params[name.toLowerCase()] = eq < 0 ? null : part.slice(eq + 1);
    }
  }
  return { scheme: 'tel', user: number, host: '', params, raw: s };
}

/** Build a URI from components (escaping what needs escaping). */
export function formatUri(u: Omit<SipUri, 'raw'>): string {
  if (u.opaque !== undefined) return `${u.scheme}:${u.opaque}`;
  if (u.scheme === 'tel') {
    let out = `tel:${u.user ?? ''}`;
    for (const k in u.params) out += u.params[k] === null ? `;${k}` : `;${k}=${u.params[k]}`;
    return out;
  }
  let out = `${u.scheme}:`;
  if (u.user !== undefined) {
    out += escapeUri(u.user, USER_CHARS);
    if (u.password !== undefined) out += `:${escapeUri(u.password, PASSWORD_CHARS)}`;
    out += '@';
  }
  out += u.host;
  if (u.port !== undefined) out += `:${u.port}`;
  for (const k in u.params) {
    const v = u.params[k];
    out += `;${escapeUri(k, PARAM_CHARS)}`;
    if (v !== null && v !== undefined) out += `=${escapeUri(v, PARAM_CHARS)}`;
  }
  if (u.headers) {
    const parts = Object.entries(u.headers).map(
      ([k, v]) => `${escapeUri(k, HEADER_CHARS)}=${escapeUri(v, HEADER_CHARS)}`,
    );
    if (parts.length > 0) out += `?${parts.join('&')}`;
  }
  return out;
}

/**
 * The URI with parameters set (a value, or null for a bare name such as
 * `;lr`) or removed (undefined), the others kept; undefined when `uri` is not
 * well-formed. Built through the model, so a parameter is replaced, never
 * doubled (`;transport=tcp;transport=tcp`).
 */
export function withUriParams(
  uri: string,
  params: Readonly<Record<string, string | null | undefined>>,
): string | undefined {
  const u = parseUri(uri);
  if (u === undefined || u.opaque !== undefined) return undefined;
  const merged = newParams();
  for (const k in u.params) merged[k] = u.params[k]!;
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) delete merged[k.toLowerCase()];
    else merged[k.toLowerCase()] = v;
  }
  return formatUri({ ...u, params: merged });
}
