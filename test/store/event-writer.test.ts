/**
 * Events written behind (src/store/event-writer.ts): what is appended within
 * the delay goes to the store in one transaction, in order; nothing before
 * the delay; close writes what is pending and ignores what comes after; a
 * store that fails is logged, never thrown at the caller. Against the real
 * SQLite store, read back through a second connection as another process
 * (the session report) would.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import t from 'tap';
import { FakeClock } from '../../src/core/index.js';
import { createEventWriter, type NewEvent, openSqliteStore } from '../../src/store/index.js';

t.setTimeout(30_000);

const ev = (i: number): NewEvent => ({ type: 'chair.command', subject: 's1', data: { i } });

t.test('events appended within the delay are written together, in order, after it', async (t) => {
  const path = join(t.testdir(), 'e.db');
  const store = await openSqliteStore({ path });
  t.teardown(() => store.close());
  const reader = await openSqliteStore({ path });
  t.teardown(() => reader.close());
  let transactions = 0;
  const counted = {
    appendEvents: (events: readonly NewEvent[]) => {
      transactions++;
      return store.appendEvents(events);
    },
  };
  const clock = new FakeClock();
  const w = createEventWriter({ store: counted, clock, delayMs: 1_000 });
  for (let i = 0; i < 3; i++) {
    w.append(ev(i));
    clock.advance(300);
  }
  await Promise.resolve();
  t.equal(transactions, 0, 'nothing written before the delay');
  t.same(await reader.listEvents({ subject: 's1' }), []);
  clock.advance(100);
  await w.flush();
  t.equal(transactions, 1, 'one transaction');
  t.same(
    (await reader.listEvents({ subject: 's1' })).map((e) => e.data),
    [{ i: 0 }, { i: 1 }, { i: 2 }],
    'the three, in order, seen from another connection',
  );
  w.append(ev(3));
  clock.advance(999);
  await Promise.resolve();
  t.equal(transactions, 1, 'the next waits its own delay');
  await w.close();
  t.equal(transactions, 2, 'close writes what is pending');
  t.same(
    (await reader.listEvents({ subject: 's1' })).map((e) => e.data),
    [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }],
  );
  w.append(ev(4));
  clock.advance(5_000);
  await w.close();
  t.equal(transactions, 2, 'appended after close: ignored; close again: nothing more');
});

t.test('a store that fails loses that batch, logged; the writer goes on', async (t) => {
  const clock = new FakeClock();
  const warnings: unknown[] = [];
  const logger = {
    child: () => logger,
    warn: (o: unknown) => warnings.push(o),
  } as unknown as Logger;
  let fail = true;
  const written: NewEvent[] = [];
  const store = {
    appendEvents: async (events: readonly NewEvent[]) => {
      if (fail) throw new Error('disk full');
      written.push(...events);
      return events.length;
    },
  };
  const w = createEventWriter({ store, clock, delayMs: 10, logger });
  w.append(ev(0));
  clock.advance(10);
  await w.flush();
  t.equal(warnings.length, 1, 'logged');
  t.match(warnings[0], { events: 1 });
  fail = false;
  w.append(ev(1));
  await w.close();
  t.same(
    written.map((e) => e.data),
    [{ i: 1 }],
    'the next batch written',
  );
});
