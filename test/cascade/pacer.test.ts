/**
 * The pacing of reconcile passes (src/cascade/pacer.ts) on a fake clock: the first kick after a quiet spell runs
 * its pass before the event loop takes its next callback; kicks within the gap that pass set share one pass at
 * its end; a kick raised during a pass keeps that pass's gap.
 */
import t from 'tap';
import { GAP_FACTOR, GAP_MAX_MS, GAP_MIN_MS, PassPacer } from '../../src/cascade/pacer.js';
import { FakeClock } from '../../src/core/clock.js';

const microtasks = () => new Promise<void>((r) => queueMicrotask(r));

/** A pacer on `clock` whose pass costs `cost()` ms of the clock, `acting` of them starting actions; its passes counted. */
function counted(t: { teardown(fn: () => void): void }, clock: FakeClock, cost: () => number, acting = 0) {
  const c = { passes: 0, pacer: undefined as unknown as PassPacer, during: () => {} };
  c.pacer = new PassPacer(clock, () => {
    c.passes++;
    clock.advance(cost());
    c.during();
    return acting;
  });
  t.teardown(() => c.pacer.close());
  return c;
}

t.test('a kick after a quiet spell runs its pass before the next event-loop callback', async (t) => {
  const clock = new FakeClock();
  const order: string[] = [];
  const pacer = new PassPacer(clock, () => {
    order.push('pass');
    return 0;
  });
  t.teardown(() => pacer.close());
  const immediate = new Promise<void>((r) =>
    setImmediate(() => {
      order.push('immediate');
      r();
    }),
  );
  pacer.kick();
  pacer.kick();
  await immediate;
  t.same(order, ['pass', 'immediate'], 'one pass, ahead of the callback already queued');
});

t.test('kicks within the gap share one pass at its end; the gap follows what the pass cost', async (t) => {
  const clock = new FakeClock();
  let cost = 3;
  const c = counted(t, clock, () => cost);
  const { pacer } = c;
  pacer.kick();
  await microtasks();
  t.equal(c.passes, 1);
  const gap = Math.min(GAP_MAX_MS, Math.max(GAP_MIN_MS, GAP_FACTOR * cost));
  for (let i = 0; i < 5; i++) pacer.kick();
  await microtasks();
  t.equal(c.passes, 1, 'no pass inside the gap');
  clock.advance(gap - 1);
  t.equal(c.passes, 1, 'not before the gap ends');
  cost = 0;
  clock.advance(1);
  t.equal(c.passes, 2, 'the five kicks got one pass when the gap ended');
  // A pass that cost nothing still leaves the minimum gap.
  pacer.kick();
  await microtasks();
  t.equal(c.passes, 2, 'held for the minimum gap');
  clock.advance(GAP_MIN_MS);
  t.equal(c.passes, 3);
  // An expensive pass is followed by at most the largest gap.
  cost = 100;
  clock.advance(1_000);
  pacer.kick();
  await microtasks();
  t.equal(c.passes, 4);
  pacer.kick();
  clock.advance(GAP_MAX_MS - 1);
  t.equal(c.passes, 4);
  clock.advance(1);
  t.equal(c.passes, 5, 'the gap is capped');
});

t.test('the gap follows the pass’s own cost, not the actions it started', async (t) => {
  const clock = new FakeClock();
  // 2 ms deciding, 10 ms starting actions: the gap is 4 x 2 ms after the pass ends, not 4 x 12 (capped at 20).
  const c = counted(t, clock, () => 12, 10);
  const { pacer } = c;
  pacer.kick();
  await microtasks();
  t.equal(c.passes, 1);
  pacer.kick();
  const gap = Math.max(GAP_MIN_MS, GAP_FACTOR * 2);
  t.ok(gap < Math.min(GAP_MAX_MS, GAP_FACTOR * 12), 'the two rules differ here');
  clock.advance(gap - 1);
  t.equal(c.passes, 1, 'not before the gap its own cost set');
  clock.advance(1);
  t.equal(c.passes, 2, 'at its end');
});

t.test('an urgent kick runs its pass at once, inside the gap or over a pass already waiting for its end', async (t) => {
  const clock = new FakeClock();
  const c = counted(t, clock, () => 5);
  const { pacer } = c;
  pacer.kick();
  await microtasks();
  t.equal(c.passes, 1);
  pacer.kick();
  await microtasks();
  t.equal(c.passes, 1, 'an ordinary kick waits for the gap');
  pacer.kick(true);
  await microtasks();
  t.equal(c.passes, 2, 'the urgent one does not, and takes the waiting kick along');
  clock.advance(GAP_MAX_MS);
  t.equal(c.passes, 2, 'no second pass for the kick it answered');
  pacer.kick(true);
  await microtasks();
  t.equal(c.passes, 3, 'urgent right after a pass: at once again');
});

t.test(
  'an urgent kick after an ordinary one raised during a pass: its pass runs right after, gap or not',
  async (t) => {
    const clock = new FakeClock();
    const c = counted(t, clock, () => 5);
    c.during = () => {
      // Raised during the first pass: its own run is due in a microtask, before this pass has set its gap.
      if (c.passes === 1) {
        c.pacer.kick();
        c.pacer.kick(true);
      }
    };
    c.pacer.kick();
    await microtasks();
    await microtasks();
    t.equal(c.passes, 2, 'the urgent kick kept its urgency though a run was already due');
  },
);

t.test('a kick raised during a pass keeps that pass’s gap; close stops everything', async (t) => {
  const clock = new FakeClock();
  const c = counted(t, clock, () => 1);
  const { pacer } = c;
  c.during = () => {
    if (c.passes === 1) pacer.kick();
  };
  pacer.kick();
  await microtasks();
  await microtasks();
  t.equal(c.passes, 1, 'the kick from inside the pass waits for the gap');
  clock.advance(GAP_FACTOR * 1);
  t.equal(c.passes, 2);
  pacer.kick();
  pacer.close();
  clock.advance(1_000);
  await microtasks();
  t.equal(c.passes, 2, 'no pass after close');
});
