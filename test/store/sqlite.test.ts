import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { FakeClock } from '../../src/core/clock.js';
import { MIGRATIONS, openSqliteStore } from '../../src/store/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';

t.test('sessions, audit and events round-trip', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 8, 0, 0));
  const store = await openSqliteStore({ path: join(t.testdir(), 'a.db'), clock });
  t.teardown(() => store.close());
  t.equal(await store.schemaVersion(), MIGRATIONS.at(-1)!.version);

  const s = await store.createSession({
    id: 's1',
    kind: 'planned',
    title: 'Họp trực tuyến',
    state: 'draft',
    data: { n: 1 },
  });
  t.match(s, {
    id: 's1',
    kind: 'planned',
    state: 'draft',
    startsAt: null,
    data: { n: 1 },
    createdAt: '2026-11-22T08:00:00.000Z',
  });
  await t.rejects(store.createSession({ id: 's1', kind: 'adhoc', title: 'x', state: 'draft' }), {
    code: 'STORE_ERR_CONFLICT',
  });
  clock.advance(60_000);
  const u = await store.updateSession('s1', { state: 'planned', startsAt: '2026-11-23T01:00:00.000Z' });
  t.match(u, { state: 'planned', title: 'Họp trực tuyến', data: { n: 1 }, updatedAt: '2026-11-22T08:01:00.000Z' });
  await t.rejects(store.updateSession('nope', { state: 'x' }), { code: 'STORE_ERR_NOT_FOUND', status: 404 });
  t.equal(await store.getSession('nope'), undefined);
  await store.createSession({ id: 's2', kind: 'adhoc', title: 'Đột xuất', state: 'draft' });
  t.same(
    (await store.listSessions({ state: 'draft' })).map((x) => x.id),
    ['s2'],
  );
  t.equal((await store.listSessions()).length, 2);

  const a1 = await store.appendAudit({
    actor: 'tech-nb',
    action: 'chair.switch',
    target: 'nb-h1',
    outcome: 'ok',
    durationMs: 412.5,
  });
  await store.appendAudit({ actor: 'admin', action: 'session.create', outcome: 'ok', details: { id: 's1' } });
  t.match(await store.listAudit(), [
    { id: a1.id, actor: 'tech-nb', target: 'nb-h1', durationMs: 412.5, details: null },
    { actor: 'admin', target: null, durationMs: null, details: { id: 's1' } },
  ]);
  t.same(
    (await store.listAudit({ actor: 'admin' })).map((x) => x.action),
    ['session.create'],
  );
  t.equal((await store.listAudit({ afterId: a1.id })).length, 1);

  await store.appendEvent({ type: 'mcu.down', subject: 'nb', data: { reason: 'timeout' } });
  await store.appendEvent({ type: 'mcu.up', subject: 'nb' });
  t.match(await store.listEvents({ type: 'mcu.down' }), [{ subject: 'nb', data: { reason: 'timeout' } }]);
  t.equal((await store.listEvents({ limit: 1 })).length, 1);
});

t.test('inventory snapshots are written only when the inventory changes', async (t) => {
  const store = await openSqliteStore({ path: join(t.testdir(), 'inv.db') });
  t.teardown(() => store.close());
  const inv = parseConfig(toYaml(baseConfig())).inventory;
  const first = await store.saveInventorySnapshot(inv, 'a.yaml');
  t.equal(first.created, true);
  const same = await store.saveInventorySnapshot(JSON.parse(JSON.stringify(inv)), 'a.yaml');
  t.match(same, { created: false, id: first.id, hash: first.hash });
  const o = baseConfig();
  o.mcus[1].capacity.ports = 21;
  const changed = await store.saveInventorySnapshot(parseConfig(toYaml(o)).inventory, 'b.yaml');
  t.equal(changed.created, true);
  t.not(changed.hash, first.hash);
  const latest = await store.latestInventorySnapshot();
  t.equal(latest?.inventory.mcus[1]?.capacity.ports, 21);
});

t.test('migrations apply in order, once; a newer database is refused', async (t) => {
  const dir = t.testdir({ 'file.txt': 'not a directory' });
  const path = join(dir, 'm.db');
  const current = await openSqliteStore({ path });
  await current.appendAudit({ actor: 'a', action: 'x', outcome: 'ok' });
  await current.close();
  const latest = MIGRATIONS.at(-1)!.version;
  const next = [...MIGRATIONS, { version: latest + 1, name: 'add a table', sql: 'CREATE TABLE extra (x INTEGER)' }];
  const s2 = await openSqliteStore({ path, migrations: next });
  t.equal(await s2.schemaVersion(), latest + 1);
  t.equal((await s2.listAudit()).length, 1, 'data kept across the migration');
  await s2.close();
  const again = await openSqliteStore({ path, migrations: next });
  await again.close();
  const db = new Database(path, { readonly: true });
  t.same(
    db.prepare('SELECT version FROM migrations ORDER BY version').all(),
    next.map((m) => ({ version: m.version })),
  );
  db.close();
  await t.rejects(openSqliteStore({ path }), { code: 'STORE_ERR_VERSION' }, 'this build refuses a newer database');
  const notDir = join(dir, 'file.txt', 'x.db');
  await t.rejects(openSqliteStore({ path: notDir }), { code: 'STORE_ERR_OPEN' });
});

t.test('close is idempotent and use after close fails with ERR_CLOSED', async (t) => {
  const store = await openSqliteStore({ path: join(t.testdir(), 'c.db') });
  await Promise.all([store.close(), store.close()]);
  await store.close();
  await t.rejects(store.appendAudit({ actor: 'a', action: 'x', outcome: 'ok' }), { code: 'ERR_CLOSED' });
  await t.rejects(store.listSessions(), { code: 'ERR_CLOSED' });
});

