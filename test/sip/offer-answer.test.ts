/**
 * Our UAC against raw peers scripted from the RFC text: the answer to an
 * offer in a 2xx goes in the ACK (RFC 3261 13.2.2.4, RFC 3264), the ACK
 * repeats the INVITE's credentials (13.2.2.4), per-request credentials serve a
 * dialog's later requests, the default Accept lists application/sdp, and a
 * refresh re-INVITE refused with 491 waits the random time of 14.1.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import {
  answerOffer,
  createUserAgent,
  type DigestCredentials,
  glareBackoffMs,
  type InviteOptions,
  type UserAgent,
  type UserAgentOptions,
} from '../../src/sip/index.js';
import { MCU_OFFER, type RawMessage, type RawPeer, rawPeer, responseTo } from './raw-peer.js';

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

const answer: InviteOptions['answer'] = (o) => answerOffer(o, { host: '127.0.0.1' });

/** Digest parameters of an Authorization header (RFC 7616 3.4). */
function digestParams(h: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of h.replace(/^Digest\s+/i, '').matchAll(/([\w-]+)=("([^"]*)"|[^,\s]+)/g))
    out[m[1]!.toLowerCase()] = m[3] ?? m[2]!;
  return out;
}

/** The digest a server expects (RFC 7616 3.4.1, qop=auth; RFC 8760 for SHA-256), computed here from the formula. */
function digestValid(h: string | undefined, method: string, password: string): boolean {
  if (h === undefined) return false;
  const p = digestParams(h);
  const alg = (p.algorithm ?? 'MD5').toUpperCase() === 'SHA-256' ? 'sha256' : 'md5';
  const H = (s: string) => createHash(alg).update(s).digest('hex');
  const ha1 = H(`${p.username}:${p.realm}:${password}`);
  const ha2 = H(`${method}:${p.uri}`);
  const expected =
    p.qop === undefined ? H(`${ha1}:${p.nonce}:${ha2}`) : H(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`);
  return p.response === expected;
}

const challenge = (realm: string, nonce: string, algorithm = 'MD5') =>
  `Digest realm="${realm}", nonce="${nonce}", qop="auth", algorithm=${algorithm}`;

/** The 2xx of a raw UAS: a tag, a Contact on this peer, and optionally a body. */
function ok(peer: RawPeer, req: RawMessage, body?: string, headers: string[] = []): string {
  return responseTo(req, 200, 'OK', {
    toTag: 'uas1',
    headers: [`Contact: <${peer.uri()}>`, ...headers],
    body,
  });
}

/** Answer an in-dialog request of ours with a challenge first, then 200 once its credentials check out. */
async function challenged(
  t: { ok(v: unknown, msg: string): void },
  peer: RawPeer,
  method: string,
  status: 401 | 407,
  password: string,
): Promise<RawMessage> {
  const name = status === 401 ? 'authorization' : 'proxy-authorization';
  // Over UDP on a loaded machine, retransmissions of earlier requests of this method may still come in:
  // the new request has a higher CSeq than any of them, and no credentials until challenged.
  const cseq = (m: RawMessage) => Number.parseInt(m.header('cseq') ?? '0', 10);
  const before = Math.max(0, ...peer.received(new RegExp(`^${method} `)).map(cseq));
  const first = (await peer.next(
    (m) => m.startLine.startsWith(`${method} `) && cseq(m) > before && m.header(name) === undefined,
    WAIT,
  ))!;
  t.ok(first, `${method} received`);
  const header = status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
  peer.reply(
    first,
    responseTo(first, status, 'Unauthorized', {
      toTag: 'uas1',
      headers: [`${header}: ${challenge('mcu.vn', `n-${method}`)}`],
    }),
  );
  // Over UDP the first one may be retransmitted meanwhile: the retry is the one with credentials.
  const second = (await peer.next(new RegExp(`^${method} [\\s\\S]*\r\n${name}:`, 'i'), WAIT))!;
  t.ok(digestValid(second?.header(name), method, password), `${method} retried with valid ${name}`);
  peer.reply(second, responseTo(second, 200, 'OK'));
  return second;
}

for (const [transport, algorithm] of [
  ['udp', 'MD5'],
  ['udp', 'SHA-256'],
  ['tcp', 'MD5'],
  ['tcp', 'SHA-256'],
] as const) {
  t.test(
    `${transport}, ${algorithm}: per-request credentials, the ACK repeats them, the 2xx offer is answered`,
    async (t) => {
      const peer = await rawPeer(t, transport);
      // The user agent has other credentials: the request's own must win.
      const a = await ua(t, { credentials: { username: 'other', password: 'wrong' } });
      const creds: DigestCredentials = { username: 'ctl', password: 's3cret' };
      const calling = a.invite(peer.uri(), { credentials: creds, answer });
      calling.catch(() => {}); // awaited below; a failed assertion must not leave it unhandled at close

      const inv1 = (await peer.nextNew('INVITE', WAIT))!;
      t.ok(inv1, 'INVITE received');
      t.equal(inv1.body, '', 'no offer in the INVITE');
      t.match(inv1.header('accept'), /application\/sdp/, 'Accept lists application/sdp');
      peer.reply(
        inv1,
        responseTo(inv1, 401, 'Unauthorized', {
          toTag: 'c1',
          headers: [`WWW-Authenticate: ${challenge('mcu.vn', 'n1', algorithm)}`],
        }),
      );
      const inv2 = (await peer.next(/^INVITE [\s\S]*\r\nAuthorization:/, WAIT))!;
      const authz = inv2.header('authorization');
      t.ok(digestValid(authz, 'INVITE', 's3cret'), 'the INVITE is retried with the request credentials');
      t.equal(digestParams(authz!).username, 'ctl');
      t.equal(digestParams(authz!).algorithm, algorithm);
      const okText = ok(peer, inv2, MCU_OFFER);
      peer.reply(inv2, okText);
      const d = await calling;

      const ack = (await peer.next(/^ACK .*[\s\S]*CSeq: 2 ACK/, WAIT))!;
      t.ok(ack, 'the 2xx is ACKed');
      t.equal(ack.header('authorization'), authz, 'the ACK carries the INVITE credentials (RFC 3261 13.2.2.4)');
      t.equal(ack.header('content-type'), 'application/sdp');
      t.same(
        [...ack.body.matchAll(/^m=(\w+) (\d+)/gm)].map((m) => `${m[1]} ${m[2] === '0' ? 'rejected' : 'accepted'}`),
        ['audio accepted', 'video accepted', 'application rejected'],
        'the ACK answers every offered stream, in order',
      );
      t.equal(d.remoteBody.toString(), MCU_OFFER);

      if (transport === 'udp') {
        // The UAS lost our ACK and retransmits its 2xx (13.3.1.4): the same ACK again, credentials and answer.
        peer.reply(inv2, okText);
        const again = (await peer.next(/^ACK [\s\S]*CSeq: 2 ACK/, WAIT))!;
        t.equal(again?.header('authorization'), authz, 'the re-sent ACK carries the credentials');
        t.equal(again?.body, ack.body, 'and the same answer');
      }

      // In-dialog requests use the credentials given to invite(), also for a proxy challenge.
      const info = d.request('INFO', { contentType: 'application/msml+xml', body: '<msml version="1.1"/>' });
      await challenged(t, peer, 'INFO', 401, 's3cret');
      t.equal((await info).status, 200, 'INFO answered after its challenge');
      const bye = d.bye();
      await challenged(t, peer, 'BYE', 407, 's3cret');
      await bye;
    },
  );
}

t.test('a refresh re-INVITE carries our last description; a body-less one gets its 2xx offer answered', async (t) => {
  const peer = await rawPeer(t);
  const a = await ua(t);
  // A quirky MCU: no offer in its 2xx to our body-less INVITE, so we have no description at all.
  const calling = a.invite(peer.uri(), { answer });
  const inv = (await peer.nextNew('INVITE', WAIT))!;
  peer.reply(inv, ok(peer, inv));
  const d = await calling;
  const ack1 = (await peer.next(/^ACK /, WAIT))!;
  t.equal(ack1.body, '', 'nothing to answer, an empty ACK');

  const re1 = d.reinvite();
  const rinv1 = (await peer.nextNew('INVITE', WAIT))!;
  t.equal(rinv1.body, '', 'without a description of ours the re-INVITE is body-less');
  peer.reply(rinv1, ok(peer, rinv1, MCU_OFFER));
  await re1;
  const ack2 = (await peer.next(/^ACK /, WAIT))!;
  t.equal(ack2.header('content-type'), 'application/sdp', 'the offer in its 2xx is answered in the ACK');
  t.match(ack2.body, /^v=0\r\n[\s\S]*m=audio [1-9]\d* RTP\/AVP 8\r\n/);

  const re2 = d.reinvite();
  const rinv2 = (await peer.nextNew('INVITE', WAIT))!;
  t.equal(rinv2.body, ack2.body, 'the next refresh offers our last description unchanged (RFC 3264 8)');
  peer.reply(rinv2, ok(peer, rinv2, MCU_OFFER.replace('m=application 5070', 'm=application 0')));
  await re2;
  const ack3 = (await peer.next(/^ACK /, WAIT))!;
  t.equal(ack3.body, '', 'an answer in the 2xx needs nothing in the ACK');
  const bye = d.bye();
  const b = (await peer.next(/^BYE /, WAIT))!;
  peer.reply(b, responseTo(b, 200, 'OK'));
  await bye;
});

t.test('an offer we cannot answer: the ACK rejects every stream, then BYE, and invite() rejects', async (t) => {
  const peer = await rawPeer(t);
  const a = await ua(t);
  const cases: Array<[string, InviteOptions, string, string, RegExp]> = [
    ['no answerer', {}, MCU_OFFER, 'application/sdp', /no answerer/],
    [
      'the answerer throws',
      {
        answer: () => {
          throw new Error('no codec in common');
        },
      },
      MCU_OFFER,
      'application/sdp',
      /answerer could not answer/,
    ],
    ['an offer that is not SDP', { answer }, '<msml/>', 'application/msml+xml', /answerer could not answer/],
  ];
  const calls = new Set<string>();
  for (const [name, opts, body, type, message] of cases) {
    const calling = a.invite(peer.uri(), opts);
    // A new call, not a late retransmission of the previous one's INVITE.
    const inv = (await peer.next((m) => m.startLine.startsWith('INVITE ') && !calls.has(m.header('call-id')!), WAIT))!;
    calls.add(inv.header('call-id')!);
    peer.reply(
      inv,
      responseTo(inv, 200, 'OK', { toTag: 'x', headers: [`Contact: <${peer.uri()}>`], body, contentType: type }),
    );
    await t.rejects(calling, { code: 'SIP_ERR_OFFER', message }, `${name}: invite() rejects`);
    const inCall = (method: string) => new RegExp(`^${method} [\\s\\S]*\r\nCall-ID: ${inv.header('call-id')}\r\n`);
    const ack = (await peer.next(inCall('ACK'), WAIT))!;
    if (type === 'application/sdp')
      t.same(
        [...ack.body.matchAll(/^m=\w+ (\d+)/gm)].map((m) => m[1]),
        ['0', '0', '0'],
        `${name}: the ACK still answers, rejecting every stream (13.2.2.4)`,
      );
    else t.equal(ack.body, '', `${name}: nothing to answer a non-SDP offer with`);
    const bye = (await peer.next(inCall('BYE'), WAIT))!;
    t.ok(bye, `${name}: then BYE`);
    peer.reply(bye, responseTo(bye, 200, 'OK'));
  }
  t.equal(a.stats.dialogs, 0, 'no dialog left');
});

t.test(
  'Accept: the default lists application/sdp on INVITE and OPTIONS; a caller-given Accept replaces it',
  async (t) => {
    const peer = await rawPeer(t);
    const a = await ua(t);
    const opt = a.request('OPTIONS', peer.uri());
    const o = (await peer.next(/^OPTIONS /, WAIT))!;
    t.match(o.header('accept'), /^application\/sdp(,|$)/, 'OPTIONS: SDP first');
    peer.reply(o, responseTo(o, 200, 'OK', { toTag: 'o' }));
    await opt;
    const calling = a.invite(peer.uri(), { headers: { Accept: 'application/sdp, application/msml+xml' } });
    const inv = (await peer.nextNew('INVITE', WAIT))!;
    t.same(inv.headers('accept'), ['application/sdp, application/msml+xml'], 'one Accept, the caller’s');
    peer.reply(inv, responseTo(inv, 486, 'Busy Here', { toTag: 'b' }));
    await t.rejects(calling, { code: 'SIP_ERR_RESPONSE', sipStatus: 486 });
  },
);

t.test(
  'glareBackoffMs follows RFC 3261 14.1: 2.1-4 s for the Call-ID owner, 0-2 s for the other, 10 ms units',
  async (t) => {
    t.equal(
      glareBackoffMs(true, () => 0),
      2100,
    );
    t.equal(
      glareBackoffMs(true, () => 0.999_999),
      4000,
    );
    t.equal(
      glareBackoffMs(false, () => 0),
      0,
    );
    t.equal(
      glareBackoffMs(false, () => 0.999_999),
      2000,
    );
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const own = glareBackoffMs(true);
      const other = glareBackoffMs(false);
      t.ok(own >= 2100 && own <= 4000 && own % 10 === 0, `owner ${own}`, { diagnostic: false });
      t.ok(other >= 0 && other <= 2000 && other % 10 === 0, `other ${other}`, { diagnostic: false });
      seen.add(own);
    }
    t.ok(seen.size > 50, 'random, not a fixed value');
  },
);

t.test('a session refresh refused with 491 is retried after the owner back-off, on the fake clock', async (t) => {
  const peer = await rawPeer(t);
  const clock = new FakeClock();
  const a = await ua(t, { clock, sessionTimer: { expires: 90 } });
  const calling = a.invite(peer.uri(), { body: MCU_OFFER });
  const inv = (await peer.nextNew('INVITE', WAIT))!;
  t.equal(inv.header('session-expires'), '90');
  peer.reply(inv, ok(peer, inv, MCU_OFFER, ['Session-Expires: 90;refresher=uac', 'Require: timer']));
  const d = await calling;
  await peer.next(/^ACK /, WAIT);
  clock.advance(45_000); // refresh at half the interval (RFC 4028 10)
  const r1 = (await peer.nextNew('INVITE', WAIT))!;
  t.ok(r1, 'refresh re-INVITE at interval/2');
  peer.reply(r1, responseTo(r1, 491, 'Request Pending'));
  // The 491's ACK is sent in the same turn that arms the back-off: once it is here, the timer runs.
  t.ok(await peer.next(/^ACK /, WAIT), '491 ACKed');
  // Step the clock in 10 ms units (the RFC's granularity) until something is sent: that is the retry.
  const sent = a.stats.sent;
  let waited = 0;
  while (a.stats.sent === sent && waited < 10_000) {
    clock.advance(10);
    waited += 10;
  }
  t.ok(waited >= 2_100 && waited <= 4_000, `retried after ${waited} ms: 2.1-4 s, we own the Call-ID`);
  const r2 = (await peer.nextNew('INVITE', WAIT))!;
  t.ok(r2, 'second refresh arrives');
  t.not(r2.header('cseq'), r1.header('cseq'), 'a new transaction');
  peer.reply(r2, ok(peer, r2, MCU_OFFER, ['Session-Expires: 90;refresher=uac']));
  await peer.next(/^ACK /, WAIT);
  t.equal(d.state, 'confirmed');
  // End the call here: on a fake clock that nobody advances, close() would wait for the BYE's answer forever.
  const bye = d.bye();
  const b = (await peer.next(/^BYE /, WAIT))!;
  peer.reply(b, responseTo(b, 200, 'OK'));
  await bye;
});

t.test('a subscription keeps the credentials of its SUBSCRIBE for its refreshes', async (t) => {
  const peer = await rawPeer(t);
  const a = await ua(t);
  const subscribing = a.subscribe(peer.uri(), {
    event: 'conference',
    expires: 600,
    credentials: { username: 'ctl', password: 'sub-pw' },
  });
  subscribing.catch(() => {});
  const s1 = (await peer.next(/^SUBSCRIBE /, WAIT))!;
  peer.reply(
    s1,
    responseTo(s1, 401, 'Unauthorized', {
      toTag: 'n0',
      headers: [`WWW-Authenticate: ${challenge('mcu.vn', 's1', 'SHA-256')}`],
    }),
  );
  const s2 = (await peer.next(/^SUBSCRIBE [\s\S]*\r\nAuthorization:/, WAIT))!;
  t.ok(digestValid(s2.header('authorization'), 'SUBSCRIBE', 'sub-pw'), 'SUBSCRIBE answered with its own credentials');
  peer.reply(s2, responseTo(s2, 200, 'OK', { toTag: 'n1', headers: [`Contact: <${peer.uri()}>`, 'Expires: 600'] }));
  const sub = await subscribing;
  // The first NOTIFY (RFC 6665 4.2.1.2), so that Timer N does not end the subscription.
  peer.reply(
    s2,
    [
      `NOTIFY ${s2.header('contact')!.replace(/^<|>.*$/g, '')} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKnotify1`,
      'Max-Forwards: 70',
      `From: ${s2.header('to')};tag=n1`,
      `To: ${s2.header('from')}`,
      `Call-ID: ${s2.header('call-id')}`,
      'CSeq: 1 NOTIFY',
      `Contact: <${peer.uri()}>`,
      'Event: conference',
      'Subscription-State: active;expires=600',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  t.ok(await peer.next(/^SIP\/2.0 200 [\s\S]*CSeq: 1 NOTIFY/, WAIT), 'NOTIFY answered');
  const refreshing = sub.refresh(600);
  await challenged(t, peer, 'SUBSCRIBE', 401, 'sub-pw');
  await refreshing;
  t.equal(sub.state, 'active');
});
