/**
 * `cascaded audit verify` (the real CLI) finds tampering in the store: an
 * edited row, a deleted row, a cut tail (against a head kept elsewhere).
 * The append-only triggers are dropped first, as someone with the file
 * would do.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';
import { cli, writeConfig } from './cli-daemon.js';

// Child processes (the daemon, each CLI run) take seconds each on a loaded machine: a bound, not a wait.
t.setTimeout(240_000);

t.test('audit verify: intact, an edited row, a deleted row, a cut tail', async (t) => {
  const dir = t.testdir();
  const cases = ['intact', 'edited', 'deleted', 'cut'] as const;
  const files = Object.fromEntries(
    cases.map((c) => {
      mkdirSync(join(dir, c, 'state'), { recursive: true });
      return [c, writeConfig(join(dir, c))];
    }),
  ) as Record<(typeof cases)[number], string>;
  const db = (c: string) => join(dir, c, 'state', 'cascaded.db');

  const store = await openSqliteStore({ path: db('intact') });
  for (const action of ['token.create', 'session.create', 'chair.switch']) {
    await store.appendAudit({ actor: 'a1b2', role: 'admin', action, outcome: 'ok', target: 's1' });
  }
  const head = (await store.verifyAudit()).head!;
  await store.close();
  for (const c of cases.slice(1)) copyFileSync(db('intact'), db(c));
  const tamper = (c: string, sql: string) => {
    const rw = new Database(db(c));
    rw.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;');
    rw.exec(sql);
    rw.close();
  };
  tamper('edited', "UPDATE audit SET actor = 'someone-else' WHERE id = 1");
  tamper('deleted', 'DELETE FROM audit WHERE id = 2');
  tamper('cut', 'DELETE FROM audit WHERE id = 3');

  const [intact, edited, deleted, cut, cutNoHead] = await Promise.all([
    cli(['audit', 'verify', '--config', files.intact, '--head', head]),
    cli(['audit', 'verify', '--config', files.edited]),
    cli(['audit', 'verify', '--config', files.deleted]),
    cli(['audit', 'verify', '--config', files.cut, '--head', head]),
    cli(['audit', 'verify', '--config', files.cut]),
  ]);
  t.equal(intact.code, 0, intact.stdout + intact.stderr);
  t.match(intact.stdout, /audit intact: 3 rows/);
  t.equal(edited.code, 1);
  t.match(edited.stdout, /BROKEN at row 1/);
  t.equal(deleted.code, 1);
  t.match(deleted.stdout, /BROKEN at row 3: row 2 is missing/);
  t.equal(cut.code, 1, 'the head kept elsewhere shows the cut tail');
  t.match(cut.stdout, /rows were cut/);
  t.equal(cutNoHead.code, 0, 'without a head, a cut tail is an intact shorter chain (why the head is kept)');
});
