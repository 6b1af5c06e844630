/**
 * RFC 3261 / 4028 rules checked against raw UDP and TCP peers scripted in the
 * tests: forked 2xx (13.2.2.4), merged requests (8.2.2.2), responses with
 * several Vias (8.1.3.3), a 2xx without a To tag, Timer H (17.2.1), the 422
 * retry (RFC 4028 7.4), and close() letting a BYE in flight finish.
 */
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import {
  answerOffer,
  createUserAgent,
  type TransactionRecord,
  type UserAgent,
  type UserAgentOptions,
} from '../../src/sip/index.js';
import { MCU_OFFER, type RawMessage, type RawPeer, rawPeer, responseTo, until } from './raw-peer.js';

t.setTimeout(60_000);

const FAST = { t1: 50, t2: 400, t4: 500 }; // ms
const WAIT = 3_000; // ms: bound on waiting for one message on loopback

async function ua(t: { teardown(fn: () => unknown): void }, extra: Partial<UserAgentOptions> = {}): Promise<UserAgent> {
  const u = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    user: 'ctl',
    timers: FAST,
    ...extra,
  });
  t.teardown(() => u.close());
  return u;
}

/** A request of ours in call `callId`, to the dialog with To tag `toTag` when given. */
const inCall = (method: string, callId: string, toTag?: string) =>
  new RegExp(
    `^${method} (?=[\\s\\S]*\\r\\nCall-ID: ${callId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\r\\n)` +
      (toTag === undefined ? '' : `(?=[\\s\\S]*\\r\\nTo: [^\\r]*;tag=${toTag}\\r\\n)`),
  );

