import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import type { SipError } from '../../src/sip/errors.js';
import { SipHeaders } from '../../src/sip/headers.js';
import { buildResponse, type SipRequest, type SipResponse } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parser.js';
import {
  DEFAULT_TIMERS,
  type ServerTransaction,
  SWEEP_MS,
  TransactionManager,
  type TransactionRecord,
} from '../../src/sip/transaction.js';
import type { Destination, Inbound, TransportName } from '../../src/sip/transport.js';

t.setTimeout(20_000);

const T1 = DEFAULT_TIMERS.t1;

function parse(text: string): SipRequest | SipResponse {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n')), true);
  if (r.kind !== 'message') throw new Error(`test message did not parse: ${JSON.stringify(r)}`);
  return r.message;
}

function request(method: string, branch = 'z9hG4bKabc', cseqMethod = method): SipRequest {
  return parse(`${method} sip:mcu@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=${branch}
From: <sip:ctl@127.0.0.1>;tag=f1
To: <sip:mcu@127.0.0.1>
Call-ID: tx-test
CSeq: 1 ${cseqMethod}
Max-Forwards: 70
Content-Length: 0

`) as SipRequest;
}

function harness(transport: TransportName = 'udp') {
  const clock = new FakeClock();
  const sent: Array<{ text: string; at: number }> = [];
  const records: TransactionRecord[] = [];
  const servers: ServerTransaction[] = [];
  const acks: Inbound[] = [];
  const stray: Inbound[] = [];
  const txm = new TransactionManager(
    {
      send: (buf) => {
        sent.push({ text: buf.toString(), at: clock.now() });
        return undefined;
      },
    },
    clock,
    DEFAULT_TIMERS,
    {
      onRequest: (tx) => servers.push(tx),
      onAck: (inb) => acks.push(inb),
      onStrayResponse: (inb) => stray.push(inb),
      onRecord: (r) => records.push(r),
    },
  );
  const dest: Destination = { transport, host: '127.0.0.1', port: 5070 };
  const inbound = (message: SipRequest | SipResponse): Inbound => ({
    message,
    transport,
    remote: { host: '127.0.0.1', port: 5080 },
    local: { host: '127.0.0.1', port: 5070 },
  });
  return { clock, sent, records, servers, acks, stray, txm, dest, inbound };
}

function client(h: ReturnType<typeof harness>, method: string) {
  const out = { provisional: 0, finals: [] as number[], errors: [] as SipError[], timerC: 0 };
  const req = request(method, 'z9hG4bKclient');
  const tx = h.txm.request(req, 'z9hG4bKclient', h.dest, {
    onProvisional: () => out.provisional++,
    onFinal: (r) => out.finals.push(r.status),
    onError: (e) => out.errors.push(e),
    onTimerC: () => out.timerC++,
  });
  const respond = (status: number) => h.txm.receive(h.inbound(buildResponse(req, status, undefined, { toTag: 'tt' })));
  return { out, tx, req, respond };
}

t.test('INVITE client over UDP: Timer A doubles from T1, Timer B times out at 64*T1', async (t) => {
  const h = harness();
  const c = client(h, 'INVITE');
  h.clock.advance(64 * T1 - 1);
  t.same(
    h.sent.map((s) => s.at),
    [0, 500, 1500, 3500, 7500, 15500, 31500],
    'retransmitted at T1, 2T1, 4T1 ... (17.1.1.2)',
  );
  t.equal(c.out.errors.length, 0);
  h.clock.advance(1);
  t.equal(c.out.errors[0]?.code, 'SIP_ERR_TIMEOUT', 'Timer B surfaces as SIP_ERR_TIMEOUT');
  t.equal(h.records[0]?.status, 408, 'recorded as a 408');
  t.equal(h.txm.size.clients, 0, 'transaction removed');
  t.equal(h.clock.pending, 0, 'no timer left');
});

