/**
 * Two user agents over real loopback sockets: calls over UDP, TCP and TLS,
 * in-dialog requests, re-INVITE, digest challenges, CANCEL, REFER/NOTIFY,
 * SUBSCRIBE/NOTIFY, session timers, close semantics.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { DigestGuard } from '../../src/sim/digest.js';
import {
  createChallenge,
  createUserAgent,
  DEFAULT_TIMERS,
  type Dialog,
  type TransactionRecord,
  type TransportName,
  type UserAgent,
  type UserAgentOptions,
  verifyAuthorization,
} from '../../src/sip/index.js';
import { rawPeer, responseTo, until } from './raw-peer.js';

t.setTimeout(60_000);

const FAST = { t1: 50, t2: 400, t4: 500 }; // ms: short protocol timers keep failure paths quick
const SDP = 'v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';

async function pair(
  t: { teardown(fn: () => unknown): void },
  extra: Partial<UserAgentOptions> = {},
  extraB: Partial<UserAgentOptions> = {},
) {
  const listen = [
    { transport: 'udp' as const, host: '127.0.0.1', port: 0 },
    { transport: 'tcp' as const, host: '127.0.0.1', port: 0 },
  ];
  const a = await createUserAgent({ listen, user: 'ctl', timers: FAST, ...extra });
  const b = await createUserAgent({ listen, user: 'mcu', timers: FAST, ...extraB });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  return { a, b };
}

function uriOf(ua: UserAgent, transport: TransportName): string {
  return ua.contactUri(transport);
}

/** A simulated MCU: answers INVITE with SDP, INFO with an MSML result. */
function mcu(b: UserAgent, onDialog?: (d: Dialog) => void): void {
  b.on('invite', (inv) => {
    inv.progress(180);
    inv.accept({ body: SDP }).then(
      (d) => {
        d.on('request', (req) => {
          if (req.method === 'INFO')
            req.respond(200, { contentType: 'application/msml+xml', body: '<result response="200"/>' });
          else if (req.method === 'INVITE') req.respond(200, { body: SDP });
          else req.respond(200);
        });
        onDialog?.(d);
      },
      () => {},
    );
  });
}

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`call over ${transport}: INVITE, INFO, OPTIONS, re-INVITE, BYE`, async (t) => {
    const { a, b } = await pair(t);
    const records: TransactionRecord[] = [];
    a.on('transaction', (r) => records.push(r));
    let uasDialog: Dialog | undefined;
    const ended = new Promise<string>((resolve) =>
      mcu(b, (d) => {
        uasDialog = d;
        d.on('terminated', resolve);
      }),
    );
    const progress: number[] = [];
    const d = await a.invite(uriOf(b, transport), { body: SDP, onProgress: (r) => progress.push(r.status) });
    t.same(progress, [180]);
    t.equal(d.state, 'confirmed');
    t.equal(d.role, 'uac');
    t.equal(d.transport, transport);
    t.equal(d.remoteBody.toString(), SDP);
    const info = await d.request('INFO', { contentType: 'application/msml+xml', body: '<msml version="1.1"/>' });
    t.equal(info.status, 200);
    t.equal(info.body.toString(), '<result response="200"/>');
    t.equal((await d.request('OPTIONS')).status, 200);
    t.equal((await d.reinvite()).status, 200);
    t.equal(uasDialog?.state, 'confirmed');
    t.equal(uasDialog?.callId, d.callId);
    t.equal(uasDialog?.remoteTag, d.localTag);
    await d.bye();
    t.equal(d.state, 'terminated');
    t.equal(await ended, 'bye-received');
    t.same(
      records.map((r) => `${r.method} ${r.status} ${r.transport}`),
      ['INVITE 200', 'INFO 200', 'OPTIONS 200', 'INVITE 200', 'BYE 200'].map((s) => `${s} ${transport}`),
    );
    t.ok(records.every((r) => r.role === 'uac' && r.durationMs >= 0 && r.peer.startsWith('127.0.0.1:')));
    await t.rejects(d.request('INFO'), { code: 'SIP_ERR_DIALOG' }, 'a terminated dialog refuses requests');
  });
}

