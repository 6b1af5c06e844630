/**
 * A link up at one end and gone at the other (src/cascade/reconcile.ts, docs/cascade.md "Healing"), decided
 * against the MCU model of world.ts, step by step on a clock of our own. The BYE of a dropped link held back
 * from one end (lost, on its way again 0.5 to 3.5 s later, RFC 3261 17.1.2): the end that sent it lists the
 * call no longer, the other still lists that same call, which both ends listed when the link was up. That end
 * ended the dialog (RFC 3261 15.1.1): the reconciler hangs the call up at the other end and dials again at once,
 * without the half-dead grace. Where the ends disagree without such proof (a call the ends never both listed),
 * it keeps the grace. A replacement counts as a failure of the link: the next one waits the grace and a growing
 * backoff, and a link seen up again ends the run.
 */
import t from 'tap';
import {
  type Action,
  Bookkeeping,
  DEFAULT_BACKOFF,
  type Decision,
  decide,
  desiredSession,
  QUIET_GRACE_FACTOR,
  type ReconcileOptions,
  roomKey,
} from '../../src/cascade/index.js';
import { directory, fakePlan, World } from './world.js';

t.setTimeout(30_000);

const OPTS: ReconcileOptions = {
  linkConcurrency: 4,
  participantConcurrency: 4,
  layoutConcurrency: 4,
  viewConcurrency: 4,
  halfDeadGraceMs: 3_000,
  replanAfterMs: Number.POSITIVE_INFINITY,
  unexpectedLinks: 'report',
  endpoints: 'mains',
};
const M = 'sip:s-m@10.0.0.1:5060';
const P = 'sip:s-p@10.0.0.2:5060';

/** A link p -> m up, every room open, the reconciler's bookkeeping at rest. */
function upLink() {
  const world = new World();
  world.addMcu('m');
  world.addMcu('p');
  world.addRoom('m', M);
  world.addRoom('p', P);
  world.room(M).opened = true;
  world.room(P).opened = true;
  world.link(M, P);
  const plan = fakePlan('m', { p: 'm' }, { m: [], p: [] }, null);
  const d = desiredSession(
    { id: 's', phase: 'live', plan, rooms: { m: M, p: P }, mains: {}, selection: null },
    directory,
  );
  const book = new Bookkeeping(DEFAULT_BACKOFF, () => 0);
  for (const k of [roomKey(M), roomKey(P)]) book.opened.add(k);
  let now = 0;
  /** One pass at `at`, its bookkeeping as the runtime keeps it. */
  const pass = (at: number): Decision => {
    now = at;
    const dec = decide([d], world.observed(now), book, OPTS);
    book.sawHalf(dec.half, now);
    book.sawUp(dec.links, dec.upCalls);
    return dec;
  };
  const linkDials = (dec: Decision) =>
    dec.actions.filter((a): a is Extract<Action, { kind: 'dial-link' }> => a.kind === 'dial-link');
  const dec = pass(0);
  return { world, book, pass, linkDials, first: dec, now: () => now };
}

t.test('the BYE held back from the child: hung up there and dialled again without the grace', async (t) => {
  const { world, book, pass, linkDials, first } = upLink();
  t.same(linkDials(first), [], 'up: nothing to dial');
  t.equal(first.links[0]?.state, 'up');
  // m hangs the link up; its BYE to p is lost: p still lists the call.
  const atChild = world.room(P).entries.get(roomKey(M))!;
  world.room(M).entries.delete(roomKey(P));
  const dec = pass(10);
  t.same(dec.half, ['K|s|p'], 'half-dead');
  const [dial] = linkDials(dec);
  t.ok(dial, 'dialled again at once, not after the 3 s grace');
  t.equal(dial?.endedAt, 'parent', 'ended at the parent (an ordinary heal, logged as such)');
  t.equal(dial?.replaceAtChild, atChild.entity, 'the old call hung up at p first (p would refuse a new one: 486)');
  // The same when the child ended the call and its BYE to the parent is lost.
  const w2 = upLink();
  const atParent = w2.world.room(M).entries.get(roomKey(P))!;
  w2.world.room(P).entries.delete(roomKey(M));
  const [dial2] = w2.linkDials(w2.pass(10));
  t.equal(dial2?.replace, atParent.entity, 'ended by the child: hung up at the parent at once');
  t.equal(dial2?.endedAt, 'child');
  t.equal(dial2?.replaceAtChild, undefined, 'nothing left at the child');
  t.equal(book.retries.size, 0);
});

