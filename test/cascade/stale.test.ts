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
import { linkPair, until } from './helpers.js';

t.setTimeout(60_000);

const WINDOW_MS = 5_000;

for (const stale of ['p', 'm'] as const) {
  const other = stale === 'p' ? 'm' : 'p';
  t.test(
    `${stale}'s roster stale for good, the link dropped by ${other}: redialled with backoff, full state asked for`,
    async (t) => {
      // No re-plan while p's link fails in the window (helpers: 5 s).
      const { sim, parts, head, v, healthy } = await linkPair(t, { settings: { replanAfterMs: 600_000 } });
      const { room, linkAt } = v;
      const linked = () => v.linked('p', 'm');
      await until('the link up with both pictures', healthy);

      const conf = (m: string) => parts.pool.drivers.get(m)!.conferences.get(room(m)) as Conference;
      let dials = 0;
      const parentConf = conf('m');
      const dialLink = parentConf.dialLink.bind(parentConf);
      parentConf.dialLink = (target: string) => {
        if (roomKey(target) === room('p')) dials++;
        return dialLink(target);
      };
      const refreshes = { m: 0, p: 0 };
      for (const m of ['m', 'p'] as const) {
        const c = conf(m);
        const refresh = c.refreshRoster.bind(c);
        c.refreshRoster = () => {
          refreshes[m]++;
          refresh();
        };
      }
      // Every roster notification of the stale room lost on its way into the manager, for the window.
      let lost = true;
      // The conference is a TypedEmitter (src/core/events.ts): its 'roster' events are what the manager sees.
      const childConf = conf(stale) as unknown as { safeEmit: (event: string, ...args: unknown[]) => boolean };
      const emit = childConf.safeEmit.bind(childConf);
      childConf.safeEmit = (event, ...args) => (lost && event === 'roster' ? false : emit(event, ...args));

      const before = linkAt('p', 'm')?.callId;
      const t0 = performance.now();
      await sim.mcu(other).dropLink(room(stale), room(other));
      await until('the link redialled at the MCUs', () => linked() && linkAt('p', 'm')?.callId !== before);
      await until('the window over', () => performance.now() - t0 >= WINDOW_MS, WINDOW_MS + 5_000, 50);
      lost = false;
      const inWindow = dials;
      t.comment(`${inWindow} dials and ${refreshes.m}/${refreshes.p} roster refreshes (m/p) in ${WINDOW_MS} ms`);
      // The grace (helpers: 1 s) after each dial and the backoff (100 ms doubling to 1 s) bound it to about one a
      // second; on every pass it was hundreds.
      t.ok(inWindow >= 1, `the link was dialled again (${inWindow})`);
      t.ok(inWindow <= 10, `no redial storm: ${inWindow} dials in ${WINDOW_MS} ms`);
      t.ok(refreshes[stale] >= 1, `${stale}'s room was asked for its full state (${refreshes[stale]})`);
      // The notifications come through again: the manager sees the link and sets its pictures.
      await until('the link healed with both pictures once the notifications come through', healthy);
      const settled = dials;
      await until('the manager sees the link up', () =>
        parts.manager.progress(head.sessionId)[0]?.counts.up === 1 ? true : undefined,
      );
      t.ok(dials - settled <= 1, 'no more dials once the roster is right');
    },
  );
}
