/**
 * A session's first dial holds its rooms' call quality subscriptions (RFC 6035 vq-rtcpxr) back until every
 * link of its plan is up (docs/cascade.md, "The benchmark": their SUBSCRIBEs and reports took CPU from the
 * links' dial at both ends), then subscribes every room: against simulated MCUs over real sockets, the
 * subscriptions counted on the simulator.
 */
import t from 'tap';
import { type QualityEvent, roomKey } from '../../src/cascade/index.js';
import { createSimNetwork } from '../../src/sim/index.js';
import { loopbackBase, network, startParts, until } from './helpers.js';

t.setTimeout(60_000);

t.test(
  "a session's rooms subscribe to quality reports once its links are up, not while they are dialled",
  async (t) => {
    const inv = network(
      loopbackBase(),
      [
        { id: 'm', rooms: 2 },
        { id: 'p', parents: ['m'], rooms: 2 },
        { id: 'v', parents: ['p'], rooms: 2 },
      ],
      [
        { id: 'chair', level: 'central', mcus: ['m'] },
        { id: 'p-room', level: 'province', mcus: ['p'] },
        { id: 'v-room', level: 'district', mcus: ['v'] },
      ],
    );
    const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
    t.teardown(() => sim.close());
    const parts = await startParts(inv, t.testdir(), {}, { qualityReports: true });
    t.teardown(() => parts.close());
    const quality: QualityEvent[] = [];
    parts.manager.on('quality', (q) => quality.push(q));
    // v takes its time with every request: its room opens and its link comes up a few seconds after p's.
    sim.mcu('v').setProcessingDelay(800);
    const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });
    const room = (m: string) => sim.mcu(m).conferences.get(roomKey(head.rooms[m]!));
    const linkState = (child: string) =>
      parts.manager.progress(head.sessionId)[0]?.links.find((l) => l.child === child)?.state;

    await until('p -> m up', () => linkState('p') === 'up');
    t.not(linkState('v'), 'up', 'v -> p not up yet');
    t.equal(room('m')?.qualitySubscribers, 0, "no quality subscription to m's room during the dial");
    t.equal(room('p')?.qualitySubscribers, 0, "no quality subscription to p's room during the dial");
    const conference = (m: string) => parts.pool.drivers.get(m)?.conferences.get(head.rooms[m]!);
    t.equal(conference('m')?.state, 'open', "m's room is open");
    t.equal(conference('m')?.capabilities.qualityReports, 'unknown', 'its quality reports not asked for yet');

    sim.mcu('v').setProcessingDelay(5);
    await until('every link up', () => parts.manager.progress(head.sessionId)[0]?.counts.up === 2);
    await until('every room subscribed', () => ['m', 'p', 'v'].every((m) => room(m)?.qualitySubscribers === 1));
    await until('a report of a link', () => quality.some((q) => q.session === head.sessionId && q.link !== undefined));
    t.equal(conference('m')?.capabilities.qualityReports, 'available');
    t.pass("the session's reports come once its cascade is up");
  },
);
