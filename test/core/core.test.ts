import t from 'tap';
import {
  CascadedError,
  CoreError,
  errorClass,
  FakeClock,
  isCascadedError,
  onceClose,
  randomHex,
  randomToken,
  realClock,
  seededRandom,
  TypedEmitter,
} from '../../src/core/index.js';

t.test('errorClass binds codes to their HTTP status', async (t) => {
  const TABLE = {
    X_ERR_A: { status: 404, description: 'a' },
    X_ERR_B: { status: 409, description: 'b' },
  } as const;
  const XError = errorClass('XError', TABLE);
  const cause = new Error('root');
  const e = new XError('X_ERR_B', 'conflict', { cause, details: { id: 7 } });
  t.ok(e instanceof XError && e instanceof CascadedError && e instanceof Error);
  t.equal(e.name, 'XError');
  t.equal(e.code, 'X_ERR_B');
  t.equal(e.status, 409);
  t.equal(e.cause, cause);
  t.same(e.toJSON(), { code: 'X_ERR_B', message: 'conflict', details: { id: 7 } });
  t.same(new XError('X_ERR_A', 'gone').toJSON(), { code: 'X_ERR_A', message: 'gone' }, 'no details key when none');
  t.ok(isCascadedError(e, 'X_ERR_B'));
  t.notOk(isCascadedError(e, 'X_ERR_A'));
  t.notOk(isCascadedError(new Error('plain')));
  t.equal(new CoreError('ERR_CLOSED', 'closed').status, 503);
});

t.test('safeEmit: a throwing listener is reported and the others still run', async (t) => {
  const ee = new TypedEmitter<{ tick: [n: number] }>();
  const seen: string[] = [];
  const errors: [unknown, string][] = [];
  ee.onListenerError((err, event) => errors.push([err, event]));
  ee.on('tick', () => {
    throw new Error('bad listener');
  });
  ee.on('tick', (n) => seen.push(`a${n}`));
  ee.once('tick', (n) => seen.push(`once${n}`));
  t.equal(ee.safeEmit('tick', 1), true);
  t.equal(ee.safeEmit('tick', 2), true);
  t.same(seen, ['a1', 'once1', 'a2']);
  t.equal(errors.length, 2);
  t.match(errors[0], [{ message: 'bad listener' }, 'tick']);
  t.equal(ee.listenerCount('tick'), 2, 'the once listener removed itself');
  ee.removeAllListeners();
  t.equal(ee.safeEmit('tick', 3), false, 'false when nobody listens');
});

t.test('FakeClock fires due timers in time order, ties in creation order', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const fired: string[] = [];
  clock.setTimeout(() => fired.push('b@20'), 20);
  clock.setTimeout(() => fired.push('a@10'), 10);
  clock.setTimeout(() => fired.push('c@20'), 20);
  const cancelled = clock.setTimeout(() => fired.push('never'), 15);
  clock.clearTimeout(cancelled);
  // A timer set from inside a timer, due within the same advance, fires too.
  clock.setTimeout(() => clock.setTimeout(() => fired.push('nested@35'), 5), 30);
  clock.advance(9);
  t.same(fired, []);
  clock.advance(100);
  t.same(fired, ['a@10', 'b@20', 'c@20', 'nested@35']);
  t.equal(clock.now(), 109);
  t.equal(clock.wallNow(), Date.UTC(2026, 0, 1) + 109);
  t.equal(clock.pending, 0);
});

t.test(
  'realClock.setImmediate: runs after the I/O of this turn, without a timer; clearTimeout cancels it',
  async (t) => {
    const order: string[] = [];
    const cancelled = realClock.setImmediate(() => order.push('cancelled immediate'));
    realClock.clearTimeout(cancelled);
    const timer = realClock.setTimeout(() => order.push('cancelled timer'), 0);
    realClock.clearTimeout(timer);
    // The clock's timers do not keep the process alive on their own; this one is also the next thing due.
    const hold = setInterval(() => {}, 10_000);
    await new Promise<void>((resolve) => {
      realClock.setTimeout(() => {
        order.push('timer');
        resolve();
      }, 5);
      realClock.setImmediate(() => order.push('immediate'));
      queueMicrotask(() => order.push('microtask'));
    });
    t.same(order, ['microtask', 'immediate', 'timer']);
    // Run on the turn that set it, not once the loop wakes for something else: nothing else is due for 10 s,
    // and half of that is a bound no loaded machine comes near for one turn of the loop.
    const t0 = performance.now();
    await new Promise<void>((resolve) => setTimeout(() => realClock.setImmediate(resolve), 0));
    clearInterval(hold);
    t.ok(performance.now() - t0 < 5_000, 'it ran on the turn that set it, not after the next timer');
    const fake = new FakeClock();
    let fired = 0;
    fake.setImmediate(() => fired++);
    fake.advance(0);
    t.equal(fired, 1, 'a fake clock fires it on the next advance, even of 0 ms');
  },
);

t.test('onceClose runs the close routine once, however often it is called', async (t) => {
  let runs = 0;
  const close = onceClose(async () => {
    runs++;
    await new Promise((r) => setTimeout(r, 5));
  });
  const p1 = close();
  const p2 = close();
  t.equal(p1, p2, 'concurrent callers share one promise');
  await p1;
  await close();
  t.equal(runs, 1);
});

t.test('random ids: length, alphabet, no repeats', async (t) => {
  const hex = new Set(Array.from({ length: 5000 }, () => randomHex(8)));
  t.equal(hex.size, 5000);
  for (const h of [...hex].slice(0, 50)) t.match(h, /^[0-9a-f]{16}$/);
  const tokens = Array.from({ length: 1000 }, () => randomToken(12));
  t.equal(new Set(tokens).size, 1000);
  for (const tok of tokens.slice(0, 50)) t.match(tok, /^[A-Za-z0-9_-]{16}$/);
});

t.test('seededRandom is deterministic per seed and within [0, 1)', async (t) => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const c = seededRandom(43);
  const xs = Array.from({ length: 1000 }, () => a());
  t.same(
    xs,
    Array.from({ length: 1000 }, () => b()),
  );
  t.not(xs[0], c());
  t.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  t.ok(mean > 0.45 && mean < 0.55, `mean ${mean} near 0.5`);
});
