/**
 * Command lanes on the FakeClock: order within a lane, concurrency across
 * lanes, a command that leaves its lane at its own deadline, a command whose
 * deadline passes while it waits is never started.
 */
import t from 'tap';
import { FakeClock } from '../../src/core/index.js';
import { CommandLanes } from '../../src/mcu/lanes.js';

t.setTimeout(10_000);

/** A piece of work the test finishes by hand. */
function manual() {
  const started: string[] = [];
  const finishers = new Map<string, (v: string) => void>();
  const failers = new Map<string, (e: Error) => void>();
  const work = (name: string) => () => {
    started.push(name);
    return new Promise<string>((resolve, reject) => {
      finishers.set(name, resolve);
      failers.set(name, reject);
    });
  };
  return {
    started,
    work,
    finish: (n: string) => finishers.get(n)!(n),
    fail: (n: string) => failers.get(n)!(new Error(n)),
  };
}

const flush = () => new Promise<void>((r) => setImmediate(r));
const timeout = (what: string) => () => Object.assign(new Error(`${what} timed out`), { code: 'TIMEOUT' });

t.test('one lane runs in order; other lanes and lane-less commands do not wait', async (t) => {
  const clock = new FakeClock();
  const lanes = new CommandLanes(clock);
  const m = manual();
  const a1 = lanes.run('out:a', 1_000, m.work('a1'), timeout('a1'));
  const a2 = lanes.run('out:a', 1_000, m.work('a2'), timeout('a2'));
  const b1 = lanes.run('out:b', 1_000, m.work('b1'), timeout('b1'));
  const h = lanes.run(undefined, 1_000, m.work('health'), timeout('health'));
  await flush();
  t.same(m.started, ['a1', 'b1', 'health'], 'a2 waits for a1; b1 and the health check start at once');
  t.equal(lanes.busy, 2);
  m.finish('b1');
  m.finish('health');
  t.equal(await b1, 'b1');
  t.equal(await h, 'health');
  m.fail('a1');
  await t.rejects(a1, { message: 'a1' });
  await flush();
  t.same(m.started, ['a1', 'b1', 'health', 'a2'], 'a failed command lets the next one of its lane start');
  m.finish('a2');
  t.equal(await a2, 'a2');
  await flush();
  t.equal(lanes.busy, 0, 'idle lanes are forgotten');
  t.equal(clock.pending, 0, 'no timer left behind');
});

t.test('a command leaves its lane at its own deadline; one that expires while waiting never starts', async (t) => {
  const clock = new FakeClock();
  const lanes = new CommandLanes(clock);
  const m = manual();
  const stuck = lanes.run('out:a', 5_000, m.work('stuck'), timeout('stuck'));
  const short = lanes.run('out:a', 2_000, m.work('short'), timeout('short'));
  const next = lanes.run('out:a', 8_000, m.work('next'), timeout('next'));
  await flush();
  t.same(m.started, ['stuck']);
  clock.advance(2_000);
  await t.rejects(short, { code: 'TIMEOUT', message: 'short timed out' }, 'its deadline passed in the queue');
  clock.advance(3_000);
  await t.rejects(stuck, { code: 'TIMEOUT', message: 'stuck timed out' });
  await flush();
  t.same(m.started, ['stuck', 'next'], 'the unanswered command left the lane at 5 s; short was never started');
  m.finish('stuck');
  await flush();
  m.finish('next');
  t.equal(await next, 'next', 'a late answer of the timed-out command changes nothing');
});

t.test('work that throws synchronously rejects its command only', async (t) => {
  const clock = new FakeClock();
  const lanes = new CommandLanes(clock);
  const bad = lanes.run(
    'x',
    1_000,
    () => {
      throw new Error('sync');
    },
    timeout('bad'),
  );
  await t.rejects(bad, { message: 'sync' });
  t.equal(await lanes.run('x', 1_000, async () => 'ok', timeout('ok')), 'ok');
});
