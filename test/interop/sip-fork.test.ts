/**
 * Forking (RFC 3261 13.2.2.4, 16.7): a real kamailio proxy forks our INVITE
 * to two SIPp UASes that both answer 200. The first 2xx makes our dialog; the
 * other is ACKed and ended with BYE at once. Each SIPp requires an ACK and a
 * BYE for its call, so both exit 0 only if the losing fork got them too, while
 * our dialog with the winner is still up.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createUserAgent } from '../../src/sip/index.js';
import { freePort, have, KAMAILIO_DIR, kamailio, scenario, sipp, sippArgs, tempDir, waitBound } from './sip-peers.js';

t.setTimeout(120_000);

const SDP = 'v=0\r\no=ctl 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';

if (!have('sipp') || !have('kamailio', '-v')) {
  t.plan(0, 'sipp or kamailio is not installed (Debian packages sip-tester, kamailio): skipping the forking test');
} else {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());

  t.test('a forked INVITE: the second 200 is ACKed and ended with BYE, the first makes the dialog', async (t) => {
    const [proxyPort, mcu1, mcu2] = [await freePort(), await freePort(), await freePort()];
    const cfg = join(tmp.dir, 'fork.cfg');
    writeFileSync(
      cfg,
      readFileSync(join(KAMAILIO_DIR, 'fork.cfg'), 'utf8')
        .replaceAll('@PORT@', `${proxyPort}`)
        .replaceAll('@MCU1@', `${mcu1}`)
        .replaceAll('@MCU2@', `${mcu2}`),
    );
    const k = kamailio(tmp.dir, cfg, 1);
    t.teardown(() => k.stop());
    const file = scenario(tmp.dir, 'fork-uas');
    const runs = [
      ['forkA', mcu1],
      ['forkB', mcu2],
    ].map(([tag, port]) => {
      const run = sipp(
        tmp.dir,
        [...sippArgs({ scenario: file, port: port as number, calls: 1 }), '-s', `${tag}`],
        60_000,
      );
      t.teardown(() => run.stop());
      return { tag: tag as string, done: run.done.then((r) => ({ tag: tag as string, r })) };
    });
    t.ok(await waitBound(proxyPort, 'udp'), 'kamailio is listening');
    t.ok((await waitBound(mcu1, 'udp')) && (await waitBound(mcu2, 'udp')), 'both SIPp UASes are listening');

    const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'ctl' });
    t.teardown(() => ua.close());
    const d = await ua.invite(`sip:conf@127.0.0.1:${proxyPort}`, { body: SDP });
    t.match(d.remoteTag, /^fork[AB]-1$/, 'the dialog is with one of the forks');
    t.ok(d.routeSet.length > 0, 'through the proxy (Record-Route)');
    const winner = d.remoteTag.slice(0, 5);

    // The loser's SIPp finishes on its own: it got the ACK and the BYE while our dialog is still up.
    const first = await Promise.race(runs.map((r) => r.done));
    t.not(first.tag, winner, 'the SIPp that finished first is the losing fork');
    t.equal(first.r.code, 0, `losing fork: SIPp exit status (${first.r.stderr.slice(0, 600)})`);
    t.same([first.r.successful, first.r.failed], [1, 0], 'losing fork: ACK then BYE received');
    t.equal(d.state, 'confirmed', 'our dialog with the winner is untouched');
    t.equal(ua.stats.dialogs, 1);

    await d.bye();
    const last = await runs.find((r) => r.tag === winner)!.done;
    t.equal(last.r.code, 0, `winning fork: SIPp exit status (${last.r.stderr.slice(0, 600)})`);
    t.same([last.r.successful, last.r.failed], [1, 0], 'winning fork: ACK, then our BYE at the end');
  });
}
