/**
 * The chair's command engine on the FakeClock, with fake conferences that
 * hold every command until the test answers it: every step issued at once,
 * one deadline, retries inside it, permanent refusals, supersession (the
 * older command stops and nothing of it lands after the newer one's steps),
 * idempotency by request id, sessions that never wait for each other, a
 * broken path healed inside the deadline or named when it is not, events,
 * preview, close.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { type CommandFinished, createChairEngine } from '../../src/chair/index.js';
import { FakeClock } from '../../src/core/index.js';
import { FakeCascade, flush, msml, roomOf, timeout, uriOf } from './fixtures.js';

t.setTimeout(30_000);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Until `ok()`, a macrotask between tries (a WeakRef is cleared only once the job that read it has ended). */
async function until(ok: () => boolean, tries = 50): Promise<void> {
  for (let i = 0; i < tries && !ok(); i++) await new Promise((r) => setImmediate(r));
}

/** m0 (root, chair) <- m1 <- m2; x on m2 (depth 2), y on m1 (depth 1), z on m0. */
function world(t: Tap, deadlineMs = 30_000) {
  const clock = new FakeClock();
  const cascade = new FakeCascade();
  cascade.addSession('S', 'm0', { m1: 'm0', m2: 'm1' }, { x: 'm2', y: 'm1', z: 'm0' });
  const engine = createChairEngine({ source: cascade, clock, deadlineMs, retryFirstMs: 100, retryMaxMs: 1_000 });
  t.teardown(() => engine.close());
  return { clock, cascade, engine };
}
type Tap = { teardown(fn: () => unknown): void };

t.test('every step goes out at once; the result times each one', async (t) => {
  const { clock, cascade, engine } = world(t);
  const finished: CommandFinished[] = [];
  engine.on('finished', (f) => finished.push(f));
  const p = engine.bringToChair('S', 'x', { requestId: 'r1', actor: 'tester' });
  t.same(
    cascade.calls.map((c) => `${c.mcu} ${c.target} <- ${c.sources.join(',')}`),
    [
      `m2 ${roomOf('m1')} <- ${uriOf('x')}`,
      `m1 ${roomOf('m0')} <- ${roomOf('m2')}`,
      `m0 ${uriOf('chair')} <- ${roomOf('m1')}`,
    ],
    'three switches, issued before any answer: x up its link, the link up the next, the chair shows it',
  );
  clock.advance(40);
  for (const c of cascade.calls) c.ok();
  const r = await p;
  t.equal(r.outcome, 'ok');
  t.equal(r.ms, 40);
  t.same(r.path, ['m2', 'm1', 'm0']);
  t.same(
    r.steps.map((s) => [s.id, s.outcome, s.attempts, s.startedMs, s.doneMs]),
    [
      ['switch:m2', 'ok', 1, 0, 40],
      ['switch:m1', 'ok', 1, 0, 40],
      ['switch:m0', 'ok', 1, 0, 40],
    ],
  );
  t.same(cascade.selections, [['S', 'x']], 'the path claimed from the cascade manager, once');
  t.match(finished, [{ requestId: 'r1', session: 'S', endpoint: 'x', outcome: 'ok', ms: 40, actor: 'tester' }]);
  t.equal(engine.inFlight, 0);
});

t.test('one deadline: a step never answered fails the command with CHAIR_ERR_DEADLINE naming it', async (t) => {
  const { clock, cascade, engine } = world(t, 2_000);
  const p = engine.bringToChair('S', 'y');
  cascade.calls.find((c) => c.mcu === 'm0')!.ok();
  await flush();
  clock.advance(1_999);
  await flush();
  t.equal(engine.inFlight, 1, 'still running just before the deadline');
  clock.advance(1);
  await t.rejects(p, { code: 'CHAIR_ERR_DEADLINE', details: { pending: ['switch:m1'] } });
});

