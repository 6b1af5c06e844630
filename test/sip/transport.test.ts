/**
 * Transport hardening against raw sockets (node:net, node:dgram peers written
 * here from RFC 3261): connection caps, write backlog and pre-connect queue
 * caps, the header-section limit, slowloris on the fake clock, and where
 * responses go (18.2.2 over TCP after the connection closed; symmetric UDP on
 * a multi-homed host).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { realClock } from '../../src/core/index.js';
import { createUserAgent, type UserAgentOptions } from '../../src/sip/index.js';
import { DEFAULT_MAX_HEADER_SIZE } from '../../src/sip/parser.js';
import { TransportLayer } from '../../src/sip/transport.js';
import { request, type StreamPeer, tcpClient, tcpServer, udpPeer, until } from './transport-peers.js';

t.setTimeout(60_000);

const FAST = { t1: 50, t2: 400, t4: 500 }; // ms: short protocol timers keep failure paths quick

async function tcpUa(t: { teardown(fn: () => unknown): void }, extra: Partial<UserAgentOptions> = {}) {
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    timers: FAST,
    ...extra,
  });
  t.teardown(() => ua.close());
  return { ua, port: ua.listening.find((l) => l.transport === 'tcp')!.port };
}

const tcpVia = (host: string, port: number | undefined, branch: string) =>
  `SIP/2.0/TCP ${host}${port === undefined ? '' : `:${port}`};branch=z9hG4bK${branch}`;

/** An OPTIONS over a connection is answered 200 on it: the connection is served. */
async function served(peer: StreamPeer, port: number, branch: string): Promise<boolean> {
  const callId = `served-${branch}`;
  peer.socket.write(request('OPTIONS', `sip:ua@127.0.0.1:${port}`, tcpVia('127.0.0.1', 1, branch), { callId }));
  return (await peer.waitFor(new RegExp(`SIP/2.0 200[\\s\\S]*Call-ID: ${callId}`), 5_000)) !== undefined;
}

t.test('connection caps: per inbound address, overall, and for outbound connects; each refusal counted', async (t) => {
  const { ua, port } = await tcpUa(t, { maxConnections: 5, maxConnectionsPerAddress: 3 });
  const fromA = await Promise.all([1, 2, 3, 4].map(() => tcpClient(t, port, '127.0.0.2')));
  t.ok(await until(() => ua.stats.connectionsRefused === 1 && ua.stats.openConnections === 3, 5_000));
  t.ok(await until(() => fromA.filter((p) => p.closed()).length === 1, 5_000), 'the 4th from one address is closed');
  const fromB = await Promise.all([1, 2].map(() => tcpClient(t, port, '127.0.0.3')));
  t.ok(await until(() => ua.stats.openConnections === 5, 5_000), 'five open: the overall cap');
  const fromC = await tcpClient(t, port, '127.0.0.4');
  t.ok(await fromC.waitClosed(5_000), 'a sixth connection is refused, whatever its address');
  t.equal(ua.stats.connectionsRefused, 2);
  t.ok(await served(fromB[0]!, port, 'cap1'), 'the admitted connections are served');

  // Outbound: at the cap a send fails at once instead of opening a sixth connection.
  await t.rejects(ua.request('OPTIONS', `sip:mcu@127.0.0.1:${port + 1};transport=tcp`), {
    code: 'SIP_ERR_TRANSPORT',
  });
  t.equal(ua.stats.connectsRefused, 1);

  // A slot freed is a slot usable again.
  fromA.find((p) => !p.closed())!.socket.destroy();
  t.ok(await until(() => ua.stats.openConnections === 4, 5_000));
  const again = await tcpClient(t, port, '127.0.0.4');
  t.ok(await served(again, port, 'cap2'), 'admitted once below the cap');
  t.equal(ua.stats.connectionsRefused, 2);
});

