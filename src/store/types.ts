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

  /** Append one audit row, chained to the previous row's hash (in one immediate transaction, safe across processes). */
  appendAudit(entry: NewAuditEntry): Promise<AuditEntry>;
  listAudit(query?: AuditQuery): Promise<AuditEntry[]>;
  /** Walk the whole hash chain: an edited, inserted or deleted row breaks it (only a cut tail needs `head`). */
  verifyAudit(): Promise<AuditVerification>;

  createToken(token: NewApiToken): Promise<ApiTokenRecord>;
  getToken(id: string): Promise<ApiTokenRecord | undefined>;
  listTokens(): Promise<ApiTokenRecord[]>;
  /** Mark a token revoked (kept for the audit trail); STORE_ERR_NOT_FOUND when unknown. */
  revokeToken(id: string): Promise<ApiTokenRecord>;

  appendEvent(event: NewEvent): Promise<EventRecord>;
  /**
   * Several events in one transaction, in order, stamped with one time: one commit for all (an event alone is
   * a commit of its own, 0.1 ms of CPU; the live record writes a national session's minute of call quality,
   * thousands of rows, at once). Resolves with how many were written.
   */
  appendEvents(events: readonly NewEvent[]): Promise<number>;
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
  /** The endpoint on the chair's screen (or none). Cheap: one row, nothing read back (every chair command writes it). */
  setCascadeSelection(sessionId: string, selection: string | null): Promise<void>;
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

  /** The session lifecycle's tables (docs/session.md): scheduled sessions, steps, deadlines, acks, checks. */
  readonly lifecycle: LifecycleTables;
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
  /** The actor's role (and scope) when the action came through the API, e.g. "operator:province:quang-binh". */
  readonly role?: string;
  /** The API request id, to match a row with the daemon log. */
  readonly requestId?: string;
  /** The client address. */
  readonly source?: string;
  /** What: e.g. "chair.switch", "session.create". */
  readonly action: string;
  readonly target?: string;
  /** "ok" or an error code. */
  readonly outcome: string;
  readonly durationMs?: number;
  readonly details?: unknown;
}

export interface AuditEntry {
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
  readonly details: unknown;
  /** SHA-256 (hex) of the previous row's hash and this row's content; null for rows older than the chain. */
  readonly hash: string | null;
}

export interface AuditQuery {
  readonly afterId?: number;
  readonly beforeId?: number;
  readonly limit?: number;
  readonly actor?: string;
  readonly action?: string;
  readonly target?: string;
  readonly outcome?: string;
  /** ISO 8601 bounds on `at` (inclusive since, exclusive until). */
  readonly since?: string;
  readonly until?: string;
  /** Newest first (ids descending); default oldest first. */
  readonly newestFirst?: boolean;
}

export interface AuditVerification {
  readonly ok: boolean;
  /** Rows checked (chained rows). */
  readonly checked: number;
  /** Rows written before the chain existed (store version 1), not verifiable. */
  readonly unchained: number;
  /** Hash of the last row: keep it elsewhere to detect a cut tail later. */
  readonly head: string | null;
  readonly lastId: number;
  /** The first row where the chain breaks, and why. */
  readonly broken?: { readonly id: number; readonly reason: string };
}

export type ApiRole = 'viewer' | 'operator' | 'admin';

export interface NewApiToken {
  /** The public part of the token (also its primary key). */
  readonly id: string;
  readonly name: string;
  readonly role: ApiRole;
  /** "operator:ID" or "province:ID" for an operator; absent otherwise. */
  readonly scope?: string;
  /** SHA-256 (hex) of the secret part; the secret itself is never stored. */
  readonly hash: string;
  /** ISO 8601; absent: never expires. */
  readonly expiresAt?: string;
}

