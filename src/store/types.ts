import type { Closeable } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';

/**
 * Persistence behind one interface. Promise-based although the embedded
 * SQLite driver is synchronous, so that a PostgreSQL implementation (for HA)
 * can replace it without touching callers.
 */
export interface Store extends Closeable {
  readonly driver: 'sqlite';
  /** The schema version after migrations. */
  schemaVersion(): Promise<number>;

  /** Record the inventory when it differs from the latest snapshot (by content hash). */
  saveInventorySnapshot(inventory: Inventory, source: string): Promise<InventorySnapshot>;
  latestInventorySnapshot(): Promise<(InventorySnapshot & { inventory: Inventory }) | undefined>;

  createSession(session: NewSession): Promise<SessionRecord>;
  updateSession(id: string, patch: SessionPatch): Promise<SessionRecord>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  listSessions(query?: { state?: string; limit?: number }): Promise<SessionRecord[]>;

  appendAudit(entry: NewAuditEntry): Promise<AuditEntry>;
  listAudit(query?: { afterId?: number; limit?: number; actor?: string }): Promise<AuditEntry[]>;

  appendEvent(event: NewEvent): Promise<EventRecord>;
  listEvents(query?: { afterId?: number; limit?: number; type?: string }): Promise<EventRecord[]>;
}

export interface InventorySnapshot {
  readonly id: number;
  /** sha256 of the canonical JSON of the inventory. */
  readonly hash: string;
  readonly source: string;
  readonly createdAt: string;
  /** False when the inventory equals the latest snapshot and nothing was written. */
  readonly created: boolean;
}

export interface NewSession {
  readonly id: string;
  readonly kind: 'planned' | 'adhoc';
  readonly title: string;
  readonly state: string;
  /** ISO 8601: when the session officially starts. */
  readonly startsAt?: string;
  readonly data?: unknown;
}

export interface SessionPatch {
  readonly title?: string;
  readonly state?: string;
  readonly startsAt?: string;
  readonly data?: unknown;
}

export interface SessionRecord {
  readonly id: string;
  readonly kind: 'planned' | 'adhoc';
  readonly title: string;
  readonly state: string;
  readonly startsAt: string | null;
  readonly data: unknown;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface NewAuditEntry {
  /** Who: a token name or user, or "system". */
  readonly actor: string;
  /** What: e.g. "chair.switch", "session.create". */
  readonly action: string;
  readonly target?: string;
  /** "ok" or an error code. */
  readonly outcome: string;
  readonly durationMs?: number;
  readonly details?: unknown;
}

export interface AuditEntry extends Required<Omit<NewAuditEntry, 'target' | 'durationMs'>> {
  readonly id: number;
  readonly at: string;
  readonly target: string | null;
  readonly durationMs: number | null;
}

export interface NewEvent {
  readonly type: string;
  readonly subject?: string;
  readonly data?: unknown;
}

export interface EventRecord {
  readonly id: number;
  readonly at: string;
  readonly type: string;
  readonly subject: string | null;
  readonly data: unknown;
}