t.test('INVITE client: a provisional stops A and B; Timer C fires after it', async (t) => {
  const h = harness();
  const c = client(h, 'INVITE');
  c.respond(180);
  t.equal(c.out.provisional, 1);
  h.clock.advance(100 * T1);
  t.equal(h.sent.length, 1, 'no retransmission once proceeding');
  t.equal(c.out.errors.length, 0, 'no Timer B once proceeding');
  h.clock.advance(DEFAULT_TIMERS.timerC - 100 * T1);
  t.equal(c.out.timerC, 1, 'Timer C reported so the TU can CANCEL');
  h.clock.advance(64 * T1);
  t.equal(c.out.errors[0]?.code, 'SIP_ERR_TIMEOUT', 'no final after Timer C: timeout');
});

t.test('INVITE client: non-2xx is ACKed in the transaction, Timer D absorbs retransmissions', async (t) => {
  const h = harness();
  const c = client(h, 'INVITE');
  c.respond(486);
  t.same(c.out.finals, [486]);
  t.match(h.sent[1]?.text, /^ACK sip:mcu@127\.0\.0\.1:5070 SIP\/2\.0\r\n/, 'ACK sent');
  t.match(h.sent[1]?.text, /branch=z9hG4bKclient/, 'ACK has the INVITE branch (17.1.1.3)');
  t.match(h.sent[1]?.text, /CSeq: 1 ACK/);
  c.respond(486);
  t.equal(h.sent.length, 3, 'retransmitted final answered with the ACK again');
  t.same(c.out.finals, [486], 'TU told once');
  h.clock.advance(32_000 - 1);
  t.equal(h.txm.size.clients, 1, 'kept during Timer D');
  h.clock.advance(1);
  t.equal(h.txm.size.clients, 0, 'Timer D = 32 s');
});

t.test('INVITE client: 2xx terminates; later 2xx retransmissions go to the TU', async (t) => {
  const h = harness();
  const c = client(h, 'INVITE');
  c.respond(200);
  t.same(c.out.finals, [200]);
  t.equal(h.sent.length, 1, 'no ACK from the transaction for a 2xx');
  c.respond(200);
  t.equal(h.stray.length, 1, 'retransmitted 2xx reaches the TU');
  t.equal(h.clock.pending, 0);
});

t.test('non-INVITE client: Timer E caps at T2, T2 after a provisional; F at 64*T1; K = T4', async (t) => {
  const h = harness();
  const c = client(h, 'OPTIONS');
  h.clock.advance(12_000);
  t.same(
    h.sent.map((s) => s.at),
    [0, 500, 1500, 3500, 7500, 11500],
    'E doubles up to T2 = 4 s (17.1.2.2)',
  );
  c.respond(100);
  h.clock.advance(8_000);
  t.same(
    h.sent.slice(6).map((s) => s.at),
    [15500, 19500],
    'proceeding: every T2',
  );
  c.respond(200);
  t.same(c.out.finals, [200]);
  t.equal(h.txm.size.clients, 1);
  c.respond(200);
  t.same(c.out.finals, [200], 'a retransmitted final is absorbed during Timer K');
  t.equal(h.stray.length, 0, 'and does not reach the TU');
  h.clock.advance(DEFAULT_TIMERS.t4);
  t.equal(h.txm.size.clients, 0, 'Timer K = T4');
  c.respond(200);
  t.equal(h.stray.length, 1, 'after Timer K a final matches nothing: a stray for the TU');
  h.clock.advance(SWEEP_MS);
  t.equal(h.clock.pending, 0, 'no timer left once swept');

  const h2 = harness();
  const c2 = client(h2, 'INFO');
  h2.clock.advance(64 * T1);
  t.equal(c2.out.errors[0]?.code, 'SIP_ERR_TIMEOUT', 'Timer F');
});

