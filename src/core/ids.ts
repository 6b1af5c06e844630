import { randomBytes } from 'node:crypto';

/**
 * Random identifiers from the CSPRNG. Bytes are drawn in blocks so that the
 * SIP hot path (a tag, a branch and a Call-ID per call) does not pay for one
 * system call per id.
 */
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let offset = 0;

function take(n: number): Buffer {
  if (offset + n > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    offset = 0;
  }
  const out = pool.subarray(offset, offset + n);
  offset += n;
  return out;
}

/** `bytes` random bytes as lowercase hex (2 characters per byte). */
export function randomHex(bytes = 8): string {
  return take(bytes).toString('hex');
}

/** `bytes` random bytes as base64url (URL-, SIP-token- and filename-safe). */
export function randomToken(bytes = 12): string {
  return take(bytes).toString('base64url');
}
