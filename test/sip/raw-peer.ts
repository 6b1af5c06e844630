/**
 * A raw SIP peer for tests: a UDP socket or a TCP listener on loopback whose
 * messages the test writes by hand from the RFC text, so our stack is checked
 * against something it did not produce. Framing over TCP follows RFC 3261
 * 18.3 (header section up to the empty line, then Content-Length bytes).
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface RawMessage {
  /** The whole message as received. */
  readonly text: string;
  readonly startLine: string;
  readonly body: string;
  /** Remote port (UDP) of the sender. */
  readonly port: number;
  /** The TCP connection it came on. */
  readonly socket?: net.Socket;
  /** First value of a header (case-insensitive name; no compact forms: our stack writes full names). */
  header(name: string): string | undefined;
  /** Every line of a header, in order. */
  headers(name: string): string[];
}

function rawMessage(text: string, port: number, socket?: net.Socket): RawMessage {
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const lines = head.split('\r\n');
  const all = (name: string) =>
    lines
      .slice(1)
      .filter((l) => l.slice(0, l.indexOf(':')).trim().toLowerCase() === name.toLowerCase())
      .map((l) => l.slice(l.indexOf(':') + 1).trim());
  return {
    text,
    startLine: lines[0]!,
    body: split < 0 ? '' : text.slice(split + 4),
    port,
    socket,
    header: (name) => all(name)[0],
    headers: all,
  };
}

export interface RawPeer {
  readonly transport: 'udp' | 'tcp';
  readonly port: number;
  /** A SIP URI of this peer, with ;transport=tcp over TCP. */
  uri(user?: string): string;
  /** The next message whose text matches (or that satisfies a test), waiting at most `ms`; undefined when none came. */
  next(match: RegExp | ((m: RawMessage) => boolean), ms: number): Promise<RawMessage | undefined>;
  /**
   * The next request of `method` that is not a retransmission of one already
   * taken with next() or nextNew() (same Call-ID and CSeq): over UDP with
   * short timers, a loaded machine retransmits before the peer answers.
   */
  nextNew(method: string, ms: number): Promise<RawMessage | undefined>;
  /** Everything received so far that matches (without consuming it). */
  received(match: RegExp): RawMessage[];
  /** Forget what arrived so far. */
  clear(): void;
  /** Send to the sender of `to` (its UDP port, or its TCP connection). */
  reply(to: RawMessage, text: string): void;
  /** UDP: send to a port on 127.0.0.1. */
  sendTo(port: number, text: string): void;
  /** TCP: ended connections (the peer saw a FIN) and reset ones (ECONNRESET). */
  readonly closes: { fin: number; reset: number };
  /**
   * UDP: an OPTIONS to our user agent at `port`, awaited twice over. Our
   * stack answers in the order datagrams arrive, and loopback keeps order, so
   * once both answers are back, whatever it sent in reply to earlier messages
   * has arrived too (also what it deferred to the next turn of its loop).
   * This is how a test knows something was *not* sent, without sleeping.
   */
  settle(port: number): Promise<boolean>;
}