t.test('lingering transactions end at their own expiry but are swept together, one timer a second', async (t) => {
  const h = harness();
  let arms = 0;
  const setTimeout = h.clock.setTimeout.bind(h.clock);
  h.clock.setTimeout = (fn, ms) => {
    arms++;
    return setTimeout(fn, ms);
  };
  // 20 INFOs answered 10 ms apart: 20 Timers K, 10 ms apart.
  const reqs: SipRequest[] = [];
  for (let i = 0; i < 20; i++) {
    const branch = `z9hG4bKsweep${i}`;
    const req = request('INFO', branch);
    reqs.push(req);
    h.txm.request(req, branch, h.dest, { onProvisional: () => {}, onFinal: () => {}, onError: () => {} });
    h.txm.receive(h.inbound(buildResponse(req, 200, undefined, { toTag: 'tt' })));
    h.clock.advance(10);
  }
  arms = 0;
  h.clock.advance(DEFAULT_TIMERS.t4 - 200 + 95);
  t.equal(h.txm.size.clients, 10, 'the first ten ended at their T4 (nothing swept yet)');
  h.txm.receive(h.inbound(buildResponse(reqs[9]!, 200, undefined, { toTag: 'tt' })));
  h.txm.receive(h.inbound(buildResponse(reqs[10]!, 200, undefined, { toTag: 'tt' })));
  t.equal(h.stray.length, 1, 'a final after its Timer K is a stray; one before it is absorbed');
  h.clock.advance(SWEEP_MS + 200);
  t.equal(h.txm.size.clients, 0);
  t.equal(h.clock.pending, 0, 'all swept');
  t.ok(arms <= 1, `one sweep for the lot, not one per expiry (${arms} timers armed)`);
});

t.test('reliable transport: no retransmission, Timers D and K are zero', async (t) => {
  const h = harness('tcp');
  const c = client(h, 'INVITE');
  h.clock.advance(64 * T1 - 1);
  t.equal(h.sent.length, 1, 'no Timer A over TCP');
  c.respond(503);
  t.equal(h.txm.size.clients, 0, 'Timer D = 0');
  const c2 = client(h, 'OPTIONS');
  c2.respond(200);
  t.equal(h.txm.size.clients, 0, 'Timer K = 0');
});

t.test('INVITE server: 100 Trying after 200 ms, G retransmits non-2xx, H gives up, ACK then Timer I', async (t) => {
  const h = harness();
  h.txm.receive(h.inbound(request('INVITE')));
  t.equal(h.servers.length, 1);
  h.clock.advance(DEFAULT_TIMERS.trying);
  t.match(h.sent[0]?.text, /^SIP\/2\.0 100 Trying/, '100 Trying when the TU is silent (17.2.1)');
  h.txm.receive(h.inbound(request('INVITE')));
  t.equal(h.servers.length, 1, 'retransmission is not a new request');
  t.match(h.sent[1]?.text, /^SIP\/2\.0 100/, 'retransmission answered with the last response');
  const tx = h.servers[0]!;
  const base = h.clock.now();
  tx.respond(buildResponse(tx.request, 486, undefined, { toTag: 'x' }));
  h.clock.advance(20_000);
  t.same(
    h.sent.slice(2).map((s) => s.at - base),
    [0, 500, 1500, 3500, 7500, 11500, 15500, 19500],
    'Timer G from T1, capped at T2',
  );
  const ack = request('ACK', 'z9hG4bKabc', 'ACK');
  h.txm.receive(h.inbound(ack));
  t.equal(tx.state, 'confirmed', 'ACK matched the transaction');
  t.equal(h.acks.length, 0, 'and did not reach the TU');
  h.clock.advance(DEFAULT_TIMERS.t4);
  t.equal(tx.state, 'terminated', 'Timer I = T4');

  const h2 = harness();
  h2.txm.receive(h2.inbound(request('INVITE')));
  const tx2 = h2.servers[0]!;
  tx2.respond(buildResponse(tx2.request, 404, undefined, { toTag: 'x' }));
  h2.clock.advance(64 * T1);
  t.equal(tx2.state, 'terminated', 'Timer H = 64*T1 without ACK');
  t.equal(h2.records[0]?.status, 404);
});