t.test('a peer that stops reading: the write backlog is capped, the sender gets SIP_ERR_TRANSPORT', async (t) => {
  const cap = 256 * 1024;
  const { ua } = await tcpUa(t, { maxQueuedBytes: cap });
  const sink = await tcpServer(t, '127.0.0.1', 0, false);
  const body = 'x'.repeat(64 * 1024);
  const sent: Array<Promise<unknown>> = [];
  let maxQueued = 0;
  // The kernel absorbs a few MB first (socket buffers on loopback); then our backlog grows to the cap.
  for (let i = 0; i < 400 && ua.stats.queueOverflows === 0; i++) {
    const p = ua.request('MESSAGE', `sip:mcu@127.0.0.1:${sink.port};transport=tcp`, {
      contentType: 'text/plain',
      body,
    });
    p.catch(() => {}); // settled below
    sent.push(p);
    maxQueued = Math.max(maxQueued, ua.stats.queuedBytes);
    await new Promise((r) => setImmediate(r));
  }
  t.equal(ua.stats.queueOverflows, 1, 'the cap was reached once');
  t.ok(maxQueued <= cap + body.length + 1_024, `at most the cap plus one message was held (${maxQueued} bytes)`);
  const outcomes = await Promise.allSettled(sent);
  const last = outcomes.at(-1);
  t.equal(last?.status, 'rejected');
  t.match((last as PromiseRejectedResult).reason, { code: 'SIP_ERR_TRANSPORT' }, 'the sender hears of it');
  t.ok(await until(() => ua.stats.openConnections === 0 && ua.stats.queuedBytes === 0, 5_000), 'connection closed');
});