t.test('TLS: verified server certificate, Via names TLS and the real port', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sip-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
  } catch {
    t.comment('openssl is not available to make a test certificate: TLS test skipped');
    return;
  }
  const cert = readFileSync(join(dir, 'cert.pem'));
  const key = readFileSync(join(dir, 'key.pem'));
  const listen = [{ transport: 'tls' as const, host: '127.0.0.1', port: 0 }];
  const a = await createUserAgent({ listen, tls: { cert, key, ca: cert }, timers: FAST });
  const b = await createUserAgent({ listen, tls: { cert, key, ca: cert }, timers: FAST, user: 'mcu' });
  const stranger = await createUserAgent({
    listen: [{ transport: 'tls', host: '127.0.0.1', port: 0 }],
    tls: { cert, key },
    timers: FAST,
  });
  t.teardown(async () => {
    await a.close();
    await b.close();
    await stranger.close();
  });
  let via = '';
  b.on('invite', (inv) => {
    via = inv.message.headers.get('via') ?? '';
    inv.accept({ body: SDP }).catch(() => {});
  });
  const target = uriOf(b, 'tls');
  t.match(target, /^sips:/);
  const d = await a.invite(target, { body: SDP });
  t.match(
    via,
    new RegExp(`^SIP/2.0/TLS 127\\.0\\.0\\.1:${a.listening[0]!.port};`),
    'Via names TLS and our listening port',
  );
  t.equal((await d.request('OPTIONS')).status, 200);
  await d.bye();
  await t.rejects(stranger.invite(target), { code: 'SIP_ERR_TRANSPORT' }, 'an unknown CA fails verification');
});

t.test('digest authentication: 401 with SHA-256 and 407 with MD5 are answered', async (t) => {
  const { a, b } = await pair(t, { credentials: { username: 'ctl', password: 's3cret' } });
  const nonces = new Set<string>();
  const seen: string[] = [];
  b.on('request', (req) => {
    const proxy = req.method === 'MESSAGE';
    const auth = req.message.headers.get(proxy ? 'proxy-authorization' : 'authorization');
    if (auth === undefined || !verifyAuthorization(auth, req.method, (u) => (u === 'ctl' ? 's3cret' : undefined))) {
      const ch = createChallenge('mcu.vn', proxy ? 'MD5' : 'SHA-256');
      nonces.add(ch.nonce);
      req.respond(proxy ? 407 : 401, { headers: { [proxy ? 'Proxy-Authenticate' : 'WWW-Authenticate']: ch.header } });
      return;
    }
    seen.push(`${req.method} ${/algorithm=([\w-]+)/.exec(auth)?.[1]}`);
    req.respond(200);
  });
  t.equal((await a.request('OPTIONS', uriOf(b, 'udp'))).status, 200);
  t.equal((await a.request('MESSAGE', uriOf(b, 'udp'), { contentType: 'text/plain', body: 'hi' })).status, 200);
  t.same(seen, ['OPTIONS SHA-256', 'MESSAGE MD5']);

  const { a: wrong } = await pair(t, { credentials: { username: 'ctl', password: 'nope' } });
  await t.rejects(wrong.request('OPTIONS', uriOf(b, 'udp')), { code: 'SIP_ERR_AUTH' }, 'refused credentials');
});

