/**
 * NOTIFYs and their order in a dialog. Two in-dialog requests in flight at once may arrive in the other order
 * over UDP (the first one lost and sent again), and the receiver must refuse the older with 500 (RFC 3261
 * 12.2.2); a notifier may take that failure for the subscriber's end and drop the subscription without a word
 * (RFC 6665 4.2.2). Seen in the cascade's loss test: a refresh's NOTIFY overtook by the next one, the
 * simulated MCU's subscription gone, and the daemon's view of that MCU stale for seconds. Our notifier keeps
 * one NOTIFY of a dialog in flight (every subscription sharing it); our subscriber checks with a refresh after
 * refusing one. Against a raw peer whose
 * messages are written here from the RFC text.
 */
import t, { type Test } from 'tap';
import { createUserAgent, type ServerSubscription, type Subscription } from '../../src/sip/index.js';
import { type RawMessage, rawPeer, responseTo, until } from './raw-peer.js';

t.setTimeout(30_000);

const FAST = { t1: 50, t2: 400, t4: 500 };
const udp = [{ transport: 'udp' as const, host: '127.0.0.1', port: 0 }];

/** A request in the dialog that `from` (a request of the other end) belongs to, sent from the raw peer. */
function inDialog(
  from: RawMessage,
  peerPort: number,
  method: string,
  cseq: number,
  tags: { local: string; remote: string },
  headers: readonly string[],
  body = '',
): string {
  const contact = /<([^>]+)>/.exec(from.header('contact')!)![1]!;
  const uri = (v: string) => /<([^>]+)>/.exec(v)?.[1] ?? v.split(';')[0]!;
  return [
    `${method} ${contact} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peerPort};branch=z9hG4bK${method.toLowerCase()}${cseq}`,
    'Max-Forwards: 70',
    `From: <${uri(from.header('to')!)}>;tag=${tags.local}`,
    `To: <${uri(from.header('from')!)}>;tag=${tags.remote}`,
    `Call-ID: ${from.header('call-id')}`,
    `CSeq: ${cseq} ${method}`,
    `Contact: <sip:peer@127.0.0.1:${peerPort}>`,
    ...headers,
    ...(body === '' ? [] : ['Content-Type: application/conference-info+xml']),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** A raw peer and our user agent (UDP, short timers), both closed when the test ends. */
async function peerAndUa(t: Test) {
  const peer = await rawPeer(t);
  const ua = await createUserAgent({ listen: udp, timers: FAST });
  t.teardown(() => ua.close());
  return { peer, ua, uaPort: ua.listening[0]!.port };
}

const tagOf = (v: string | undefined) => /;\s*tag=([^;\s]+)/i.exec(v ?? '')?.[1] ?? '';
const seqOf = (m: RawMessage) => Number(m.header('cseq')!.split(' ')[0]);

t.test(
  'our notifier keeps one NOTIFY in flight: after a refresh, the state follows the answer to the first',
  async (t) => {
    const { peer, ua, uaPort } = await peerAndUa(t);
    let server: ServerSubscription | undefined;
    ua.on('subscribe', (s) => {
      s.accept({ contentType: 'application/conference-info+xml', body: '<conference-info version="1"/>' }).then(
        (n) => {
          server = n;
          // As the simulated MCU does: a refresh asks for the full state (RFC 4575 4.1).
          n.on('refreshed', () => {
            n.notify({ contentType: 'application/conference-info+xml', body: '<conference-info version="2"/>' }).catch(
              () => {},
            );
          });
        },
        () => {},
      );
    });
    const tag = 'sub1';
    peer.sendTo(
      uaPort,
      [
        `SUBSCRIBE sip:conf@127.0.0.1:${uaPort} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKsubscribe1`,
        'Max-Forwards: 70',
        `From: <sip:peer@127.0.0.1:${peer.port}>;tag=${tag}`,
        `To: <sip:conf@127.0.0.1:${uaPort}>`,
        'Call-ID: notify-order-1',
        'CSeq: 1 SUBSCRIBE',
        `Contact: <sip:peer@127.0.0.1:${peer.port}>`,
        'Event: conference',
        'Expires: 600',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    const ok = await peer.next(/^SIP\/2\.0 200 [\s\S]*CSeq: 1 SUBSCRIBE/, 3_000);
    t.ok(ok, 'the SUBSCRIBE is accepted');
    const first = (await peer.nextNew('NOTIFY', 3_000))!;
    peer.reply(first, responseTo(first, 200, 'OK'));
    t.ok(await until(() => server !== undefined), 'the initial NOTIFY answered');

    const tags = { local: tag, remote: tagOf(first.header('from')) };
    peer.sendTo(uaPort, inDialog(first, peer.port, 'SUBSCRIBE', 2, tags, ['Event: conference', 'Expires: 600']));
    // Two NOTIFYs are due: the stack's own (RFC 6665 4.2.1.2) and the listener's full state.
    const one = (await peer.nextNew('NOTIFY', 3_000))!;
    t.ok(one, 'the refresh is followed by a NOTIFY');
    t.ok(await peer.settle(uaPort));
    t.same(
      new Set(peer.received(/^NOTIFY /).map(seqOf)),
      new Set([seqOf(first), seqOf(one)]),
      'the other one waits while the first is unanswered',
    );
    peer.reply(one, responseTo(one, 200, 'OK'));
    const two = (await peer.nextNew('NOTIFY', 3_000))!;
    t.ok(two, 'then the other one');
    t.ok(seqOf(two) > seqOf(one), 'with the higher CSeq');
    t.match([one.body, two.body].join(), /version="2"/, 'the full state among them');
    peer.reply(two, responseTo(two, 200, 'OK'));
    t.ok(await until(() => server?.state === 'active'), 'and the subscription lives on');
  },
);

t.test(
  'our subscriber refreshes after refusing an overtaken NOTIFY, and ends if the notifier has dropped it',
  async (t) => {
    const { peer, ua, uaPort } = await peerAndUa(t);
    const subscribing = ua.subscribe(`sip:conf@127.0.0.1:${peer.port}`, { event: 'conference', expires: 600 });
    const req = (await peer.next(/^SUBSCRIBE /, 3_000))!;
    const tags = { local: 'notifier1', remote: tagOf(req.header('from')) };
    peer.reply(
      req,
      responseTo(req, 200, 'OK', {
        toTag: tags.local,
        headers: [`Contact: <sip:conf@127.0.0.1:${peer.port}>`, 'Expires: 600'],
      }),
    );
    const sub: Subscription = await subscribing;
    const ended = new Promise<string>((r) => sub.on('terminated', r));
    const notify = (cseq: number) =>
      peer.sendTo(
        uaPort,
        inDialog(
          req,
          peer.port,
          'NOTIFY',
          cseq,
          tags,
          ['Event: conference', 'Subscription-State: active;expires=600'],
          `<conference-info version="${cseq}"/>`,
        ),
      );
    const answer = async (cseq: number) =>
      (await peer.next(new RegExp(`^SIP/2\\.0 [\\s\\S]*CSeq: ${cseq} NOTIFY`), 3_000))?.startLine;

    notify(1);
    t.equal(await answer(1), 'SIP/2.0 200 OK');
    notify(3);
    t.equal(await answer(3), 'SIP/2.0 200 OK');
    notify(2);
    t.match(await answer(2), /^SIP\/2\.0 500 /, 'the older NOTIFY, arriving last, is refused (RFC 3261 12.2.2)');
    const probe = await peer.nextNew('SUBSCRIBE', 3_000);
    t.ok(probe, 'a refresh asks whether the notifier still holds the subscription');
    t.equal(probe?.header('expires'), '600');
    peer.reply(probe!, responseTo(probe!, 200, 'OK', { headers: ['Expires: 600'] }));
    t.ok(await peer.settle(uaPort));
    t.equal(sub.state, 'active', 'still held: the subscription goes on');

    notify(5);
    t.equal(await answer(5), 'SIP/2.0 200 OK');
    notify(4);
    t.match(await answer(4), /^SIP\/2\.0 500 /);
    const again = (await peer.nextNew('SUBSCRIBE', 3_000))!;
    t.ok(again, 'refused again, checked again');
    peer.reply(again, responseTo(again, 481, 'Subscription Does Not Exist'));
    // A 481 to a request in the dialog ends the dialog (RFC 5057 5.1), and its subscription with it.
    t.equal(await ended, 'request-failed', 'dropped by the notifier: ours ends too, and its owner can subscribe again');
    t.ok(await peer.settle(uaPort));
    t.equal(new Set(peer.received(/^SUBSCRIBE /).map(seqOf)).size, 3, 'one refresh per refusal, nothing more');
  },
);

t.test(
  "one NOTIFY in flight per dialog: two REFERs' implicit subscriptions in one INVITE dialog take turns",
  async (t) => {
    const { peer, ua } = await peerAndUa(t);
    const sdp = 'v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';
    const calling = ua.invite(`sip:conf@127.0.0.1:${peer.port}`, { body: sdp });
    const invite = (await peer.next(/^INVITE /, 3_000))!;
    const tags = { local: 'callee1', remote: tagOf(invite.header('from')) };
    peer.reply(
      invite,
      responseTo(invite, 200, 'OK', {
        toTag: tags.local,
        headers: [`Contact: <sip:conf@127.0.0.1:${peer.port}>`],
        body: sdp,
      }),
    );
    const d = await calling;
    t.ok(await peer.next(/^ACK /, 3_000), 'the call is set up');
    const accepted: Promise<unknown>[] = [];
    d.on('refer', (r) => accepted.push(r.accept().catch(() => {})));
    // Two REFERs, each with its own implicit subscription (RFC 3515 2.4.6); each accept sends a "100 Trying" NOTIFY.
    for (const cseq of [1, 2])
      peer.sendTo(
        ua.listening[0]!.port,
        inDialog(invite, peer.port, 'REFER', cseq, tags, [`Refer-To: <sip:child${cseq}@127.0.0.1:5060>`]),
      );
    const first = (await peer.nextNew('NOTIFY', 3_000))!;
    t.ok(first, 'the first NOTIFY');
    t.ok(await until(() => accepted.length === 2), 'both REFERs accepted');
    t.ok(await peer.settle(ua.listening[0]!.port));
    t.same(
      new Set(peer.received(/^NOTIFY /).map(seqOf)),
      new Set([seqOf(first)]),
      "the other REFER's NOTIFY waits while the first is unanswered, though it is another subscription's",
    );
    peer.reply(first, responseTo(first, 200, 'OK'));
    const second = (await peer.nextNew('NOTIFY', 3_000))!;
    t.ok(second, 'then the second');
    t.ok(seqOf(second) > seqOf(first), 'with the higher CSeq');
    t.not(second.header('event'), first.header('event'), 'of the other subscription');
    peer.reply(second, responseTo(second, 200, 'OK'));
    await Promise.all(accepted);
  },
);
