/**
 * REFERs outside the control dialog (RFC 4579 5.5, RFC 3515 2.4.1), against MCU foci we did not write:
 * - SIPp (test/interop/sipp/mcu-refer-uas.xml) takes each REFER as a call of its own, checks it is addressed
 *   to the conference URI and names a cascade target (check_it fails the call otherwise), and reports 100 then,
 *   after a pause, 200 in the subscription dialog the REFER made. Three links dialled at once: SIPp's own
 *   message log must show the three REFERs in before the first outcome went out (they did not wait for one
 *   another), and the driver's roster has the three links.
 * - SIPp (test/interop/sipp/mcu-refer-refuse-uas.xml) refuses a REFER outside a dialog with 405 and takes
 *   them in its control dialog: the driver sends the refused REFER again there, every later one there at once,
 *   and says so in the MCU's capabilities.
 * - SIPp (test/interop/sipp/mcu-early-refer-uas.xml) answers conference SUBSCRIBEs only after 2 s: a room whose
 *   control dialog is up takes a cascade link's REFER at once (`established`, what a fresh session's first dial
 *   uses), and SIPp's log shows the REFER in before the room's SUBSCRIBE was answered.
 * - SIPp (the same scenario) answers the room's control INVITE only after 2 s too: with
 *   REFERs outside dialogs, a room whose open is under way takes a cascade link's REFER at once (`requested`, what
 *   a fresh session's first pass does), and SIPp's log shows the REFER in before the room's INVITE was answered.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { have, sippMessages as messages } from './sip-peers.js';
import { sippMcu } from './sipp-mcu.js';

t.setTimeout(90_000);

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the out-of-dialog REFER interop tests are skipped');
} else {
  t.test(
    'three links dialled at once: three REFERs outside any dialog, in together, each with its own dialog',
    async (t) => {
      let log = '';
      // Calls: the control dialog, the refused SUBSCRIBE, three REFERs.
      const { peer, driver: d } = await sippMcu(t, {
        scenario: 'mcu-refer-uas.xml',
        calls: 5,
        args: (dir) => {
          log = join(dir, 'messages.log');
          return ['-trace_msg', '-message_file', log];
        },
      });
      await d.connect();
      t.match(d.capabilities, { conferenceEvents: 'missing', refer: 'out-of-dialog' });
      const targets = [1, 2, 3].map((i) => `sip:child-${i}@127.0.0.1:9`);
      const states = await Promise.all(targets.map((u) => d.dialLink(u)));
      t.same(
        states.map((s) => s.state),
        ['connected', 'connected', 'connected'],
        'each link reported 200 by its own subscription',
      );
      t.same([...d.roster.keys()].sort(), targets, "the links in the driver's roster");
      t.match(d.capabilities, { refer: 'out-of-dialog', lacks: [{ feature: 'conference-events' }] });
      await d.close();

      const result = await peer.done;
      t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
      t.equal(result.successful, 5, 'the control dialog, the SUBSCRIBE and three REFERs completed as scripted');
      t.equal(result.failed, 0);
      const m = messages(log);
      const refers = m.filter((x) => x.dir === 'received' && x.text.startsWith('REFER '));
      t.equal(refers.length, 3);
      const callIds = refers.map((x) => /^Call-ID:\s*(.+)$/im.exec(x.text)?.[1]);
      t.equal(new Set(callIds).size, 3, 'each REFER its own Call-ID: outside any dialog');
      t.ok(
        refers.every((x) => !/^To:.*;tag=/im.test(x.text)),
        'no To tag: not in a dialog',
      );
      const lastRefer = m.indexOf(refers[2]!);
      const firstOutcome = m.findIndex((x) => x.dir === 'sent' && /Subscription-State: terminated/i.test(x.text));
      t.ok(
        firstOutcome > lastRefer,
        `the three REFERs were in (message ${lastRefer}) before the first outcome went out (message ${firstOutcome})`,
      );
    },
  );

  t.test('a focus that refuses REFER outside a dialog (405): the REFER goes in the control dialog', async (t) => {
    // Calls: the refused REFER, the refused SUBSCRIBE, the control dialog (with both REFERs in it).
    const { peer, driver: d } = await sippMcu(t, { scenario: 'mcu-refer-refuse-uas.xml', calls: 3 });
    await d.connect();
    t.match(await d.dialLink('sip:child-1@127.0.0.1:9'), { state: 'connected' }, 'the fallback REFER succeeded');
    t.match(d.capabilities, {
      refer: 'in-dialog',
      lacks: [
        { feature: 'conference-events', sipStatus: 489 },
        { feature: 'out-of-dialog-refer', sipStatus: 405 },
      ],
    });
    t.match(await d.dialLink('sip:child-2@127.0.0.1:9'), { state: 'connected' }, 'the next one in the dialog at once');
    await d.close();

    const result = await peer.done;
    t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
    t.equal(result.successful, 3, 'one refused REFER outside a dialog, the SUBSCRIBE, the control dialog: as scripted');
    t.equal(result.failed, 0);
  });

  /** SIPp playing a room slow to answer (mcu-early-refer-uas.xml), its message log on. */
  const slowRoom = async (t: Test) => {
    let log = '';
    // Calls: the lobby's control dialog and SUBSCRIBE, the room's control dialog and SUBSCRIBE, the REFER.
    const mcu = await sippMcu(t, {
      scenario: 'mcu-early-refer-uas.xml',
      calls: 5,
      args: (dir) => {
        log = join(dir, 'messages.log');
        return ['-trace_msg', '-message_file', log];
      },
    });
    /** Once SIPp is done: every call as scripted; where the REFER came in, and where `status` went back to `request`. */
    const done = async (request: string, status: number) => {
      const result = await mcu.peer.done;
      t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
      t.equal(result.successful, 5, 'two control dialogs, two SUBSCRIBEs and the REFER completed as scripted');
      t.equal(result.failed, 0);
      const m = messages(log);
      const callId = (text: string) => /^Call-ID:\s*(.+)$/im.exec(text)?.[1]?.trim();
      const asked = m.find((x) => x.dir === 'received' && x.text.startsWith(`${request} sip:room@`));
      return {
        refer: m.findIndex((x) => x.dir === 'received' && x.text.startsWith('REFER sip:room@')),
        answered: m.findIndex(
          (x) => x.dir === 'sent' && x.text.startsWith(`SIP/2.0 ${status}`) && callId(x.text) === callId(asked!.text),
        ),
      };
    };
    return { ...mcu, done };
  };

  t.test(
    'a cascade link is dialled once the room exists, before its roster: the REFER overtakes the SUBSCRIBE',
    async (t) => {
      const { port, driver: d, done } = await slowRoom(t);
      await d.connect();
      const room = d.conference(`sip:room@127.0.0.1:${port}`);
      const established = new Promise<void>((resolve) => room.once('established', resolve));
      const opened = room.open();
      await established;
      t.equal(room.state, 'opening', "the room's control dialog is up, its roster not yet");
      t.match(await room.dialLink('sip:child-1@127.0.0.1:9'), { state: 'connected' }, 'the link dialled meanwhile');
      await opened;
      t.equal(room.state, 'open', 'open once SIPp answered the SUBSCRIBE (489: the driver keeps its own roster)');
      await d.close();

      const { refer, answered } = await done('SUBSCRIBE', 489);
      t.ok(refer >= 0 && answered >= 0, "the REFER and the answer to the room SUBSCRIBE are in SIPp's log");
      t.ok(
        refer < answered,
        `SIPp took the REFER (message ${refer}) before it answered the room's SUBSCRIBE (message ${answered})`,
      );
    },
  );

  t.test(
    "REFERs outside dialogs: a cascade link is dialled while the room's control INVITE is unanswered",
    async (t) => {
      const { port, driver: d, done } = await slowRoom(t);
      await d.connect();
      t.equal(d.capabilities.refer, 'out-of-dialog');
      const room = d.conference(`sip:room@127.0.0.1:${port}`);
      const opened = room.open();
      t.equal(room.state, 'opening', 'its open under way');
      t.match(await room.dialLink('sip:child-1@127.0.0.1:9'), { state: 'connected' }, 'the link dialled meanwhile');
      t.equal(room.state, 'opening', 'the room still waiting for its control dialog when the link was up');
      await opened;
      t.equal(room.state, 'open');
      await d.close();

      const { refer, answered } = await done('INVITE', 200);
      t.ok(refer >= 0 && answered >= 0, "the REFER and the 200 to the room's INVITE are in SIPp's log");
      t.ok(
        refer < answered,
        `SIPp took the REFER (message ${refer}) before it answered the room's INVITE 200 (message ${answered})`,
      );
    },
  );
}
