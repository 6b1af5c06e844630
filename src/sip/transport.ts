import dgram from 'node:dgram';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../core/index.js';
import { SipError } from './errors.js';
import { buildResponse, type SipMessage, type SipRequest, serialize } from './message.js';
import {
  DEFAULT_MAX_HEADER_SIZE,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_STREAM_MESSAGE_SIZE,
  parseMessage,
  StreamFramer,
} from './parser.js';

export type TransportName = 'udp' | 'tcp' | 'tls';

export interface ListenOptions {
  readonly transport: TransportName;
  /** A literal IP address (loopback in tests). */
  readonly host: string;
  /** 0 picks an ephemeral port. */
  readonly port: number;
}

export interface TlsOptions {
  /** PEM certificate chain and key of our TLS server (required to listen on TLS). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Trusted CA certificates for verifying peers; the system store when absent. */
  readonly ca?: string | Buffer | Array<string | Buffer>;
  /** Verify the peer's certificate (default true). Turning it off is for tests only. */
  readonly rejectUnauthorized?: boolean;
  /** Server name for SNI and certificate checking, when connecting to an IP address. */
  readonly servername?: string;
}

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface Destination extends Address {
  readonly transport: TransportName;
}

/** A message as received, with where it came from. */
export interface Inbound {
  readonly message: SipMessage;
  readonly transport: TransportName;
  readonly remote: Address;
  readonly local: Address;
  /**
   * The connection it arrived on (stream transports), or the UDP socket it
   * arrived on: responses go back over it (RFC 3261 18.2.2; from the same
   * socket over UDP, so a multi-homed host answers from the address asked).
   */
  readonly flow?: Flow;
}

/** A stream connection, or a UDP socket with one peer's address, as seen by the upper layers. */
export interface Flow {
  readonly transport: TransportName;
  readonly remote: Address;
  readonly closed: boolean;
}

/**
 * The stream connection a message went out on (what `send` returns over TCP
 * and TLS). A client transaction watches it while it waits for its final
 * response: when the connection closes, every watcher hears of it at once, as
 * a transport error (RFC 3261 8.1.3.1, 18.4), instead of waiting for Timer B
 * or F.
 */
export interface SentOver {
  readonly closed: boolean;
  watch(onClosed: (err: SipError) => void): void;
  unwatch(onClosed: (err: SipError) => void): void;
}

/** Counters since start, and what is held now (a snapshot: read it again for fresh values). */
export interface TransportStats {
  /** Messages received and sent (datagrams and stream messages). */
  readonly received: number;
  readonly sent: number;
  /** Messages that failed to parse: dropped or answered 400 (a stream connection is then closed). */
  readonly malformed: number;
  /** Messages or stream header sections beyond the size limits: 513 when answerable, a stream is closed. */
  readonly oversized: number;
  /** Stream connections opened since start, both directions. */
  readonly connections: number;
  /** Stream connections open now, both directions (TLS handshakes and connects in progress included). */
  readonly openConnections: number;
  /** Inbound connections refused at accept: over maxConnections or maxConnectionsPerAddress. */
  readonly connectionsRefused: number;
  /** Outbound connections not opened because maxConnections was reached: their sends failed. */
  readonly connectsRefused: number;
  /** Sends refused because a connection's queue would pass maxQueuedBytes (an open connection is then closed). */
  readonly queueOverflows: number;
  /** Bytes now waiting to be sent: written and not yet taken by the kernel, or queued until a connection opens. */
  readonly queuedBytes: number;
  /** Bytes of partial messages now held by the stream framers. */
  readonly bufferedBytes: number;
}

type Counters = {
  -readonly [K in Exclude<keyof TransportStats, 'openConnections' | 'queuedBytes' | 'bufferedBytes'>]: number;
};