t.test(
  'a next hop that challenged once gets credentials up front, its nonce counted up; refused, answered anew',
  async (t) => {
    // The server side is the simulator's digest guard (src/sim/digest.ts), written apart from our client's code:
    // it takes a nonce it issued, for this method and Request-URI, with a count above the last one it saw.
    const { a, b } = await pair(t, { credentials: { username: 'ctl', password: 's3cret' } });
    let guard = new DigestGuard({ realm: 'mcu.vn', username: 'ctl', password: 's3cret', staleEvery: 0 });
    const seen: string[] = [];
    b.on('request', (req) => {
      const auth = req.message.headers.getAll('authorization');
      const verdict = guard.check(auth, req.method, req.message.uri);
      const nc = auth.length === 0 ? '-' : (/nc=([0-9a-f]+)/.exec(auth[0]!)?.[1] ?? '?');
      seen.push(`${req.method} ${verdict} ${nc}`);
      if (verdict === 'ok') req.respond(200);
      else req.respond(401, { headers: { 'WWW-Authenticate': guard.challenge(verdict === 'stale') } });
    });
    const options = async () => (await a.request('OPTIONS', uriOf(b, 'udp'))).status;
    t.equal(await options(), 200);
    t.equal(await options(), 200);
    t.equal(await options(), 200);
    t.same(
      seen,
      ['OPTIONS missing -', 'OPTIONS ok 00000001', 'OPTIONS ok 00000002', 'OPTIONS ok 00000003'],
      'one challenge, then each request up front with the next nonce count',
    );
    // The server forgets its nonces (a restart): the reused one is refused, the new challenge answered at once.
    seen.length = 0;
    guard = new DigestGuard({ realm: 'mcu.vn', username: 'ctl', password: 's3cret', staleEvery: 0 });
    t.equal(await options(), 200);
    t.same(seen, ['OPTIONS stale 00000004', 'OPTIONS ok 00000001'], 'stale: answered with the new nonce');
    seen.length = 0;
    t.equal(await options(), 200);
    t.same(seen, ['OPTIONS ok 00000002'], 'and that nonce reused from then on');

    // Inside a dialog nothing goes up front: the INVITE does, its dialog's requests only when challenged.
    let infoAuth: readonly string[] | undefined;
    b.on('invite', (inv) => {
      const verdict = guard.check(inv.message.headers.getAll('authorization'), 'INVITE', inv.message.uri);
      seen.push(`INVITE ${verdict}`);
      if (verdict !== 'ok') {
        inv.reject(401, { headers: { 'WWW-Authenticate': guard.challenge() } });
        return;
      }
      inv.accept({ body: SDP }).then(
        (dialog) =>
          dialog.on('request', (req) => {
            infoAuth = req.message.headers.getAll('authorization');
            req.respond(200);
          }),
        () => {},
      );
    });
    seen.length = 0;
    const d = await a.invite(uriOf(b, 'udp'), { body: SDP });
    t.same(seen, ['INVITE ok'], 'the INVITE up front too: no challenge');
    t.equal((await d.request('INFO', { contentType: 'text/plain', body: 'x' })).status, 200);
    t.same(infoAuth, [], 'a request in the dialog carries no credentials it was not asked for');
    await d.bye();
  },
);

t.test('rejection, CANCEL and timeouts surface as coded errors', async (t) => {
  const { a, b } = await pair(t);
  b.on('invite', (inv) => {
    const user = inv.message.requestUri?.user;
    if (user === 'busy') inv.reject(486);
    else if (user === 'ring') inv.progress(180);
  });
  const base = uriOf(b, 'udp').replace(/sip:mcu@/, 'sip:');
  await t.rejects(a.invite(base.replace('sip:', 'sip:busy@')), { code: 'SIP_ERR_RESPONSE', sipStatus: 486 });
  const ac = new AbortController();
  const cancelled = a.invite(base.replace('sip:', 'sip:ring@'), {
    signal: ac.signal,
    onProgress: () => ac.abort(),
  });
  await t.rejects(cancelled, { code: 'SIP_ERR_CANCELLED' }, 'CANCEL after the 180, 487 back');
  // Nobody listens at this port: Timer B / F fire after 64*T1 = 3.2 s.
  const dead = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
  const deadUri = dead.contactUri('udp');
  await dead.close();
  await t.rejects(a.request('OPTIONS', deadUri), { code: 'SIP_ERR_TIMEOUT' });
  await t.rejects(
    a.invite(uriOf(b, 'tcp').replace(/:\d+;/, ':1;')),
    { code: 'SIP_ERR_TRANSPORT' },
    'connection refused',
  );
});