const CHILD = `
import { writeSync } from 'node:fs';
import { openSqliteStore } from './dist/src/store/index.js';
const store = await openSqliteStore({ path: process.argv[1] });
for (let i = 1; ; i++) {
  await store.appendAudit({ actor: 'burst', action: 'write', target: String(i), outcome: 'ok', details: { pad: 'x'.repeat(200) } });
  // Reported only after the commit returned: every reported id must survive.
  writeSync(1, i + '\\n');
}
`;

t.test('kill -9 in the middle of a burst loses no committed record', async (t) => {
  const path = join(t.testdir(), 'crash.db');
  // Each round appends to the same file, numbering its records from 1 again.
  let before = 0;
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let reported = 0;
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) reported = Math.max(reported, Number(l));
    });
    // Kill somewhere in the middle of the burst; loaded CI machines write slowly, hence the modest count.
    const target = 300 + round * 200;
    const deadline = Date.now() + 60_000;
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (reported > target || Date.now() > deadline) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        }
      }, 5);
    });
    t.ok(reported > target, `round ${round}: the child committed ${reported} records before the kill`);
    await new Promise((r) => child.once('exit', r));
    const db = new Database(path);
    t.equal(db.pragma('integrity_check', { simple: true }), 'ok', `round ${round}: database is intact`);
    const rows = db.prepare('SELECT target FROM audit WHERE actor = ? AND id > ?').all('burst', before) as {
      target: string;
    }[];
    before = (db.prepare('SELECT max(id) AS m FROM audit').get() as { m: number }).m;
    db.close();
    const present = new Set(rows.map((r) => Number(r.target)));
    const lost = Array.from({ length: reported }, (_, i) => i + 1).filter((i) => !present.has(i));
    t.same(lost, [], `round ${round}: ${reported} reported committed, ${present.size} present, none lost`);
    const store = await openSqliteStore({ path });
    t.ok((await store.listAudit({ limit: 1 })).length === 1, 'reopens and reads after the crash');
    await store.close();
  }
});

t.test('audit rows written before the chain stay readable; the chain starts after them', async (t) => {
  const path = join(t.testdir(), 'legacy.db');
  // A database as version 1 left it, with one audit row.
  const v1 = new Database(path);
  v1.exec(MIGRATIONS[0]!.sql);
  v1.prepare("INSERT INTO migrations VALUES (1, 'initial', 'then')").run();
  v1.pragma('user_version = 1');
  v1.prepare("INSERT INTO audit (at, actor, action, outcome) VALUES ('then', 'old', 'x', 'ok')").run();
  v1.close();
  const store = await openSqliteStore({ path });
  t.teardown(() => store.close());
  t.match(await store.verifyAudit(), { ok: true, checked: 0, unchained: 1, head: null });
  const a = await store.appendAudit({
    actor: 'new',
    role: 'admin',
    action: 'y',
    outcome: 'ok',
    requestId: 'r',
    source: '::1',
  });
  t.match(a, { id: 2, role: 'admin', requestId: 'r', source: '::1', hash: /^[0-9a-f]{64}$/ });
  t.match(await store.verifyAudit(), { ok: true, checked: 1, unchained: 1, head: a.hash, lastId: 2 });
  t.match(await store.listAudit({ newestFirst: true, limit: 1 }), [{ actor: 'new' }]);
  t.match(await store.listAudit({ actor: 'old' }), [{ id: 1, hash: null }]);
});

t.test('API tokens: created once, listed, revoked (kept), unknown ids refused', async (t) => {
  const store = await openSqliteStore({ path: ':memory:' });
  t.teardown(() => store.close());
  const rec = await store.createToken({ id: '0123456789abcdef', name: 'n', role: 'viewer', hash: 'h'.repeat(64) });
  t.match(rec, { id: '0123456789abcdef', role: 'viewer', scope: null, expiresAt: null, revokedAt: null });
  await t.rejects(store.createToken({ id: rec.id, name: 'm', role: 'admin', hash: 'x' }), {
    code: 'STORE_ERR_CONFLICT',
  });
  t.match(await store.revokeToken(rec.id), { revokedAt: String });
  t.equal((await store.listTokens()).length, 1);
  await t.rejects(store.revokeToken('ffffffffffffffff'), { code: 'STORE_ERR_NOT_FOUND' });
});

t.test('events appended together: one transaction, in order, one time', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 11, 6));
  const store = await openSqliteStore({ path: join(t.testdir(), 'events.db'), clock });
  t.teardown(() => store.close());
  await store.appendEvent({ type: 'first' });
  clock.advance(1_000);
  t.equal(
    await store.appendEvents([
      { type: 'session.quality', subject: 's1', data: { n: 1 } },
      { type: 'session.quality', subject: 's2' },
      { type: 'session.quality', subject: 's1', data: { n: 3 } },
    ]),
    3,
  );
  t.equal(await store.appendEvents([]), 0, 'nothing to write');
  const all = await store.listEvents();
  t.same(
    all.map((e) => [e.type, e.subject, e.data]),
    [
      ['first', null, null],
      ['session.quality', 's1', { n: 1 }],
      ['session.quality', 's2', null],
      ['session.quality', 's1', { n: 3 }],
    ],
  );
  t.ok(all[1]!.id < all[2]!.id && all[2]!.id < all[3]!.id, 'ids in order');
  t.equal(new Set(all.slice(1).map((e) => e.at)).size, 1, 'one time for the batch');
  t.not(all[1]!.at, all[0]!.at, 'stamped when written');
});
