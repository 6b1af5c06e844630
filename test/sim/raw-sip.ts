/**
 * A raw SIP peer for the simulator tests, written from RFC 3261 (7, 8.1.1,
 * 18.3) rather than with our stack: requests are built as text, stream input
 * is framed by Content-Length, and nothing is retransmitted or answered unless
 * the test does it. It is the independent side that observes the simulator.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface RawMessage {
  readonly text: string;
  /** Status code of a response, undefined for a request. */
  readonly status?: number;
  /** Method of a request (or of the CSeq of a response). */
  readonly method: string;
  readonly body: string;
  /** performance.now() when it was read. */
  readonly at: number;
  header(name: string): string | undefined;
  headers(name: string): string[];
}

export function parseRaw(text: string, at = performance.now()): RawMessage {
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 4);
  const lines = head.split('\r\n');
  const first = lines[0] ?? '';
  const status = first.startsWith('SIP/2.0 ') ? Number(first.split(' ')[1]) : undefined;
  const all = (name: string) =>
    lines
      .slice(1)
      .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
      .map((l) => l.slice(l.indexOf(':') + 1).trim());
  const cseq = all('CSeq')[0] ?? '';
  return {
    text,
    status,
    method: status === undefined ? first.split(' ')[0]! : (cseq.split(/\s+/)[1] ?? ''),
    body,
    at,
    header: (n) => all(n)[0],
    headers: all,
  };
}

export interface RequestSpec {
  readonly method: string;
  readonly uri: string;
  readonly transport: 'UDP' | 'TCP';
  /** Our address as it goes in Via (and Contact). */
  readonly local: { host: string; port: number };
  readonly callId: string;
  readonly cseq: number;
  readonly fromTag?: string;
  readonly toTag?: string;
  readonly branch?: string;
  readonly extra?: readonly string[];
  readonly contentType?: string;
  readonly body?: string;
}

let branches = 0;

/** A request as text (RFC 3261 8.1.1: the mandatory header fields, and Content-Length for streams). */
export function request(s: RequestSpec): string {
  const body = s.body ?? '';
  const lines = [
    `${s.method} ${s.uri} SIP/2.0`,
    `Via: SIP/2.0/${s.transport} ${s.local.host}:${s.local.port};branch=${s.branch ?? `z9hG4bK-raw-${++branches}`};rport`,
    'Max-Forwards: 70',
    `From: <sip:raw@${s.local.host}:${s.local.port}>;tag=${s.fromTag ?? 'raw'}`,
    `To: <${s.uri}>${s.toTag === undefined ? '' : `;tag=${s.toTag}`}`,
    `Call-ID: ${s.callId}`,
    `CSeq: ${s.cseq} ${s.method === 'ACK' ? 'ACK' : s.method}`,
    `Contact: <sip:raw@${s.local.host}:${s.local.port}${s.transport === 'TCP' ? ';transport=tcp' : ''}>`,
    ...(s.extra ?? []),
    ...(s.contentType === undefined ? [] : [`Content-Type: ${s.contentType}`]),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ];
  return lines.join('\r\n');
}

/** A response to a received request, echoing its Via, From, To, Call-ID and CSeq (RFC 3261 8.2.6.2). */
export function response(req: RawMessage, status: number, reason: string, toTag = 'rawtag'): string {
  const to = req.header('To') ?? '';
  return [
    `SIP/2.0 ${status} ${reason}`,
    ...req.headers('Via').map((v) => `Via: ${v}`),
    `From: ${req.header('From')}`,
    `To: ${to}${/;tag=/.test(to) ? '' : `;tag=${toTag}`}`,
    `Call-ID: ${req.header('Call-ID')}`,
    `CSeq: ${req.header('CSeq')}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Frames a byte stream into SIP messages by Content-Length (RFC 3261 18.3). */
class Framer {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer, out: (m: RawMessage) => void): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    for (;;) {
      // RFC 5626 keep-alives (CRLF) between messages.
      while (this.#buf.length > 0 && (this.#buf[0] === 13 || this.#buf[0] === 10)) this.#buf = this.#buf.subarray(1);
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.#buf.toString('latin1', 0, end);
      const len = Number(/\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)/i.exec(head)?.[1] ?? 0);
      if (this.#buf.length < end + 4 + len) return;
      const text = this.#buf.toString('utf8', 0, end + 4 + len);
      this.#buf = this.#buf.subarray(end + 4 + len);
      out(parseRaw(text));
    }
  }
}

/** Messages as they arrive, with waiting by predicate. */
class Inbox {
  readonly all: RawMessage[] = [];
  readonly #waiters: Array<{ pred: (m: RawMessage) => boolean; resolve: (m: RawMessage) => void }> = [];
  readonly #listeners: Array<(m: RawMessage) => void> = [];
  /** Call `fn` for every message from now on (to answer requests as they come). */
  listen(fn: (m: RawMessage) => void): void {
    this.#listeners.push(fn);
  }
  add(m: RawMessage): void {
    this.all.push(m);
    for (const l of this.#listeners) l(m);
    for (const w of [...this.#waiters])
      if (w.pred(m)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(m);
      }
  }
  next(pred: (m: RawMessage) => boolean, timeoutMs = 10_000, what = 'a message'): Promise<RawMessage> {
    const seen = this.all.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const w = {
        pred,
        resolve: (m: RawMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      this.#waiters.push(w);
    });
  }
}

export interface TcpPeer {
  readonly socket: net.Socket;
  readonly local: { host: string; port: number };
  readonly inbox: Inbox;
  /** Settles with the socket error code (ECONNRESET ...) or 'closed'. */
  readonly ended: Promise<string>;
  send(text: string): void;
  close(): void;
}

function tcpPeer(socket: net.Socket, shared?: Inbox): TcpPeer {
  const inbox = new Inbox();
  const framer = new Framer();
  socket.on('data', (c: Buffer) =>
    framer.push(c, (m) => {
      inbox.add(m);
      shared?.add(m);
    }),
  );
  const ended = new Promise<string>((resolve) => {
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    socket.once('close', () => resolve('closed'));
  });
  return {
    socket,
    local: { host: socket.localAddress ?? '127.0.0.1', port: socket.localPort ?? 0 },
    inbox,
    ended,
    send: (text) => socket.write(text),
    close: () => socket.destroy(),
  };
}

/** A TCP connection to host:port. */
export async function connectTcp(host: string, port: number): Promise<TcpPeer> {
  const socket = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  return tcpPeer(socket);
}

/** A TCP listener collecting, in one inbox, what peers send over the connections they open (each in `peers`). */
export async function listenTcp(host = '127.0.0.1'): Promise<{
  readonly port: number;
  readonly inbox: Inbox;
  readonly peers: TcpPeer[];
  close(): Promise<void>;
}> {
  const inbox = new Inbox();
  const peers: TcpPeer[] = [];
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    peers.push(tcpPeer(s, inbox));
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    inbox,
    peers,
    close: () =>
      new Promise<void>((r) => {
        for (const p of peers) p.close();
        server.close(() => r());
      }),
  };
}

export interface UdpPeer {
  readonly local: { host: string; port: number };
  readonly inbox: Inbox;
  send(text: string, port: number, host?: string): void;
  close(): Promise<void>;
}

export async function udpPeer(host = '127.0.0.1'): Promise<UdpPeer> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, host, () => r()));
  const inbox = new Inbox();
  socket.on('message', (b) => inbox.add(parseRaw(b.toString('utf8'))));
  return {
    local: { host, port: socket.address().port },
    inbox,
    send: (text, port, to = '127.0.0.1') => socket.send(text, port, to),
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}
