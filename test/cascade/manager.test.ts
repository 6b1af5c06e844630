/**
 * The cascade manager against simulated MCUs over real sockets (the
 * simulator in this process; the end-to-end tests run it as its own
 * process): a cascade of depth 2 dialled parents first and verified from
 * both MCUs, each slave showing its main endpoint up its link, a dropped
 * link healed with its picture restored, and the tear-down, all checked on
 * the simulator's display model rather than on the manager's own view.
 */
import t from 'tap';
import type { LinkEvent } from '../../src/cascade/index.js';
import { createSimNetwork } from '../../src/sim/index.js';
import { loopbackBase, network, startParts, until } from './helpers.js';

t.setTimeout(120_000);

t.test('a depth-2 cascade: dialled parents first, verified, pictures set, a drop healed, torn down', async (t) => {
  const base = loopbackBase();
  const inv = network(
    base,
    [{ id: 'm' }, { id: 'p', parents: ['m'] }, { id: 'v', parents: ['p'] }],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      { id: 'p-room', level: 'province', mcus: ['p'] },
      { id: 'p-x1', mcus: ['p'] },
      { id: 'v-x1', mcus: ['v'] },
      { id: 'v-x2', level: 'district', mcus: ['v'] },
    ],
  );
  const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  const parts = await startParts(inv, t.testdir());
  t.teardown(() => parts.close());
  const links: LinkEvent[] = [];
  parts.manager.on('link', (e) => links.push(e));

  const head = await parts.manager.admit({ title: 'depth 2', endpoints: 'all', chair: 'chair' });
  t.equal(head.state, 'live');
  const uri = (m: string) => sim.mcu(m).uri;
  const mcu = (m: string) => sim.mcu(m);
  await until('both links up', () => parts.manager.progress(head.sessionId)[0]?.counts.up === 2);

  // Verified at both MCUs, on one call each.
  for (const [child, parent] of [
    ['p', 'm'],
    ['v', 'p'],
  ] as const) {
    const atParent = mcu(parent).participants.get(uri(child));
    const atChild = [...mcu(child).participants.values()].find(
      (x) => x.kind === 'link' && x.callId === atParent?.callId,
    );
    t.equal(atParent?.status, 'connected', `${child} -> ${parent} at the parent`);
    t.ok(atChild, `${child} -> ${parent} at the child, same Call-ID`);
  }
  const upOrder = links.filter((e) => e.state === 'up').map((e) => e.child);
  t.same(upOrder, ['p', 'v'], 'the parent link came up first');
  const firstMove = links.findIndex((e) => e.child === 'v' && e.state !== 'planned');
  t.ok(
    firstMove > links.findIndex((e) => e.child === 'p' && e.state === 'up'),
    'the child link moved only once its parent was up',
  );

  // Each slave shows its main endpoint (highest level) full-screen up its link; the chair goes down.
  const ep = (id: string) => `sip:${id}@endpoints.invalid`;
  /** What MCU `m` sends over its link to `peer` (the link found by its Call-ID at the other end). */
  const shows = (m: string, peer: string) => {
    const call = mcu(peer).participants.get(uri(m))?.callId ?? mcu(m).participants.get(uri(peer))?.callId;
    const link = [...mcu(m).participants.entries()].find(([, x]) => x.kind === 'link' && x.callId === call)?.[0];
    return link === undefined ? undefined : sim.screen(m, link).regions.map((r) => r.source);
  };
  await until('the pictures up and down the links', () => {
    const pUp = shows('p', 'm');
    const vUp = shows('v', 'p');
    return pUp?.[0] === ep('p-room') && vUp?.[0] === ep('v-x2');
  });
  t.same(shows('p', 'm'), [ep('p-room')], 'p shows its province room up');
  t.same(shows('v', 'p'), [ep('v-x2')], 'v shows its district room up (highest level on v)');
  const down = sim.screen('m', uri('p'));
  t.same(
    down.regions.map((r) => r.source),
    [ep('chair')],
    'the master sends the chair down to p',
  );

  // A drop: the MCU hangs the link up (BYE) on its own; the manager redials it and sets the picture again.
  const before = links.length;
  await mcu('p').dropLink(uri('v'));
  await until('the dropped link noticed', () => links.slice(before).some((e) => e.child === 'v' && e.state !== 'up'));
  await until('the link healed', () => parts.manager.progress(head.sessionId)[0]?.counts.up === 2);
  await until('the picture restored', () => shows('v', 'p')?.[0] === ep('v-x2'));
  t.pass('healed with its picture');

  // The end: links children first, then endpoints, then the session is ended and its rooms released.
  await parts.manager.end(head.sessionId);
  await until('the session ended', async () => (await parts.store.getCascade(head.sessionId))?.state === 'ended');
  t.equal(mcu('p').participants.get(uri('v')), undefined, 'no link left on p');
  t.equal(mcu('m').participants.get(uri('p')), undefined, 'no link left on m');
  const events = (await parts.store.listEvents({ subject: head.sessionId, limit: 1000 })).map((e) => e.type);
  t.ok(events.includes('cascade.link.up') && events.includes('cascade.link.down'), 'link events recorded');
  t.ok(events.includes('cascade.session.up') && events.includes('cascade.session.ended'), 'session events recorded');
  t.same(parts.manager.progress(), [], 'nothing left to reconcile');
});
