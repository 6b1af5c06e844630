/**
 * The cascade manager's healing (issue 10, docs/cascade.md "Healing") witnessed by an MCU we did not write:
 * SIPp (test/interop/sipp/mcu-cascade-uas.xml) plays the slave `p` of a live cascade on a loopback address of
 * its own, port 5060, under a master `m` played by our simulator (one simulated MCU, not a network: p is not
 * simulated). The daemon's parts run in this process (test/cascade/helpers.ts `startParts`).
 *
 * - p refuses the conference SUBSCRIBE (489): the manager counts p through its driver ("When a link is up"),
 *   and sees the link's state at m alone.
 * - The manager REFERs m's room to dial p's room; m sends the link INVITE (with an SDP offer, which is how
 *   SIPp tells it from the driver's control INVITE) and SIPp answers it. The first link call SIPp hangs up
 *   itself after a pause (a BYE from p, as an MCU whose link dropped): m's roster loses the link, the manager
 *   logs the drop (`cascade.link.down`) and dials again; the second call SIPp keeps until the tear-down.
 * - Checked in SIPp's own message log (-trace_msg), not only in our own view: a second link INVITE after
 *   SIPp's BYE, then an MSML INFO naming the link (m's room) at p after it (the picture up the new call
 *   applied again), and at the end the second call hung up by m, every call of SIPp's successful.
 *
 * Endpoints: the default `dialEndpoints` (every endpoint): here that is one per MCU, each its MCU's main
 * endpoint, which is dialled either way (the picture up p's link shows p-room, so the manager REFERs SIPp to
 * dial it in: SIPp reports 200 without dialling anyone), so the witness covers the REFERs an MCU without the
 * event package gets, and `false` would change nothing.
 */
import { join } from 'node:path';
import t from 'tap';
import type { LayoutEvent, LinkEvent } from '../../src/cascade/index.js';
import { roomKey } from '../../src/cascade/index.js';
import { conferenceUris } from '../../src/inventory/index.js';
import { createSimMcu, entityOf } from '../../src/sim/index.js';
import { parseUri } from '../../src/sip/index.js';
import { ep, loopbackBase, network, startParts, until } from '../cascade/helpers.js';
import { have, SCENARIOS, sipp, sippMessages, udpPortBound } from './sip-peers.js';

