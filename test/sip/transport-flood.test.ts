/**
 * A SIP port under a connection flood (issue 8): 1,000 raw TCP connections,
 * most of them sending a few bytes of a request they never finish
 * (slowloris), some sending a header section that never ends, and some
 * pipelining requests while never reading our answers. With the default caps
 * the memory the user agent holds stays under a stated bound, every cap
 * triggers and is counted, and a well-behaved peer is answered throughout,
 * over UDP and over TCP. Loopback only, bounded in count and time.
 */
import net from 'node:net';
import t from 'tap';
import { createUserAgent } from '../../src/sip/index.js';
import { DEFAULT_MAX_HEADER_SIZE } from '../../src/sip/parser.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_QUEUED_BYTES } from '../../src/sip/transport.js';
import { request, tcpClient, udpPeer, until } from './transport-peers.js';

t.setTimeout(120_000);

const SLOW = 900; // connections sending a few bytes of a request, then nothing
const LONG = 60; // of those, the ones that later send a header section that never ends
const FLOOD = 100; // connections pipelining requests and never reading
const ADDRESSES = 50; // source addresses 127.0.20.1..50, 20 connections each (under the per-address cap)
const ANSWER = 32 * 1024; // bytes of body in each of our answers: what a non-reader makes us hold
const EXTRA = 40; // attempts beyond the connection cap

