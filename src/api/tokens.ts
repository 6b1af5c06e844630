/**
 * Bearer tokens: `cdt.<id>.<secret>`. The id (64 random bits, hex) is the
 * public handle (listing, revoking, the audit's actor); the secret is 256
 * random bits, shown once and stored only as its SHA-256. A hash without a
 * slow KDF is enough here: the secret has full entropy, nothing to guess.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiRole, ApiTokenRecord, NewApiToken } from '../store/index.js';
import { ApiError } from './errors.js';
import { parseScope, type Scope } from './rbac.js';

const TOKEN_RE = /^cdt\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
export const TOKEN_ID_RE = /^[0-9a-f]{16}$/;

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export interface IssuedToken {
  /** The whole bearer token: shown once, never stored. */
  readonly token: string;
  readonly record: NewApiToken;
}

export interface TokenSpec {
  readonly name: string;
  readonly role: ApiRole;
  readonly scope?: Scope;
  /** Absolute expiry, ms since the epoch; undefined: never. */
  readonly expiresAt?: number;
}

export function issueToken(spec: TokenSpec): IssuedToken {
  if (spec.role === 'operator' && spec.scope === undefined) {
    throw new ApiError('API_ERR_TOKEN_SPEC', 'an operator token needs --scope operator:ID or province:ID');
  }
  if (spec.role !== 'operator' && spec.scope !== undefined) {
    throw new ApiError('API_ERR_TOKEN_SPEC', `a ${spec.role} token takes no scope`);
  }
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return {
    token: `cdt.${id}.${secret}`,
    record: {
      id,
      name: spec.name,
      role: spec.role,
      hash: hashSecret(secret),
      ...(spec.scope === undefined ? {} : { scope: `${spec.scope.kind}:${spec.scope.id}` }),
      ...(spec.expiresAt === undefined ? {} : { expiresAt: new Date(spec.expiresAt).toISOString() }),
    },
  };
}

/** Split a bearer token; undefined when it is not of our shape (so no lookup is made). */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_RE.exec(token);
  return m === null ? undefined : { id: m[1]!, secret: m[2]! };
}

export type TokenCheck =
  | { readonly ok: true; readonly record: ApiTokenRecord; readonly scope?: Scope }
  | { readonly ok: false; readonly reason: 'malformed' | 'unknown' | 'revoked' | 'expired' };

/** Check a presented secret against its stored record, in constant time. */
export function checkToken(record: ApiTokenRecord | undefined, secret: string, nowMs: number): TokenCheck {
  // Hash anyway when the id is unknown, so the answer takes the same time either way.
  const presented = Buffer.from(hashSecret(secret), 'hex');
  const stored = Buffer.from(record?.hash ?? '0'.repeat(64), 'hex');
  const match = stored.length === presented.length && timingSafeEqual(stored, presented);
  if (record === undefined || !match) return { ok: false, reason: 'unknown' };
  if (record.revokedAt !== null) return { ok: false, reason: 'revoked' };
  if (record.expiresAt !== null && Date.parse(record.expiresAt) <= nowMs) return { ok: false, reason: 'expired' };
  const scope = record.scope === null ? undefined : parseScope(record.scope);
  return scope === undefined ? { ok: true, record } : { ok: true, record, scope };
}

/** "90d", "12h", "30m", "3600s" to milliseconds; "never" to undefined. */
export function parseDuration(text: string): number | undefined {
  if (text === 'never') return undefined;
  const m = /^([1-9][0-9]{0,5})([smhd])$/.exec(text);
  if (m === null) {
    throw new ApiError(
      'API_ERR_TOKEN_SPEC',
      `expiry "${text}": expected a number and s, m, h or d (e.g. 90d), or never`,
    );
  }
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