export interface TransportLayerOptions {
  readonly listen: readonly ListenOptions[];
  readonly tls?: TlsOptions;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Largest message accepted, in bytes: over UDP, and over TCP/TLS unless maxStreamMessageSize is set. */
  readonly maxMessageSize?: number;
  /** Largest message accepted over TCP/TLS, in bytes. */
  readonly maxStreamMessageSize?: number;
  /** Largest header section accepted over TCP/TLS, in bytes (default DEFAULT_MAX_HEADER_SIZE, 64 KiB). */
  readonly maxHeaderSize?: number;
  /** Bytes one connection may hold unsent, before or after it is open (default DEFAULT_MAX_QUEUED_BYTES). */
  readonly maxQueuedBytes?: number;
  /** Stream connections open at once, both directions (default DEFAULT_MAX_CONNECTIONS). */
  readonly maxConnections?: number;
  /** Inbound stream connections from one IP address (default DEFAULT_MAX_CONNECTIONS_PER_ADDRESS). */
  readonly maxConnectionsPerAddress?: number;
  /** Close stream connections idle this long (ms). */
  readonly idleTimeoutMs?: number;
  /** Give up connecting after this long (ms). */
  readonly connectTimeoutMs?: number;
  /** Receive buffer asked of the kernel for each UDP socket, bytes (default DEFAULT_UDP_RECEIVE_BUFFER). */
  readonly udpReceiveBufferBytes?: number;
  readonly onMessage: (inbound: Inbound) => void;
}

const DEFAULT_IDLE_MS = 120_000; // 2 min without a whole message closes a connection (RFC 5626 keeps flows alive with CRLF).
const DEFAULT_CONNECT_MS = 5_000; // ms to establish TCP/TLS (and an inbound TLS handshake) before giving up
const LINGER_MS = 2_000; // ms a peer has to close its side after our FIN before the socket is destroyed
/**
 * Open stream connections, both directions. The daemon keeps one per MCU
 * (70-130) plus what MCUs and proxies open towards it; a file-descriptor
 * budget far below the usual 4,096 ulimit.
 */
export const DEFAULT_MAX_CONNECTIONS = 1_024;
/** Inbound connections from one address: an MCU or proxy needs a few; more is a fault or an attack. */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 32;
/**
 * Bytes a connection may hold unsent (RFC 3261 gives no flow control above
 * TCP): a peer that stops reading costs at most this much (plus one message,
 * since a message is always accepted on a connection with nothing queued, so
 * a full conference state larger than the cap still goes out).
 */
export const DEFAULT_MAX_QUEUED_BYTES = 1_048_576;
/**
 * A UDP socket's receive buffer. The kernel's default (Linux: `net.core.rmem_default`, 208 KiB) overflowed in a
 * national dial: the answers and notifications of 62 links and 74 rooms arrive within milliseconds, each
 * datagram holding about 2 KiB of buffer whatever its size, and every one dropped costs its sender's
 * retransmission, 500 ms later (RFC 3261 Timer E/G). Linux grants at most `net.core.rmem_max`.
 */
export const DEFAULT_UDP_RECEIVE_BUFFER = 4_194_304;

type OnSendError = (err: SipError) => void;

/** Bytes of small messages gathered per connection and tick before they are written together. */
const BATCH_MAX = 65_536;

/** The numeric limits, checked once when the transport is built. */
const LIMITS = [
  'maxMessageSize',
  'maxStreamMessageSize',
  'maxHeaderSize',
  'maxQueuedBytes',
  'maxConnections',
  'maxConnectionsPerAddress',
  'idleTimeoutMs',
  'connectTimeoutMs',
  'udpReceiveBufferBytes',
] as const;

/**
 * Address families of the hosts datagrams went to: a handful of MCUs get every datagram, and `isIP` runs a
 * regular expression each time (a measurable share of a chair command's CPU, issue 11). Bounded: cleared
 * when full.
 */
const families = new Map<string, number>();
const FAMILIES_MAX = 4_096;

/**
 * The UDP sockets' address lookup: destinations are IP literals (no DNS on
 * this network, as for TCP and TLS), so answer at once instead of through
 * dns.lookup and a tick per datagram.
 */
function literalLookup(
  host: string,
  _family: unknown,
  cb: (err: Error | null, address: string, family: number) => void,
): void {
  let family = families.get(host);
  if (family === undefined) {
    family = isIP(host);
    if (families.size >= FAMILIES_MAX) families.clear();
    families.set(host, family);
  }
  if (family === 0) cb(new SipError('SIP_ERR_TRANSPORT', `not an IP address: ${host}`), host, 0);
  else cb(null, host, family);
}

