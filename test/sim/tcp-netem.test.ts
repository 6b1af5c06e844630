/**
 * The network emulator on TCP, observed from the peer's side by a raw SIP
 * peer (test/sim/raw-sip.ts, not our stack): delay and jitter keep the
 * stream's order, loss costs a retransmission timeout, a stall holds
 * everything back and then delivers it, a reset reaches the peer as
 * ECONNRESET; connections the MCU opens itself are impaired too; every figure
 * is counted per MCU and the control interface sets and shows them.
 * Timings are asserted only as lower bounds (the emulator cannot be faster
 * than it was told), never as upper bounds on this loaded machine.
 */
import t from 'tap';
import type { Inventory } from '../../src/inventory/index.js';
import { createSimMcu, type SimMcu, startSimulator, TCP_RTO_MS } from '../../src/sim/index.js';
import { parseUri } from '../../src/sip/index.js';
import { randomLoopback } from './helpers.js';
import { connectTcp, listenTcp, request, response, type TcpPeer } from './raw-sip.js';

t.setTimeout(60_000);

async function mcu(t: { teardown(fn: () => unknown): void }, host = '127.0.0.1'): Promise<{ m: SimMcu; port: number }> {
  const m = await createSimMcu({ id: 'm', uri: `sip:conf@${host}:0`, ports: 5 });
  t.teardown(() => m.close());
  return { m, port: parseUri(m.uri)!.port! };
}

let calls = 0;
function options(peer: TcpPeer, port: number, cseq: number): void {
  peer.send(
    request({
      method: 'OPTIONS',
      uri: `sip:conf@127.0.0.1:${port}`,
      transport: 'TCP',
      local: peer.local,
      callId: `tcp-netem-${++calls}`,
      cseq,
    }),
  );
}
const answered = (peer: TcpPeer, cseq: number) =>
  peer.inbox.next((r) => r.status === 200 && r.header('CSeq') === `${cseq} OPTIONS`, 10_000, `the 200 to CSeq ${cseq}`);

t.test('delay and jitter on TCP: late by at least the delay each way, and in order', async (t) => {
  const { m, port } = await mcu(t);
  const peer = await connectTcp('127.0.0.1', port);
  t.teardown(() => peer.close());
  options(peer, port, 1);
  await answered(peer, 1);
  t.equal(m.wire.tcp.delayed, 0, 'nothing delayed before the impairment');

  m.setImpairment({ delayMs: 100, jitterMs: 80 });
  const t0 = performance.now();
  for (let cseq = 2; cseq <= 7; cseq++) options(peer, port, cseq);
  const last = await answered(peer, 7);
  const first = await answered(peer, 2);
  t.ok(
    first.at - t0 >= 2 * 100 - 1,
    `the first answer came after ${Math.round(first.at - t0)} ms (>= 200: 100 each way)`,
  );
  const order = peer.inbox.all.filter((r) => r.at >= t0).map((r) => Number(r.header('CSeq')!.split(' ')[0]));
  t.same(order, [2, 3, 4, 5, 6, 7], 'a byte stream is never reordered, whatever the jitter');
  t.ok(last.at >= first.at);
  const w = m.wire;
  t.ok(w.tcp.delayed >= 2, `chunks delayed both ways: ${w.tcp.delayed}`);
  t.match(w, { dropped: 0, delayed: 0, tcp: { open: 1, connections: 1 } }, 'UDP untouched; one connection');
});

t.test('loss on TCP costs a retransmission timeout, not the message', async (t) => {
  const { m, port } = await mcu(t);
  const peer = await connectTcp('127.0.0.1', port);
  t.teardown(() => peer.close());
  m.setImpairment({ loss: 1 });
  const t0 = performance.now();
  options(peer, port, 1);
  const r = await answered(peer, 1);
  t.ok(r.at - t0 >= 2 * TCP_RTO_MS - 1, `answered after ${Math.round(r.at - t0)} ms (>= two RTOs)`);
  t.ok(m.wire.tcp.retransmitted >= 2, `retransmissions counted: ${m.wire.tcp.retransmitted}`);
});

