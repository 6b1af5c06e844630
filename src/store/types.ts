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
  listEvents(query?: { afterId?: number; limit?: number; type?: string; subject?: string }): Promise<EventRecord[]>;

  /**
   * Cascades (docs/cascade.md): each session's plan, rooms and chair selection, the desired state the
   * cascade manager reconciles. Every change bumps a generation counter; admission and re-planning pass
   * the generation they planned against and fail with STORE_ERR_CONFLICT when another change came first
   * (optimistic concurrency between the daemon and CLI processes sharing the store).
   */
  cascadeGeneration(): Promise<number>;
  /** Create the session (its `session` record) and its cascade; its rooms must be free (STORE_ERR_CONFLICT). */
  createCascade(cascade: NewCascade, expectedGeneration: number): Promise<CascadeRecord>;
  /** A re-plan: the new plan and usage, and rooms on MCUs the session did not hold yet. */
  replaceCascadePlan(
    sessionId: string,
    change: {
      readonly plan: unknown;
      readonly usage: CascadeUsage;
      readonly addRooms: Readonly<Record<string, string>>;
    },
    expectedGeneration: number,
  ): Promise<CascadeRecord>;
  /** Move the session to `ending` or `ended`; `ended` releases its rooms. */
  setCascadeState(sessionId: string, state: 'live' | 'ending' | 'ended'): Promise<CascadeRecord>;
  setCascadeSelection(sessionId: string, selection: string | null): Promise<CascadeRecord>;
  /** One cascade with its plan. */
  getCascade(sessionId: string): Promise<CascadeRecord | undefined>;
  /** Cascades without their plans (cheap), in the given session states (default: live and ending), oldest first. */
  listCascades(query?: { states?: readonly string[]; limit?: number }): Promise<CascadeHead[]>;
  /**
   * The link states observed by the daemon (what `cascade status` shows): rows upserted by child MCU;
   * with `keep`, rows of other child MCUs (links a re-plan removed) are deleted.
   */
  saveLinkStates(sessionId: string, links: readonly LinkStateRecord[], keep?: readonly string[]): Promise<void>;
  listLinkStates(sessionId: string): Promise<LinkStateRecord[]>;
  /** Changes committed by other connections (processes) since this one opened: a number that grows (PRAGMA data_version). */
  externalChanges(): Promise<number>;
}

/** Ports and cascade ports a cascade uses per MCU (what admission reserves for it). */
export type CascadeUsage = Readonly<Record<string, { readonly ports: number; readonly cascadePorts: number }>>;

export interface NewCascade {
  /** The session record, created with it (state `live`). */
  readonly session: Omit<NewSession, 'state'>;
  readonly root: string;
  /** What was asked for (endpoints, chair, main endpoints): kept for re-plans and for the record. */
  readonly request: unknown;
  /** The planner's plan (JSON). */
  readonly plan: unknown;
  readonly usage: CascadeUsage;
  /** MCU -> the conference room (URI) the session holds on it. */
  readonly rooms: Readonly<Record<string, string>>;
}

export interface CascadeHead {
  readonly sessionId: string;
  readonly title: string;
  /** The session's state: live, ending or ended. */
  readonly state: string;
  readonly root: string;
  readonly request: unknown;
  /** Grows with every re-plan (1 at admission). */
  readonly planVersion: number;
  readonly usage: CascadeUsage;
  /** Every room the session holds (MCUs a re-plan dropped keep theirs until the end). */
  readonly rooms: Readonly<Record<string, string>>;
  readonly selection: string | null;
  readonly generation: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface CascadeRecord extends CascadeHead {
  readonly plan: unknown;
}

/** A link of a session as the daemon last saw it. */
export interface LinkStateRecord {
  readonly child: string;
  readonly parent: string;
  /** planned, dialing, up, failed (docs/cascade.md). */
  readonly state: string;
  readonly detail: string | null;
  /** When it entered this state (ISO 8601). */
  readonly since: string;
  /** Dial attempts that failed in a row. */
  readonly attempts: number;
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