export interface ApiTokenRecord {
  readonly id: string;
  readonly name: string;
  readonly role: ApiRole;
  readonly scope: string | null;
  readonly hash: string;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
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

/** A scheduled session (docs/session.md). Times are ISO 8601; JSON columns as the session module writes them. */
export interface LifecycleSessionRecord {
  readonly id: string;
  readonly kind: 'planned' | 'adhoc';
  readonly title: string;
  readonly root: string;
  /** scheduled, dialing, ready, live, ended, cancelled. */
  readonly status: string;
  readonly requestedAt: string;
  readonly startsAt: string;
  readonly endsAt: string;
  readonly rehearsalAt: string | null;
  /** The request as given (selectors, script, requester, chair ...). */
  readonly spec: unknown;
  /** Endpoint ids the selectors resolved to. */
  readonly endpoints: readonly string[];
  /** Ports and cascade ports the session's plan holds per MCU while it overlaps others. */
  readonly usage: CascadeUsage;
  /** The script item brought to the chair last (0: none yet). */
  readonly scriptPos: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface NewLifecycleSession {
  readonly id: string;
  readonly kind: 'planned' | 'adhoc';
  readonly title: string;
  readonly root: string;
  readonly status: string;
  readonly requestedAt: string;
  readonly startsAt: string;
  readonly endsAt: string;
  readonly rehearsalAt?: string;
  readonly spec: unknown;
  readonly endpoints: readonly string[];
  readonly usage: CascadeUsage;
}

export interface LifecyclePatch {
  readonly title?: string;
  readonly root?: string;
  readonly status?: string;
  readonly startsAt?: string;
  readonly endsAt?: string;
  readonly rehearsalAt?: string | null;
  readonly spec?: unknown;
  readonly endpoints?: readonly string[];
  readonly usage?: CascadeUsage;
  readonly scriptPos?: number;
}

export interface LifecycleStepRecord {
  readonly step: string;
  readonly dueAt: string;
  /** pending, done, failed, skipped. */
  readonly state: string;
  readonly ranAt: string | null;
  /** How long after its time it ran (a step missed while the daemon was down: the downtime). */
  readonly lateMs: number | null;
  readonly detail: unknown;
}

export interface LifecycleDeadlineRecord {
  readonly name: string;
  readonly dueAt: string;
  readonly riskAt: string;
  /** pending, met, missed. */
  readonly state: string;
  /** When it was met or missed. */
  readonly at: string | null;
  /** When it was first seen at risk. */
  readonly atRiskAt: string | null;
  readonly detail: unknown;
}

export interface LifecycleAckRecord {
  readonly unit: string;
  readonly at: string;
  readonly actor: string;
}

export interface NewLifecycleCheck {
  readonly endpoint: string;
  /** unit: recorded by the unit's technicians; daemon: what the daemon saw itself. */
  readonly source: 'unit' | 'daemon';
  readonly connected?: boolean;
  readonly audio?: boolean;
  readonly video?: boolean;
  readonly notes?: string;
  readonly at: string;
  readonly actor: string;
}

export interface LifecycleCheckRecord {
  readonly id: number;
  readonly endpoint: string;
  readonly source: 'unit' | 'daemon';
  readonly connected: boolean | null;
  readonly audio: boolean | null;
  readonly video: boolean | null;
  readonly notes: string | null;
  readonly at: string;
  readonly actor: string;
}

export interface LifecycleTables {
  /** A new scheduled session with its steps and deadlines; STORE_ERR_CONFLICT when the id is taken (here or in `sessions`). */
  create(
    session: NewLifecycleSession,
    steps: readonly LifecycleStepRecord[],
    deadlines: readonly LifecycleDeadlineRecord[],
  ): Promise<LifecycleSessionRecord>;
  /** Change the session; `steps` and `deadlines`, when given, replace the pending ones of the same names. */
  update(
    id: string,
    patch: LifecyclePatch,
    steps?: readonly LifecycleStepRecord[],
    deadlines?: readonly LifecycleDeadlineRecord[],
  ): Promise<LifecycleSessionRecord>;
  get(id: string): Promise<LifecycleSessionRecord | undefined>;
  /** Newest start first; `statuses` filters. */
  list(query?: { statuses?: readonly string[]; limit?: number }): Promise<LifecycleSessionRecord[]>;
  steps(id: string): Promise<LifecycleStepRecord[]>;
  setStep(id: string, step: LifecycleStepRecord): Promise<void>;
  deadlines(id: string): Promise<LifecycleDeadlineRecord[]>;
  setDeadline(id: string, deadline: LifecycleDeadlineRecord): Promise<void>;
  /** Record a unit's acknowledgement; the first one counts (an acknowledgement again keeps the first time). */
  ack(id: string, ack: LifecycleAckRecord): Promise<LifecycleAckRecord>;
  acks(id: string): Promise<LifecycleAckRecord[]>;
  addCheck(id: string, check: NewLifecycleCheck): Promise<LifecycleCheckRecord>;
  /** Every check of the session, oldest first. */
  checks(id: string): Promise<LifecycleCheckRecord[]>;
}