t.test('REFER with implicit subscription and message/sipfrag NOTIFYs (RFC 3515)', async (t) => {
  const { a, b } = await pair(t);
  const referred: string[] = [];
  mcu(b, (d) => {
    d.on('refer', async (r) => {
      referred.push(r.referTo.uri.raw);
      const n = await r.accept();
      await n.progress(180, 'Ringing');
      await n.done(200, 'OK');
    });
  });
  const d = await a.invite(uriOf(b, 'udp'), { body: SDP });
  const sub = await d.refer('sip:child-conf@10.1.2.3');
  const states: string[] = [];
  sub.on('notify', (n) => states.push(`${n.state} ${n.body.toString().trim()}`));
  const outcome = await sub.outcome;
  t.same(outcome, { status: 200, reason: 'OK' });
  t.same(referred, ['sip:child-conf@10.1.2.3']);
  t.match(states[states.length - 1], /^terminated SIP\/2\.0 200 OK/);
  t.equal(sub.state, 'terminated');
  t.equal(d.state, 'confirmed', 'the INVITE dialog outlives the implicit subscription');
  await d.bye();
});

t.test('SUBSCRIBE/NOTIFY for the conference package (RFC 6665), refresh, notify, unsubscribe', async (t) => {
  const { a, b } = await pair(t);
  let server: import('../../src/sip/index.js').ServerSubscription | undefined;
  const refreshed: number[] = [];
  b.on('subscribe', async (s) => {
    t.equal(s.event, 'conference');
    server = await s.accept({
      contentType: 'application/conference-info+xml',
      body: '<conference-info state="full"/>',
      expires: 600,
    });
    server.on('refreshed', (e) => refreshed.push(e));
  });
  const sub = await a.subscribe(uriOf(b, 'tcp'), {
    event: 'conference',
    expires: 600,
    accept: 'application/conference-info+xml',
  });
  const bodies: string[] = [];
  const second = new Promise<void>((resolve) =>
    sub.on('notify', (n) => {
      bodies.push(n.body.toString());
      if (bodies.length === 2) resolve();
    }),
  );
  t.ok(await until(() => bodies.length === 1 && server !== undefined), 'the first NOTIFY (full state), answered');
  t.equal(sub.state, 'active');
  await server!.notify({ contentType: 'application/conference-info+xml', body: '<conference-info state="partial"/>' });
  await second;
  t.match(bodies[1], /partial/);
  await sub.refresh(300);
  t.same(refreshed, [300]);
  const ended = new Promise<string>((r) => server!.on('terminated', r));
  await sub.unsubscribe();
  t.equal(sub.state, 'terminated');
  t.equal(await ended, 'timeout');
  t.equal(sub.dialog.state, 'terminated', 'a subscription-only dialog ends with its subscription');
  await t.rejects(a.subscribe(uriOf(a, 'udp'), { event: 'presence' }), { code: 'SIP_ERR_RESPONSE', sipStatus: 489 });
});

t.test('session timers (RFC 4028): 422 negotiation, refresh by re-INVITE, expiry ends the dialog', async (t) => {
  const { a, b } = await pair(t, { sessionTimer: { expires: 1, minSE: 1 } }, { sessionTimer: { minSE: 2 } });
  let uasReady!: (d: Dialog) => void;
  const uasDialog = new Promise<Dialog>((r) => {
    uasReady = r;
  });
  b.on('invite', (inv) => {
    inv.accept({ body: SDP }).then(uasReady, () => {});
  });
  const d = await a.invite(uriOf(b, 'udp'), { body: SDP });
  const uas = await uasDialog;
  const uasEnded = new Promise<string>((resolve) => uas.on('terminated', resolve));
  t.same(d.sessionTimer, { interval: 2, refresher: 'local' }, 'raised to the Min-SE of the 422');
  t.same(uas.sessionTimer, { interval: 2, refresher: 'remote' });
  const refreshed = new Promise<void>((r) => d.once('refreshed', r));
  await refreshed;
  t.equal(uas.state, 'confirmed', 'refreshed at half the interval, so the UAS keeps it');
  const noTimer = await a.invite(uriOf(b, 'udp'), { body: SDP, sessionTimer: false });
  t.equal(noTimer.sessionTimer, undefined, 'not requested, not used');
  await noTimer.bye();
  await d.bye();
  t.equal(await uasEnded, 'bye-received');
});

