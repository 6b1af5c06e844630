/**
 * Several conferences of one MCU through one sip-msml driver, against an MCU
 * we did not write: SIPp (test/interop/sipp/mcu-rooms-uas.xml) plays an MCU
 * with a lobby (sip:conf@) and a room (sip:8001@) on one address, checks that
 * every INVITE and SUBSCRIBE names one of them and that the REFER went in the
 * room's control dialog (check_it: the call fails otherwise), and names each
 * conference's roster after the Request-URI it was asked for. The driver must
 * hold two control dialogs and two subscriptions and keep their rosters and
 * commands apart.
 */
import { join } from 'node:path';
import t from 'tap';
import { createSipMsmlDriver } from '../../src/mcu/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { freePort, have, SCENARIOS, sipp, tempDir, udpPortBound } from './sip-peers.js';

t.setTimeout(90_000);

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the several-conferences interop test is skipped');
} else {
  t.test('driver against a SIPp MCU with a lobby and a room on one address', async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const port = await freePort();
    const peer = sipp(
      tmp.dir,
      ['-sf', join(SCENARIOS, 'mcu-rooms-uas.xml'), '-i', '127.0.0.1', '-p', `${port}`, '-m', '4', '-timeout', '30s'],
      40_000,
    );
    t.teardown(() => peer.stop());
    await udpPortBound(port);

    const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    t.teardown(() => ua.close());
    const lobbyUri = `sip:conf@127.0.0.1:${port}`;
    const roomUri = `sip:8001@127.0.0.1:${port}`;
    // No health OPTIONS during the test: SIPp's scenario answers them, but one arriving while it waits for the
    // answer to its sipfrag NOTIFY would be out of its script.
    const d = createSipMsmlDriver({
      ua,
      mcu: { id: 'sipp', uri: lobbyUri, conferences: [roomUri] },
      healthIntervalMs: 60_000,
      requestTimeoutMs: 3_000,
      // This MCU takes REFERs in the room's control dialog (the out-of-dialog form: mcu-refer-sipp.test.ts).
      refer: 'in-dialog',
    });
    t.teardown(() => d.close());
    await d.connect();
    const room = d.conference(roomUri);
    await room.open();
    t.equal(room.state, 'open');
    t.same([...d.roster.keys()], ['sip:ep-conf@endpoints.invalid'], "the lobby's roster, from its own subscription");
    t.match([...room.roster.values()], [{ entity: 'sip:ep-8001@endpoints.invalid', displayText: 'In 8001' }]);

    await room.setLayout('sip:ep-8001@endpoints.invalid', 'single');
    await d.setLayout('sip:ep-conf@endpoints.invalid', '2x2');
    await room.dialParticipant('sip:ep-9@endpoints.invalid');
    await d.close();
    t.equal(room.state, 'closed');

    const result = await peer.done;
    t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
    t.equal(result.successful, 4, 'two control dialogs and two subscriptions completed as scripted');
    t.equal(result.failed, 0);
  });
}