async function connectAll(port: number, n: number, offset: number, prefix: string): Promise<net.Socket[]> {
  const out: net.Socket[] = [];
  for (let i = 0; i < n; i += 100) {
    // In batches: the listen backlog is finite and a dropped SYN costs a second.
    const batch = Array.from({ length: Math.min(100, n - i) }, (_, j) => {
      const k = offset + i + j;
      const s = net.connect({ host: '127.0.0.1', port, localAddress: `${prefix}.${(k % ADDRESSES) + 1}` });
      s.pause(); // never read
      s.on('error', () => {});
      return new Promise<net.Socket>((resolve, reject) => {
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

t.test('1,000 hostile connections: bounded memory, every cap triggers, a good peer is still answered', async (t) => {
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
  });
  const sockets: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await ua.close();
  });
  const body = 'a'.repeat(ANSWER);
  ua.on('request', (r) => r.respond(200, { contentType: 'text/plain', body }));
  const udp = ua.listening.find((l) => l.transport === 'udp')!.port;
  const tcp = ua.listening.find((l) => l.transport === 'tcp')!.port;
  const good = await tcpClient(t, tcp);
  const goodUdp = await udpPeer(t);
  t.ok(await until(() => ua.stats.openConnections === 1, 5_000));
  global.gc?.();
  const rss0 = process.memoryUsage.rss();

  // 1. A thousand connections: slowloris and (for now quiet) flooders.
  const slow = await connectAll(tcp, SLOW, 0, '127.0.20');
  const flood = await connectAll(tcp, FLOOD, SLOW, '127.0.20');
  sockets.push(...slow, ...flood);
  for (const s of slow) s.write('OPTIONS sip:ua@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.20.1');
  t.ok(await until(() => ua.stats.openConnections === 1 + SLOW + FLOOD, 20_000), '1,001 connections open');
  t.ok(await until(() => ua.stats.bufferedBytes >= SLOW * 40, 20_000), 'the slowloris bytes are held');

  // 2. Past the overall cap (default 1,024) connections are refused and counted.
  const extra = await connectAll(tcp, EXTRA, 0, '127.0.21');
  sockets.push(...extra);
  const room = DEFAULT_MAX_CONNECTIONS - (1 + SLOW + FLOOD);
  t.ok(
    await until(() => ua.stats.connectionsRefused === EXTRA - room, 20_000),
    `${EXTRA - room} of ${EXTRA} refused at the cap`,
  );
  t.equal(ua.stats.openConnections, DEFAULT_MAX_CONNECTIONS);
  for (const s of extra) s.destroy();
  t.ok(await until(() => ua.stats.openConnections === 1 + SLOW + FLOOD, 20_000));

  // 3. Flood: pipelined requests from connections that never read; endless headers; a good peer meanwhile.
  let n = 0;
  const open = new Set(flood);
  for (const s of flood) s.once('close', () => open.delete(s));
  const pump = setInterval(() => {
    for (const s of open) {
      let batch = '';
      for (let i = 0; i < 4; i++) {
        n++;
        batch += request('OPTIONS', `sip:ua@127.0.0.1:${tcp}`, `SIP/2.0/TCP 127.0.20.1:5060;branch=z9hG4bKf${n}`, {
          callId: `flood-${n}`,
        });
      }
      s.write(batch);
    }
  }, 10);
  const pad = 'h'.repeat(8 * 1024);
  for (const s of slow.slice(0, LONG)) for (let i = 0; i < 9; i++) s.write(pad); // 72 KiB of header, no end
  let maxQueued = 0;
  let maxBuffered = 0;
  let maxRss = 0;
  let answered = 0;
  const latencies: number[] = [];
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && (ua.stats.queueOverflows < FLOOD || ua.stats.oversized < LONG)) {
    const started = Date.now();
    const id = `good-${answered}`;
    good.clear();
    good.socket.write(
      request('OPTIONS', `sip:ua@127.0.0.1:${tcp}`, 'SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK' + id, { callId: id }),
    );
    goodUdp.send(
      request('OPTIONS', `sip:ua@127.0.0.1:${udp}`, `SIP/2.0/UDP 127.0.0.1:${goodUdp.port};branch=z9hG4bK${id};rport`, {
        callId: id,
      }),
      udp,
    );
    const tcpOk = await good.waitFor(new RegExp(`Call-ID: ${id}\r`), 10_000);
    const udpOk = await goodUdp.next(new RegExp(`Call-ID: ${id}\r`), 10_000);
    if (tcpOk === undefined || udpOk === undefined) break;
    answered++;
    latencies.push(Date.now() - started);
    const s = ua.stats;
    maxQueued = Math.max(maxQueued, s.queuedBytes);
    maxBuffered = Math.max(maxBuffered, s.bufferedBytes);
    maxRss = Math.max(maxRss, process.memoryUsage.rss());
    await new Promise((r) => setTimeout(r, 20));
  }
  clearInterval(pump);
  const s = ua.stats;
  t.comment(
    `${answered} good exchanges, worst ${Math.max(...latencies)} ms; ${n} flood requests; ` +
      `held at most ${(maxQueued / 1_048_576).toFixed(1)} MiB queued, ${(maxBuffered / 1_048_576).toFixed(2)} MiB buffered; ` +
      `RSS +${((maxRss - rss0) / 1_048_576).toFixed(0)} MiB`,
  );
  t.equal(s.queueOverflows, FLOOD, 'every non-reading connection hit the write backlog cap and was closed');
  t.equal(s.oversized, LONG, 'every endless header section hit the header limit and was closed');
  t.ok(answered >= 3, 'the good peer was answered over TCP and UDP throughout');
  t.ok(
    await until(() => ua.stats.openConnections === 1 + SLOW - LONG, 10_000),
    'the slowloris connections are held (idle timeout: 120 s), nothing else',
  );
  // The stated bounds: each non-reader holds at most the cap plus one answer; each partial header at most the limit plus one read.
  const queuedBound = FLOOD * (DEFAULT_MAX_QUEUED_BYTES + ANSWER + 1_024);
  const bufferedBound = SLOW * 100 + LONG * (DEFAULT_MAX_HEADER_SIZE + 65_536);
  t.ok(maxQueued <= queuedBound, `queued ${maxQueued} <= ${queuedBound}`);
  t.ok(maxBuffered <= bufferedBound, `buffered ${maxBuffered} <= ${bufferedBound}`);
  const rssBound = 2 * queuedBound + 64 * 1_048_576;
  t.ok(maxRss - rss0 <= rssBound, `RSS grew ${maxRss - rss0} <= ${rssBound} bytes`);
});
