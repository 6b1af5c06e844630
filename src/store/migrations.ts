/**
 * Versioned schema migrations. Append only: a released migration is never
 * edited, a change is a new entry. Version N is recorded in PRAGMA user_version
 * and in the `migrations` table, in the same transaction as its DDL.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial: inventory snapshots, sessions, audit, events',
    sql: `
      CREATE TABLE migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at TEXT NOT NULL
      );
      CREATE TABLE inventory_snapshots (
        id         INTEGER PRIMARY KEY,
        hash       TEXT NOT NULL,
        source     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        body       TEXT NOT NULL
      );
      CREATE INDEX inventory_snapshots_hash ON inventory_snapshots (hash);
      CREATE TABLE sessions (
        id         TEXT PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('planned', 'adhoc')),
        title      TEXT NOT NULL,
        state      TEXT NOT NULL,
        starts_at  TEXT,
        data       TEXT NOT NULL DEFAULT 'null',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX sessions_state ON sessions (state);
      CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          TEXT NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        target      TEXT,
        outcome     TEXT NOT NULL,
        duration_ms REAL,
        details     TEXT NOT NULL DEFAULT 'null'
      );
      CREATE INDEX audit_actor ON audit (actor, id);
      CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        type    TEXT NOT NULL,
        subject TEXT,
        data    TEXT NOT NULL DEFAULT 'null'
      );
      CREATE INDEX events_type ON events (type, id);
    `,
  },
  {
    version: 2,
    name: 'cascades: the plan, rooms and chair selection of each session; observed link states',
    sql: `
      CREATE TABLE cascades (
        session_id   TEXT PRIMARY KEY REFERENCES sessions (id),
        root         TEXT NOT NULL,
        request      TEXT NOT NULL,
        plan         TEXT NOT NULL,
        plan_version INTEGER NOT NULL,
        usage        TEXT NOT NULL,
        selection    TEXT,
        generation   INTEGER NOT NULL,
        updated_at   TEXT NOT NULL
      );
      CREATE INDEX cascades_generation ON cascades (generation);
      CREATE TABLE cascade_rooms (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        mcu        TEXT NOT NULL,
        uri        TEXT NOT NULL,
        held       INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (session_id, mcu)
      );
      CREATE UNIQUE INDEX cascade_rooms_held ON cascade_rooms (uri) WHERE held = 1;
      CREATE TABLE cascade_links (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        child      TEXT NOT NULL,
        parent     TEXT NOT NULL,
        state      TEXT NOT NULL,
        detail     TEXT,
        since      TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (session_id, child)
      );
      CREATE INDEX events_subject ON events (subject, id);
    `,
  },
  {
    version: 3,
    name: 'api: bearer tokens (hashed), audit hash chain (who, role, request id, source address)',
    // The audit table is append-only: triggers refuse UPDATE and DELETE, and each row carries the
    // SHA-256 of its predecessor's hash and its own content, so an edit made around the triggers
    // (another SQLite client, a hex editor) breaks the chain that `cascaded audit verify` walks.
    // Rows written before this version cannot be hashed in SQL: audit_chain records where the
    // chain starts, so blanking the hashes of later rows does not pass for legacy rows.
    sql: `
      CREATE TABLE api_tokens (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        scope      TEXT,
        hash       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
      );
      ALTER TABLE audit ADD COLUMN role TEXT;
      ALTER TABLE audit ADD COLUMN request_id TEXT;
      ALTER TABLE audit ADD COLUMN source TEXT;
      ALTER TABLE audit ADD COLUMN prev_hash TEXT;
      ALTER TABLE audit ADD COLUMN hash TEXT;
      CREATE TABLE audit_chain (last_unchained_id INTEGER NOT NULL);
      INSERT INTO audit_chain SELECT COALESCE(MAX(id), 0) FROM audit;
      CREATE INDEX audit_action ON audit (action, id);
      CREATE INDEX audit_target ON audit (target, id);
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    `,
  },
  {
    version: 4,
    name: 'session lifecycle: scheduled sessions, their steps and deadlines, acknowledgements, endpoint checks',
    // A scheduled session's id becomes its cascade's session id when the daemon dials it (the cascade
    // creates the `sessions` row then), so these tables reference no other table.
    sql: `
      CREATE TABLE lifecycle_sessions (
        id           TEXT PRIMARY KEY,
        kind         TEXT NOT NULL CHECK (kind IN ('planned', 'adhoc')),
        title        TEXT NOT NULL,
        root         TEXT NOT NULL,
        status       TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        starts_at    TEXT NOT NULL,
        ends_at      TEXT NOT NULL,
        rehearsal_at TEXT,
        spec         TEXT NOT NULL,
        endpoints    TEXT NOT NULL,
        usage        TEXT NOT NULL,
        script_pos   INTEGER NOT NULL DEFAULT 0,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
      );
      CREATE INDEX lifecycle_sessions_status ON lifecycle_sessions (status, starts_at);
      CREATE TABLE lifecycle_steps (
        session_id TEXT NOT NULL REFERENCES lifecycle_sessions (id),
        step       TEXT NOT NULL,
        due_at     TEXT NOT NULL,
        state      TEXT NOT NULL,
        ran_at     TEXT,
        late_ms    INTEGER,
        detail     TEXT NOT NULL DEFAULT 'null',
        PRIMARY KEY (session_id, step)
      );
      CREATE TABLE lifecycle_deadlines (
        session_id TEXT NOT NULL REFERENCES lifecycle_sessions (id),
        name       TEXT NOT NULL,
        due_at     TEXT NOT NULL,
        risk_at    TEXT NOT NULL,
        state      TEXT NOT NULL,
        at         TEXT,
        at_risk_at TEXT,
        detail     TEXT NOT NULL DEFAULT 'null',
        PRIMARY KEY (session_id, name)
      );
      CREATE TABLE lifecycle_acks (
        session_id TEXT NOT NULL REFERENCES lifecycle_sessions (id),
        unit       TEXT NOT NULL,
        at         TEXT NOT NULL,
        actor      TEXT NOT NULL,
        PRIMARY KEY (session_id, unit)
      );
      CREATE TABLE lifecycle_checks (
        id         INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES lifecycle_sessions (id),
        endpoint   TEXT NOT NULL,
        source     TEXT NOT NULL CHECK (source IN ('unit', 'daemon')),
        connected  INTEGER,
        audio      INTEGER,
        video      INTEGER,
        notes      TEXT,
        at         TEXT NOT NULL,
        actor      TEXT NOT NULL
      );
      CREATE INDEX lifecycle_checks_session ON lifecycle_checks (session_id, endpoint, id);
    `,
  },
  {
    version: 5,
    name: 'cascades: the chair selection in a table of its own',
    // A chair command records its selection (docs/chair.md): updating the column of the cascades row rewrote
    // the whole row, the national session's plan with it (megabytes), and blocked the event loop tens of ms
    // on the chair's hot path. A row here, when present, wins over cascades.selection.
    sql: `
      CREATE TABLE cascade_selections (
        session_id TEXT PRIMARY KEY REFERENCES sessions (id),
        selection  TEXT,
        updated_at TEXT NOT NULL
      );
    `,
  },
];