t.test(
  'large messages written straight out are not counted as unsent: a reading peer keeps its connection',
  async (t) => {
    // A message over the batch size goes out in its own write. Counting it as still gathered (it was, once)
    // closed a busy connection after a megabyte: the simulator's full-state rosters, 70 to 90 KB each, lost
    // their subscriptions in the chair benchmark's dial that way.
    let received = 0;
    const server = net.createServer((s) => s.on('data', (b: Buffer) => (received += b.length)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => server.close());
    const tl = new TransportLayer({ listen: [], clock: realClock, onMessage: () => {}, maxQueuedBytes: 256 * 1024 });
    await tl.start();
    t.teardown(() => tl.close());
    const dest = { transport: 'tcp' as const, host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
    const errors: string[] = [];
    const onError = (e: { code: string }) => errors.push(e.code);
    const big = Buffer.alloc(80_000, 65);
    const small = Buffer.alloc(500, 66);
    let sent = 0;
    let pairs = 0;
    const unsent: number[] = [];
    for (; pairs < 20 && errors.length === 0; pairs++) {
      tl.send(big, dest, undefined, onError);
      tl.send(small, dest, undefined, onError);
      sent += big.length + small.length;
      if (!(await until(() => received === sent, 5_000))) break;
      unsent.push(tl.stats.queuedBytes);
    }
    t.equal(pairs, 20, 'every pair read by the peer');
    t.ok(
      unsent.every((n) => n === 0),
      'nothing counted unsent once the peer has read it',
    );
    t.same(errors, [], 'no send failed');
    t.equal(tl.stats.queueOverflows, 0, 'the backlog cap was never reached');
    t.equal(tl.stats.openConnections, 1, 'one connection carried it all');
  },
);

t.test('the queue of a connection still opening is capped; its first message always fits', async (t) => {
  // A TCP server that never speaks TLS: our TLS connection stays in its handshake, so sends queue.
  const silent = await tcpServer(t, '127.0.0.1', 0, false);
  const tl = new TransportLayer({
    listen: [],
    clock: realClock,
    onMessage: () => {},
    maxQueuedBytes: 10_000,
    connectTimeoutMs: 30_000,
  });
  await tl.start();
  const errors: string[] = [];
  const onError = (e: { code: string }) => errors.push(e.code);
  const dest = { transport: 'tls' as const, host: '127.0.0.1', port: silent.port };
  tl.send(Buffer.alloc(4_000, 65), dest, undefined, onError);
  tl.send(Buffer.alloc(4_000, 65), dest, undefined, onError);
  t.same(errors, [], 'two messages queued');
  tl.send(Buffer.alloc(4_000, 65), dest, undefined, onError);
  t.same(errors, ['SIP_ERR_TRANSPORT'], 'the third would pass the cap: refused');
  t.equal(tl.stats.queueOverflows, 1);
  t.equal(tl.stats.queuedBytes, 8_000, 'what was queued stays queued');
  // A message larger than the cap goes out on a connection with nothing queued (a full conference state).
  const silent2 = await tcpServer(t, '127.0.0.1', 0, false);
  tl.send(Buffer.alloc(20_000, 65), { ...dest, port: silent2.port }, undefined, onError);
  t.equal(errors.length, 1);
  t.equal(tl.stats.queuedBytes, 28_000);
  await tl.close();
  t.same(errors, ['SIP_ERR_TRANSPORT', 'SIP_ERR_TRANSPORT', 'SIP_ERR_TRANSPORT', 'SIP_ERR_TRANSPORT']);
  t.equal(tl.stats.openConnections, 0);
});

t.test('the header section is limited apart from the body, before any body byte is buffered', async (t) => {
  const { ua, port } = await tcpUa(t);
  // A header that never ends: closed once past the limit, whatever the Content-Length would say.
  const endless = await tcpClient(t, port);
  endless.socket.write('OPTIONS sip:ua@127.0.0.1 SIP/2.0\r\nContent-Length: 1000000\r\nX-Pad: ');
  let maxBuffered = 0;
  for (let sent = 0; sent < 2 * DEFAULT_MAX_HEADER_SIZE && !endless.closed(); sent += 1_000) {
    endless.socket.write('a'.repeat(1_000));
    await until(() => ua.stats.bufferedBytes > 0 || endless.closed(), 2_000);
    maxBuffered = Math.max(maxBuffered, ua.stats.bufferedBytes);
  }
  t.ok(await endless.waitClosed(5_000), 'closed');
  t.ok(maxBuffered <= DEFAULT_MAX_HEADER_SIZE + 1_000, `at most the limit plus a chunk was held (${maxBuffered})`);
  t.equal(ua.stats.oversized, 1);

  // A complete header section over the limit, sent at once with its body: refused too.
  const big = await tcpClient(t, port);
  big.socket.write(
    request('MESSAGE', `sip:ua@127.0.0.1:${port}`, tcpVia('127.0.0.1', 1, 'big1'), {
      extra: [`X-Pad: ${'b'.repeat(DEFAULT_MAX_HEADER_SIZE)}`],
      body: 'hello',
    }),
  );
  t.ok(await big.waitClosed(5_000), 'closed');
  t.equal(ua.stats.oversized, 2);

  // Just under the limit is a message like any other.
  const fine = await tcpClient(t, port);
  fine.socket.write(
    request('OPTIONS', `sip:ua@127.0.0.1:${port}`, tcpVia('127.0.0.1', 1, 'fine1'), {
      extra: [`X-Pad: ${'c'.repeat(DEFAULT_MAX_HEADER_SIZE - 1_000)}`],
    }),
  );
  t.ok(await fine.waitFor(/^SIP\/2.0 200 /, 5_000), 'a 63 KiB header section is answered');
  t.equal(ua.stats.oversized, 2);
});

t.test('slowloris: bytes of a message that never completes do not keep a connection open', async (t) => {
  const clock = new FakeClock();
  const idle = 120_000;
  const { ua, port } = await tcpUa(t, { clock, idleTimeoutMs: idle });
  const slow = await tcpClient(t, port, '127.0.0.5');
  const good = await tcpClient(t, port, '127.0.0.6');
  slow.socket.write('OPTIONS sip:ua@127.0.0.1 SIP/2.0\r\n');
  t.ok(await until(() => ua.stats.bufferedBytes > 0, 5_000));
  // Every 10 s one more header byte, and one whole request on the good connection.
  for (let s = 0; s < 13 && !slow.closed(); s++) {
    const held = ua.stats.bufferedBytes;
    slow.socket.write('X');
    t.ok(await until(() => ua.stats.bufferedBytes > held || slow.closed(), 5_000));
    t.ok(await served(good, port, `good${s}`), `the well-behaved peer is answered (${s * 10} s)`);
    clock.advance(10_000);
  }
  t.ok(await slow.waitClosed(5_000), 'the trickling connection is closed after the idle timeout');
  t.notOk(good.closed(), 'the connection completing messages stays');
});

t.test('RFC 3261 18.2.2: a response whose TCP connection closed goes to received and the Via port', async (t) => {
  const { ua, port } = await tcpUa(t);
  const pending: Array<(status: number) => void> = [];
  ua.on('request', (req) => pending.push((s) => req.respond(s)));
  // The peer listens where its Via says; it sends from an ephemeral port and a Via host that is not its address.
  const listener = await tcpServer(t);
  const client = await tcpClient(t, port);
  client.socket.write(
    request('OPTIONS', `sip:ua@127.0.0.1:${port}`, tcpVia('192.0.2.1', listener.port, 'routed1'), {
      callId: 'routed-1',
    }),
  );
  t.ok(await until(() => pending.length === 1, 5_000), 'the request reached the application');
  client.socket.destroy();
  t.ok(await until(() => ua.stats.openConnections === 0, 5_000), 'our side saw the close');
  pending[0]!(200);
  t.ok(await until(() => listener.peers.length === 1, 5_000), 'we connected to the Via port');
  const res = await listener.peers[0]!.waitFor(/^SIP\/2.0 200 [\s\S]*\r\n\r\n/, 5_000);
  t.ok(res, 'the response arrived on a new connection to the listening port');
  t.match(res?.[0], /Via: SIP\/2.0\/TCP 192\.0\.2\.1:\d+;branch=z9hG4bKrouted1;received=127\.0\.0\.1/);

  // No port in the Via: the default port of the transport, 5060 for TCP (on an address of our own choosing).
  const host = '127.0.77.1';
  let five: Awaited<ReturnType<typeof tcpServer>>;
  try {
    five = await tcpServer(t, host, 5060);
  } catch {
    t.comment(`${host}:5060 is taken: default-port case skipped`);
    return;
  }
  const c2 = await tcpClient(t, port, host);
  c2.socket.write(
    request('OPTIONS', `sip:ua@127.0.0.1:${port}`, tcpVia(host, undefined, 'routed2'), { callId: 'routed-2' }),
  );
  t.ok(await until(() => pending.length === 2, 5_000));
  c2.socket.destroy();
  t.ok(await until(() => ua.stats.openConnections === 1, 5_000), 'only the connection we opened is left');
  pending[1]!(486);
  t.ok(await until(() => five.peers.length === 1, 5_000), 'we connected to port 5060');
  t.ok(await five.peers[0]!.waitFor(/^SIP\/2.0 486 [\s\S]*Call-ID: routed-2/, 5_000), 'the 486 arrived there');
});

t.test('RFC 3261 18.4, 8.1.3.1: a TCP connection that closes fails the requests waiting on it at once', async (t) => {
  // The fake clock never moves: Timers B and F cannot fire, so only the transport error can settle the requests.
  const clock = new FakeClock();
  const { ua } = await tcpUa(t, { clock });
  const records: Array<{ method: string; status: number; errorCode?: string }> = [];
  ua.on('transaction', (r) => records.push(r));
  const peer = await tcpServer(t);
  const target = `sip:mcu@127.0.0.1:${peer.port};transport=tcp`;
  const outcome = (p: Promise<unknown>) =>
    p.then(
      () => 'resolved',
      (err: { code?: string }) => err.code ?? String(err),
    );
  const options = outcome(ua.request('OPTIONS', target));
  const invite = outcome(ua.invite(target, { body: 'v=0\r\n', contentType: 'application/sdp' }));
  let settled = 0;
  void options.then(() => settled++);
  void invite.then(() => settled++);
  t.ok(await until(() => peer.peers.length === 1, 5_000), 'we connected');
  const conn = peer.peers[0]!;
  const inv = await conn.waitFor(/INVITE [^\r]*\r\n[\s\S]*?\r\n\r\n/, 5_000);
  t.ok(await conn.waitFor(/OPTIONS [^\r]*\r\n[\s\S]*?\r\n\r\n/, 5_000), 'the OPTIONS arrived');
  t.ok(inv, 'the INVITE arrived');
  // The INVITE gets a provisional response (proceeding: Timer B no longer runs, RFC 3261 17.1.1.2).
  const h = (name: string) => new RegExp(`^${name}:.*$`, 'mi').exec(inv![0])![0];
  conn.socket.write(
    `SIP/2.0 100 Trying\r\n${h('Via')}\r\n${h('From')}\r\n${h('To')}\r\n${h('Call-ID')}\r\n${h('CSeq')}\r\nContent-Length: 0\r\n\r\n`,
  );
  t.ok(await until(() => records.length === 0 && ua.stats.clientTransactions === 2, 5_000));
  t.equal(settled, 0, 'nothing settled while the connection is open');
  conn.socket.destroy();
  if (!t.ok(await until(() => settled === 2, 10_000), 'both requests failed when the connection closed')) return;
  t.equal(await options, 'SIP_ERR_TRANSPORT');
  t.equal(await invite, 'SIP_ERR_TRANSPORT');
  t.same(
    records.map((r) => [r.method, r.status, r.errorCode]).sort(),
    [
      ['INVITE', 503, 'SIP_ERR_TRANSPORT'],
      ['OPTIONS', 503, 'SIP_ERR_TRANSPORT'],
    ],
    'recorded as 503 transport errors',
  );
  t.equal(ua.stats.clientTransactions, 0, 'no transaction is left waiting');
});

t.test('answers sent in one tick on a connection leave in one write, in order', async (t) => {
  const { port } = await tcpUa(t);
  const client = await tcpClient(t, port);
  // Count the writes of our side of the connection (the one socket whose local port is ours and remote is the peer's).
  const ours = (s: net.Socket) => s.localPort === port && s.remotePort === client.socket.localPort;
  let writes = 0;
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
    if (ours(this)) writes++;
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof write;
  t.teardown(() => {
    net.Socket.prototype.write = write;
  });
  const n = 20;
  // Pipelined in one chunk: the framer delivers them in one read, the user agent answers each at once.
  client.socket.write(
    Array.from({ length: n }, (_, i) =>
      request('OPTIONS', `sip:ua@127.0.0.1:${port}`, tcpVia('127.0.0.1', 1, `batch${i}`), { callId: `batch-${i}` }),
    ).join(''),
  );
  const all = await client.waitFor(new RegExp(`Call-ID: batch-${n - 1}\\r\\n[\\s\\S]*?\\r\\n\\r\\n`), 5_000);
  t.ok(all, 'every request was answered');
  const order = [...client.text().matchAll(/^SIP\/2\.0 200 [\s\S]*?Call-ID: batch-(\d+)/gm)].map((m) => Number(m[1]));
  t.same(
    order,
    Array.from({ length: n }, (_, i) => i),
    'in the order of the requests',
  );
  t.equal(writes, 1, 'one write for the twenty answers');
});

t.test('UDP is symmetric: the response leaves from the address the request arrived on', async (t) => {
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'udp', host: '127.0.0.2', port: 0 },
    ],
    timers: FAST,
  });
  t.teardown(() => ua.close());
  ua.on('invite', (inv) => inv.accept({ body: 'v=0\r\n' }).catch(() => {}));
  const second = ua.listening[1]!;
  const peer = await udpPeer(t);
  const via = (b: string) => `SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK${b};rport`;
  peer.send(
    request('OPTIONS', `sip:ua@127.0.0.2:${second.port}`, via('sym1'), { callId: 'sym-1' }),
    second.port,
    '127.0.0.2',
  );
  const ok = await peer.next(/^SIP\/2.0 200 [\s\S]*Call-ID: sym-1/, 5_000);
  t.equal(ok?.from, `127.0.0.2:${second.port}`, 'OPTIONS answered from the second address');
  peer.send(
    request('INVITE', `sip:ua@127.0.0.2:${second.port}`, via('sym2'), {
      callId: 'sym-2',
      extra: [`Contact: <sip:peer@127.0.0.1:${peer.port}>`],
    }),
    second.port,
    '127.0.0.2',
  );
  const ok2 = await peer.next(/^SIP\/2.0 200 [\s\S]*Call-ID: sym-2/, 5_000);
  t.equal(ok2?.from, `127.0.0.2:${second.port}`, 'the 2xx to an INVITE too');
  // Unacknowledged, the 2xx is retransmitted (RFC 3261 13.3.1.4): from the same address.
  peer.inbox.length = 0;
  const again = await peer.next(/^SIP\/2.0 200 [\s\S]*Call-ID: sym-2/, 5_000);
  t.equal(again?.from, `127.0.0.2:${second.port}`, 'and its retransmissions');
});