t.test('INVITE server: 2xx moves to Accepted; Timer L absorbs INVITE retransmissions', async (t) => {
  const h = harness();
  h.txm.receive(h.inbound(request('INVITE')));
  const tx = h.servers[0]!;
  tx.respond(buildResponse(tx.request, 200, undefined, { toTag: 'x' }));
  t.equal(tx.state, 'accepted');
  h.txm.receive(h.inbound(request('INVITE')));
  t.equal(h.servers.length, 1, 'retransmitted INVITE absorbed (RFC 6026)');
  h.txm.receive(h.inbound(request('ACK', 'z9hG4bKother', 'ACK')));
  t.equal(h.acks.length, 1, 'ACK for the 2xx goes to the TU');
  h.txm.receive(h.inbound(request('ACK', 'z9hG4bKabc', 'ACK')));
  t.equal(h.acks.length, 2, 'so does an ACK with the INVITE branch (RFC 6026 8.8)');
  t.equal(h.sent.length, 1, 'nothing resent: the TU owns the 2xx');
  t.equal(h.txm.findInviteFor(request('CANCEL', 'z9hG4bKabc'))?.answered, true, 'a CANCEL finds it answered');
  h.clock.advance(64 * T1 - 1);
  t.equal(h.txm.size.servers, 1);
  h.clock.advance(1);
  t.equal(h.txm.size.servers, 0, 'Timer L = 64*T1');
  h.clock.advance(SWEEP_MS);
  t.equal(h.clock.pending, 0, 'no timer left once swept');
  h.txm.receive(h.inbound(request('INVITE')));
  t.equal(h.servers.length, 2, 'after Timer L the same INVITE is a new request');
});

t.test('non-INVITE server: Timer J keeps the response for retransmissions', async (t) => {
  const h = harness();
  h.txm.receive(h.inbound(request('OPTIONS')));
  const tx = h.servers[0]!;
  tx.respond(
    buildResponse(tx.request, 200, undefined, {
      toTag: 'x',
      headers: new SipHeaders().set('Accept', 'application/sdp'),
    }),
  );
  h.txm.receive(h.inbound(request('OPTIONS')));
  t.equal(h.sent.length, 2, 'retransmission answered from the transaction');
  t.equal(h.sent[0]?.text, h.sent[1]?.text, 'with the same bytes');
  h.clock.advance(64 * T1 - 1);
  h.txm.receive(h.inbound(request('OPTIONS')));
  t.equal(h.sent.length, 3, 'answered again until Timer J');
  t.equal(h.txm.size.servers, 1);
  h.clock.advance(1);
  t.equal(h.txm.size.servers, 0, 'Timer J = 64*T1');
  h.clock.advance(SWEEP_MS);
  t.equal(h.clock.pending, 0, 'no timer left once swept');
  h.txm.receive(h.inbound(request('OPTIONS')));
  t.equal(h.servers.length, 2, 'after Timer J the same request is a new one');
  t.equal(tx.state, 'completed', 'the transaction object itself is released, not kept for Timer J');
  t.equal(h.records[0]?.role, 'uas');
  t.equal(h.records[0]?.method, 'OPTIONS');
});

t.test('a bare magic-cookie branch is refused statelessly with 400 (RFC 4475 badbranch)', async (t) => {
  const h = harness();
  h.txm.receive(h.inbound(request('OPTIONS', 'z9hG4bK')));
  t.equal(h.servers.length, 0);
  t.match(h.sent[0]?.text, /^SIP\/2\.0 400 /);
});

t.test('close() rejects pending client transactions with SIP_ERR_CLOSED', async (t) => {
  const h = harness();
  const c = client(h, 'INVITE');
  const { SipError } = await import('../../src/sip/errors.js');
  h.txm.close(new SipError('SIP_ERR_CLOSED', 'closing'));
  t.equal(c.out.errors[0]?.code, 'SIP_ERR_CLOSED');
  t.equal(h.clock.pending, 0, 'every timer cleared');
});