t.test('a session not refreshed by the peer is ended with BYE', async (t) => {
  // The caller runs on a fake clock that never advances, so it never sends its refresh.
  const { a, b } = await pair(
    t,
    { clock: new FakeClock(), sessionTimer: { expires: 2, minSE: 1 } },
    { sessionTimer: { minSE: 1 } },
  );
  const ended = new Promise<string>((resolve) =>
    b.on('invite', (inv) =>
      inv.accept({ body: SDP }).then(
        (d) => d.on('terminated', resolve),
        () => {},
      ),
    ),
  );
  const d = await a.invite(uriOf(b, 'udp'), { body: SDP });
  t.same(d.sessionTimer, { interval: 2, refresher: 'local' });
  const localEnd = new Promise<string>((resolve) => d.on('terminated', resolve));
  t.equal(await ended, 'session-expired', 'the UAS gives up after interval - min(32, interval/3)');
  t.equal(await localEnd, 'bye-received');
});

t.test('Timer C cancels an INVITE stuck after a provisional response', async (t) => {
  const { a, b } = await pair(t, { timers: { ...FAST, timerC: 300 } });
  let cancelled = false;
  b.on('invite', (inv) => {
    inv.progress(183);
    inv.on('cancel', () => {
      cancelled = true;
    });
  });
  await t.rejects(a.invite(uriOf(b, 'udp')), { code: 'SIP_ERR_TIMEOUT' });
  t.ok(cancelled, 'the UAS saw the CANCEL');
});

t.test('idle TCP connections are closed, and reopened on demand', async (t) => {
  const { a, b } = await pair(t, { idleTimeoutMs: 150 }, { idleTimeoutMs: 150 });
  t.equal((await a.request('OPTIONS', uriOf(b, 'tcp'))).status, 200);
  t.equal((await a.request('OPTIONS', uriOf(b, 'tcp'))).status, 200);
  t.equal(a.stats.connections, 1, 'connection reused');
  t.ok(await until(() => a.stats.openConnections === 0 && b.stats.openConnections === 0), 'closed when idle');
  t.equal((await a.request('OPTIONS', uriOf(b, 'tcp'))).status, 200);
  t.equal(a.stats.connections, 2, 'a new connection after the idle close');
});

t.test('close(): ends dialogs with BYE, rejects what is pending, is idempotent, refuses new work', async (t) => {
  const { a, b } = await pair(t);
  const uasEnded = new Promise<string>((resolve) => mcu(b, (d) => d.on('terminated', resolve)));
  const d = await a.invite(uriOf(b, 'udp'), { body: SDP });
  const terminated = new Promise<string>((r) => d.on('terminated', r));
  b.on('request', () => {}); // never answers: the request stays pending
  const pending = t.rejects(a.request('MESSAGE', uriOf(b, 'udp'), { contentType: 'text/plain', body: 'x' }), {
    code: 'SIP_ERR_CLOSED',
  });
  await Promise.all([a.close(), a.close()]);
  t.equal(await terminated, 'bye-sent');
  t.equal(await uasEnded, 'bye-received');
  await pending;
  await t.rejects(a.invite(uriOf(b, 'udp')), { code: 'SIP_ERR_CLOSED' });
  await t.rejects(a.request('OPTIONS', uriOf(b, 'udp')), { code: 'SIP_ERR_CLOSED' });
  t.equal(a.stats.dialogs, 0);
});

t.test('a malformed flood is counted and dropped; the stack keeps working', async (t) => {
  const { a, b } = await pair(t);
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  const port = b.listening[0]!.port;
  for (let i = 0; i < 200; i++) s.send(Buffer.from(`GARBAGE ${i} \x00\xff\r\n\r\n`), port, '127.0.0.1');
  t.ok(await until(() => b.stats.malformed === 200), 'every datagram counted');
  s.close();
  t.equal((await a.request('OPTIONS', uriOf(b, 'udp'))).status, 200, 'still answering');
});