t.test('without proof (a call the ends never both listed) the grace is kept', async (t) => {
  const { world, pass, linkDials } = upLink();
  // p lists a call from m that m never had with it: no call both ends listed ended at one of them.
  const atChild = world.room(P).entries.get(roomKey(M))!;
  world.room(P).entries.set(roomKey(M), { ...atChild, callId: 'call-never-seen-up' });
  world.room(M).entries.delete(roomKey(P));
  const dec = pass(10);
  t.same(dec.half, ['K|s|p'], 'half-dead');
  t.same(linkDials(dec), [], 'not dialled within the grace');
  t.equal(dec.wakeAt, 10 + OPTS.halfDeadGraceMs, 'a pass due when the grace ends');
  const late = linkDials(pass(10 + OPTS.halfDeadGraceMs));
  t.equal(late.length, 1, 'dialled once the grace is over');
  t.equal(late[0]?.endedAt, undefined, 'without proof (logged as a warning)');
});

t.test('the end lacking the call has not reported since it appeared at the other: four times the grace', async (t) => {
  // m dialled p again (a new call, listed at m); p took the call, but its NOTIFY of it waits behind an earlier
  // one whose answer was lost (0.5, 1.5, 3.5 s of retransmissions): p's roster in the reconciler's eyes is the
  // one it reported before the call appeared.
  const heldBack = (reportedSince: boolean) => {
    const w = upLink();
    const p = w.world.room(P);
    w.world.drop(M, P);
    w.world.link(M, P);
    p.entries.delete(roomKey(M));
    const call = w.world.room(M).entries.get(roomKey(P))!;
    p.reportedAt = reportedSince ? call.gen + 1 : call.gen - 1;
    return w;
  };
  const quiet = heldBack(false);
  const dec = quiet.pass(10);
  t.same(dec.half, ['K|s|p'], 'half-dead');
  t.equal(dec.wakeAt, 10 + QUIET_GRACE_FACTOR * OPTS.halfDeadGraceMs, 'a pass due when the longer grace ends');
  t.same(quiet.linkDials(quiet.pass(10 + OPTS.halfDeadGraceMs)), [], 'not hung up after the grace alone');
  t.equal(quiet.linkDials(quiet.pass(10 + QUIET_GRACE_FACTOR * OPTS.halfDeadGraceMs)).length, 1, 'then it is');
  // p reported since the call appeared at m, and does not list it: believed after the grace.
  const told = heldBack(true);
  t.equal(told.pass(10).wakeAt, 10 + OPTS.halfDeadGraceMs);
  t.equal(told.linkDials(told.pass(10 + OPTS.halfDeadGraceMs)).length, 1, 'hung up and dialled after the grace');
});

t.test('a replacement is a failure of the link: the next one waits, a link up again ends the run', async (t) => {
  const { world, book, pass, linkDials } = upLink();
  world.room(M).entries.delete(roomKey(P));
  let at = 10;
  const dials: number[] = [];
  // A roster stale for good: the replacement is carried out (the world hangs up and dials), but p's roster
  // in the reconciler's eyes keeps the old call whatever happens.
  const stale = world.room(P).entries.get(roomKey(M))!;
  for (; at < 30_000; at += 20) {
    for (const a of linkDials(pass(at))) {
      dials.push(at);
      book.started(a, at);
      world.apply(a);
      world.room(P).entries.set(roomKey(M), stale);
      book.succeeded(a, at);
    }
  }
  t.comment(`replacements at ${dials.join(', ')} ms`);
  t.ok(dials.length >= 2 && dials.length <= 12, `${dials.length} replacements in 30 s, not one per pass`);
  t.equal(dials[0], 10, 'the first at once (the call both ends had ended at m)');
  for (let i = 1; i < dials.length; i++)
    t.ok(dials[i]! - dials[i - 1]! >= OPTS.halfDeadGraceMs, `replacement ${i + 1} waited the grace at least`);
  t.ok((book.retries.get('K|s|p')?.failures ?? 0) >= dials.length, 'each one counted as a failure of the link');
  // The roster comes right: the link is up on the new call, the run of failures is over.
  const atParent = world.room(M).entries.get(roomKey(P))!;
  world.room(P).entries.set(roomKey(M), { ...stale, callId: atParent.callId });
  const dec = pass(at + 20);
  t.equal(dec.links[0]?.state, 'up');
  t.equal(book.retries.get('K|s|p'), undefined, 'failures reset once the link is seen up');
});
