/**
 * RFC rules of our UAC checked by SIPp (Debian package sip-tester) playing
 * MCUs that insist on them: the ACK for a 2xx carries the INVITE's digest
 * credentials (RFC 3261 13.2.2.4; SIPp verifies the MD5 digest itself), the
 * offer an MCU puts in its 2xx is answered in the ACK (13.2.2.4, RFC 3264),
 * and a 422 is retried with Session-Expires and Min-SE raised (RFC 4028 7.4).
 * Each scenario fails its call (SIPp exit status 1) when the rule is broken.
 */
import t from 'tap';
import { answerOffer, createUserAgent, type Dialog, type InviteOptions, type UserAgent } from '../../src/sip/index.js';
import { freePort, have, type SippResult, scenario, sipp, sippArgs, tempDir, waitBound } from './sip-peers.js';

t.setTimeout(120_000);

const SDP = 'v=0\r\no=ctl 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';

if (!have('sipp')) {
  t.plan(0, 'sipp is not installed (Debian package sip-tester): skipping SIPp RFC tests');
} else {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());

  /** One call from our UAC to a SIPp UAS playing `name`: the dialog's state before the BYE, SIPp's verdict. */
  async function oneCall(
    t: { teardown(fn: () => unknown): void },
    name: string,
    transport: 'udp' | 'tcp',
    opts: InviteOptions,
    reuse?: { ua: UserAgent; port: number },
  ): Promise<{ listening: boolean; dialog: Pick<Dialog, 'remoteBody' | 'sessionTimer'>; sipp: SippResult }> {
    let ua = reuse?.ua;
    if (ua === undefined) {
      const made = await createUserAgent({ listen: [{ transport, host: '127.0.0.1', port: 0 }], user: 'ctl' });
      t.teardown(() => made.close());
      ua = made;
    }
    const port = reuse?.port ?? (await freePort());
    const run = sipp(
      tmp.dir,
      sippArgs({
        scenario: scenario(tmp.dir, name),
        port,
        calls: 1,
        transport: transport === 'tcp' ? 'tcp' : undefined,
      }),
      60_000,
    );
    t.teardown(() => run.stop());
    const listening = await waitBound(port, transport);
    const uri = `sip:mcu@127.0.0.1:${port}${transport === 'tcp' ? ';transport=tcp' : ''}`;
    const d = await ua.invite(uri, opts);
    const dialog = { remoteBody: d.remoteBody, sessionTimer: d.sessionTimer };
    await d.bye();
    return { listening, dialog, sipp: await run.done };
  }

  for (const transport of ['udp', 'tcp'] as const) {
    t.test(`${transport}: a 401-challenging MCU finds the INVITE's credentials in the ACK`, async (t) => {
      const r = await oneCall(t, 'uas-auth', transport, {
        body: SDP,
        credentials: { username: 'ctl', password: 's3cret' },
      });
      t.ok(r.listening, 'SIPp was listening');
      t.equal(r.sipp.code, 0, `SIPp exit status (${r.sipp.stderr.slice(0, 600)})`);
      t.same([r.sipp.successful, r.sipp.failed], [1, 0], 'SIPp counts the call successful');
    });

    t.test(`${transport}: the offer in the MCU's 200 is answered in the ACK`, async (t) => {
      const r = await oneCall(t, 'uas-offer', transport, { answer: (o) => answerOffer(o, { host: '127.0.0.1' }) });
      t.match(r.dialog.remoteBody.toString(), /m=application 5070 TCP\/BFCP/, 'the dialog keeps the MCU offer');
      t.equal(r.sipp.code, 0, `SIPp exit status (${r.sipp.stderr.slice(0, 600)})`);
      t.same([r.sipp.successful, r.sipp.failed], [1, 0], 'SIPp counts the call successful');
    });
  }

  t.test('an MCU met again gets the credentials of its last challenge up front, verified by SIPp', async (t) => {
    const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'ctl' });
    t.teardown(() => ua.close());
    const port = await freePort();
    const opts = { body: SDP, credentials: { username: 'ctl', password: 's3cret' } };
    const first = await oneCall(t, 'uas-auth', 'udp', opts, { ua, port });
    t.same([first.sipp.successful, first.sipp.failed], [1, 0], 'the first call answered the challenge');
    // A SIPp of its own on the same address: it challenges nothing and refuses an INVITE without valid credentials.
    const again = await oneCall(t, 'uas-auth-upfront', 'udp', opts, { ua, port });
    t.equal(again.sipp.code, 0, `SIPp exit status (${again.sipp.stderr.slice(0, 600)})`);
    t.same([again.sipp.successful, again.sipp.failed], [1, 0], 'the second INVITE carried them, unchallenged');
  });

  t.test('a 422 with Min-SE 1800 is retried with Session-Expires and Min-SE of at least 1800', async (t) => {
    const r = await oneCall(t, 'uas-422', 'udp', { body: SDP, sessionTimer: { expires: 90, minSE: 90 } });
    t.same(r.dialog.sessionTimer, { interval: 1800, refresher: 'local' });
    t.equal(r.sipp.code, 0, `SIPp exit status (${r.sipp.stderr.slice(0, 600)})`);
    t.same([r.sipp.successful, r.sipp.failed], [1, 0], 'SIPp counts the call successful');
  });
}