t.test('a 2xx retransmitted after our BYE is ACKed again until 64*T1 (RFC 3261 13.2.2.4)', async (t) => {
  // A raw UDP peer plays a UAS that lost our ACK: it sees the BYE, then retransmits its 2xx (13.3.1.4).
  const peer = await rawPeer(t);
  const clock = new FakeClock();
  const a = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], clock });
  t.teardown(() => a.close());
  const calling = a.invite(peer.uri(), { body: SDP });
  const invite = (await peer.next(/^INVITE /, 2_000))!;
  t.ok(invite, 'INVITE received');
  const ok = responseTo(invite, 200, 'OK', { toTag: 'uas1', headers: [`Contact: <${peer.uri()}>`] });
  peer.reply(invite, ok);
  const d = await calling;
  t.match((await peer.next(/^ACK /, 2_000))?.text, /CSeq: 1 ACK/, 'the 2xx is ACKed');
  const ended = d.bye();
  const bye = (await peer.next(/^BYE /, 2_000))!;
  t.ok(bye, 'BYE received');
  peer.reply(invite, ok); // the retransmitted 2xx crosses the BYE: the dialog is over, the ACK is still owed
  t.match((await peer.next(/^ACK /, 2_000))?.text, /CSeq: 1 ACK/, 'the retransmitted 2xx is ACKed after the BYE');
  peer.reply(bye, responseTo(bye, 200, 'OK'));
  await ended;
  clock.advance(64 * DEFAULT_TIMERS.t1 - 1);
  peer.reply(invite, ok);
  t.ok(await peer.settle(a.listening[0]!.port), 'our user agent answered the probes');
  t.equal(peer.received(/^ACK /).length, 3, 'still ACKed just before 64*T1');
  clock.advance(1);
  peer.reply(invite, ok);
  t.ok(await peer.settle(a.listening[0]!.port));
  t.equal(peer.received(/^ACK /).length, 3, 'after 64*T1 the UAS has stopped retransmitting: nothing is kept');
});