t.test('retries inside the deadline; a permanent refusal fails at once', async (t) => {
  const { clock, cascade, engine } = world(t);
  const p = engine.bringToChair('S', 'y');
  cascade.calls.find((c) => c.mcu === 'm0')!.ok();
  cascade.calls.find((c) => c.mcu === 'm1')!.fail(timeout('m1'));
  await flush();
  t.equal(cascade.pending().length, 0, 'nothing sent again before the backoff');
  clock.advance(100);
  t.equal(cascade.pending().length, 1, 'the failed step alone is sent again');
  cascade.pending()[0]!.fail(timeout('m1'));
  await flush();
  clock.advance(199);
  t.equal(cascade.pending().length, 0, 'the wait doubles');
  clock.advance(1);
  cascade.pending()[0]!.ok();
  const r = await p;
  t.same(
    r.steps.map((s) => [s.id, s.attempts]),
    [
      ['switch:m1', 3],
      ['switch:m0', 1],
    ],
  );

  const q = engine.bringToChair('S', 'x');
  cascade.pending()[0]!.fail(msml(400));
  await t.rejects(q, { code: 'CHAIR_ERR_REJECTED', details: { step: 'switch:m2' } });
  // MSML 404 (a connection the MCU does not know) is resolved again, not given up.
  const u = engine.bringToChair('S', 'x');
  for (const c of cascade.pending()) c.mcu === 'm2' ? c.fail(msml(404)) : c.ok();
  await flush();
  clock.advance(100);
  t.equal(cascade.pending().length, 1, 'sent again after a 404');
  cascade.pending()[0]!.ok();
  t.equal((await u).outcome, 'ok');
});

t.test('a newer command supersedes the one in flight; nothing of the older lands after the newer', async (t) => {
  const { clock, cascade, engine } = world(t);
  const older = engine.bringToChair('S', 'x', { requestId: 'old' });
  const olderCalls = cascade.calls.slice();
  const newer = engine.bringToChair('S', 'y', { requestId: 'new' });
  await t.rejects(older, { code: 'CHAIR_ERR_SUPERSEDED', details: { by: 'new' } });
  const newerCalls = cascade.calls.slice(olderCalls.length);
  // Both switch the chair's screen on m0: the older was issued first, so the driver's lane of that output
  // delivers it first; and the older issues nothing more, even when its steps fail and its backoff passes.
  const chairScreen = cascade.calls.filter((c) => c.mcu === 'm0');
  t.same(
    chairScreen.map((c) => c.seq),
    [olderCalls.find((c) => c.mcu === 'm0')!.seq, newerCalls.find((c) => c.mcu === 'm0')!.seq],
  );
  for (const c of olderCalls) c.fail(timeout(c.mcu));
  await flush();
  clock.advance(5_000);
  await flush();
  t.equal(cascade.calls.length, olderCalls.length + newerCalls.length, 'no retry of the superseded command');
  for (const c of newerCalls) c.ok();
  t.equal((await newer).endpoint, 'y');
  t.same(
    cascade.selections,
    [
      ['S', 'x'],
      ['S', 'reverted'],
      ['S', 'y'],
    ],
    "the older's claim on the path released when it was superseded, the newer's held",
  );
});

t.test('the same request id does the work once; reused for another command it is a conflict', async (t) => {
  const { cascade, engine } = world(t);
  cascade.autoAnswer = true;
  const a = engine.bringToChair('S', 'x', { requestId: 'same' });
  const b = engine.bringToChair('S', 'x', { requestId: 'same' });
  t.equal(a, b, 'the same command');
  await a;
  const c = await engine.bringToChair('S', 'x', { requestId: 'same' });
  t.equal(c, await a, 'its result, after it finished');
  t.equal(cascade.calls.length, 3, 'three switches in all');
  await t.rejects(engine.bringToChair('S', 'y', { requestId: 'same' }), { code: 'CHAIR_ERR_REQUEST_CONFLICT' });
});

t.test('a remembered request keeps its result, not the finished command (its claim is let go)', async (t) => {
  const { cascade, engine } = world(t);
  cascade.autoAnswer = true;
  // The claim is the command's own (the cascade manager's pictures and layouts, in the daemon): a finished
  // command kept for its request id must not keep it, or 10,000 remembered ids keep 10,000 of them.
  let claim: WeakRef<object> | undefined;
  const claimed = cascade.claim.bind(cascade);
  cascade.claim = (session, endpoint) => {
    const c = claimed(session, endpoint);
    claim = new WeakRef(c);
    return c;
  };
  const first = await engine.bringToChair('S', 'x', { requestId: 'kept' });
  t.ok(claim, 'the command claimed its path');
  await until(() => {
    gc();
    return claim!.deref() === undefined;
  });
  t.equal(claim!.deref(), undefined, 'the finished command and its claim are collected');
  t.equal(await engine.bringToChair('S', 'x', { requestId: 'kept' }), first, 'the request id still answers its result');
  t.equal(cascade.calls.length, 3, 'and does no work again');
});

