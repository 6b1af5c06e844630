import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { type Clock, CoreError, onceClose, realClock } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import { AUDIT_GENESIS, auditRowHash } from './audit-chain.js';
import { type Checkpointer, type CheckpointResult, startCheckpointer } from './checkpointer.js';
import { StoreError } from './errors.js';
import { SqliteLifecycleTables } from './lifecycle.js';
import { MIGRATIONS, type Migration } from './migrations.js';
import type {
  ApiTokenRecord,
  AuditEntry,
  AuditQuery,
  AuditVerification,
  CascadeHead,
  CascadeRecord,
  CascadeUsage,
  EventRecord,
  InventorySnapshot,
  LifecycleTables,
  LinkStateRecord,
  NewApiToken,
  NewAuditEntry,
  NewCascade,
  NewEvent,
  NewSession,
  SessionPatch,
  SessionRecord,
  Store,
} from './types.js';

export interface SqliteStoreOptions {
  /** Database file, or ":memory:". Its directory is created if missing. */
  readonly path: string;
  /**
   * WAL with synchronous=NORMAL loses nothing committed when the process
   * dies (kill -9); FULL also survives power loss, at an fsync per commit.
   */
  readonly synchronous?: 'normal' | 'full';
  readonly clock?: Clock;
  /** For tests of the migration machinery; defaults to the real list. */
  readonly migrations?: readonly Migration[];
  /**
   * Checkpoint the WAL from a worker thread every `everyMs` instead of inside this connection's commits
   * (SQLite's auto-checkpoint at 1,000 pages: the fsyncs of a checkpoint, milliseconds to tens of
   * milliseconds of I/O wait on the caller's thread). The daemon's choice; a file database only.
   */
  readonly backgroundCheckpoint?: {
    readonly everyMs: number;
    /**
     * A WAL still this long after the worker's checkpoint (commits kept coming while it ran, so it never
     * found every page copied) is finished here: a checkpoint of the few pages since, so the next commit
     * restarts the WAL instead of growing it. Default 4,096 pages (16 MB).
     */
    readonly restartPages?: number;
    /** After each of the worker's checkpoints, with `finishedMs` when this connection finished it. */
    readonly onCheckpoint?: (r: CheckpointResult & { readonly finishedMs?: number }) => void;
  };
  /** Where a failed background checkpointer is reported. */
  readonly logger?: Logger;
}

/** SQLite's default auto-checkpoint (pages), taken back when the background checkpointer fails. */
const AUTO_CHECKPOINT_PAGES = 1_000;
const RESTART_PAGES = 4_096;

const MAX_LIMIT = 10_000;

