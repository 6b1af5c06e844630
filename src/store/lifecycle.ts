/**
 * The session lifecycle's tables on SQLite (docs/session.md). A class of its
 * own beside sqlite.ts so the Store keeps one file per concern; it shares the
 * store's connection and its closed check.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import type {
  LifecycleAckRecord,
  LifecycleCheckRecord,
  LifecycleDeadlineRecord,
  LifecyclePatch,
  LifecycleSessionRecord,
  LifecycleStepRecord,
  LifecycleTables,
  NewLifecycleCheck,
  NewLifecycleSession,
} from './types.js';

interface SessionRow {
  id: string;
  kind: 'planned' | 'adhoc';
  title: string;
  root: string;
  status: string;
  requested_at: string;
  starts_at: string;
  ends_at: string;
  rehearsal_at: string | null;
  spec: string;
  endpoints: string;
  usage: string;
  script_pos: number;
  created_at: string;
  updated_at: string;
}

interface StepRow {
  step: string;
  due_at: string;
  state: string;
  ran_at: string | null;
  late_ms: number | null;
  detail: string;
}

interface DeadlineRow {
  name: string;
  due_at: string;
  risk_at: string;
  state: string;
  at: string | null;
  at_risk_at: string | null;
  detail: string;
}

interface CheckRow {
  id: number;
  endpoint: string;
  source: 'unit' | 'daemon';
  connected: number | null;
  audio: number | null;
  video: number | null;
  notes: string | null;
  at: string;
  actor: string;
}

const toSession = (r: SessionRow): LifecycleSessionRecord => ({
  id: r.id,
  kind: r.kind,
  title: r.title,
  root: r.root,
  status: r.status,
  requestedAt: r.requested_at,
  startsAt: r.starts_at,
  endsAt: r.ends_at,
  rehearsalAt: r.rehearsal_at,
  spec: JSON.parse(r.spec),
  endpoints: JSON.parse(r.endpoints),
  usage: JSON.parse(r.usage),
  scriptPos: r.script_pos,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toStep = (r: StepRow): LifecycleStepRecord => ({
  step: r.step,
  dueAt: r.due_at,
  state: r.state,
  ranAt: r.ran_at,
  lateMs: r.late_ms,
  detail: JSON.parse(r.detail),
});

const toDeadline = (r: DeadlineRow): LifecycleDeadlineRecord => ({
  name: r.name,
  dueAt: r.due_at,
  riskAt: r.risk_at,
  state: r.state,
  at: r.at,
  atRiskAt: r.at_risk_at,
  detail: JSON.parse(r.detail),
});

const bool = (v: number | null) => (v === null ? null : v === 1);
const bit = (v: boolean | undefined) => (v === undefined ? null : v ? 1 : 0);

export class SqliteLifecycleTables implements LifecycleTables {
  readonly #db: () => Database.Database;
  readonly #now: () => string;

  /** `db` throws ERR_CLOSED once the store is closed. */
  constructor(db: () => Database.Database, now: () => string) {
    this.#db = db;
    this.#now = now;
  }

  #get(db: Database.Database, id: string): LifecycleSessionRecord | undefined {
    const row = db.prepare('SELECT * FROM lifecycle_sessions WHERE id = ?').get(id) as SessionRow | undefined;
    return row && toSession(row);
  }

  #putSteps(db: Database.Database, id: string, steps: readonly LifecycleStepRecord[]): void {
    const put = db.prepare(
      `INSERT INTO lifecycle_steps (session_id, step, due_at, state, ran_at, late_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (session_id, step) DO UPDATE SET due_at = excluded.due_at, state = excluded.state,
         ran_at = excluded.ran_at, late_ms = excluded.late_ms, detail = excluded.detail`,
    );
    for (const s of steps) put.run(id, s.step, s.dueAt, s.state, s.ranAt, s.lateMs, JSON.stringify(s.detail ?? null));
  }

  #putDeadlines(db: Database.Database, id: string, deadlines: readonly LifecycleDeadlineRecord[]): void {
    const put = db.prepare(
      `INSERT INTO lifecycle_deadlines (session_id, name, due_at, risk_at, state, at, at_risk_at, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (session_id, name) DO UPDATE SET due_at = excluded.due_at, risk_at = excluded.risk_at,
         state = excluded.state, at = excluded.at, at_risk_at = excluded.at_risk_at, detail = excluded.detail`,
    );
    for (const d of deadlines)
      put.run(id, d.name, d.dueAt, d.riskAt, d.state, d.at, d.atRiskAt, JSON.stringify(d.detail ?? null));
  }

  async create(
    s: NewLifecycleSession,
    steps: readonly LifecycleStepRecord[],
    deadlines: readonly LifecycleDeadlineRecord[],
  ): Promise<LifecycleSessionRecord> {
    const db = this.#db();
    const now = this.#now();
    db.transaction(() => {
      const taken =
        db.prepare('SELECT 1 FROM lifecycle_sessions WHERE id = ?').get(s.id) !== undefined ||
        db.prepare('SELECT 1 FROM sessions WHERE id = ?').get(s.id) !== undefined;
      if (taken) throw new StoreError('STORE_ERR_CONFLICT', `session "${s.id}" already exists`);
      db.prepare(
        `INSERT INTO lifecycle_sessions (id, kind, title, root, status, requested_at, starts_at, ends_at, rehearsal_at,
           spec, endpoints, usage, script_pos, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
      ).run(
        s.id,
        s.kind,
        s.title,
        s.root,
        s.status,
        s.requestedAt,
        s.startsAt,
        s.endsAt,
        s.rehearsalAt ?? null,
        JSON.stringify(s.spec ?? null),
        JSON.stringify(s.endpoints),
        JSON.stringify(s.usage),
        now,
        now,
      );
      this.#putSteps(db, s.id, steps);
      this.#putDeadlines(db, s.id, deadlines);
    })();
    return this.#get(db, s.id)!;
  }

  async update(
    id: string,
    p: LifecyclePatch,
    steps?: readonly LifecycleStepRecord[],
    deadlines?: readonly LifecycleDeadlineRecord[],
  ): Promise<LifecycleSessionRecord> {
    const db = this.#db();
    return db.transaction(() => {
      const cur = this.#get(db, id);
      if (cur === undefined) throw new StoreError('STORE_ERR_NOT_FOUND', `no scheduled session "${id}"`);
      db.prepare(
        `UPDATE lifecycle_sessions SET title = ?, root = ?, status = ?, starts_at = ?, ends_at = ?, rehearsal_at = ?,
           spec = ?, endpoints = ?, usage = ?, script_pos = ?, updated_at = ? WHERE id = ?`,
      ).run(
        p.title ?? cur.title,
        p.root ?? cur.root,
        p.status ?? cur.status,
        p.startsAt ?? cur.startsAt,
        p.endsAt ?? cur.endsAt,
        p.rehearsalAt === undefined ? cur.rehearsalAt : p.rehearsalAt,
        JSON.stringify(p.spec === undefined ? cur.spec : p.spec),
        JSON.stringify(p.endpoints ?? cur.endpoints),
        JSON.stringify(p.usage ?? cur.usage),
        p.scriptPos ?? cur.scriptPos,
        this.#now(),
        id,
      );
      if (steps !== undefined) this.#putSteps(db, id, steps);
      if (deadlines !== undefined) this.#putDeadlines(db, id, deadlines);
      return this.#get(db, id)!;
    })();
  }

  async get(id: string): Promise<LifecycleSessionRecord | undefined> {
    return this.#get(this.#db(), id);
  }

  async list(query: { statuses?: readonly string[]; limit?: number } = {}): Promise<LifecycleSessionRecord[]> {
    const db = this.#db();
    const limit = Math.max(1, Math.min(query.limit ?? 1_000, 10_000));
    const st = query.statuses;
    const rows = (
      st === undefined
        ? db.prepare('SELECT * FROM lifecycle_sessions ORDER BY starts_at DESC, id LIMIT ?').all(limit)
        : st.length === 0
          ? []
          : db
              .prepare(
                `SELECT * FROM lifecycle_sessions WHERE status IN (${st.map(() => '?').join(', ')})
                 ORDER BY starts_at DESC, id LIMIT ?`,
              )
              .all(...st, limit)
    ) as SessionRow[];
    return rows.map(toSession);
  }

  async steps(id: string): Promise<LifecycleStepRecord[]> {
    const rows = this.#db()
      .prepare('SELECT * FROM lifecycle_steps WHERE session_id = ? ORDER BY due_at, step')
      .all(id) as StepRow[];
    return rows.map(toStep);
  }

  async setStep(id: string, step: LifecycleStepRecord): Promise<void> {
    this.#putSteps(this.#db(), id, [step]);
  }

  async deadlines(id: string): Promise<LifecycleDeadlineRecord[]> {
    const rows = this.#db()
      .prepare('SELECT * FROM lifecycle_deadlines WHERE session_id = ? ORDER BY due_at, name')
      .all(id) as DeadlineRow[];
    return rows.map(toDeadline);
  }

  async setDeadline(id: string, deadline: LifecycleDeadlineRecord): Promise<void> {
    this.#putDeadlines(this.#db(), id, [deadline]);
  }

  async ack(id: string, a: LifecycleAckRecord): Promise<LifecycleAckRecord> {
    const db = this.#db();
    db.prepare(
      'INSERT INTO lifecycle_acks (session_id, unit, at, actor) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ).run(id, a.unit, a.at, a.actor);
    return db
      .prepare('SELECT unit, at, actor FROM lifecycle_acks WHERE session_id = ? AND unit = ?')
      .get(id, a.unit) as LifecycleAckRecord;
  }

  async acks(id: string): Promise<LifecycleAckRecord[]> {
    return this.#db()
      .prepare('SELECT unit, at, actor FROM lifecycle_acks WHERE session_id = ? ORDER BY at, unit')
      .all(id) as LifecycleAckRecord[];
  }

  async addCheck(id: string, c: NewLifecycleCheck): Promise<LifecycleCheckRecord> {
    const r = this.#db()
      .prepare(
        `INSERT INTO lifecycle_checks (session_id, endpoint, source, connected, audio, video, notes, at, actor)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, c.endpoint, c.source, bit(c.connected), bit(c.audio), bit(c.video), c.notes ?? null, c.at, c.actor);
    return {
      id: Number(r.lastInsertRowid),
      endpoint: c.endpoint,
      source: c.source,
      connected: c.connected ?? null,
      audio: c.audio ?? null,
      video: c.video ?? null,
      notes: c.notes ?? null,
      at: c.at,
      actor: c.actor,
    };
  }

  async checks(id: string): Promise<LifecycleCheckRecord[]> {
    const rows = this.#db()
      .prepare('SELECT * FROM lifecycle_checks WHERE session_id = ? ORDER BY id')
      .all(id) as CheckRow[];
    return rows.map((r) => ({
      id: r.id,
      endpoint: r.endpoint,
      source: r.source,
      connected: bool(r.connected),
      audio: bool(r.audio),
      video: bool(r.video),
      notes: r.notes,
      at: r.at,
      actor: r.actor,
    }));
  }
}
