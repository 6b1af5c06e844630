/**
 * A room whose roster the daemon holds stale must not make a redial storm (issue 10, docs/cascade.md
 * "Healing"). The simulator in this process; a link m <- p up; then every notification of p's room is lost on
 * its way into the manager (the driver got it, the manager's view of the room never does: a NOTIFY lost and
 * never sent again, as an MCU dropping its subscriber would do) while the parent drops the link. The manager
 * sees the link gone at m and still up at p: each time it hangs up and dials again, that counts as a failure
 * of the link (the next one waits, growing), and it asks both rooms for their full state. It once redialled
 * on every pass (every 20 ms), hundreds of times in the window. Dials counted at the parent's driver (each
 * one a REFER to the MCU); refreshes at the drivers of both rooms.
 */
import t from 'tap';
import { roomKey } from '../../src/cascade/index.js';
import type { Conference } from '../../src/mcu/index.js';
import { type LinkPair, linkPair, until } from './helpers.js';

t.setTimeout(60_000);

const WINDOW_MS = 5_000;

/**
 * Counts the parent's dials of the link and each room's requests for its full state, and loses every roster
 * notification of `stale`'s room on its way into the manager while `lost` is set. `onRefresh` runs when a room
 * is asked for its full state, before the request goes.
 */
function instrument(pair: LinkPair, stale: 'p' | 'm', onRefresh?: (m: 'm' | 'p') => void) {
  const { parts, v } = pair;
  const conf = (m: string) => parts.pool.drivers.get(m)!.conferences.get(v.room(m)) as Conference;
  const seen = { dials: 0, refreshes: { m: 0, p: 0 }, lost: false };
  const parentConf = conf('m');
  const dialLink = parentConf.dialLink.bind(parentConf);
  parentConf.dialLink = (target: string) => {
    if (roomKey(target) === v.room('p')) seen.dials++;
    return dialLink(target);
  };
  for (const m of ['m', 'p'] as const) {
    const c = conf(m);
    const refresh = c.refreshRoster.bind(c);
    c.refreshRoster = () => {
      seen.refreshes[m]++;
      onRefresh?.(m);
      refresh();
    };
  }
  // The conference is a TypedEmitter (src/core/events.ts): its 'roster' events are what the manager sees.
  const childConf = conf(stale) as unknown as { safeEmit: (event: string, ...args: unknown[]) => boolean };
  const emit = childConf.safeEmit.bind(childConf);
  childConf.safeEmit = (event, ...args) => (seen.lost && event === 'roster' ? false : emit(event, ...args));
  return seen;
}

for (const stale of ['p', 'm'] as const) {
  const other = stale === 'p' ? 'm' : 'p';
  t.test(
    `${stale}'s roster stale for good, the link dropped by ${other}: redialled with backoff, full state asked for`,
    async (t) => {
      // No re-plan while p's link fails in the window (helpers: 5 s).
      const pair = await linkPair(t, { settings: { replanAfterMs: 600_000 } });
      const { sim, parts, head, v, healthy } = pair;
      const { room, linkAt } = v;
      const linked = () => v.linked('p', 'm');
      await until('the link up with both pictures', healthy);
      const seen = instrument(pair, stale);
      // Every roster notification of the stale room lost on its way into the manager, for the window.
      seen.lost = true;

      const before = linkAt('p', 'm')?.callId;
      const t0 = performance.now();
      await sim.mcu(other).dropLink(room(stale), room(other));
      await until('the link redialled at the MCUs', () => linked() && linkAt('p', 'm')?.callId !== before);
      await until('the window over', () => performance.now() - t0 >= WINDOW_MS, WINDOW_MS + 5_000, 50);
      seen.lost = false;
      const inWindow = seen.dials;
      const { refreshes } = seen;
      t.comment(`${inWindow} dials and ${refreshes.m}/${refreshes.p} roster refreshes (m/p) in ${WINDOW_MS} ms`);
      // The grace (helpers: 1 s) after each dial and the backoff (100 ms doubling to 1 s) bound it to about one a
      // second; on every pass it was hundreds.
      t.ok(inWindow >= 1, `the link was dialled again (${inWindow})`);
      t.ok(inWindow <= 10, `no redial storm: ${inWindow} dials in ${WINDOW_MS} ms`);
      t.ok(refreshes[stale] >= 1, `${stale}'s room was asked for its full state (${refreshes[stale]})`);
      // The notifications come through again: the manager sees the link and sets its pictures.
      await until('the link healed with both pictures once the notifications come through', healthy);
      const settled = seen.dials;
      await until('the manager sees the link up', () =>
        parts.manager.progress(head.sessionId)[0]?.counts.up === 1 ? true : undefined,
      );
      t.ok(seen.dials - settled <= 1, 'no more dials once the roster is right');
    },
  );
}

t.test(
  'a replacement decided on a stale roster waits for the full rosters: the link up on them is left up',
  async (t) => {
    const pair = await linkPair(t, { settings: { replanAfterMs: 600_000 } });
    const { sim, parts, head, v, healthy } = pair;
    const { room, linkAt } = v;
    await until('the link up with both pictures', healthy);
    // p's notifications lost until a room is asked for its full state: the first replacement (the link dropped
    // by m, still listed at p) redials it; p's roster then still shows the old call, so after the grace a second
    // replacement is decided on it. The full states it asks for show the new call at both ends.
    const seen = instrument(pair, 'p', () => {
      seen.lost = false;
    });
    seen.lost = true;
    const before = linkAt('p', 'm')?.callId;
    await sim.mcu('m').dropLink(room('p'), room('m'));
    await until('the link redialled at the MCUs', () => v.linked('p', 'm') && linkAt('p', 'm')?.callId !== before);
    const redialled = linkAt('p', 'm')?.callId;
    await until('a second replacement asks for the full rosters', () => seen.refreshes.p > 0);
    await until('the manager sees the link up', () =>
      parts.manager.progress(head.sessionId)[0]?.counts.up === 1 ? true : undefined,
    );
    await until('the pictures set', healthy);
    t.equal(seen.dials, 1, 'dialled once: the second replacement, decided on the stale roster, was not carried out');
    t.equal(linkAt('p', 'm')?.callId, redialled, 'the link stays on the call that was up');
    t.equal(linkAt('m', 'p')?.callId, redialled);
  },
);
