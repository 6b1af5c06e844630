import { createHash } from 'node:crypto';

/** The `prev_hash` of the first chained row. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** The stored columns of one audit row that its hash covers (details as stored JSON text). */
export interface AuditRowContent {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly role: string | null;
  readonly action: string;
  readonly target: string | null;
  readonly outcome: string;
  readonly durationMs: number | null;
  readonly requestId: string | null;
  readonly source: string | null;
  readonly details: string;
}

/**
 * SHA-256 over the previous row's hash and this row's columns in a fixed
 * order (a JSON array, so no field can bleed into the next). The id is
 * covered: a row moved, removed or inserted changes every later link.
 */
export function auditRowHash(prevHash: string, r: AuditRowContent): string {
  const text = JSON.stringify([
    prevHash,
    r.id,
    r.at,
    r.actor,
    r.role,
    r.action,
    r.target,
    r.outcome,
    r.durationMs,
    r.requestId,
    r.source,
    r.details,
  ]);
  return createHash('sha256').update(text).digest('hex');
}