/** Open (creating and migrating as needed) the embedded SQLite store. */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const migrations = options.migrations ?? MIGRATIONS;
  let db: Database.Database;
  try {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    db = new Database(options.path);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    // Another process (a CLI, a backup) may hold a lock briefly: wait rather than fail.
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    throw new StoreError('STORE_ERR_OPEN', `cannot open store ${options.path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const clock = options.clock ?? realClock;
  try {
    migrate(db, migrations, clock);
  } catch (err) {
    db.close();
    throw err;
  }
  const store = new SqliteStore(db, clock);
  const bg = options.backgroundCheckpoint;
  if (bg !== undefined && options.path !== ':memory:') {
    db.pragma('wal_autocheckpoint = 0');
    const restartPages = bg.restartPages ?? RESTART_PAGES;
    store.checkpointer = startCheckpointer({
      path: options.path,
      clock,
      everyMs: bg.everyMs,
      onCheckpoint: (r) => {
        let finishedMs: number | undefined;
        if (r.log >= restartPages && db.open) {
          // Two fsyncs of a few pages on this thread, once per restartPages, instead of SQLite's own
          // checkpoint of 1,000 pages inside a commit.
          const t0 = performance.now();
          db.pragma('wal_checkpoint(PASSIVE)');
          finishedMs = performance.now() - t0;
        }
        bg.onCheckpoint?.(finishedMs === undefined ? r : { ...r, finishedMs });
      },
      onFailure: (err) => {
        options.logger?.warn({ err }, 'WAL checkpointer failed: commits checkpoint again');
        if (db.open) db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
      },
    });
  }
  return store;
}

function migrate(db: Database.Database, migrations: readonly Migration[], clock: Clock): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new StoreError(
      'STORE_ERR_VERSION',
      `store schema version ${current} is newer than this build understands (${latest}); upgrade cascaded`,
      { details: { current, latest } },
    );
  }
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        new Date(clock.wallNow()).toISOString(),
      );
      db.pragma(`user_version = ${m.version}`);
    })();
  }
}

/** JSON with object keys sorted, so equal inventories hash equally whatever their key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const clampLimit = (limit: number | undefined, dflt: number) => Math.max(1, Math.min(limit ?? dflt, MAX_LIMIT));

interface SessionRow {
  id: string;
  kind: 'planned' | 'adhoc';
  title: string;
  state: string;
  starts_at: string | null;
  data: string;
  created_at: string;
  updated_at: string;
}
interface AuditRow {
  id: number;
  at: string;
  actor: string;
  role: string | null;
  action: string;
  target: string | null;
  outcome: string;
  duration_ms: number | null;
  request_id: string | null;
  source: string | null;
  details: string;
  prev_hash: string | null;
  hash: string | null;
}
interface TokenRow {
  id: string;
  name: string;
  role: ApiTokenRecord['role'];
  scope: string | null;
  hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}
interface EventRow {
  id: number;
  at: string;
  type: string;
  subject: string | null;
  data: string;
}

interface CascadeRow {
  session_id: string;
  title: string;
  state: string;
  root: string;
  request: string;
  plan?: string;
  plan_version: number;
  usage: string;
  selection: string | null;
  generation: number;
  created_at: string;
  updated_at: string;
}
interface LinkRow {
  child: string;
  parent: string;
  state: string;
  detail: string | null;
  since: string;
  attempts: number;
}
const CASCADE_HEAD = `SELECT c.session_id, s.title, s.state, c.root, c.request, c.plan_version, c.usage,
  CASE WHEN cs.session_id IS NULL THEN c.selection ELSE cs.selection END AS selection,
  c.generation, s.created_at, c.updated_at FROM cascades c JOIN sessions s ON s.id = c.session_id
  LEFT JOIN cascade_selections cs ON cs.session_id = c.session_id`;
const LIVE_STATES = ['live', 'ending'];

const toSession = (r: SessionRow): SessionRecord => ({
  id: r.id,
  kind: r.kind,
  title: r.title,
  state: r.state,
  startsAt: r.starts_at,
  data: JSON.parse(r.data),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const toAudit = (r: AuditRow): AuditEntry => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  role: r.role,
  action: r.action,
  target: r.target,
  outcome: r.outcome,
  durationMs: r.duration_ms,
  requestId: r.request_id,
  source: r.source,
  details: JSON.parse(r.details),
  hash: r.hash,
});
const toToken = (r: TokenRow): ApiTokenRecord => ({
  id: r.id,
  name: r.name,
  role: r.role,
  scope: r.scope,
  hash: r.hash,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});
const auditContent = (r: AuditRow) => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  role: r.role,
  action: r.action,
  target: r.target,
  outcome: r.outcome,
  durationMs: r.duration_ms,
  requestId: r.request_id,
  source: r.source,
  details: r.details,
});

/** Rows read per step of a chain walk, so a long audit never sits in memory at once. */
const VERIFY_CHUNK = 2_000;
const toEvent = (r: EventRow): EventRecord => ({
  id: r.id,
  at: r.at,
  type: r.type,
  subject: r.subject,
  data: JSON.parse(r.data),
});

class SqliteStore implements Store {
  readonly driver = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #clock: Clock;
  #closed = false;
  /** Set by openSqliteStore when checkpoints run in a worker (backgroundCheckpoint). */
  checkpointer: Checkpointer | undefined;
  // Prepared once: statements are the hot path of audit and event writes.
  readonly #stmt;
  readonly lifecycle: LifecycleTables;

  constructor(db: Database.Database, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
    this.#stmt = {
      latestSnapshot: db.prepare(
        'SELECT id, hash, source, created_at, body FROM inventory_snapshots ORDER BY id DESC LIMIT 1',
      ),
      insertSnapshot: db.prepare(
        'INSERT INTO inventory_snapshots (hash, source, created_at, body) VALUES (?, ?, ?, ?)',
      ),
      insertSession: db.prepare(
        'INSERT INTO sessions (id, kind, title, state, starts_at, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      getSession: db.prepare('SELECT * FROM sessions WHERE id = ?'),
      updateSession: db.prepare(
        'UPDATE sessions SET title = ?, state = ?, starts_at = ?, data = ?, updated_at = ? WHERE id = ?',
      ),
      lastAudit: db.prepare('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1'),
      insertAudit: db.prepare(
        `INSERT INTO audit (id, at, actor, role, action, target, outcome, duration_ms, request_id, source, details, prev_hash, hash)
         VALUES (@id, @at, @actor, @role, @action, @target, @outcome, @durationMs, @requestId, @source, @details, @prevHash, @hash)`,
      ),
      insertToken: db.prepare(
        'INSERT INTO api_tokens (id, name, role, scope, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      getToken: db.prepare('SELECT * FROM api_tokens WHERE id = ?'),
      revokeToken: db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      insertEvent: db.prepare('INSERT INTO events (at, type, subject, data) VALUES (?, ?, ?, ?)'),
      // Prepared once: the cascade manager saves link states after each pass that changed one (a national dial:
      // tens of passes), and compiling three statements each time was most of a save.
      upsertLink: db.prepare(
        `INSERT INTO cascade_links (session_id, child, parent, state, detail, since, attempts, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (session_id, child) DO UPDATE SET parent = excluded.parent, state = excluded.state,
           detail = excluded.detail, since = excluded.since, attempts = excluded.attempts, updated_at = excluded.updated_at`,
      ),
      linkChildren: db.prepare('SELECT child FROM cascade_links WHERE session_id = ?'),
      deleteLink: db.prepare('DELETE FROM cascade_links WHERE session_id = ? AND child = ?'),
      // A small row of its own (store v5): the cascades row carries the plan, megabytes for a national session.
      setSelection: db.prepare(
        `INSERT INTO cascade_selections (session_id, selection, updated_at)
         SELECT session_id, ?, ? FROM cascades WHERE session_id = ?
         ON CONFLICT (session_id) DO UPDATE SET selection = excluded.selection, updated_at = excluded.updated_at`,
      ),
    };
    this.lifecycle = new SqliteLifecycleTables(
      () => this.#open(),
      () => this.#now(),
    );
  }

  #now(): string {
    return new Date(this.#clock.wallNow()).toISOString();
  }

  #open(): Database.Database {
    if (this.#closed) throw new CoreError('ERR_CLOSED', 'store is closed');
    return this.#db;
  }

  async schemaVersion(): Promise<number> {
    return this.#open().pragma('user_version', { simple: true }) as number;
  }

  async saveInventorySnapshot(inventory: Inventory, source: string): Promise<InventorySnapshot> {
    const db = this.#open();
    const body = canonicalJson(inventory);
    const hash = createHash('sha256').update(body).digest('hex');
    return db.transaction((): InventorySnapshot => {
      const last = this.#stmt.latestSnapshot.get() as
        | { id: number; hash: string; source: string; created_at: string }
        | undefined;
      if (last?.hash === hash) {
        return { id: last.id, hash, source: last.source, createdAt: last.created_at, created: false };
      }
      const createdAt = this.#now();
      const r = this.#stmt.insertSnapshot.run(hash, source, createdAt, body);
      return { id: Number(r.lastInsertRowid), hash, source, createdAt, created: true };
    })();
  }

  async latestInventorySnapshot(): Promise<(InventorySnapshot & { inventory: Inventory }) | undefined> {
    this.#open();
    const r = this.#stmt.latestSnapshot.get() as
      | { id: number; hash: string; source: string; created_at: string; body: string }
      | undefined;
    if (r === undefined) return undefined;
    return {
      id: r.id,
      hash: r.hash,
      source: r.source,
      createdAt: r.created_at,
      created: false,
      inventory: JSON.parse(r.body) as Inventory,
    };
  }

  async createSession(s: NewSession): Promise<SessionRecord> {
    this.#open();
    const now = this.#now();
    try {
      this.#stmt.insertSession.run(
        s.id,
        s.kind,
        s.title,
        s.state,
        s.startsAt ?? null,
        JSON.stringify(s.data ?? null),
        now,
        now,
      );
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new StoreError('STORE_ERR_CONFLICT', `session "${s.id}" already exists`, { cause: err });
      }
      throw err;
    }
    return toSession(this.#stmt.getSession.get(s.id) as SessionRow);
  }

  async updateSession(id: string, patch: SessionPatch): Promise<SessionRecord> {
    const db = this.#open();
    return db.transaction(() => {
      const row = this.#stmt.getSession.get(id) as SessionRow | undefined;
      if (row === undefined) throw new StoreError('STORE_ERR_NOT_FOUND', `no session "${id}"`);
      this.#stmt.updateSession.run(
        patch.title ?? row.title,
        patch.state ?? row.state,
        patch.startsAt ?? row.starts_at,
        patch.data === undefined ? row.data : JSON.stringify(patch.data),
        this.#now(),
        id,
      );
      return toSession(this.#stmt.getSession.get(id) as SessionRow);
    })();
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    this.#open();
    const row = this.#stmt.getSession.get(id) as SessionRow | undefined;
    return row && toSession(row);
  }

  async listSessions(query: { state?: string; limit?: number } = {}): Promise<SessionRecord[]> {
    const db = this.#open();
    const limit = clampLimit(query.limit, 100);
    const rows = (
      query.state === undefined
        ? db.prepare('SELECT * FROM sessions ORDER BY created_at DESC, id LIMIT ?').all(limit)
        : db
            .prepare('SELECT * FROM sessions WHERE state = ? ORDER BY created_at DESC, id LIMIT ?')
            .all(query.state, limit)
    ) as SessionRow[];
    return rows.map(toSession);
  }

  async cascadeGeneration(): Promise<number> {
    this.#open();
    return this.#generation();
  }

  #generation(): number {
    return (this.#db.prepare('SELECT COALESCE(MAX(generation), 0) AS g FROM cascades').get() as { g: number }).g;
  }

  /** Inside a transaction: fail when another change came after `expected`; the next generation otherwise. */
  #nextGeneration(expected: number): number {
    const current = this.#generation();
    if (current !== expected)
      throw new StoreError(
        'STORE_ERR_CONFLICT',
        `cascades changed meanwhile (generation ${current}, expected ${expected}): plan again`,
        { details: { current, expected } },
      );
    return current + 1;
  }

  #insertRooms(sessionId: string, rooms: Readonly<Record<string, string>>): void {
    const insert = this.#db.prepare('INSERT INTO cascade_rooms (session_id, mcu, uri, held) VALUES (?, ?, ?, 1)');
    for (const [mcu, uri] of Object.entries(rooms)) {
      try {
        insert.run(sessionId, mcu, uri);
      } catch (err) {
        if (String((err as { code?: string }).code).startsWith('SQLITE_CONSTRAINT'))
          throw new StoreError('STORE_ERR_CONFLICT', `room ${uri} of MCU ${mcu} is already held`, {
            cause: err,
            details: { mcu, uri },
          });
        throw err;
      }
    }
  }

  async createCascade(c: NewCascade, expectedGeneration: number): Promise<CascadeRecord> {
    const db = this.#open();
    const now = this.#now();
    db.transaction(() => {
      const generation = this.#nextGeneration(expectedGeneration);
      const s = c.session;
      try {
        this.#stmt.insertSession.run(
          s.id,
          s.kind,
          s.title,
          'live',
          s.startsAt ?? null,
          JSON.stringify(s.data ?? null),
          now,
          now,
        );
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
          throw new StoreError('STORE_ERR_CONFLICT', `session "${s.id}" already exists`, { cause: err });
        throw err;
      }
      db.prepare(
        `INSERT INTO cascades (session_id, root, request, plan, plan_version, usage, selection, generation, updated_at)
         VALUES (?, ?, ?, ?, 1, ?, NULL, ?, ?)`,
      ).run(
        s.id,
        c.root,
        JSON.stringify(c.request ?? null),
        JSON.stringify(c.plan),
        JSON.stringify(c.usage),
        generation,
        now,
      );
      this.#insertRooms(s.id, c.rooms);
    })();
    return this.#written(c.session.id, c.plan);
  }

  async replaceCascadePlan(
    sessionId: string,
    change: { plan: unknown; usage: CascadeUsage; addRooms: Readonly<Record<string, string>> },
    expectedGeneration: number,
  ): Promise<CascadeRecord> {
    const db = this.#open();
    db.transaction(() => {
      const generation = this.#nextGeneration(expectedGeneration);
      const r = db
        .prepare(
          `UPDATE cascades SET plan = ?, plan_version = plan_version + 1, usage = ?, generation = ?, updated_at = ?
           WHERE session_id = ?`,
        )
        .run(JSON.stringify(change.plan), JSON.stringify(change.usage), generation, this.#now(), sessionId);
      if (r.changes === 0) throw new StoreError('STORE_ERR_NOT_FOUND', `no cascade for session "${sessionId}"`);
      this.#insertRooms(sessionId, change.addRooms);
    })();
    return this.#written(sessionId, change.plan);
  }

  /**
   * A cascade just written, with the plan as given rather than read back: a national plan is about 10 ms of JSON
   * to parse, and the manager dials from it at once (plans are values, never changed in place).
   */
  #written(sessionId: string, plan: unknown): CascadeRecord {
    const row = this.#db.prepare(`${CASCADE_HEAD} WHERE c.session_id = ?`).get(sessionId) as CascadeRow;
    return { ...this.#head(row), plan };
  }

  async setCascadeState(sessionId: string, state: 'live' | 'ending' | 'ended'): Promise<CascadeRecord> {
    const db = this.#open();
    db.transaction(() => {
      const now = this.#now();
      const generation = this.#generation() + 1;
      const r = db
        .prepare('UPDATE cascades SET generation = ?, updated_at = ? WHERE session_id = ?')
        .run(generation, now, sessionId);
      if (r.changes === 0) throw new StoreError('STORE_ERR_NOT_FOUND', `no cascade for session "${sessionId}"`);
      db.prepare('UPDATE sessions SET state = ?, updated_at = ? WHERE id = ?').run(state, now, sessionId);
      if (state === 'ended') db.prepare('UPDATE cascade_rooms SET held = 0 WHERE session_id = ?').run(sessionId);
    })();
    return this.#cascade(sessionId)!;
  }

  async setCascadeSelection(sessionId: string, selection: string | null): Promise<void> {
    this.#open();
    const r = this.#stmt.setSelection.run(selection, this.#now(), sessionId);
    if (r.changes === 0) throw new StoreError('STORE_ERR_NOT_FOUND', `no cascade for session "${sessionId}"`);
  }

  async getCascade(sessionId: string): Promise<CascadeRecord | undefined> {
    this.#open();
    return this.#cascade(sessionId);
  }

  #cascade(sessionId: string): CascadeRecord | undefined {
    const row = this.#db
      .prepare(`${CASCADE_HEAD.replace('c.plan_version', 'c.plan, c.plan_version')} WHERE c.session_id = ?`)
      .get(sessionId) as CascadeRow | undefined;
    if (row === undefined) return undefined;
    return { ...this.#head(row), plan: JSON.parse(row.plan!) };
  }

  #head(row: CascadeRow): CascadeHead {
    const rooms: Record<string, string> = {};
    const held = this.#db
      .prepare('SELECT mcu, uri FROM cascade_rooms WHERE session_id = ? ORDER BY mcu')
      .all(row.session_id) as { mcu: string; uri: string }[];
    for (const r of held) rooms[r.mcu] = r.uri;
    return {
      sessionId: row.session_id,
      title: row.title,
      state: row.state,
      root: row.root,
      request: JSON.parse(row.request),
      planVersion: row.plan_version,
      usage: JSON.parse(row.usage),
      rooms,
      selection: row.selection,
      generation: row.generation,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  async listCascades(query: { states?: readonly string[]; limit?: number } = {}): Promise<CascadeHead[]> {
    const db = this.#open();
    const states = query.states ?? LIVE_STATES;
    if (states.length === 0) return [];
    const rows = db
      .prepare(
        `${CASCADE_HEAD} WHERE s.state IN (${states.map(() => '?').join(', ')})
         ORDER BY s.created_at, c.session_id LIMIT ?`,
      )
      .all(...states, clampLimit(query.limit, 1_000)) as CascadeRow[];
    return rows.map((r) => this.#head(r));
  }

  async saveLinkStates(sessionId: string, links: readonly LinkStateRecord[], keep?: readonly string[]): Promise<void> {
    const db = this.#open();
    const now = this.#now();
    const { upsertLink, linkChildren, deleteLink } = this.#stmt;
    db.transaction(() => {
      for (const l of links) upsertLink.run(sessionId, l.child, l.parent, l.state, l.detail, l.since, l.attempts, now);
      if (keep === undefined) return;
      const kept = new Set(keep);
      const rows = linkChildren.all(sessionId) as { child: string }[];
      for (const r of rows) if (!kept.has(r.child)) deleteLink.run(sessionId, r.child);
    })();
  }

  async listLinkStates(sessionId: string): Promise<LinkStateRecord[]> {
    const db = this.#open();
    const rows = db
      .prepare(
        'SELECT child, parent, state, detail, since, attempts FROM cascade_links WHERE session_id = ? ORDER BY child',
      )
      .all(sessionId) as LinkRow[];
    return rows.map((r) => ({ ...r }));
  }

  async externalChanges(): Promise<number> {
    return this.#open().pragma('data_version', { simple: true }) as number;
  }

  async appendAudit(e: NewAuditEntry): Promise<AuditEntry> {
    const db = this.#open();
    const details = JSON.stringify(e.details ?? null);
    // IMMEDIATE: the write lock is taken before the last hash is read, so a CLI appending
    // from another process at the same moment cannot fork the chain.
    return db
      .transaction((): AuditEntry => {
        const last = this.#stmt.lastAudit.get() as { id: number; hash: string | null } | undefined;
        const content = {
          id: (last?.id ?? 0) + 1,
          at: this.#now(),
          actor: e.actor,
          role: e.role ?? null,
          action: e.action,
          target: e.target ?? null,
          outcome: e.outcome,
          durationMs: e.durationMs ?? null,
          requestId: e.requestId ?? null,
          source: e.source ?? null,
          details,
        };
        const prevHash = last?.hash ?? AUDIT_GENESIS;
        const hash = auditRowHash(prevHash, content);
        this.#stmt.insertAudit.run({ ...content, prevHash, hash });
        return { ...content, details: e.details ?? null, hash };
      })
      .immediate();
  }

  async listAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const db = this.#open();
    const where: string[] = [];
    const params: unknown[] = [];
    const eq = (column: string, v: string | undefined) => {
      if (v === undefined) return;
      where.push(`${column} = ?`);
      params.push(v);
    };
    eq('actor', query.actor);
    eq('action', query.action);
    eq('target', query.target);
    eq('outcome', query.outcome);
    if (query.afterId !== undefined) {
      where.push('id > ?');
      params.push(query.afterId);
    }
    if (query.beforeId !== undefined) {
      where.push('id < ?');
      params.push(query.beforeId);
    }
    if (query.since !== undefined) {
      where.push('at >= ?');
      params.push(query.since);
    }
    if (query.until !== undefined) {
      where.push('at < ?');
      params.push(query.until);
    }
    const sql = `SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id ${
      query.newestFirst ? 'DESC' : 'ASC'
    } LIMIT ?`;
    return (db.prepare(sql).all(...params, clampLimit(query.limit, 100)) as AuditRow[]).map(toAudit);
  }

  async verifyAudit(): Promise<AuditVerification> {
    const db = this.#open();
    const start = (db.prepare('SELECT last_unchained_id FROM audit_chain').get() as { last_unchained_id: number })
      .last_unchained_id;
    const page = db.prepare('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?');
    let prev = AUDIT_GENESIS;
    let lastId = start;
    let checked = 0;
    for (;;) {
      const rows = page.all(lastId, VERIFY_CHUNK) as AuditRow[];
      for (const r of rows) {
        const broken = (reason: string): AuditVerification => ({
          ok: false,
          checked,
          unchained: start,
          head: prev === AUDIT_GENESIS ? null : prev,
          lastId,
          broken: { id: r.id, reason },
        });
        // Ids are dense (assigned as last + 1, rows never deleted): a gap is a deleted row.
        if (r.id !== lastId + 1) return broken(`row ${lastId + 1} is missing`);
        if (r.prev_hash !== prev) return broken('prev_hash does not match the previous row');
        if (r.hash !== auditRowHash(prev, auditContent(r))) return broken('content does not match its hash');
        prev = r.hash;
        lastId = r.id;
        checked++;
      }
      if (rows.length < VERIFY_CHUNK) break;
      // Let other work (API requests) run between chunks of a long chain.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.#open();
    }
    return { ok: true, checked, unchained: start, head: prev === AUDIT_GENESIS ? null : prev, lastId };
  }

  async createToken(t: NewApiToken): Promise<ApiTokenRecord> {
    this.#open();
    try {
      this.#stmt.insertToken.run(t.id, t.name, t.role, t.scope ?? null, t.hash, this.#now(), t.expiresAt ?? null);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new StoreError('STORE_ERR_CONFLICT', `token "${t.id}" already exists`, { cause: err });
      }
      throw err;
    }
    return toToken(this.#stmt.getToken.get(t.id) as TokenRow);
  }

  async getToken(id: string): Promise<ApiTokenRecord | undefined> {
    this.#open();
    const row = this.#stmt.getToken.get(id) as TokenRow | undefined;
    return row && toToken(row);
  }

  async listTokens(): Promise<ApiTokenRecord[]> {
    const db = this.#open();
    return (db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id').all() as TokenRow[]).map(toToken);
  }

  async revokeToken(id: string): Promise<ApiTokenRecord> {
    this.#open();
    this.#stmt.revokeToken.run(this.#now(), id);
    const row = this.#stmt.getToken.get(id) as TokenRow | undefined;
    if (row === undefined) throw new StoreError('STORE_ERR_NOT_FOUND', `no token "${id}"`);
    return toToken(row);
  }

  async appendEvent(e: NewEvent): Promise<EventRecord> {
    this.#open();
    const at = this.#now();
    const r = this.#stmt.insertEvent.run(at, e.type, e.subject ?? null, JSON.stringify(e.data ?? null));
    return { id: Number(r.lastInsertRowid), at, type: e.type, subject: e.subject ?? null, data: e.data ?? null };
  }

  async appendEvents(events: readonly NewEvent[]): Promise<number> {
    const db = this.#open();
    const at = this.#now();
    db.transaction(() => {
      for (const e of events) this.#stmt.insertEvent.run(at, e.type, e.subject ?? null, JSON.stringify(e.data ?? null));
    })();
    return events.length;
  }

  async listEvents(
    query: { afterId?: number; limit?: number; type?: string; subject?: string } = {},
  ): Promise<EventRecord[]> {
    return (this.#pageAfter('events', { type: query.type, subject: query.subject }, query) as EventRow[]).map(toEvent);
  }

  /**
   * One page of an append-only table in id order, after `afterId`, optionally
   * where columns equal values. Table and column names are ours, never input.
   */
  #pageAfter(
    table: 'audit' | 'events',
    equal: Partial<Record<'actor' | 'type' | 'subject', string | undefined>>,
    query: { afterId?: number; limit?: number },
  ): unknown[] {
    const db = this.#open();
    const set = Object.entries(equal).filter((e): e is [string, string] => e[1] !== undefined);
    const where = set.map(([column]) => `${column} = ? AND `).join('');
    const params = [...set.map(([, v]) => v), query.afterId ?? 0, clampLimit(query.limit, 100)];
    return db.prepare(`SELECT * FROM ${table} WHERE ${where}id > ? ORDER BY id LIMIT ?`).all(...params);
  }

  readonly close = onceClose(async () => {
    this.#closed = true;
    await this.checkpointer?.close();
    // Fold the WAL back into the main file so a copied .db is complete on its own.
    // Best effort: another process reading the file can make it busy, and the
    // WAL is replayed on the next open anyway.
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Nothing is lost: the WAL stays beside the database.
    }
    this.#db.close();
  });
}