t.test(
  'a NOTIFY that arrives before the SUBSCRIBE 2xx reaches the listener attached on resolve (RFC 6665 4.1.2.4)',
  async (t) => {
    const peer = await rawPeer(t);
    const a = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], timers: FAST });
    t.teardown(() => a.close());
    const subscribing = a.subscribe(`sip:mcu@127.0.0.1:${peer.port}`, { event: 'conference', expires: 600 });
    const sub = (await peer.next(/^SUBSCRIBE /, 2_000))!;
    t.ok(sub, 'SUBSCRIBE received');
    const line = (name: string) => sub.text.split('\r\n').find((l) => l.startsWith(`${name}:`))!;
    const value = (name: string) =>
      line(name)
        .slice(name.length + 1)
        .trim();
    const body = '<conference-info version="1" state="full"/>';
    // The notifier sends its first NOTIFY at once; the 2xx follows (a proxy or a busy worker reordered them).
    peer.sendTo(
      sub.port,
      [
        `NOTIFY ${value('Contact').replace(/^<|>$/g, '')} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKearly1`,
        'Max-Forwards: 70',
        `From: ${value('To')};tag=notifier1`,
        `To: ${value('From')}`,
        line('Call-ID'),
        'CSeq: 1 NOTIFY',
        `Contact: <sip:mcu@127.0.0.1:${peer.port}>`,
        'Event: conference',
        'Subscription-State: active;expires=600',
        'Content-Type: application/conference-info+xml',
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n'),
    );
    t.match((await peer.next(/^SIP\/2.0 200 /, 2_000))?.text, /CSeq: 1 NOTIFY/, 'the early NOTIFY is answered 200');
    peer.sendTo(
      sub.port,
      [
        'SIP/2.0 200 OK',
        line('Via'),
        line('From'),
        `${line('To')};tag=notifier1`,
        line('Call-ID'),
        line('CSeq'),
        `Contact: <sip:mcu@127.0.0.1:${peer.port}>`,
        'Expires: 600',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    const s = await subscribing;
    const seen: string[] = [];
    s.on('notify', (n) => seen.push(n.body.toString()));
    t.equal(s.state, 'active', 'the early NOTIFY made the subscription active');
    t.ok(await until(() => seen.length > 0), 'delivered to the listener');
    t.ok(await peer.settle(a.listening[0]!.port), 'and nothing more is pending');
    t.same(seen, [body], 'the full state is delivered once, to the listener attached after subscribe() resolved');
  },
);

t.test(
  'TCP carries a province conference state (~110 KB) by default; the stream limit stays configurable',
  async (t) => {
    // RFC 4575 full state of a province MCU: more than a UDP datagram can hold, not more than a stream allows.
    const big = `<conference-info state="full">${'<user entity="sip:x@endpoints.invalid"/>'.repeat(2_700)}</conference-info>`;
    t.ok(Buffer.byteLength(big) > 100_000);
    const run = async (subscriberOpts: Partial<UserAgentOptions>) => {
      const { a, b } = await pair(t, subscriberOpts);
      const server = new Promise<import('../../src/sip/index.js').ServerSubscription>((resolve) =>
        b.on('subscribe', (s) => {
          s.accept({ contentType: 'application/conference-info+xml', body: '<conference-info/>' }).then(resolve);
        }),
      );
      const sub = await a.subscribe(uriOf(b, 'tcp'), { event: 'conference' });
      const bodies: Buffer[] = [];
      sub.on('notify', (n) => bodies.push(n.body));
      const sent = (await server).notify({ contentType: 'application/conference-info+xml', body: big });
      return { sent, bodies };
    };
    const ok = await run({});
    await ok.sent;
    t.equal(ok.bodies.at(-1)?.toString(), big, 'the full state arrives whole over TCP with the default limits');
    const small = await run({ maxStreamMessageSize: 100_000 });
    await t.rejects(small.sent, { code: 'SIP_ERR_RESPONSE', sipStatus: 513 }, 'beyond the stream limit: 513');
  },
);

t.test('a focus marks its Contact with isfocus in requests and 2xx responses (RFC 4579 3.3)', async (t) => {
  const peer = await rawPeer(t);
  const focus = await createUserAgent({
    listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
    user: 'conf1',
    timers: FAST,
    contactParams: { isfocus: true, '+sip.rendering': '"no"' },
  });
  t.teardown(() => focus.close());
  const port = focus.listening[0]!.port;
  const focusContact = `Contact: <sip:conf1@127.0.0.1:${port}>;isfocus;+sip.rendering="no"`;
  // Outgoing: the focus dials out (cascade link).
  focus.invite(`sip:mcu@127.0.0.1:${peer.port}`, { body: SDP }).catch(() => {});
  const inv = await peer.next(/^INVITE /, 2_000);
  t.ok(inv?.text.split('\r\n').includes(focusContact), 'the INVITE Contact carries the feature tags');
  // Incoming: the focus answers a participant's INVITE.
  focus.on('invite', (i) => i.accept({ body: SDP }).catch(() => {}));
  peer.sendTo(
    port,
    [
      `INVITE sip:conf1@127.0.0.1:${port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKfocus1;rport`,
      'Max-Forwards: 70',
      `From: <sip:p@127.0.0.1:${peer.port}>;tag=p1`,
      `To: <sip:conf1@127.0.0.1:${port}>`,
      'Call-ID: focus-test-1',
      'CSeq: 1 INVITE',
      `Contact: <sip:p@127.0.0.1:${peer.port}>`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  const ok = await peer.next(/^SIP\/2.0 200 [\s\S]*CSeq: 1 INVITE/, 2_000);
  t.ok(ok?.text.split('\r\n').includes(focusContact), 'the 2xx Contact carries the feature tags');
  await t.rejects(
    createUserAgent({
      listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
      contactParams: { 'is focus': true },
    }),
    { code: 'SIP_ERR_INVALID_ARGUMENT' },
    'a parameter that is not a token is refused',
  );
});