/** Wait for a condition, polled every few ms, at most `ms`: tests never sleep a fixed time. */
export async function until(cond: () => boolean, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

export async function rawPeer(
  t: { teardown(fn: () => unknown): void },
  transport: 'udp' | 'tcp' = 'udp',
  host = '127.0.0.1',
): Promise<RawPeer> {
  const inbox: RawMessage[] = [];
  const log: RawMessage[] = [];
  let wake: (() => void) | undefined;
  const push = (m: RawMessage) => {
    inbox.push(m);
    log.push(m);
    wake?.();
  };
  const closes = { fin: 0, reset: 0 };
  let port: number;
  let send: (to: RawMessage, text: string) => void;
  let sendTo: (p: number, text: string) => void = () => {
    throw new Error('sendTo is for UDP peers');
  };
  if (transport === 'udp') {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, host, () => r()));
    t.teardown(() => new Promise<void>((r) => sock.close(() => r())));
    sock.on('message', (b, rinfo) => push(rawMessage(b.toString('utf8'), rinfo.port)));
    port = sock.address().port;
    send = (to, text) => sock.send(text, to.port, '127.0.0.1');
    sendTo = (p, text) => sock.send(text, p, '127.0.0.1');
  } else {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      let buf = Buffer.alloc(0);
      s.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('utf8');
          const cl = /^content-length\s*:\s*(\d+)/im.exec(head);
          const total = end + 4 + (cl === null ? 0 : Number(cl[1]));
          if (buf.length < total) return;
          push(rawMessage(buf.subarray(0, total).toString('utf8'), s.remotePort ?? 0, s));
          buf = buf.subarray(total);
        }
      });
      s.on('end', () => {
        closes.fin++;
        s.end();
      });
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET') closes.reset++;
      });
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, host, () => r()));
    t.teardown(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    port = (server.address() as net.AddressInfo).port;
    send = (to, text) => to.socket!.write(text);
  }
  let probes = 0;
  /** Call-ID and CSeq of the requests next() handed out. */
  const taken = new Set<string>();
  const peer: RawPeer = {
    transport,
    port,
    closes,
    uri: (user = 'mcu') => `sip:${user}@${host}:${port}${transport === 'tcp' ? ';transport=tcp' : ''}`,
    async next(match, ms) {
      const test = typeof match === 'function' ? match : (m: RawMessage) => match.test(m.text);
      const deadline = Date.now() + ms;
      for (;;) {
        const i = inbox.findIndex(test);
        if (i >= 0) {
          const m = inbox.splice(i, 1)[0]!;
          if (!m.startLine.startsWith('SIP/')) taken.add(`${m.header('call-id')}|${m.header('cseq')}`);
          return m;
        }
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        await new Promise<void>((r) => {
          const timer = setTimeout(r, left);
          wake = () => {
            clearTimeout(timer);
            r();
          };
        });
      }
    },
    nextNew: (method, ms) =>
      peer.next(
        (m) => m.startLine.startsWith(`${method} `) && !taken.has(`${m.header('call-id')}|${m.header('cseq')}`),
        ms,
      ),
    received: (match) => log.filter((m) => match.test(m.text)),
    clear: () => {
      inbox.length = 0;
    },
    reply: (to, text) => send(to, text),
    sendTo: (p, text) => sendTo(p, text),
    async settle(target) {
      for (let round = 0; round < 2; round++) {
        const id = `probe-${port}-${++probes}`;
        sendTo(
          target,
          [
            `OPTIONS sip:probe@127.0.0.1:${target} SIP/2.0`,
            `Via: SIP/2.0/UDP ${host}:${port};branch=z9hG4bK${id};rport`,
            'Max-Forwards: 70',
            `From: <sip:probe@${host}:${port}>;tag=${id}`,
            `To: <sip:probe@127.0.0.1:${target}>`,
            `Call-ID: ${id}`,
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
        );
        if ((await peer.next(new RegExp(`^SIP/2\\.0 [\\s\\S]*Call-ID: ${id}\r\n`), 3_000)) === undefined) return false;
      }
      return true;
    },
  };
  return peer;
}

/**
 * A response to `req` built as RFC 3261 8.2.6.2 says: Via, From, Call-ID and
 * CSeq copied, To copied with our tag added when it has none.
 */
export function responseTo(
  req: RawMessage,
  status: number,
  reason: string,
  opts: { toTag?: string; headers?: readonly string[]; body?: string; contentType?: string } = {},
): string {
  const to = req.header('to')!;
  const lines = [
    `SIP/2.0 ${status} ${reason}`,
    ...req.headers('via').map((v) => `Via: ${v}`),
    `From: ${req.header('from')}`,
    `To: ${/;\s*tag=/i.test(to) || opts.toTag === undefined ? to : `${to};tag=${opts.toTag}`}`,
    `Call-ID: ${req.header('call-id')}`,
    `CSeq: ${req.header('cseq')}`,
    ...(opts.headers ?? []),
  ];
  const body = opts.body ?? '';
  if (body.length > 0) lines.push(`Content-Type: ${opts.contentType ?? 'application/sdp'}`);
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
  return lines.join('\r\n');
}

/** A session offer as an MCU puts it in the 2xx to a body-less INVITE: audio, video and a BFCP stream. */
export const MCU_OFFER = [
  'v=0',
  'o=mcu 2890844526 2890844526 IN IP4 127.0.0.1',
  's=conference',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 49170 RTP/AVP 8 0 101',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=sendrecv',
  'm=video 51372 RTP/AVP 97 98',
  'a=rtpmap:97 H264/90000',
  'a=fmtp:97 profile-level-id=42e01f;packetization-mode=1',
  'a=rtpmap:98 H263-1998/90000',
  'm=application 5070 TCP/BFCP *',
  'a=floorctrl:s-only',
  '',
].join('\r\n');
