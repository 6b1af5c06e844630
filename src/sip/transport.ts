import dgram from 'node:dgram';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../core/index.js';
import { SipError } from './errors.js';
import { buildResponse, type SipMessage, type SipRequest, serialize } from './message.js';
import { DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_STREAM_MESSAGE_SIZE, parseMessage, StreamFramer } from './parser.js';

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
  /** The connection it arrived on (stream transports): responses go back over it (RFC 3261 18.2.2). */
  readonly flow?: Flow;
}

/** A stream connection as seen by the upper layers. */
export interface Flow {
  readonly transport: TransportName;
  readonly remote: Address;
  readonly closed: boolean;
}

export interface TransportStats {
  received: number;
  sent: number;
  malformed: number;
  connections: number;
}

export interface TransportLayerOptions {
  readonly listen: readonly ListenOptions[];
  readonly tls?: TlsOptions;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Largest message accepted, in bytes: over UDP, and over TCP/TLS unless maxStreamMessageSize is set. */
  readonly maxMessageSize?: number;
  /** Largest message accepted over TCP/TLS, in bytes. */
  readonly maxStreamMessageSize?: number;
  /** Close stream connections idle this long (ms). */
  readonly idleTimeoutMs?: number;
  /** Give up connecting after this long (ms). */
  readonly connectTimeoutMs?: number;
  readonly onMessage: (inbound: Inbound) => void;
}

const DEFAULT_IDLE_MS = 120_000; // 2 min without traffic closes a connection (RFC 5626 keeps flows alive with CRLF).
const DEFAULT_CONNECT_MS = 5_000; // ms to establish TCP/TLS before the send fails

type OnSendError = (err: SipError) => void;

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
  const family = isIP(host);
  if (family === 0) cb(new SipError('SIP_ERR_TRANSPORT', `not an IP address: ${host}`), host, 0);
  else cb(null, host, family);
}

class Connection implements Flow {
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
  /** Writes queued until the connection is up, with their error callbacks. */
  queue: Array<[Buffer, OnSendError | undefined]> = [];

  constructor(
    transport: TransportName,
    socket: net.Socket,
    remote: Address,
    local: Address,
    connected: boolean,
    maxSize: number,
    now: number,
  ) {
    this.transport = transport;
    this.socket = socket;
    this.remote = remote;
    this.local = local;
    this.key = `${transport}:${remote.host}:${remote.port}`;
    this.connected = connected;
    this.framer = new StreamFramer(maxSize);
    this.lastActivity = now;
  }
}

/**
 * UDP, TCP and TLS transports behind one send/receive interface (RFC 3261 18).
 * Stream connections are reused by remote address, framed by Content-Length,
 * run with Nagle off and closed after an idle period. Malformed input is
 * counted, answered 400 when it is a request we can still answer, and never
 * thrown out of a socket handler.
 */
export class TransportLayer {
  readonly stats: TransportStats = { received: 0, sent: 0, malformed: 0, connections: 0 };
  readonly #opts: TransportLayerOptions;
  readonly #clock: Clock;
  readonly #log?: Logger;
  readonly #maxDatagram: number;
  readonly #maxStream: number;
  readonly #idleMs: number;
  readonly #udp: Array<{ socket: dgram.Socket; local: Address }> = [];
  readonly #servers: Array<{ server: net.Server; transport: TransportName; local: Address }> = [];
  readonly #conns = new Map<string, Connection>();
  readonly #bound: Destination[] = [];
  #closed = false;