/** A bound UDP socket. */
class UdpEndpoint {
  closed = false;
  constructor(
    readonly socket: dgram.Socket,
    readonly local: Address,
  ) {}
}

/** A datagram's socket and source: answering through it keeps UDP symmetric (RFC 3581 4, multi-homed hosts). */
class UdpFlow implements Flow {
  readonly transport: TransportName = 'udp';
  constructor(
    readonly endpoint: UdpEndpoint,
    readonly remote: Address,
  ) {}

  get closed(): boolean {
    return this.endpoint.closed;
  }
}

class Connection implements Flow, SentOver {
  readonly transport: TransportName;
  readonly remote: Address;
  readonly local: Address;
  readonly key: string;
  closed = false;
  connected: boolean;
  lastActivity: number;
  idleTimer?: TimerHandle;
  connectTimer?: TimerHandle;
  readonly socket: net.Socket;
  readonly framer: StreamFramer;
  /** Writes queued until the connection is up, with their error callbacks, and their byte count. */
  queue: Array<[Buffer, OnSendError | undefined]> = [];
  queueBytes = 0;
  /**
   * Messages sent on the open connection in the current tick, written together at its end (one write
   * system call for the answers to a chunk of pipelined requests, or a command's requests to one MCU).
   */
  batch: Buffer[] | undefined;
  batchBytes = 0;
  /** Who waits for an answer over this connection (client transactions). */
  readonly watchers = new Set<OnSendError>();

  constructor(
    transport: TransportName,
    socket: net.Socket,
    remote: Address,
    local: Address,
    connected: boolean,
    framer: StreamFramer,
    now: number,
  ) {
    this.transport = transport;
    this.socket = socket;
    this.remote = remote;
    this.local = local;
    this.key = `${transport}:${remote.host}:${remote.port}`;
    this.connected = connected;
    this.framer = framer;
    this.lastActivity = now;
  }

  watch(onClosed: OnSendError): void {
    this.watchers.add(onClosed);
  }

  unwatch(onClosed: OnSendError): void {
    this.watchers.delete(onClosed);
  }
}

/** Write what a connection's tick gathered (scheduled with process.nextTick by `send`). */
function flushBatch(c: Connection): void {
  const batch = c.batch;
  if (batch === undefined) return;
  c.batch = undefined;
  const bytes = c.batchBytes;
  c.batchBytes = 0;
  if (c.socket.destroyed) return;
  c.socket.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes));
}

/**
 * UDP, TCP and TLS transports behind one send/receive interface (RFC 3261 18).
 * Stream connections are reused by remote address, framed by Content-Length,
 * run with Nagle off and closed after an idle period. Malformed input is
 * counted, answered 400 when it is a request we can still answer, and never
 * thrown out of a socket handler.
 *
 * A SIP port faces the network, so every resource a peer can make us hold is
 * capped and each refusal counted: connections (overall and per inbound
 * address), unsent bytes per connection (write backlog and the queue of a
 * connection being opened), the header section and the message size, and the
 * time a connection may go without completing a message.
 */