t.test('a stall holds everything back, then delivers it', async (t) => {
  const { m, port } = await mcu(t);
  const peer = await connectTcp('127.0.0.1', port);
  t.teardown(() => peer.close());
  t.throws(() => m.stallTcp(-1), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  const t0 = performance.now();
  m.stallTcp(400);
  t.ok(m.tcpStalledUntil > t0, 'stalled');
  options(peer, port, 1);
  options(peer, port, 2);
  const r1 = await answered(peer, 1);
  const r2 = await answered(peer, 2);
  t.ok(r1.at - t0 >= 400 - 1, `nothing came through the stall: first answer after ${Math.round(r1.at - t0)} ms`);
  t.ok(r2.at >= r1.at, 'in order afterwards');
  t.ok(m.wire.tcp.stalled >= 1, `chunks held: ${m.wire.tcp.stalled}`);
  t.equal(m.tcpStalledUntil, 0, 'the stall is over');
  options(peer, port, 3);
  await answered(peer, 3);
  t.pass('the connection carries on');
});

t.test('a reset reaches the peer as ECONNRESET; a new connection works', async (t) => {
  const { m, port } = await mcu(t);
  const peer = await connectTcp('127.0.0.1', port);
  t.teardown(() => peer.close());
  options(peer, port, 1);
  await answered(peer, 1);
  t.equal(m.resetTcp(), 1, 'one connection reset');
  t.equal(await peer.ended, 'ECONNRESET', 'the peer sees an RST, not a FIN');
  t.match(m.wire.tcp, { resets: 1, open: 0 });
  const again = await connectTcp('127.0.0.1', port);
  t.teardown(() => again.close());
  options(again, port, 2);
  await answered(again, 2);
  t.match(m.wire.tcp, { connections: 2, open: 1 });
});

t.test('connections the MCU opens itself come from its address, and are impaired too', async (t) => {
  const host = randomLoopback();
  const { m, port } = await mcu(t, host);
  const contact = await listenTcp();
  t.teardown(() => contact.close());
  const peer = await connectTcp(host, port);
  t.teardown(() => peer.close());
  m.setImpairment({ delayMs: 150 });
  const t0 = performance.now();
  // The Contact is our listener, so the NOTIFY comes over a connection the MCU opens (RFC 3261 18.1.1).
  peer.send(
    request({
      method: 'SUBSCRIBE',
      uri: `sip:conf@${host}:${port}`,
      transport: 'TCP',
      local: { host: '127.0.0.1', port: contact.port },
      callId: 'tcp-netem-subscribe',
      cseq: 1,
      extra: ['Event: conference', 'Expires: 60', 'Accept: application/conference-info+xml'],
    }),
  );
  const ok = await peer.inbox.next((r) => r.method === 'SUBSCRIBE' && r.status !== undefined && r.status >= 200);
  t.equal(ok.status, 200);
  const notify = await contact.inbox.next((r) => r.method === 'NOTIFY' && r.status === undefined);
  contact.peers[0]!.send(response(notify, 200, 'OK'));
  t.equal(contact.peers[0]!.socket.remoteAddress, host, "the MCU's own address, as its Via says");
  t.ok(notify.at - t0 >= 2 * 150 - 1, `the NOTIFY came ${Math.round(notify.at - t0)} ms after the SUBSCRIBE (>= 300)`);
  t.match(m.wire.tcp, { connections: 2 }, 'the accepted connection and the one the MCU opened');
});

t.test('the control interface sets TCP faults and delays, and shows the profile and every figure', async (t) => {
  const inventory: Inventory = {
    levels: [{ id: 'x', name: 'x' }],
    provinces: [],
    operators: [{ id: 'op', name: 'op', kind: 'central' }],
    mcus: [
      {
        id: 'm',
        name: 'm',
        operator: 'op',
        role: 'master',
        driver: 'sip-msml',
        sip: ['sip:conf@127.0.0.1:0'],
        vendor: 'sim',
        capacity: { ports: 4, cascadePorts: 0 },
        parents: [],
      },
    ],
    endpoints: [],
  };
  const sim = await startSimulator({ inventory, controlPort: 0 });
  t.teardown(() => sim.close());
  const m = sim.network.mcu('m');
  const port = parseUri(m.uri)!.port!;
  const peer = await connectTcp('127.0.0.1', port);
  t.teardown(() => peer.close());
  options(peer, port, 1);
  await answered(peer, 1);
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${sim.control.url}/v1/mcus/m/${path}`, { method: 'POST', body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  t.match(await post('tcp', { stallMs: 'long' }), { status: 400, body: { code: 'SIM_ERR_INVALID_ARGUMENT' } });
  t.match(await post('tcp', { reset: 1 }), { status: 400, body: { code: 'SIM_ERR_INVALID_ARGUMENT' } });
  t.match(await post('tcp', { stallMs: 10_000_000 }), { status: 400 });
  const stalled = await post('tcp', { stallMs: 5_000 });
  t.equal(stalled.status, 200);
  t.ok((stalled.body.tcpStallLeftMs as number) > 0, 'the stall shows');
  t.match(await post('tcp', { stallMs: 0, reset: true }), {
    status: 200,
    body: { reset: 1, tcpStallLeftMs: 0, wire: { tcp: { resets: 1, open: 0 } } },
  });
  t.equal(await peer.ended, 'ECONNRESET');
  t.match(await post('impairment', { delayMs: 30, loss: 0.1 }), {
    status: 200,
    body: { impairment: { delayMs: 30, loss: 0.1 } },
  });
  t.match(await post('impairment', { infoDelayMs: 35 }), { status: 200, body: { infoDelayMs: 35 } });
  t.match(await post('impairment', { infoDelayMs: -1 }), { status: 400, body: { code: 'SIM_ERR_INVALID_ARGUMENT' } });
  const listed = (await (await fetch(`${sim.control.url}/v1/mcus`)).json()) as Record<string, unknown>[];
  t.match(listed[0], {
    id: 'm',
    profile: 'full',
    infoDelayMs: 35,
    processingDelayMs: 0,
    counters: { challenges: 0, authFailures: 0, staleNonces: 0, subscribesRefused: 0, offersUnanswered: 0 },
    wire: { dropped: 0, tcp: { connections: 1, resets: 1 } },
  });
});