/** A request sent by the raw peer to our user agent, written from RFC 3261 8.1.1. */
function request(
  peer: RawPeer,
  target: UserAgent,
  method: string,
  o: { branch: string; callId: string; cseq: number; fromTag?: string; body?: string },
): string {
  const to = target.contactUri('udp');
  const body = o.body ?? '';
  return [
    `${method} ${to} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=${o.branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:mcu@127.0.0.1:${peer.port}>;tag=${o.fromTag ?? 'peer1'}`,
    `To: <${to}>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${method}`,
    `Contact: <sip:mcu@127.0.0.1:${peer.port}>`,
    ...(body.length > 0 ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

for (const transport of ['udp', 'tcp'] as const) {
  t.test(
    `${transport}: a 2xx from a second fork is ACKed and ended with BYE; the first makes the dialog`,
    async (t) => {
      const peer = await rawPeer(t, transport);
      const a = await ua(t);
      const calling = a.invite(peer.uri(), { answer: (o) => answerOffer(o, { host: '127.0.0.1' }) });
      calling.catch(() => {});
      const inv = (await peer.nextNew('INVITE', WAIT))!;
      const callId = inv.header('call-id')!;
      const first = responseTo(inv, 200, 'OK', {
        toTag: 'forkA',
        headers: [`Contact: <${peer.uri('a')}>`],
        body: MCU_OFFER,
      });
      const second = responseTo(inv, 200, 'OK', {
        toTag: 'forkB',
        headers: [`Contact: <${peer.uri('b')}>`],
        body: MCU_OFFER,
      });
      // A forking proxy relays both 2xx (RFC 3261 16.7: every 2xx goes upstream); over TCP in one write.
      if (transport === 'tcp') peer.reply(inv, first + second);
      else {
        peer.reply(inv, first);
        peer.reply(inv, second);
      }
      const d = await calling;
      t.equal(d.remoteTag, 'forkA', 'the first 2xx made the dialog');
      const ackA = (await peer.next(inCall('ACK', callId, 'forkA'), WAIT))!;
      t.match(ackA.startLine, /^ACK sip:a@/, 'ACK for the first fork, to its Contact');
      t.match(ackA.body, /m=audio [1-9]/, 'with our answer');
      const ackB = (await peer.next(inCall('ACK', callId, 'forkB'), WAIT))!;
      t.ok(ackB, 'the second fork is ACKed (RFC 3261 13.2.2.4)');
      t.match(ackB.startLine, /^ACK sip:b@/, 'at its own Contact');
      t.same(
        [...ackB.body.matchAll(/^m=\w+ (\d+)/gm)].map((m) => m[1]),
        ['0', '0', '0'],
        'its offer is answered, every stream refused: that session is not wanted',
      );
      const byeB = (await peer.next(inCall('BYE', callId), WAIT))!;
      t.match(byeB.header('to'), /tag=forkB/, 'then BYE to the second fork only');
      t.match(byeB.startLine, /^BYE sip:b@/);
      peer.reply(byeB, responseTo(byeB, 200, 'OK'));
      if (transport === 'udp') {
        // The second fork lost our ACK and retransmits: ACKed again, no second BYE.
        peer.reply(inv, second);
        t.ok(await peer.next(inCall('ACK', callId, 'forkB'), WAIT), 'retransmission re-ACKed');
      }
      t.equal(d.state, 'confirmed', 'our dialog with the first fork lives on');
      t.equal(a.stats.dialogs, 1);
      const bye = d.bye();
      const byeA = (await peer.next(inCall('BYE', callId, 'forkA'), WAIT))!;
      peer.reply(byeA, responseTo(byeA, 200, 'OK'));
      await bye;
      const branches = new Set(peer.received(inCall('BYE', callId, 'forkB')).map((m) => m.header('via')));
      t.equal(branches.size, 1, 'one BYE transaction for the fork (retransmissions aside)');
    },
  );
}

t.test('merged or looped requests are answered 482 (RFC 3261 8.2.2.2)', async (t) => {
  const peer = await rawPeer(t);
  const a = await ua(t);
  let invites = 0;
  a.on('invite', (inv) => {
    invites++;
    inv.progress(180);
  });
  const port = a.listening[0]!.port;
  const copy = { callId: 'merged-1', cseq: 1 };
  peer.sendTo(port, request(peer, a, 'INVITE', { ...copy, branch: 'z9hG4bKpath1' }));
  t.ok(await peer.next(/^SIP\/2.0 180 [\s\S]*branch=z9hG4bKpath1/, WAIT), 'the first copy reaches the application');
  // The same request (From tag, Call-ID, CSeq) by another branch: a parallel path through proxies.
  peer.sendTo(port, request(peer, a, 'INVITE', { ...copy, branch: 'z9hG4bKpath2' }));
  const loop = (await peer.next(/^SIP\/2.0 482 [\s\S]*branch=z9hG4bKpath2/, WAIT))!;
  t.ok(loop, 'the second copy gets 482 Loop Detected');
  t.match(loop.header('to'), /;tag=/, 'with a To tag');
  peer.reply(
    loop,
    request(peer, a, 'ACK', { ...copy, branch: 'z9hG4bKpath2' }).replace(
      /\r\nTo: [^\r]*/,
      `\r\nTo: ${loop.header('to')}`,
    ),
  );
  t.equal(invites, 1, 'the application saw one INVITE');
  // Non-INVITE too, while the first transaction lingers (Timer J).
  peer.sendTo(port, request(peer, a, 'OPTIONS', { callId: 'merged-2', cseq: 7, branch: 'z9hG4bKopt1' }));
  t.ok(await peer.next(/^SIP\/2.0 200 [\s\S]*branch=z9hG4bKopt1/, WAIT));
  peer.sendTo(port, request(peer, a, 'OPTIONS', { callId: 'merged-2', cseq: 7, branch: 'z9hG4bKopt2' }));
  t.ok(await peer.next(/^SIP\/2.0 482 [\s\S]*branch=z9hG4bKopt2/, WAIT), 'OPTIONS by a second path: 482');
  // A retransmission (same branch) is no merge: it gets the first answer again.
  peer.sendTo(port, request(peer, a, 'OPTIONS', { callId: 'merged-2', cseq: 7, branch: 'z9hG4bKopt1' }));
  t.ok(await peer.next(/^SIP\/2.0 200 [\s\S]*branch=z9hG4bKopt1/, WAIT), 'a retransmission gets its 200 again');
  // A new CSeq in the same call is a new request.
  peer.sendTo(port, request(peer, a, 'OPTIONS', { callId: 'merged-2', cseq: 8, branch: 'z9hG4bKopt3' }));
  t.ok(await peer.next(/^SIP\/2.0 200 [\s\S]*branch=z9hG4bKopt3/, WAIT), 'next CSeq: 200');
});

t.test('a response with more than one Via is discarded by the transaction match (RFC 3261 8.1.3.3)', async (t) => {
  const peer = await rawPeer(t);
  const a = await ua(t);
  // Our Via on top (so the branch matches our transaction), and one more below it.
  const withProxyVia = (m: RawMessage, status: number, reason: string) =>
    responseTo(m, status, reason, { toTag: 'v' }).replace(
      /(\r\nVia: [^\r]*)/,
      `$1\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKbelow`,
    );
  const asking = a.request('OPTIONS', peer.uri());
  const o = (await peer.next(/^OPTIONS /, WAIT))!;
  peer.reply(o, withProxyVia(o, 200, 'OK'));
  peer.reply(o, responseTo(o, 486, 'Busy Here', { toTag: 'v' }));
  t.equal((await asking).status, 486, 'the 200 with two Vias was not taken; the 486 was');
  const calling = a.invite(peer.uri(), { body: MCU_OFFER });
  const inv = (await peer.nextNew('INVITE', WAIT))!;
  peer.reply(
    inv,
    withProxyVia(inv, 200, 'OK').replace('Content-Length: 0', `Contact: <${peer.uri()}>\r\nContent-Length: 0`),
  );
  peer.reply(inv, responseTo(inv, 603, 'Decline', { toTag: 'v' }));
  await t.rejects(calling, { code: 'SIP_ERR_RESPONSE', sipStatus: 603 }, 'an INVITE 2xx with two Vias makes no dialog');
  t.equal(a.stats.dialogs, 0);
});

t.test('a 2xx without a To tag makes no dialog: ACK, BYE, SIP_ERR_PROTOCOL', async (t) => {
  const peer = await rawPeer(t);
  const a = await ua(t);
  const calling = a.invite(peer.uri(), { body: MCU_OFFER });
  const inv = (await peer.nextNew('INVITE', WAIT))!;
  peer.reply(inv, responseTo(inv, 200, 'OK', { headers: [`Contact: <${peer.uri()}>`], body: MCU_OFFER }));
  await t.rejects(calling, { code: 'SIP_ERR_PROTOCOL' });
  const callId = inv.header('call-id')!;
  t.ok(await peer.next(inCall('ACK', callId), WAIT), 'the 2xx is ACKed (it stops being retransmitted)');
  const bye = (await peer.next(inCall('BYE', callId), WAIT))!;
  t.ok(bye, 'and the session it opened is ended');
  peer.reply(bye, responseTo(bye, 200, 'OK'));
  t.equal(a.stats.dialogs, 0, 'no dialog');
  const subscribing = a.subscribe(peer.uri(), { event: 'conference' });
  const sub = (await peer.next(/^SUBSCRIBE /, WAIT))!;
  peer.reply(sub, responseTo(sub, 200, 'OK', { headers: [`Contact: <${peer.uri()}>`, 'Expires: 600'] }));
  await t.rejects(subscribing, { code: 'SIP_ERR_PROTOCOL' }, 'SUBSCRIBE likewise');
  t.equal(a.stats.dialogs, 0);
});

t.test('Timer H: no ACK for our non-2xx is reported in the transaction record', async (t) => {
  const peer = await rawPeer(t);
  const clock = new FakeClock();
  const a = await ua(t, { clock });
  const records: TransactionRecord[] = [];
  a.on('transaction', (r) => records.push(r));
  a.on('invite', (inv) => inv.reject(486));
  const port = a.listening[0]!.port;
  peer.sendTo(port, request(peer, a, 'INVITE', { callId: 'timer-h', cseq: 1, branch: 'z9hG4bKh1' }));
  t.ok(await peer.next(/^SIP\/2.0 486 /, WAIT), 'rejected');
  t.same(records, [], 'not recorded before the ACK or Timer H');
  clock.advance(64 * FAST.t1);
  t.match(
    records,
    [{ role: 'uas', method: 'INVITE', status: 486, errorCode: 'SIP_ERR_TIMEOUT', durationMs: 64 * FAST.t1 }],
    'Timer H fired: the record says the ACK never came',
  );
  t.ok(await until(() => peer.received(/^SIP\/2.0 486 /).length > 1), 'the 486 was retransmitted meanwhile (Timer G)');
  // The same with the ACK: recorded once it arrives, without an error.
  peer.sendTo(port, request(peer, a, 'INVITE', { callId: 'timer-h2', cseq: 1, branch: 'z9hG4bKh2' }));
  const rej = (await peer.next(/^SIP\/2.0 486 [\s\S]*timer-h2/, WAIT))!;
  const ack = request(peer, a, 'ACK', { callId: 'timer-h2', cseq: 1, branch: 'z9hG4bKh2' }).replace(
    /\r\nTo: [^\r]*/,
    `\r\nTo: ${rej.header('to')}`,
  );
  peer.sendTo(port, ack);
  t.ok(await until(() => records.length === 2), 'recorded when the ACK came');
  t.match(records[1], { status: 486, errorCode: undefined });
});

t.test(
  'our 2xx without an ACK: sent again at T1, 2*T1 ... T2, then at 64*T1 accept() fails and BYE ends the call (13.3.1.4)',
  async (t) => {
    const peer = await rawPeer(t);
    const clock = new FakeClock();
    const a = await ua(t, { clock });
    let accepted: Promise<unknown> | undefined;
    a.on('invite', (inv) => {
      accepted = inv.accept({ body: MCU_OFFER });
      accepted.catch(() => {});
    });
    peer.sendTo(a.listening[0]!.port, request(peer, a, 'INVITE', { callId: 'no-ack', cseq: 1, branch: 'z9hG4bKna1' }));
    t.ok(await peer.next(/^SIP\/2.0 200 /, WAIT), 'the 2xx');
    const oks = () => peer.received(/^SIP\/2.0 200 /).length;
    // Cumulative times of the retransmissions with T1 = 50, T2 = 400: doubling, then every T2, up to 64*T1 = 3200.
    const at = [50, 150, 350, 750, 1150, 1550, 1950, 2350, 2750, 3150];
    let now = 0;
    for (let i = 0; i < at.length; i++) {
      clock.advance(at[i]! - 1 - now);
      now = at[i]! - 1;
      t.equal(oks(), i + 1, `no retransmission before ${at[i]} ms`);
      clock.advance(1);
      now++;
      t.ok(await until(() => oks() === i + 2), `retransmission ${i + 1} at ${at[i]} ms`);
    }
    t.equal(peer.received(/^BYE /).length, 0, 'no BYE before 64*T1');
    clock.advance(64 * FAST.t1 - now);
    await t.rejects(accepted!, { code: 'SIP_ERR_TIMEOUT' }, 'accept() fails: no ACK');
    const bye = await peer.next(/^BYE /, WAIT);
    t.ok(bye, 'the call is ended with BYE');
    t.equal(oks(), at.length + 1, 'no retransmission at the deadline');
    // Answered, so that close() has no BYE in flight to wait for on a clock nobody advances.
    peer.reply(bye!, responseTo(bye!, 200, 'OK'));
    t.ok(await until(() => a.stats.dialogs === 0), 'the dialog ended');
  },
);

t.test(
  '422: the retry raises both Session-Expires and Min-SE to the 422 Min-SE (RFC 4028 7.4), also on refresh',
  async (t) => {
    const peer = await rawPeer(t);
    const a = await ua(t, { sessionTimer: { expires: 90, minSE: 90 } });
    const calling = a.invite(peer.uri(), { body: MCU_OFFER });
    const inv1 = (await peer.nextNew('INVITE', WAIT))!;
    t.equal(inv1.header('min-se'), '90');
    peer.reply(inv1, responseTo(inv1, 422, 'Session Interval Too Small', { toTag: 'x', headers: ['Min-SE: 1800'] }));
    const inv2 = (await peer.next(/^INVITE [\s\S]*CSeq: 2 INVITE/, WAIT))!;
    t.equal(inv2.header('session-expires'), '1800');
    t.equal(inv2.header('min-se'), '1800', 'Min-SE raised to the 422 value');
    peer.reply(
      inv2,
      responseTo(inv2, 200, 'OK', {
        toTag: 'y',
        headers: [`Contact: <${peer.uri()}>`, 'Session-Expires: 1800;refresher=uac'],
        body: MCU_OFFER,
      }),
    );
    const d = await calling;
    t.same(d.sessionTimer, { interval: 1800, refresher: 'local' });
    // A proxy on the path raised its minimum meanwhile: the refresh meets a 422 and is retried above it.
    const refreshing = d.reinvite();
    const r1 = (await peer.next(/^INVITE [\s\S]*CSeq: 3 INVITE/, WAIT))!;
    t.equal(r1.header('min-se'), '1800', 'refreshes keep the dialog Min-SE');
    peer.reply(r1, responseTo(r1, 422, 'Session Interval Too Small', { headers: ['Min-SE: 3600'] }));
    const r2 = (await peer.next(/^INVITE [\s\S]*CSeq: 4 INVITE/, WAIT))!;
    t.match(r2.header('session-expires'), /^3600;refresher=uac$/);
    t.equal(r2.header('min-se'), '3600');
    peer.reply(
      r2,
      responseTo(r2, 200, 'OK', {
        headers: [`Contact: <${peer.uri()}>`, 'Session-Expires: 3600;refresher=uac'],
        body: MCU_OFFER,
      }),
    );
    await refreshing;
    t.same(d.sessionTimer, { interval: 3600, refresher: 'local' });
    const bye = d.bye();
    const b = (await peer.next(/^BYE /, WAIT))!;
    peer.reply(b, responseTo(b, 200, 'OK'));
    await bye;
  },
);

t.test('close() lets a BYE in flight be answered before the sockets close: the MCU sees a FIN, no reset', async (t) => {
  const peer = await rawPeer(t, 'tcp');
  // Default timers: close() waits up to 4*T1 = 2 s for BYE answers.
  const a = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
  });
  t.teardown(() => a.close());
  const records: TransactionRecord[] = [];
  a.on('transaction', (r) => records.push(r));
  const calling = a.invite(peer.uri(), { body: MCU_OFFER });
  const inv = (await peer.nextNew('INVITE', WAIT))!;
  peer.reply(inv, responseTo(inv, 200, 'OK', { toTag: 'z', headers: [`Contact: <${peer.uri()}>`], body: MCU_OFFER }));
  const d = await calling;
  await peer.next(/^ACK /, WAIT);
  const bye = d.bye();
  const closing = a.close();
  const b = (await peer.next(/^BYE /, WAIT))!;
  t.ok(b, 'BYE received');
  // close() is already under way when the MCU answers: the connection must still be there.
  peer.reply(b, responseTo(b, 200, 'OK'));
  await bye;
  await closing;
  t.match(
    records.map((r) => `${r.method} ${r.status}`),
    ['INVITE 200', 'BYE 200'],
    'the BYE was answered, not aborted',
  );
  t.ok(await until(() => peer.closes.fin === 1), 'the MCU saw our FIN');
  t.equal(peer.closes.reset, 0, 'and no reset');
});