t.setTimeout(90_000);

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the cascade healing interop test is skipped');
} else {
  t.test('a link dropped by SIPp playing the slave MCU: detected, redialled, its picture applied again', async (t) => {
    const base = loopbackBase();
    const inv = network(
      base,
      [
        { id: 'm', rooms: 2 },
        { id: 'p', parents: ['m'], rooms: 2 },
      ],
      [
        { id: 'chair', level: 'central', mcus: ['m'] },
        { id: 'p-room', level: 'province', mcus: ['p'] },
      ],
    );
    const [mcuM, mcuP] = inv.mcus;
    const dir = t.testdir();
    const log = join(dir, 'messages.log');
    const pHost = parseUri(mcuP!.sip[0]!)!.host;
    const peer = sipp(
      dir,
      [
        ...['-sf', join(SCENARIOS, 'mcu-cascade-uas.xml'), '-i', pHost, '-p', '5060'],
        ...['-timeout', '80s', '-trace_msg', '-message_file', log],
      ],
      85_000,
    );
    t.teardown(() => peer.stop());
    await Promise.race([
      udpPortBound(5060, 10_000, pHost),
      peer.done.then((r) => Promise.reject(new Error(`sipp exited (${r.code}) before binding: ${r.stderr}`))),
    ]);

    // m alone, simulated; p's rooms are conference foci to it, so what it dials there is a cascade link.
    const foci = new Set([mcuP!.sip[0]!, ...conferenceUris(mcuP!)].map((u) => entityOf(parseUri(u)!)));
    const sim = await createSimMcu({
      id: 'm',
      uri: mcuM!.sip[0]!,
      ports: mcuM!.capacity.ports,
      rooms: conferenceUris(mcuM!).map((u) => parseUri(u)!.user!),
      isFocus: (entity) => foci.has(entity),
      infoDelayMs: 5,
    });
    t.teardown(() => sim.close());
    sim.seat(ep('chair'), 'chair');

    const parts = await startParts(inv, dir);
    t.teardown(() => parts.close());
    t.equal(parts.pool.drivers.get('p')?.capabilities.conferenceEvents, 'missing', 'p (SIPp) has no event package');
    const links: LinkEvent[] = [];
    parts.manager.on('link', (e) => links.push(e));
    const layouts: LayoutEvent[] = [];
    parts.manager.on('layout', (e) => layouts.push(e));

    const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });
    const mRoom = roomKey(head.rooms.m!);
    const pRoom = roomKey(head.rooms.p!);
    /** The link's entry in m's room (the simulator's own state). */
    const atM = () => sim.conferences.get(mRoom)?.participants.get(pRoom);
    const linkEvents = () => links.filter((e) => e.child === 'p');

    await until('the link up', () => linkEvents().some((e) => e.state === 'up'));
    t.pass('the manager saw the link up');
    const first = await until('the first call in m', () => atM()?.callId);
    await until('the drop seen', () => linkEvents().some((e) => e.previous === 'up'));
    t.not(atM()?.callId, first, "SIPp's BYE: the first call gone from m's room");
    const dropAt = linkEvents().findIndex((e) => e.previous === 'up');
    await until('the link up again', () =>
      linkEvents()
        .slice(dropAt)
        .some((e) => e.state === 'up'),
    );
    const second = await until('a new call in m', () => {
      const e = atM();
      return e?.status === 'connected' && e.kind === 'link' && e.callId !== first ? e.callId : undefined;
    });
    t.ok(second, 'the link up again in m on a new call');
    const upAgain = linkEvents()
      .slice(dropAt)
      .find((e) => e.state === 'up')!.at;
    await until('the picture up the new call applied at p', () =>
      layouts.some((e) => e.mcu === 'p' && e.why === 'uplink' && e.at >= upAgain),
    );
    await until('the picture down the new call applied at m', () =>
      layouts.some((e) => e.mcu === 'm' && e.why === 'downlink' && e.at >= upAgain),
    );
    t.same(
      sim.conferences.get(mRoom)?.outputs.get(pRoom)?.regions,
      [ep('chair')],
      'm sends the chair down the new call',
    );
    const downs = await parts.store.listEvents({ subject: head.sessionId, type: 'cascade.link.down', limit: 10 });
    t.equal(downs.length, 1, 'the drop recorded once (cascade.link.down)');

    await parts.manager.end(head.sessionId);
    await until('the session ended', async () => (await parts.store.getCascade(head.sessionId))?.state === 'ended');
    t.equal(atM(), undefined, "no link left in m's room");
    await parts.close();
    peer.quit();
    const result = await peer.done;
    t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
    t.equal(result.failed, 0, 'no SIPp call failed');

    // SIPp's own record of it.
    const m = sippMessages(log);
    const callId = (text: string) => /^Call-ID:\s*(.+)$/im.exec(text)?.[1]?.trim();
    const linkInvites = m
      .map((x, i) => ({ ...x, i }))
      .filter((x) => x.dir === 'received' && x.text.startsWith('INVITE ') && /^m=video /m.test(x.text));
    const linkCalls = new Set(linkInvites.map((x) => callId(x.text)));
    t.equal(linkCalls.size, 2, 'two link calls reached SIPp (the first, and the redial)');
    const [inv1, inv2] = [...linkCalls].map((id) => linkInvites.find((x) => callId(x.text) === id)!);
    for (const x of [inv1!, inv2!]) {
      t.match(x.text, new RegExp(`^INVITE ${pRoom.replace(/[.]/g, '\\.')}[ ;]`), "addressed to p's room");
      t.match(x.text, new RegExp(`^From:.*${mRoom.replace(/[.]/g, '\\.')}`, 'im'), "from m's room");
    }
    const bye = m.findIndex(
      (x) => x.dir === 'sent' && x.text.startsWith('BYE ') && callId(x.text) === callId(inv1!.text),
    );
    t.ok(bye > inv1!.i && bye < inv2!.i, `SIPp's BYE (message ${bye}) between the two link INVITEs`);
    // What p shows: up the link its main endpoint (the MSML names the link by m's room, docs/mcu.md), and on
    // p-room's screen what comes down the link (the session's view): both set again on the new call.
    const switched = (source: string, output: string) =>
      m.findIndex(
        (x, i) =>
          i > inv2!.i &&
          x.dir === 'received' &&
          x.text.startsWith('INFO ') &&
          x.text.includes(`<modifystream id1="conn:${source}" id2="conn:${output}">`),
      );
    const up = switched(ep('p-room'), mRoom);
    t.ok(up > inv2!.i, `p-room sent up the link (m's room) by an MSML INFO after the redial (message ${up})`);
    const view = switched(mRoom, ep('p-room'));
    t.ok(view > inv2!.i, `p-room's screen showing the link set again after the redial (message ${view})`);
    const hangUp = m.findIndex(
      (x, i) =>
        i > inv2!.i && x.dir === 'received' && x.text.startsWith('BYE ') && callId(x.text) === callId(inv2!.text),
    );
    t.ok(hangUp > up, `the second link call hung up by m at the end (message ${hangUp})`);
    // One entry per REFER (a retransmission has the same Call-ID).
    const refers = new Map(
      m
        .filter((x) => x.dir === 'received' && x.text.startsWith('REFER '))
        .map((x) => [callId(x.text), /^Refer-To:\s*(.+)$/im.exec(x.text)?.[1]?.trim()]),
    );
    t.same(
      [...refers.values()],
      [`<${ep('p-room')}>`, `<${ep('p-room')};method=BYE>`],
      "p-room dialled into p's room once (the drop was the link's, not the endpoint's), hung up at the end",
    );
  });
}