export class TransportLayer {
  readonly #n: Counters = {
    received: 0,
    sent: 0,
    malformed: 0,
    oversized: 0,
    connections: 0,
    connectionsRefused: 0,
    connectsRefused: 0,
    queueOverflows: 0,
  };
  readonly #opts: TransportLayerOptions;
  readonly #clock: Clock;
  readonly #log?: Logger;
  readonly #maxDatagram: number;
  readonly #maxStream: number;
  readonly #maxHeader: number;
  readonly #maxQueued: number;
  readonly #maxConns: number;
  readonly #maxPerAddress: number;
  readonly #idleMs: number;
  readonly #connectMs: number;
  readonly #udp: UdpEndpoint[] = [];
  readonly #servers: Array<{ server: net.Server; transport: TransportName; local: Address }> = [];
  /** Connections by remote address, for reuse; #all also holds any a newer one displaced. */
  readonly #conns = new Map<string, Connection>();
  readonly #all = new Set<Connection>();
  /** Every open stream socket (accepted, handshaking, connecting or up): what maxConnections counts. */
  readonly #sockets = new Set<net.Socket>();
  readonly #perAddress = new Map<string, number>();
  readonly #bound: Destination[] = [];
  #closed = false;

  constructor(opts: TransportLayerOptions) {
    for (const name of LIMITS) {
      const v = opts[name];
      if (v !== undefined && !(Number.isSafeInteger(v) && v > 0))
        throw new SipError('SIP_ERR_INVALID_ARGUMENT', `${name} must be a positive integer, got ${String(v)}`, {
          details: { path: name },
        });
    }
    this.#opts = opts;
    this.#clock = opts.clock;
    this.#log = opts.logger;
    // A datagram is bounded by UDP itself; a stream message only by us (RFC 3261 18.3).
    this.#maxDatagram = opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxStream = opts.maxStreamMessageSize ?? opts.maxMessageSize ?? DEFAULT_MAX_STREAM_MESSAGE_SIZE;
    this.#maxHeader = opts.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
    this.#maxQueued = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.#maxConns = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#maxPerAddress = opts.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
    this.#idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    this.#connectMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_MS;
  }

  /** Counters, and the connections and bytes held now (computed on each read: not for hot paths). */
  get stats(): TransportStats {
    let queuedBytes = 0;
    let bufferedBytes = 0;
    for (const c of this.#all) {
      queuedBytes += c.connected ? c.socket.writableLength + c.batchBytes : c.queueBytes;
      bufferedBytes += c.framer.buffered;
    }
    return { ...this.#n, openConnections: this.#sockets.size, queuedBytes, bufferedBytes };
  }

  /** The addresses we listen on, with their actual ports. */
  get listening(): readonly Destination[] {
    return this.#bound;
  }

  /** Our listening address for a transport (used in Via and Contact). */
  localFor(transport: TransportName): Destination | undefined {
    return this.#bound.find((b) => b.transport === transport);
  }

  async start(): Promise<void> {
    for (const l of this.#opts.listen) {
      if (isIP(l.host) === 0)
        throw new SipError('SIP_ERR_INVALID_ARGUMENT', `listen host must be an IP address: ${l.host}`);
      if (l.transport === 'udp') await this.#listenUdp(l);
      else await this.#listenStream(l);
    }
  }

  async #listenUdp(l: ListenOptions): Promise<void> {
    const socket = dgram.createSocket({ type: isIP(l.host) === 6 ? 'udp6' : 'udp4', lookup: literalLookup });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) =>
        reject(new SipError('SIP_ERR_TRANSPORT', `cannot bind udp ${l.host}:${l.port}`, { cause: err })),
      );
      socket.bind(l.port, l.host, () => resolve());
    });
    socket.removeAllListeners('error');
    socket.on('error', (err) => this.#log?.warn({ err }, 'udp socket error'));
    this.#sizeReceiveBuffer(socket);
    const a = socket.address();
    const u = new UdpEndpoint(socket, { host: l.host, port: a.port });
    this.#udp.push(u);
    this.#bound.push({ transport: 'udp', ...u.local });
    socket.on('message', (buf, rinfo) => this.#onDatagram(u, buf, rinfo));
  }

  #sizeReceiveBuffer(socket: dgram.Socket): void {
    const asked = this.#opts.udpReceiveBufferBytes ?? DEFAULT_UDP_RECEIVE_BUFFER;
    try {
      socket.setRecvBufferSize(asked);
    } catch (err) {
      this.#log?.warn({ err, asked }, 'cannot size the UDP receive buffer: bursts may be dropped');
      return;
    }
    // Linux reports twice what it holds for data (the rest is its bookkeeping) and silently caps the request.
    const got = socket.getRecvBufferSize();
    if (got < asked)
      this.#log?.warn(
        { asked, got },
        `UDP receive buffer ${got} bytes, ${asked} asked: the kernel caps it (raise net.core.rmem_max); datagrams of a burst past it are dropped and wait for their retransmission`,
      );
  }

  async #listenStream(l: ListenOptions): Promise<void> {
    let server: net.Server;
    if (l.transport === 'tls') {
      const t = this.#opts.tls;
      if (t?.cert === undefined || t.key === undefined)
        throw new SipError('SIP_ERR_TLS', 'listening on TLS needs tls.cert and tls.key');
      // A handshake holds a connection slot: bound it like an outbound connect, not by Node's 120 s.
      server = tls.createServer({ cert: t.cert, key: t.key, ca: t.ca, handshakeTimeout: this.#connectMs });
      // Admission runs on the raw socket, before the handshake costs anything (prepended: ahead of TLS).
      server.prependListener('connection', (s: net.Socket) => this.#admit(s));
      server.on('secureConnection', (s: tls.TLSSocket) => this.#onAccept('tls', s));
      server.on('tlsClientError', (err) => this.#log?.debug({ err }, 'tls handshake failed'));
    } else {
      server = net.createServer((s) => {
        if (this.#admit(s)) this.#onAccept('tcp', s);
      });
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new SipError('SIP_ERR_TRANSPORT', `cannot listen ${l.transport} ${l.host}:${l.port}`, { cause: err })),
      );
      server.listen(l.port, l.host, () => resolve());
    });
    server.removeAllListeners('error');
    server.on('error', (err) => this.#log?.warn({ err }, 'stream server error'));
    const a = server.address() as net.AddressInfo;
    const local = { host: l.host, port: a.port };
    this.#servers.push({ server, transport: l.transport, local });
    this.#bound.push({ transport: l.transport, ...local });
  }

  /** Take an inbound socket into account, or refuse it (closed at once) over the connection caps. */
  #admit(socket: net.Socket): boolean {
    const host = socket.remoteAddress ?? '';
    const n = this.#perAddress.get(host) ?? 0;
    if (this.#closed || this.#sockets.size >= this.#maxConns || n >= this.#maxPerAddress) {
      if (!this.#closed) this.#n.connectionsRefused++;
      if (this.#log?.isLevelEnabled('debug'))
        this.#log.debug({ remote: host, open: this.#sockets.size, fromAddress: n }, 'connection refused');
      socket.destroy();
      return false;
    }
    this.#perAddress.set(host, n + 1);
    this.#track(socket, host);
    return true;
  }

  /** Count a socket against maxConnections (and its inbound address) until it closes. */
  #track(socket: net.Socket, inboundFrom?: string): void {
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      if (inboundFrom === undefined) return;
      const n = (this.#perAddress.get(inboundFrom) ?? 1) - 1;
      if (n <= 0) this.#perAddress.delete(inboundFrom);
      else this.#perAddress.set(inboundFrom, n);
    });
  }

  #onDatagram(u: UdpEndpoint, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    this.#n.received++;
    const flow = new UdpFlow(u, { host: rinfo.address, port: rinfo.port });
    const remote = flow.remote;
    // A datagram of CRLFs is a keep-alive (RFC 5626 4.4.1): nothing to do.
    if (buf.length <= 4 && (buf[0] === 13 || buf[0] === 10)) return;
    const r = parseMessage(buf, true, this.#maxDatagram);
    if (r.kind === 'message') {
      this.#trace('recv', 'udp', remote, buf);
      this.#deliver({ message: r.message, transport: 'udp', remote, local: u.local, flow });
    } else if (r.kind === 'error') {
      this.#countRefused(r.error);
      if (this.#log?.isLevelEnabled('debug')) this.#log.debug({ err: r.error, remote }, 'malformed datagram dropped');
      if (r.request !== undefined)
        this.#answerMalformed(r.request, r.status, r.error.message, (b) => u.socket.send(b, remote.port, remote.host));
    }
  }

  #countRefused(err: SipError): void {
    if (err.code === 'SIP_ERR_TOO_LARGE') this.#n.oversized++;
    else this.#n.malformed++;
  }

  /** A 400/505/513 for a request that failed to parse, when it still carries what a response needs. */
  #answerMalformed(req: SipRequest, status: number, why: string, send: (b: Buffer) => void): void {
    if (req.method === 'ACK') return;
    const h = req.headers;
    if (!h.has('via') || !h.has('call-id') || !h.has('cseq') || !h.has('from') || !h.has('to')) return;
    // The reason phrase names the problem (RFC 3261 21.4.1); keep it on one line.
    const reason = status === 400 ? `Bad Request (${why.replace(/[\r\n]/g, ' ').slice(0, 80)})` : undefined;
    try {
      send(serialize(buildResponse(req, status, reason)));
      this.#n.sent++;
    } catch (err) {
      this.#log?.debug({ err }, 'could not answer a malformed request');
    }
  }

  #onAccept(transport: TransportName, socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const remote = { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const local = { host: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    const c = new Connection(transport, socket, remote, local, true, this.#framer(), this.#clock.now());
    this.#register(c);
  }

  #framer(): StreamFramer {
    return new StreamFramer(this.#maxStream, this.#maxHeader);
  }

  #register(c: Connection): void {
    this.#conns.set(c.key, c);
    this.#all.add(c);
    this.#n.connections++;
    c.socket.on('data', (chunk: Buffer) => this.#onStreamData(c, chunk));
    c.socket.on('error', (err) => {
      if (this.#log?.isLevelEnabled('debug')) this.#log.debug({ err, remote: c.remote }, 'connection error');
      this.#failQueue(
        c,
        new SipError('SIP_ERR_TRANSPORT', `${c.transport} connection to ${c.remote.host}:${c.remote.port} failed`, {
          cause: err,
        }),
      );
    });
    c.socket.on('close', () => this.#dropConnection(c));
    this.#armIdle(c);
  }

  #armIdle(c: Connection): void {
    c.idleTimer = this.#clock.setTimeout(
      () => {
        if (c.closed) return;
        const idle = this.#clock.now() - c.lastActivity;
        if (idle >= this.#idleMs) this.#closeIdle(c);
        else this.#armIdle(c);
      },
      this.#idleMs - (this.#clock.now() - c.lastActivity),
    );
  }

  #closeIdle(c: Connection): void {
    // A peer trickling a message it never completes (slowloris) is idle too: only whole messages count.
    if (c.framer.buffered > 0 || c.socket.writableLength + c.batchBytes > 0) {
      this.#dropConnection(c);
      c.socket.destroy();
    } else this.#shut(c);
  }

  /**
   * Close gracefully (our FIN after what is written), but a peer that never
   * closes its side, or never reads, cannot keep the socket: it is destroyed
   * after LINGER_MS.
   */
  #shut(c: Connection): void {
    this.#dropConnection(c);
    flushBatch(c);
    c.socket.end();
    const timer = this.#clock.setTimeout(() => c.socket.destroy(), LINGER_MS);
    c.socket.once('close', () => this.#clock.clearTimeout(timer));
  }

  #dropConnection(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    this.#clock.clearTimeout(c.idleTimer);
    this.#clock.clearTimeout(c.connectTimer);
    if (this.#conns.get(c.key) === c) this.#conns.delete(c.key);
    this.#all.delete(c);
    const err = new SipError(
      'SIP_ERR_TRANSPORT',
      `${c.transport} connection to ${c.remote.host}:${c.remote.port} closed`,
    );
    this.#failQueue(c, err);
    if (c.watchers.size > 0) {
      const watchers = [...c.watchers];
      c.watchers.clear();
      for (const onClosed of watchers) onClosed(err);
    }
  }

  #failQueue(c: Connection, err: SipError): void {
    const q = c.queue;
    c.queue = [];
    c.queueBytes = 0;
    for (const [, onError] of q) onError?.(err);
    if (!c.closed) c.socket.destroy();
  }

  #onStreamData(c: Connection, chunk: Buffer): void {
    if (c.closed) return; // closing: what still arrives is not read
    for (const r of c.framer.push(chunk)) {
      // An answer to an earlier message of this chunk may have closed the connection (write backlog cap).
      if (c.closed) return;
      if (r.kind === 'message') {
        this.#n.received++;
        c.lastActivity = this.#clock.now();
        this.#trace('recv', c.transport, c.remote, r.message);
        this.#deliver({ message: r.message, transport: c.transport, remote: c.remote, local: c.local, flow: c });
      } else {
        // Where the next message starts is unknown: answer if possible, then close (RFC 4475 ncl, mcl01).
        this.#countRefused(r.error);
        if (this.#log?.isLevelEnabled('debug'))
          this.#log.debug({ err: r.error, remote: c.remote }, 'malformed stream message');
        if (r.request !== undefined)
          this.#answerMalformed(r.request, r.status, r.error.message, (b) => {
            flushBatch(c);
            c.socket.write(b);
          });
        this.#shut(c);
        return;
      }
    }
  }

  #deliver(inbound: Inbound): void {
    try {
      this.#opts.onMessage(inbound);
    } catch (err) {
      // A bug above us must not take the socket down.
      this.#log?.error({ err }, 'sip message handler failed');
    }
  }

  #trace(dir: 'recv' | 'send', transport: TransportName, peer: Address, msg: SipMessage | Buffer): void {
    if (this.#log === undefined || !this.#log.isLevelEnabled('debug')) return;
    const text = Buffer.isBuffer(msg) ? msg.toString('utf8') : serialize(msg).toString('utf8');
    this.#log.debug({ dir, transport, peer: `${peer.host}:${peer.port}`, sip: text }, `sip ${dir}`);
  }

  /**
   * Send serialized bytes. Over UDP, `flow` (the socket a request arrived on)
   * is the socket we send from. Over a stream transport, `flow` (the
   * connection a request arrived on) is used while open, then any connection
   * to the same address, then a new one. Errors arrive through `onError`,
   * never thrown. Returns the stream connection used (undefined over UDP and
   * when nothing was sent). Small messages sent on an open connection in one
   * tick are written together at its end (one system call).
   */
  send(buf: Buffer, dest: Destination, flow?: Flow, onError?: OnSendError): SentOver | undefined {
    if (this.#closed) {
      onError?.(new SipError('SIP_ERR_CLOSED', 'transport closed'));
      return undefined;
    }
    this.#trace('send', dest.transport, dest, buf);
    if (dest.transport === 'udp') {
      const u = flow instanceof UdpFlow && !flow.closed ? flow.endpoint : this.#udpFor(dest);
      if (u === undefined) {
        onError?.(new SipError('SIP_ERR_TRANSPORT', 'no udp listener to send from'));
        return undefined;
      }
      this.#n.sent++;
      // Without a callback Node queues no completion tick; only transactions want to hear of failures.
      if (onError === undefined) u.socket.send(buf, dest.port, dest.host);
      else
        u.socket.send(buf, dest.port, dest.host, (err) => {
          if (err)
            onError(new SipError('SIP_ERR_TRANSPORT', `udp send to ${dest.host}:${dest.port} failed`, { cause: err }));
        });
      return undefined;
    }
    let c =
      flow instanceof Connection && !flow.closed
        ? flow
        : this.#conns.get(`${dest.transport}:${dest.host}:${dest.port}`);
    if (c === undefined || c.closed) {
      const made = this.#connect(dest);
      if (made instanceof SipError) {
        onError?.(made);
        return undefined;
      }
      c = made;
    }
    if (!c.connected) {
      if (c.queueBytes > 0 && c.queueBytes + buf.length > this.#maxQueued) {
        // The connection may still come up: refuse this message, keep the ones queued.
        this.#n.queueOverflows++;
        onError?.(
          new SipError(
            'SIP_ERR_TRANSPORT',
            `${c.transport} connection to ${c.remote.host}:${c.remote.port} still opening with ${c.queueBytes} bytes queued (max ${this.#maxQueued})`,
          ),
        );
        return undefined;
      }
      c.queue.push([buf, onError]);
      c.queueBytes += buf.length;
    } else {
      // A large message goes out at once, after what was gathered: batching saves system calls on small
      // messages, and the backlog cap below keeps meaning what the kernel has not taken.
      const direct = c.batchBytes + buf.length > BATCH_MAX;
      if (direct) flushBatch(c);
      // Bytes the kernel has not taken: the peer reads slower than we write, or not at all.
      const backlog = c.socket.writableLength + c.batchBytes;
      if (backlog > 0 && backlog + buf.length > this.#maxQueued) {
        this.#n.queueOverflows++;
        if (this.#log?.isLevelEnabled('debug'))
          this.#log.debug({ remote: c.remote, backlog }, 'write backlog over the cap: connection closed');
        this.#dropConnection(c);
        c.socket.destroy();
        onError?.(
          new SipError(
            'SIP_ERR_TRANSPORT',
            `${c.transport} connection to ${c.remote.host}:${c.remote.port} closed: ${backlog} bytes unsent (max ${this.#maxQueued})`,
          ),
        );
        return undefined;
      }
      if (direct) c.socket.write(buf);
      else {
        if (c.batch === undefined) {
          c.batch = [buf];
          process.nextTick(flushBatch, c);
        } else c.batch.push(buf);
        c.batchBytes += buf.length;
      }
    }
    c.lastActivity = this.#clock.now();
    this.#n.sent++;
    return c;
  }

  /** The UDP socket for a request: the first of the destination's address family (the one Via names). */
  #udpFor(dest: Destination): UdpEndpoint | undefined {
    if (this.#udp.length === 1) return this.#udp[0];
    const family = isIP(dest.host);
    return this.#udp.find((x) => isIP(x.local.host) === family) ?? this.#udp[0];
  }

  #connect(dest: Destination): Connection | SipError {
    if (isIP(dest.host) === 0) return new SipError('SIP_ERR_TRANSPORT', `not an IP address: ${dest.host}`);
    if (this.#sockets.size >= this.#maxConns) {
      this.#n.connectsRefused++;
      return new SipError(
        'SIP_ERR_TRANSPORT',
        `cannot connect to ${dest.host}:${dest.port}: ${this.#sockets.size} connections open (maxConnections)`,
      );
    }
    // TCP leaves from the address our Via names, not the one the kernel's route picks: on a multi-homed host
    // (or many simulated MCUs on loopback) the peer then answers where we listen (RFC 3261 18.2.2) and its
    // per-address limits count us as the one host we are. (TLS: tls.connect's types take no localAddress.)
    const via = this.localFor(dest.transport)?.host;
    const localAddress =
      via !== undefined && isIP(via) === isIP(dest.host) && via !== '0.0.0.0' && via !== '::' ? via : undefined;
    let socket: net.Socket;
    if (dest.transport === 'tls') {
      const t = this.#opts.tls ?? {};
      socket = tls.connect({
        host: dest.host,
        port: dest.port,
        ca: t.ca,
        cert: t.cert,
        key: t.key,
        rejectUnauthorized: t.rejectUnauthorized ?? true,
        servername: t.servername,
      });
    } else socket = net.connect({ host: dest.host, port: dest.port, localAddress });
    this.#track(socket);
    socket.setNoDelay(true);
    const c = new Connection(
      dest.transport,
      socket,
      { host: dest.host, port: dest.port },
      { host: '', port: 0 },
      false,
      this.#framer(),
      this.#clock.now(),
    );
    c.connectTimer = this.#clock.setTimeout(() => {
      if (!c.connected)
        this.#failQueue(c, new SipError('SIP_ERR_TRANSPORT', `connect to ${dest.host}:${dest.port} timed out`));
    }, this.#connectMs);
    socket.once(dest.transport === 'tls' ? 'secureConnect' : 'connect', () => {
      this.#clock.clearTimeout(c.connectTimer);
      c.connected = true;
      const q = c.queue;
      c.queue = [];
      c.queueBytes = 0;
      if (q.length > 0) socket.write(q.length === 1 ? q[0]![0] : Buffer.concat(q.map(([b]) => b)));
    });
    this.#register(c);
    return c;
  }

  /** Close every socket; idempotence is the caller's (the user agent's close). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const c of [...this.#all]) {
      this.#dropConnection(c);
      flushBatch(c);
      c.socket.destroy();
    }
    // Sockets not yet connections: TLS handshakes in progress.
    for (const s of this.#sockets) s.destroy();
    for (const u of this.#udp) u.closed = true;
    await Promise.all([
      // Every socket still in the set has yet to emit 'close' (it leaves the set then).
      ...[...this.#sockets].map((s) => new Promise((r) => s.once('close', r))),
      ...this.#udp.map((u) => new Promise<void>((r) => u.socket.close(() => r()))),
      ...this.#servers.map((s) => new Promise<void>((r) => s.server.close(() => r()))),
    ]);
  }
}
