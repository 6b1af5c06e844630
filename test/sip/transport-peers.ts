/**
 * Raw socket peers for the transport tests: node:net and node:dgram sockets
 * whose SIP the tests write by hand from RFC 3261, so our stack is on one
 * end only. Every peer is torn down with its test.
 */
import dgram from 'node:dgram';
import net from 'node:net';

type Teardown = { teardown(fn: () => unknown): void };

/** Poll `cond` every few ms until it holds or `ms` pass; resolves with the last value. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A request as a peer writes it (RFC 3261 8.1.1): the given Via, fresh tags, Content-Length. */
export function request(
  method: string,
  ruri: string,
  via: string,
  opts: { callId?: string; extra?: string[]; body?: string } = {},
): string {
  const body = opts.body ?? '';
  return [
    `${method} ${ruri} SIP/2.0`,
    `Via: ${via}`,
    'Max-Forwards: 70',
    'From: <sip:peer@127.0.0.1>;tag=p1',
    `To: <${ruri}>`,
    `Call-ID: ${opts.callId ?? `raw-${Math.random().toString(36).slice(2)}`}`,
    `CSeq: 1 ${method}`,
    ...(opts.extra ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** What a stream peer has received, and when it closed. */
export interface StreamPeer {
  readonly socket: net.Socket;
  /** Everything received so far, as text. */
  readonly text: () => string;
  readonly closed: () => boolean;
  /** Forget what was received so far. */
  clear(): void;
  /** Wait until the received text matches, within `ms`. */
  waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray | undefined>;
  waitClosed(ms: number): Promise<boolean>;
}

function watch(socket: net.Socket, read = true): StreamPeer {
  let text = '';
  let closed = false;
  // A 'data' listener would start reading: a peer that does not read has none.
  if (read)
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1');
    });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  return {
    socket,
    text: () => text,
    closed: () => closed,
    clear: () => {
      text = '';
    },
    async waitFor(re, ms) {
      let m: RegExpMatchArray | null = null;
      await until(() => {
        m = text.match(re);
        return m !== null;
      }, ms);
      return m ?? undefined;
    },
    waitClosed: (ms) => until(() => closed, ms),
  };
}

/** A TCP client connected to host:port, optionally from a chosen loopback address. */
export async function tcpClient(t: Teardown, port: number, localAddress?: string): Promise<StreamPeer> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  t.teardown(() => socket.destroy());
  return watch(socket);
}

/** A TCP server; each accepted connection is watched. `read: false` never reads (a peer that stopped reading). */
export async function tcpServer(
  t: Teardown,
  host = '127.0.0.1',
  port = 0,
  read = true,
): Promise<{ port: number; peers: StreamPeer[] }> {
  const peers: StreamPeer[] = [];
  const server = net.createServer({ pauseOnConnect: !read }, (s) => {
    peers.push(watch(s, read));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  t.teardown(() => {
    for (const p of peers) p.socket.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, peers };
}

/** A UDP peer that records each datagram with the address and port it came from. */
export async function udpPeer(t: Teardown, host = '127.0.0.1') {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, host, () => r()));
  t.teardown(() => sock.close());
  const inbox: Array<{ text: string; from: string }> = [];
  sock.on('message', (b, rinfo) => inbox.push({ text: b.toString(), from: `${rinfo.address}:${rinfo.port}` }));
  return {
    port: sock.address().port,
    inbox,
    send: (text: string, port: number, to = '127.0.0.1') => sock.send(text, port, to),
    async next(re: RegExp, ms: number) {
      let hit: { text: string; from: string } | undefined;
      await until(() => {
        const i = inbox.findIndex((m) => re.test(m.text));
        if (i >= 0) hit = inbox.splice(i, 1)[0];
        return hit !== undefined;
      }, ms);
      return hit;
    },
  };
}