t.test('sessions never wait for each other; a silent MCU delays only the commands through it', async (t) => {
  const { cascade, engine } = world(t);
  cascade.addSession('P', 'p0', { p1: 'p0' }, { w: 'p1' });
  const stuck = engine.bringToChair('S', 'x');
  const other = engine.bringToChair('P', 'w');
  for (const c of cascade.calls.filter((c) => c.mcu.startsWith('p'))) c.ok();
  t.equal((await other).outcome, 'ok', 'the other session finished while the first waits');
  // Through m0 only (z sits on the root): done while m2 stays silent, in a session of its own.
  cascade.addSession('Q', 'm0', {}, { q: 'm0' });
  const viaRoot = engine.bringToChair('Q', 'q');
  cascade.calls.at(-1)!.ok();
  t.equal((await viaRoot).outcome, 'ok');
  t.equal(engine.inFlight, 1);
  void stuck;
});

t.test('a broken link is healed inside the deadline; the result names it', async (t) => {
  const { clock, cascade, engine } = world(t);
  cascade.link('m2', 'm1', false);
  const p = engine.bringToChair('S', 'x');
  t.equal(cascade.calls.length, 0, 'nothing sent over a broken path');
  t.same(cascade.heals, ['S:m2>m1'], 'the cascade manager asked to heal that link');
  clock.advance(3_000);
  t.equal(cascade.heals.length, 1, 'asked once');
  cascade.link('m2', 'm1', true);
  await flush();
  t.equal(cascade.calls.length, 3, 'the steps go out as soon as the link is back');
  for (const c of cascade.calls) c.ok();
  const r = await p;
  t.match(r.healed, [{ child: 'm2', parent: 'm1' }]);
  t.equal(cascade.watchers, 0, 'stopped watching');
});

t.test('a path not healed in time: CHAIR_ERR_PATH_DOWN naming the hop', async (t) => {
  const { clock, cascade, engine } = world(t, 5_000);
  cascade.up.set('m1', false);
  const p = engine.bringToChair('S', 'x');
  clock.advance(5_000);
  await t.rejects(p, { code: 'CHAIR_ERR_PATH_DOWN', details: { hop: { mcu: 'm1' } } });
  cascade.up.set('m1', true);
  cascade.link('m1', 'm0', false);
  const q = engine.bringToChair('S', 'y');
  clock.advance(5_000);
  await t.rejects(q, { code: 'CHAIR_ERR_PATH_DOWN', details: { hop: { child: 'm1', parent: 'm0' } } });
});

t.test('bad targets have their own codes, at once', async (t) => {
  const { cascade, engine } = world(t);
  await t.rejects(engine.bringToChair('nope', 'x'), { code: 'CHAIR_ERR_NO_SESSION' });
  await t.rejects(engine.bringToChair('S', 'stranger'), { code: 'CHAIR_ERR_NOT_IN_SESSION' });
  cascade.rooms.get('m2')!.roster.delete(uriOf('x'));
  await t.rejects(engine.bringToChair('S', 'x'), { code: 'CHAIR_ERR_NOT_CONNECTED', details: { mcu: 'm2' } });
  t.equal(cascade.calls.length, 0);
});

t.test('preview returns the steps and sends nothing; return to default; mute the previous speaker', async (t) => {
  const { cascade, engine } = world(t);
  cascade.sessions.set('S', { ...cascade.sessions.get('S')!, mutePrevious: true, layout: 'pip' });
  const pv = engine.preview('S', 'x');
  t.ok(pv.ok);
  if (pv.ok) t.same(pv.path, ['m2', 'm1', 'm0']);
  t.equal(cascade.calls.length, 0, 'preview sent nothing');
  t.match(engine.preview('S', 'stranger'), { ok: false, code: 'CHAIR_ERR_NOT_IN_SESSION' });
  cascade.autoAnswer = true;
  await engine.bringToChair('S', 'x');
  const second = await engine.bringToChair('S', 'y');
  t.match(
    second.steps.map((s) => s.id),
    ['switch:m1', 'switch:m0', 'mute:m2'],
    'the previous speaker muted on its MCU',
  );
  const back = await engine.returnToDefault('S');
  t.equal(back.endpoint, null);
  t.same(
    back.steps.map((s) => s.id),
    ['switch:m0'],
  );
  t.same(cascade.calls.at(-1)!.sources, [roomOf('m1'), uriOf('z')], 'the chair sees the child links, then the rest');
  t.same(cascade.selections.at(-1), ['S', null]);
});

t.test('close ends commands in flight with CHAIR_ERR_CLOSED and refuses new ones', async (t) => {
  const { engine } = world(t);
  const p = engine.bringToChair('S', 'x');
  await Promise.all([engine.close(), engine.close()]);
  await t.rejects(p, { code: 'CHAIR_ERR_CLOSED' });
  await t.rejects(engine.bringToChair('S', 'y'), { code: 'CHAIR_ERR_CLOSED' });
});
