/**
 * Links dropped under message loss stay up once healed (issue 10: nothing lost under 5% loss). The
 * simulator in this process, 5% loss on every MCU both ways (as the benchmark's loss phase), a cascade of
 * depth 2 with 16 links; every link dropped by its parent, one after another, each healed with its pictures
 * before the next; then by its child. Each round ends once every dropped call's
 * BYE was answered (retransmitted under loss, RFC 3261 17.1.2): still every link up, none having left `up`
 * since it healed. A BYE answered late (about
 * one drop in five loses the BYE or its answer) once took the new call with it at the MCU that sent the BYE
 * when the manager had redialled within the 500 ms of the retransmission (a few drops in a hundred on the
 * loaded machine): the benchmark's link "dropped again 0.5 s after it healed" (docs/cascade.md, "The
 * benchmark"). A witness by chance, not a certain one (it failed in two runs of two with 48 drops before the
 * fix); test/sim/sim-mcu.test.ts holds the BYE's answer back from a raw SIP peer and fails every time. Checked on the simulator's conferences and screens and on the
 * manager's link events; the subscriptions go over UDP, as the benchmark's daemon has no TCP.
 */
import t from 'tap';
import type { LinkEvent } from '../../src/cascade/index.js';
import { createSimNetwork } from '../../src/sim/index.js';
import { ep, loopbackBase, network, simView, startParts, until } from './helpers.js';

t.setTimeout(120_000);

t.test('links dropped under 5% loss, by either end, stay up once healed', async (t) => {
  const provinces = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'];
  const seconds = ['a2', 'b2', 'c2', 'd2'];
  const inv = network(
    loopbackBase(),
    [
      { id: 'm', rooms: 1, cascadePorts: 16 },
      ...provinces.map((p) => ({ id: p, parents: ['m'], rooms: 1 })),
      ...seconds.map((s) => ({ id: s, parents: [s.slice(0, 1)], rooms: 1 })),
    ],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      ...provinces.map((p) => ({ id: `${p}-room`, level: 'province', mcus: [p] })),
      ...seconds.map((s) => ({ id: `${s}-x`, mcus: [s] })),
    ],
  );
  const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  // No re-plan within the test's bounds: under 5% loss on a loaded machine a heal's hang-ups may each wait out
  // their 2 s deadline, and a re-plan after the helpers' 5 s (an MCU "unusable" that is only slow to heal) would
  // change the plan under the test (seen once in CI, session 11: d left the plan, its pictures with it).
  const parts = await startParts(inv, t.testdir(), { replanAfterMs: 120_000 }, { subscribeTransport: 'udp' });
  t.teardown(() => parts.close());
  const events: LinkEvent[] = [];
  parts.manager.on('link', (e) => events.push(e));
  const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });

  const { room, linkAt, linked, ...v } = simView(sim, head);
  const shows = (m: string, peer: string) => v.shows(m, peer)?.[0];
  const pairs: [string, string][] = [
    ...provinces.map((p): [string, string] => [p, 'm']),
    ...seconds.map((s): [string, string] => [s, s.slice(0, 1)]),
  ];
  const main = (m: string) => ep(m.endsWith('2') ? `${m}-x` : `${m}-room`);
  const down = (p: string) => (p === 'm' ? ep('chair') : room('m'));
  const healthy = () => pairs.every(([c, p]) => linked(c, p) && shows(c, p) === main(c) && shows(p, c) === down(p));
  const report = () => {
    for (const [c, p] of pairs) {
      t.comment(`${c} -> ${p}: linked ${linked(c, p)}, up ${shows(c, p)}, down ${shows(p, c)}`);
      for (const m of [c, p]) {
        const conf = parts.pool.drivers.get(m)?.conferences.get(room(m));
        const far = m === c ? p : c;
        const e = conf?.roster.get(room(far));
        t.comment(`  at ${m}: sim ${JSON.stringify(linkAt(m, far)?.callId)}, daemon ${JSON.stringify(e)}`);
      }
    }
  };
  await until('the cascade up with its pictures', healthy, 30_000).catch((err) => {
    report();
    throw err;
  });

  const all = ['m', ...provinces, ...seconds];
  for (const id of all) sim.mcu(id).setImpairment({ loss: 0.05 });

  for (const [round, by] of (['parent', 'child'] as const).entries()) {
    // One link after another, each dropped once the previous one healed (as the benchmark does), without
    // waiting for the BYE's answer: each promise settles once its BYE is answered.
    const byes: Promise<void>[] = [];
    const healedAt = new Map<string, number>();
    for (const [c, p] of pairs) {
      const mark = events.length;
      byes.push(by === 'parent' ? sim.mcu(p).dropLink(room(c), room(p)) : sim.mcu(c).dropLink(room(p), room(c)));
      await until(`round ${round}: ${c} -> ${p} dropped by the ${by} and healed`, () => {
        const seen = events.slice(mark).some((e) => e.child === c && e.previous === 'up');
        return seen && linked(c, p) && shows(c, p) === main(c) && shows(p, c) === down(p);
      }).catch((err) => {
        report();
        throw err;
      });
      healedAt.set(c, events.length);
    }
    await Promise.all(byes);
    t.ok(healthy(), `round ${round} (by the ${by}): every link still up once every old call's BYE was answered`);
    if (!healthy()) report();
    const again = [...healedAt].flatMap(([c, i]) =>
      events.slice(i).filter((e) => e.child === c && e.previous === 'up' && e.state !== 'up'),
    );
    t.same(
      again.map((e) => `${e.child} -> ${e.parent}: ${e.state} ${e.detail ?? ''}`),
      [],
      `round ${round}: no link left up after it healed`,
    );
  }
  const wire = all.reduce((n, id) => n + sim.mcu(id).wire.dropped, 0);
  t.ok(wire > 0, `the emulator dropped ${wire} datagrams`);
});
