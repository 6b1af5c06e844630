/**
 * The server side of SIP digest authentication for the `challenging` MCU
 * profile, written here from RFC 3261 22, RFC 7616 3.3-3.4 and RFC 8760, and
 * not with our SIP stack's digest code: the simulator must be a witness
 * independent of the client it checks.
 *
 * A challenge is two WWW-Authenticate values, SHA-256 first and MD5 last (RFC
 * 8760 2.4: one per algorithm, most preferred first), each with its own nonce
 * and qop="auth". A request is accepted when its Authorization answers one of
 * our nonces for that algorithm, for this request's method and Request-URI,
 * with a nonce count above the last one seen. Every `staleEvery`-th accepted
 * request is refused as stale instead (RFC 7616 3.3 `stale=true`: the
 * credentials were right, the nonce has expired), as real servers do when
 * their nonces age out.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type DigestVerdict = 'ok' | 'stale' | 'missing' | 'invalid';

export interface DigestGuardOptions {
  readonly realm: string;
  readonly username: string;
  readonly password: string;
  /** Refuse every n-th correctly authenticated request as stale (0: never). */
  readonly staleEvery: number;
}

type Algorithm = 'SHA-256' | 'MD5';

interface Nonce {
  readonly algorithm: Algorithm;
  /** Highest nonce count used with it (replays and reuse must count up, RFC 7616 3.4). */
  nc: number;
}

/** Nonces kept at most: older ones are forgotten and a request with one is told it is stale. */
const MAX_NONCES = 512;

const HASH: Record<Algorithm, 'sha256' | 'md5'> = { 'SHA-256': 'sha256', MD5: 'md5' };

const h = (alg: Algorithm, s: string) => createHash(HASH[alg]).update(s, 'utf8').digest('hex');
const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

/** `Digest k=v, k="v, with comma"` as a map (keys lower-cased), or undefined for another scheme. */
export function parseDigestParams(value: string): Map<string, string> | undefined {
  const m = /^\s*Digest\s+/i.exec(value);
  if (m === null) return undefined;
  const out = new Map<string, string>();
  let i = m[0].length;
  while (i < value.length) {
    while (i < value.length && /[\s,]/.test(value[i]!)) i++;
    const eq = value.indexOf('=', i);
    if (eq < 0) break;
    const key = value.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (value[i] === ' ' || value[i] === '\t') i++;
    let v = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length && value[i] !== '"') {
        if (value[i] === '\\') i++;
        v += value[i] ?? '';
        i++;
      }
      i++;
    } else {
      const end = value.indexOf(',', i);
      v = value.slice(i, end < 0 ? value.length : end).trim();
      i = end < 0 ? value.length : end;
    }
    out.set(key, v);
  }
  return out;
}

export class DigestGuard {
  readonly #o: DigestGuardOptions;
  readonly #nonces = new Map<string, Nonce>();
  readonly #opaque = randomBytes(8).toString('hex');
  #accepted = 0;

  constructor(o: DigestGuardOptions) {
    this.#o = o;
  }

  get realm(): string {
    return this.#o.realm;
  }

  /** The WWW-Authenticate values of a 401, SHA-256 first (RFC 8760 2.4). */
  challenge(stale = false): string[] {
    return (['SHA-256', 'MD5'] as const).map((algorithm) => {
      const nonce = randomBytes(16).toString('hex');
      this.#nonces.set(nonce, { algorithm, nc: 0 });
      if (this.#nonces.size > MAX_NONCES) this.#nonces.delete(this.#nonces.keys().next().value!);
      return `Digest realm=${q(this.#o.realm)}, nonce=${q(nonce)}, opaque=${q(this.#opaque)}, algorithm=${algorithm}, qop="auth"${stale ? ', stale=true' : ''}`;
    });
  }

  /** Judge the Authorization values of a request (RFC 3261 22.4: the one for our realm counts). */
  check(authorizations: readonly string[], method: string, requestUri: string): DigestVerdict {
    const mine = authorizations.map(parseDigestParams).find((p) => p !== undefined && p.get('realm') === this.#o.realm);
    if (mine === undefined) return 'missing';
    // No algorithm parameter means MD5 (RFC 3261 22.4); we offered only these two.
    const alg = (mine.get('algorithm') ?? 'MD5').toUpperCase();
    if (alg !== 'SHA-256' && alg !== 'MD5') return 'invalid';
    const nonce = mine.get('nonce') ?? '';
    const nc = mine.get('nc') ?? '';
    const cnonce = mine.get('cnonce') ?? '';
    // We offer qop="auth" only, so the answer must use it (RFC 7616 3.4: qop, cnonce, nc together).
    if (mine.get('qop') !== 'auth' || !/^[0-9a-f]{8}$/i.test(nc) || cnonce === '') return 'invalid';
    if (mine.get('username') !== this.#o.username) return 'invalid';
    // The digest covers the Request-URI the client meant: it must be this request's (RFC 7616 3.4.6).
    if (mine.get('uri') !== requestUri) return 'invalid';
    const ha1 = h(alg, `${this.#o.username}:${this.#o.realm}:${this.#o.password}`);
    const ha2 = h(alg, `${method}:${requestUri}`);
    const expected = Buffer.from(h(alg, `${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`), 'utf8');
    const given = Buffer.from((mine.get('response') ?? '').toLowerCase(), 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
    const known = this.#nonces.get(nonce);
    const count = Number.parseInt(nc, 16);
    // Right credentials on a nonce we no longer hold (or never issued for this algorithm): stale, not wrong.
    if (known === undefined || known.algorithm !== alg) return 'stale';
    if (count <= known.nc) return 'invalid'; // a replay
    known.nc = count;
    this.#accepted++;
    if (this.#o.staleEvery > 0 && this.#accepted % this.#o.staleEvery === 0) {
      this.#nonces.delete(nonce);
      return 'stale';
    }
    return 'ok';
  }
}