  constructor(opts: TransportLayerOptions) {
    this.#opts = opts;
    this.#clock = opts.clock;
    this.#log = opts.logger;
    // A datagram is bounded by UDP itself; a stream message only by us (RFC 3261 18.3).
    this.#maxDatagram = opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxStream = opts.maxStreamMessageSize ?? opts.maxMessageSize ?? DEFAULT_MAX_STREAM_MESSAGE_SIZE;
    this.#idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
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
    const a = socket.address();
    const local = { host: l.host, port: a.port };
    this.#udp.push({ socket, local });
    this.#bound.push({ transport: 'udp', ...local });
    socket.on('message', (buf, rinfo) => this.#onDatagram(socket, local, buf, rinfo));
  }

  async #listenStream(l: ListenOptions): Promise<void> {
    let server: net.Server;
    if (l.transport === 'tls') {
      const t = this.#opts.tls;
      if (t?.cert === undefined || t.key === undefined)
        throw new SipError('SIP_ERR_TLS', 'listening on TLS needs tls.cert and tls.key');
      server = tls.createServer({ cert: t.cert, key: t.key, ca: t.ca });
      server.on('secureConnection', (s: tls.TLSSocket) => this.#onAccept('tls', s));
      server.on('tlsClientError', (err) => this.#log?.warn({ err }, 'tls handshake failed'));
    } else {
      server = net.createServer((s) => this.#onAccept('tcp', s));
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

  #onDatagram(socket: dgram.Socket, local: Address, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    this.stats.received++;
    const remote = { host: rinfo.address, port: rinfo.port };
    // A datagram of CRLFs is a keep-alive (RFC 5626 4.4.1): nothing to do.
    if (buf.length <= 4 && (buf[0] === 13 || buf[0] === 10)) return;
    const r = parseMessage(buf, true, this.#maxDatagram);
    if (r.kind === 'message') {
      this.#trace('recv', 'udp', remote, buf);
      this.#deliver({ message: r.message, transport: 'udp', remote, local });
    } else if (r.kind === 'error') {
      this.stats.malformed++;
      if (this.#log?.isLevelEnabled('debug')) this.#log.debug({ err: r.error, remote }, 'malformed datagram dropped');
      if (r.request !== undefined)
        this.#answerMalformed(r.request, r.status, r.error.message, (b) => socket.send(b, remote.port, remote.host));
    }
  }

  /** A 400/505 for a request that failed to parse, when it still carries what a response needs. */
  #answerMalformed(req: SipRequest, status: number, why: string, send: (b: Buffer) => void): void {
    if (req.method === 'ACK') return;
    const h = req.headers;
    if (!h.has('via') || !h.has('call-id') || !h.has('cseq') || !h.has('from') || !h.has('to')) return;
    // The reason phrase names the problem (RFC 3261 21.4.1); keep it on one line.
    const reason = status === 400 ? `Bad Request (${why.replace(/[\r\n]/g, ' ').slice(0, 80)})` : undefined;
    try {
      send(serialize(buildResponse(req, status, reason)));
      this.stats.sent++;
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
    const c = new Connection(transport, socket, remote, local, true, this.#maxStream, this.#clock.now());
    this.#register(c);
  }

  #register(c: Connection): void {
    this.#conns.set(c.key, c);
    this.stats.connections++;
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
    c.idleTimer = this.#clock.setTimeout(() => {
      if (c.closed) return;
      const idle = this.#clock.now() - c.lastActivity;
      if (idle >= this.#idleMs) c.socket.end();
      else this.#armIdle(c);
    }, this.#idleMs);
  }

  #dropConnection(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    this.#clock.clearTimeout(c.idleTimer);
    this.#clock.clearTimeout(c.connectTimer);
    if (this.#conns.get(c.key) === c) this.#conns.delete(c.key);
    this.#failQueue(
      c,
      new SipError('SIP_ERR_TRANSPORT', `${c.transport} connection to ${c.remote.host}:${c.remote.port} closed`),
    );
  }

  #failQueue(c: Connection, err: SipError): void {
    const q = c.queue;
    c.queue = [];
    for (const [, onError] of q) onError?.(err);
    if (!c.closed) c.socket.destroy();
  }

  #onStreamData(c: Connection, chunk: Buffer): void {
    c.lastActivity = this.#clock.now();
    for (const r of c.framer.push(chunk)) {
      if (r.kind === 'message') {
        this.stats.received++;
        this.#trace('recv', c.transport, c.remote, r.message);
        this.#deliver({ message: r.message, transport: c.transport, remote: c.remote, local: c.local, flow: c });
      } else {
        // Where the next message starts is unknown: answer if possible, then close (RFC 4475 ncl, mcl01).
        this.stats.malformed++;
        if (this.#log?.isLevelEnabled('debug'))
          this.#log.debug({ err: r.error, remote: c.remote }, 'malformed stream message');
        if (r.request !== undefined)
          this.#answerMalformed(r.request, r.status, r.error.message, (b) => c.socket.write(b));
        c.socket.end();
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
   * Send serialized bytes. Over a stream transport, `flow` (the connection a
   * request arrived on) is used while open, then any connection to the same
   * address, then a new one. Errors arrive through `onError`, never thrown.
   */
  send(buf: Buffer, dest: Destination, flow?: Flow, onError?: OnSendError): void {
    if (this.#closed) {
      onError?.(new SipError('SIP_ERR_CLOSED', 'transport closed'));
      return;
    }
    this.#trace('send', dest.transport, dest, buf);
    if (dest.transport === 'udp') {
      const u =
        this.#udp.length === 1
          ? this.#udp[0]
          : (this.#udp.find((x) => isIP(x.local.host) === isIP(dest.host)) ?? this.#udp[0]);
      if (u === undefined) {
        onError?.(new SipError('SIP_ERR_TRANSPORT', 'no udp listener to send from'));
        return;
      }
      this.stats.sent++;
      // Without a callback Node queues no completion tick; only transactions want to hear of failures.
      if (onError === undefined) u.socket.send(buf, dest.port, dest.host);
      else
        u.socket.send(buf, dest.port, dest.host, (err) => {
          if (err)
            onError(new SipError('SIP_ERR_TRANSPORT', `udp send to ${dest.host}:${dest.port} failed`, { cause: err }));
        });
      return;
    }
    let c =
      flow instanceof Connection && !flow.closed
        ? flow
        : this.#conns.get(`${dest.transport}:${dest.host}:${dest.port}`);
    if (c === undefined || c.closed) {
      const made = this.#connect(dest);
      if (made instanceof SipError) {
        onError?.(made);
        return;
      }
      c = made;
    }
    c.lastActivity = this.#clock.now();
    this.stats.sent++;
    if (!c.connected) c.queue.push([buf, onError]);
    else c.socket.write(buf);
  }

  #connect(dest: Destination): Connection | SipError {
    if (isIP(dest.host) === 0) return new SipError('SIP_ERR_TRANSPORT', `not an IP address: ${dest.host}`);
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
    } else socket = net.connect({ host: dest.host, port: dest.port });
    socket.setNoDelay(true);
    const c = new Connection(
      dest.transport,
      socket,
      { host: dest.host, port: dest.port },
      { host: '', port: 0 },
      false,
      this.#maxStream,
      this.#clock.now(),
    );
    c.connectTimer = this.#clock.setTimeout(() => {
      if (!c.connected)
        this.#failQueue(c, new SipError('SIP_ERR_TRANSPORT', `connect to ${dest.host}:${dest.port} timed out`));
    }, this.#opts.connectTimeoutMs ?? DEFAULT_CONNECT_MS);
    socket.once(dest.transport === 'tls' ? 'secureConnect' : 'connect', () => {
      this.#clock.clearTimeout(c.connectTimer);
      c.connected = true;
      const q = c.queue;
      c.queue = [];
      for (const [b] of q) socket.write(b);
    });
    this.#register(c);
    return c;
  }

  /** Close every socket; idempotence is the caller's (the user agent's close). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const c of [...this.#conns.values()]) {
      this.#dropConnection(c);
      c.socket.destroy();
    }
    await Promise.all([
      ...this.#udp.map((u) => new Promise<void>((r) => u.socket.close(() => r()))),
      ...this.#servers.map((s) => new Promise<void>((r) => s.server.close(() => r()))),
    ]);
  }
}
