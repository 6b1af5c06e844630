/**
 * RFC 3515 2.4.6: a notifier names only the second and later REFERs of a
 * dialog by an `id` parameter, so a NOTIFY for the first may carry a bare
 * `Event: refer`. A raw UAS scripted from the RFC text sends exactly that.
 */
import t from 'tap';
import { createUserAgent } from '../../src/sip/index.js';
import { type RawMessage, type RawPeer, rawPeer, responseTo } from './raw-peer.js';

t.setTimeout(30_000);
const WAIT = 3_000; // ms: bound on waiting for one message on loopback

/** An in-dialog NOTIFY from the raw UAS for the REFER `refer`, with the given Event value. */
function notify(peer: RawPeer, refer: RawMessage, event: string, seq: number, sipfrag: string): string {
  const ourContact = /<([^>]+)>/.exec(refer.header('contact')!)![1]!;
  const body = `${sipfrag}\r\n`;
  return [
    `NOTIFY ${ourContact} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKn${seq};rport`,
    'Max-Forwards: 70',
    `From: ${refer.header('to')}`,
    `To: ${refer.header('from')}`,
    `Call-ID: ${refer.header('call-id')}`,
    `CSeq: ${seq} NOTIFY`,
    `Contact: <${peer.uri()}>`,
    `Event: ${event}`,
    'Subscription-State: terminated;reason=noresource',
    'Content-Type: message/sipfrag;version=2.0',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

t.test(
  'a NOTIFY with a bare `Event: refer` reports the first REFER of the dialog; later ones need their id',
  async (t) => {
    const peer = await rawPeer(t);
    const ua = await createUserAgent({
      listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
      timers: { t1: 50, t2: 400, t4: 500 },
    });
    t.teardown(() => ua.close());

    const calling = ua.invite(peer.uri());
    const invite = (await peer.nextNew('INVITE', WAIT))!;
    peer.reply(invite, responseTo(invite, 200, 'OK', { toTag: 'uas1', headers: [`Contact: <${peer.uri()}>`] }));
    const dialog = await calling;
    t.ok(await peer.next(/^ACK /, WAIT), 'ACK');

    const first = dialog.refer('sip:child@127.0.0.9');
    const refer1 = (await peer.nextNew('REFER', WAIT))!;
    peer.reply(refer1, responseTo(refer1, 202, 'Accepted'));
    const sub1 = await first;
    peer.reply(refer1, notify(peer, refer1, 'refer', 10, 'SIP/2.0 200 OK'));
    const answer = await peer.next(
      (m) => m.startLine.startsWith('SIP/2.0') && /10 NOTIFY/.test(m.header('cseq')!),
      WAIT,
    );
    t.match(answer?.startLine, /^SIP\/2\.0 200 /, 'the bare `refer` NOTIFY is taken, not refused 481');
    t.same(await sub1.outcome, { status: 200, reason: 'OK' }, 'and reports the first REFER');

    const second = dialog.refer('sip:child2@127.0.0.9');
    const refer2 = (await peer.nextNew('REFER', WAIT))!;
    peer.reply(refer2, responseTo(refer2, 202, 'Accepted'));
    const sub2 = await second;
    const seq2 = /^(\d+)/.exec(refer2.header('cseq')!)![1];
    peer.reply(refer2, notify(peer, refer2, 'refer', 11, 'SIP/2.0 200 OK'));
    const stale = await peer.next(
      (m) => m.startLine.startsWith('SIP/2.0') && /11 NOTIFY/.test(m.header('cseq')!),
      WAIT,
    );
    t.match(stale?.startLine, /^SIP\/2\.0 481 /, 'the first REFER has ended: a bare `refer` names no subscription');
    peer.reply(refer2, notify(peer, refer2, `refer;id=${seq2}`, 12, 'SIP/2.0 486 Busy Here'));
    t.same(await sub2.outcome, { status: 486, reason: 'Busy Here' }, 'the second REFER is reported by its id');
  },
);
