import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { type CheckpointResult, startCheckpointer } from '../../src/store/checkpointer.js';
import { openSqliteStore } from '../../src/store/index.js';

/** Results of the worker's checkpoints, awaited one at a time. */
function results() {
  const seen: CheckpointResult[] = [];
  const waiting: ((r: CheckpointResult) => void)[] = [];
  return {
    onCheckpoint: (r: CheckpointResult) => {
      const w = waiting.shift();
      if (w === undefined) seen.push(r);
      else w(r);
    },
    next: () =>
      new Promise<CheckpointResult>((resolve) => {
        const r = seen.shift();
        if (r === undefined) waiting.push(resolve);
        else resolve(r);
      }),
  };
}

// A page-sized event each: one commit writes its table page and index pages to the WAL.
const pad = 'x'.repeat(3_000);
const PAGE = 4_096;

t.test('checkpoints run in the worker, never inside the store connection commits', async (t) => {
  const clock = new FakeClock();
  const r = results();
  const path = join(t.testdir(), 'ck.db');
  const store = await openSqliteStore({
    path,
    clock,
    backgroundCheckpoint: { everyMs: 1_000, onCheckpoint: r.onCheckpoint },
  });
  t.teardown(() => store.close());

  // 1,500 commits: well past SQLite's auto-checkpoint threshold of 1,000 pages, which would have reset the
  // WAL from inside one of these commits. The WAL holds them all: the store's connection did not checkpoint.
  for (let i = 0; i < 1_500; i++) await store.appendEvent({ type: 'test.pad', subject: `s${i}`, data: { pad } });
  const walBytes = statSync(`${path}-wal`).size;
  t.ok(walBytes > 1_500 * PAGE, `WAL ${walBytes} bytes, every commit still in it`);

  clock.advance(1_000);
  const first = await r.next();
  t.ok(first.log >= 1_500, `the worker found ${first.log} pages in the WAL`);
  t.equal(first.checkpointed, first.log, 'and copied every one into the database (no reader held it back)');
  t.equal(first.busy, 0);

  // The next commits restart the WAL from its beginning: the file does not grow.
  for (let i = 0; i < 100; i++) await store.appendEvent({ type: 'test.pad', subject: `t${i}`, data: { pad } });
  t.equal(statSync(`${path}-wal`).size, walBytes, 'the WAL was reused from its start');
  clock.advance(1_000);
  const second = await r.next();
  t.ok(second.log < first.log / 5, `the second checkpoint saw only the new pages (${second.log})`);
  t.equal(second.checkpointed, second.log);

  t.equal((await store.listEvents({ type: 'test.pad', limit: 10_000 })).length, 1_600, 'nothing lost');
});

t.test('a WAL the worker could not fully copy (commits went on) is finished by the store connection', async (t) => {
  const clock = new FakeClock();
  const seen: { log: number; finishedMs?: number }[] = [];
  let reported: (() => void) | undefined;
  const path = join(t.testdir(), 'f.db');
  const store = await openSqliteStore({
    path,
    clock,
    backgroundCheckpoint: {
      everyMs: 1_000,
      restartPages: 1_000,
      onCheckpoint: (r) => {
        seen.push(r);
        reported?.();
      },
    },
  });
  t.teardown(() => store.close());
  for (let i = 0; i < 1_200; i++) await store.appendEvent({ type: 'test.pad', subject: `s${i}`, data: { pad } });
  // Commits go on while the worker checkpoints, as the daemon's do under load.
  const done = new Promise<void>((resolve) => {
    reported = resolve;
  });
  clock.advance(1_000);
  let during = 0;
  let answered = false;
  void done.then(() => {
    answered = true;
  });
  // At most 200 of them (a slow machine starts the worker late), then the answer is awaited.
  while (!answered && during < 200) {
    await store.appendEvent({ type: 'test.pad', subject: `d${during++}`, data: { pad } });
    await new Promise((r) => setImmediate(r));
  }
  await done;
  t.ok(seen[0]!.log >= 1_000, `the worker saw ${seen[0]!.log} pages`);
  t.type(seen[0]!.finishedMs, 'number', 'past restartPages: finished here');
  // Everything is copied now: the next commit restarts the WAL, which stops growing.
  const walBytes = statSync(`${path}-wal`).size;
  for (let i = 0; i < 50; i++) await store.appendEvent({ type: 'test.pad', subject: `t${i}`, data: { pad } });
  t.equal(statSync(`${path}-wal`).size, walBytes, `the WAL was reused from its start (${during} commits during)`);
  t.equal((await store.listEvents({ type: 'test.pad', limit: 10_000 })).length, 1_250 + during, 'nothing lost');
});

t.test('a checkpoint is not queued behind one still running; close is idempotent and clears the timer', async (t) => {
  const clock = new FakeClock();
  const r = results();
  const path = join(t.testdir(), 'q.db');
  const store = await openSqliteStore({
    path,
    clock,
    backgroundCheckpoint: { everyMs: 500, onCheckpoint: r.onCheckpoint },
  });
  await store.appendEvent({ type: 'x' });
  // Three ticks within one turn of the loop: the worker has not answered the first, so it is asked once.
  clock.advance(1_500);
  await r.next();
  clock.advance(500);
  await r.next();
  t.equal(clock.pending, 1, 'one timer armed');
  await Promise.all([store.close(), store.close()]);
  await store.close();
  t.equal(clock.pending, 0, 'no timer left after close');
  // The worker's connection is closed too: an exclusive lock on the file is granted at once.
  const db = new Database(path, { timeout: 0 });
  t.teardown(() => db.close());
  t.doesNotThrow(() => db.exec('BEGIN EXCLUSIVE; COMMIT'));
});

t.test('a worker that cannot open the database reports a failure (the store takes checkpoints back)', async (t) => {
  const clock = new FakeClock();
  const failed = new Promise<Error>((resolve) => {
    const c = startCheckpointer({ path: t.testdir(), clock, everyMs: 1_000, onFailure: resolve });
    t.teardown(() => c.close());
  });
  const err = await failed;
  t.match(err.message, /SQLITE_CANTOPEN/);
  t.equal(clock.pending, 0, 'its timer is cleared');
});

t.test('a memory database has no worker', async (t) => {
  const clock = new FakeClock();
  const store = await openSqliteStore({ path: ':memory:', clock, backgroundCheckpoint: { everyMs: 1_000 } });
  t.equal(clock.pending, 0);
  await store.close();
});
