import { createHash } from 'node:crypto';
import { randomHex } from '../core/index.js';
import { quote, skipWs, splitList, unquote } from './grammar.js';

/** Credentials for digest authentication as a UAC (RFC 3261 22, RFC 8760). */
export interface DigestCredentials {
  readonly username: string;
  readonly password: string;
  /** Only answer challenges of this realm (any realm when absent). */
  readonly realm?: string;
}

export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';

const ALGORITHMS: Record<string, { hash: 'md5' | 'sha256'; sess: boolean; name: DigestAlgorithm }> = {
  md5: { hash: 'md5', sess: false, name: 'MD5' },
  'md5-sess': { hash: 'md5', sess: true, name: 'MD5-sess' },
  'sha-256': { hash: 'sha256', sess: false, name: 'SHA-256' },
  'sha-256-sess': { hash: 'sha256', sess: true, name: 'SHA-256-sess' },
};

export interface DigestChallenge {
  readonly realm: string;
  readonly nonce: string;
  readonly opaque?: string;
  readonly algorithm: DigestAlgorithm;
  /** 'auth' when the server offers it (auth-int is not supported). */
  readonly qop?: 'auth';
  readonly stale: boolean;
}

/** Parse `Digest k=v, k="v"` parameters (RFC 7616 3.3); undefined for other schemes or bad syntax. */
export function parseAuthParams(header: string): Record<string, string> | undefined {
  const i = skipWs(header, 0);
  const sp = header.indexOf(' ', i);
  if (sp < 0 || header.slice(i, sp).toLowerCase() !== 'digest') return undefined;
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const part of splitList(header.slice(sp + 1))) {
    if (part.length === 0) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    out[part.slice(0, eq).trim().toLowerCase()] = unquote(part.slice(eq + 1).trim());
  }
  return out;
}

/** A challenge we can answer, or undefined (unknown scheme or algorithm, missing realm/nonce, auth-int only). */
export function parseChallenge(header: string): DigestChallenge | undefined {
  const p = parseAuthParams(header);
  if (p?.realm === undefined || p.nonce === undefined) return undefined;
  const alg = ALGORITHMS[(p.algorithm ?? 'MD5').toLowerCase()];
  if (alg === undefined) return undefined;
  let qop: 'auth' | undefined;
  if (p.qop !== undefined) {
    if (!p.qop.split(',').some((q) => q.trim().toLowerCase() === 'auth')) return undefined;
    qop = 'auth';
  }
  return {
    realm: p.realm,
    nonce: p.nonce,
    opaque: p.opaque,
    algorithm: alg.name,
    qop,
    stale: p.stale?.toLowerCase() === 'true',
  };
}

function h(hash: 'md5' | 'sha256', s: string): string {
  return createHash(hash).update(s, 'utf8').digest('hex');
}

/** The request-digest of RFC 7616 3.4.1 (RFC 2617 when qop is absent). */
export function digestResponse(a: {
  algorithm: DigestAlgorithm;
  username: string;
  password: string;
  realm: string;
  nonce: string;
  method: string;
  uri: string;
  qop?: 'auth';
  nc?: string;
  cnonce?: string;
}): string {
  const alg = ALGORITHMS[a.algorithm.toLowerCase()]!;
  let ha1 = h(alg.hash, `${a.username}:${a.realm}:${a.password}`);
  if (alg.sess) ha1 = h(alg.hash, `${ha1}:${a.nonce}:${a.cnonce ?? ''}`);
  const ha2 = h(alg.hash, `${a.method}:${a.uri}`);
  return a.qop === undefined
    ? h(alg.hash, `${ha1}:${a.nonce}:${ha2}`)
    : h(alg.hash, `${ha1}:${a.nonce}:${a.nc}:${a.cnonce}:${a.qop}:${ha2}`);
}

/** The Authorization / Proxy-Authorization value answering `ch` for one request. */
export function authorize(ch: DigestChallenge, cred: DigestCredentials, method: string, uri: string, nc = 1): string {
  const cnonce = randomHex(8);
  const ncs = nc.toString(16).padStart(8, '0');
  const response = digestResponse({
    algorithm: ch.algorithm,
    username: cred.username,
    password: cred.password,
    realm: ch.realm,
    nonce: ch.nonce,
    method,
    uri,
    qop: ch.qop,
    nc: ncs,
    cnonce,
  });
  let out = `Digest username=${quote(cred.username)}, realm=${quote(ch.realm)}, nonce=${quote(ch.nonce)}, uri=${quote(uri)}, response=${quote(response)}, algorithm=${ch.algorithm}`;
  if (ch.qop !== undefined) out += `, qop=${ch.qop}, nc=${ncs}, cnonce=${quote(cnonce)}`;
  if (ch.opaque !== undefined) out += `, opaque=${quote(ch.opaque)}`;
  return out;
}

/** A WWW-Authenticate value for a server (the simulator, tests): a fresh nonce each time. */
export function createChallenge(
  realm: string,
  algorithm: DigestAlgorithm = 'SHA-256',
): { header: string; nonce: string } {
  const nonce = randomHex(16);
  return { header: `Digest realm=${quote(realm)}, nonce=${quote(nonce)}, algorithm=${algorithm}, qop="auth"`, nonce };
}

/** Check an Authorization value against the password of its user (server side). */
export function verifyAuthorization(
  header: string,
  method: string,
  passwordOf: (username: string) => string | undefined,
): boolean {
  const p = parseAuthParams(header);
  if (
    p?.username === undefined ||
    p.realm === undefined ||
    p.nonce === undefined ||
    p.uri === undefined ||
    p.response === undefined
  )
    return false;
  const password = passwordOf(p.username);
  const alg = ALGORITHMS[(p.algorithm ?? 'MD5').toLowerCase()];
  if (password === undefined || alg === undefined) return false;
  const expected = digestResponse({
    algorithm: alg.name,
    username: p.username,
    password,
    realm: p.realm,
    nonce: p.nonce,
    method,
    uri: p.uri,
    qop: p.qop === 'auth' ? 'auth' : undefined,
    nc: p.nc,
    cnonce: p.cnonce,
  });
  return expected === p.response.toLowerCase();
}