t.test('transport limits are checked when the user agent is created', async (t) => {
  for (const [name, value] of [
    ['maxConnections', 0],
    ['maxQueuedBytes', -1],
    ['maxHeaderSize', 1.5],
    ['maxConnectionsPerAddress', Number.NaN],
  ] as const) {
    await t.rejects(
      createUserAgent({ listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }], [name]: value }),
      { code: 'SIP_ERR_INVALID_ARGUMENT', details: { path: name } },
      `${name}: ${value}`,
    );
  }
});

/**
 * `count` datagrams sent to `port` by another process while this one's event loop is held busy (as a pass over
 * a national session holds it), then read: how many arrived. The sender is a process of its own so that it
 * sends while we cannot read; the hold ends when it says it is done (a file), bounded.
 */
async function burstWhileBusy(tl: TransportLayer, port: number, count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'cascaded-burst-'));
  const done = join(dir, 'done');
  const sender = `
    const s = require('node:dgram').createSocket('udp4');
    const body = 'x'.repeat(700);
    let left = ${count};
    process.stdin.once('data', () => {
      for (let i = 0; i < ${count}; i++) {
        const msg = 'OPTIONS sip:ua@127.0.0.1 SIP/2.0\\r\\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKburst' + i +
          '\\r\\nFrom: <sip:b@127.0.0.1>;tag=1\\r\\nTo: <sip:ua@127.0.0.1>\\r\\nCall-ID: burst-' + i +
          '\\r\\nCSeq: 1 OPTIONS\\r\\nMax-Forwards: 70\\r\\nContent-Type: text/plain\\r\\nContent-Length: ' + body.length + '\\r\\n\\r\\n' + body;
        s.send(msg, ${port}, '127.0.0.1', () => { if (--left === 0) { require('node:fs').writeFileSync(${JSON.stringify(done)}, ''); s.close(); } });
      }
    });
    process.stdout.write('ready\\n');
  `;
  const child = spawn(process.execPath, ['-e', sender], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.stdout.once('data', () => resolve());
    });
    const before = tl.stats.received;
    child.stdin.write('go\n');
    // Busy, not reading, until the sender has sent everything (or 20 s): the kernel's buffer holds what came.
    const end = Date.now() + 20_000;
    while (!existsSync(done) && Date.now() < end) {
      /* held */
    }
    // Read what the kernel kept: all of them, or (some were dropped) what came until nothing more did for a
    // second, so a loaded machine that leaves us off the CPU for a while does not end the count early.
    let last = tl.stats.received;
    let quietSince = Date.now();
    while (tl.stats.received - before < count && Date.now() - quietSince < 1_000) {
      await new Promise((r) => setTimeout(r, 20));
      if (tl.stats.received !== last) {
        last = tl.stats.received;
        quietSince = Date.now();
      }
    }
    return tl.stats.received - before;
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the kernel grants a socket's receive buffer at most (Linux: net.core.rmem_max); 0 where unknown. */
function rmemMax(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

t.test(
  'a burst of datagrams while the event loop is busy waits in the receive buffer, none dropped',
  {
    skip:
      rmemMax() >= 2 * 1024 * 1024
        ? false
        : `net.core.rmem_max is ${rmemMax()} bytes: the kernel cannot grant the 2 MiB this test needs`,
  },
  async (t) => {
    const count = 800; // about 1.8 MiB of receive buffer: each datagram holds about 2.3 KiB of it on Linux
    const open = async (extra: { udpReceiveBufferBytes?: number }) => {
      const tl = new TransportLayer({
        listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
        clock: realClock,
        onMessage: () => {},
        ...extra,
      });
      await tl.start();
      t.teardown(() => tl.close());
      return { tl, port: tl.listening[0]!.port };
    };
    const small = await open({ udpReceiveBufferBytes: 65_536 });
    const fewer = await burstWhileBusy(small.tl, small.port, count);
    t.ok(fewer < count, `a 64 KiB buffer drops part of the burst (${fewer} of ${count} arrived): the test can fail`);
    const usual = await open({});
    t.equal(await burstWhileBusy(usual.tl, usual.port, count), count, 'the default buffer holds all of it');
  },
);

t.test('a receive buffer the kernel will not grant is logged, with the setting to raise', async (t) => {
  const warnings: string[] = [];
  const logger = { child: () => logger, warn: (_o: unknown, m: string) => warnings.push(m), debug: () => {} };
  const tl = new TransportLayer({
    listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
    clock: realClock,
    onMessage: () => {},
    logger: logger as unknown as Logger,
    udpReceiveBufferBytes: 2 ** 30, // 1 GiB: above any net.core.rmem_max in use
  });
  await tl.start();
  t.teardown(() => tl.close());
  t.match(warnings, [/UDP receive buffer \d+ bytes, 1073741824 asked: .*net\.core\.rmem_max/]);
});
