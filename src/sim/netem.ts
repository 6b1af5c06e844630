/**
 * A network emulator for the simulator's sockets, in the spirit of Linux
 * netem but per simulated MCU and inside the process. The SIP stack owns its
 * sockets, so the emulator wraps node:dgram's and node:net's socket methods;
 * only sockets of an attached MCU address are touched.
 *
 * UDP: datagrams sent from or received on the MCU's address are delayed
 * (one-way delay plus uniform jitter) or dropped (loss), so SIP
 * retransmissions and timers run for real.
 *
 * TCP: the MCU's connections (accepted on its address, or opened by it: a
 * request whose top Via is the MCU's) get the same one-way delay and jitter
 * per chunk, both directions, but in order, as a byte stream is; a lost
 * segment is repaired by TCP, so loss shows as head-of-line blocking: the
 * chunk (and everything after it) waits one retransmission timeout more
 * (TCP_RTO_MIN, 200 ms on Linux). Faults: a stall holds every chunk in both
 * directions for a while (a black-holed path; TCP delivers it all afterwards),
 * and a reset aborts every connection with an RST.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { seededRandom } from '../core/index.js';

export interface Impairment {
  /** One-way delay, ms, each direction. */
  readonly delayMs: number;
  /** Uniform jitter added to the delay, ms (0 .. jitterMs); on TCP it never reorders. */
  readonly jitterMs: number;
  /** Probability (0..1) that a datagram is lost, or that a TCP chunk needs a retransmission. */
  readonly loss: number;
  /** Drop every datagram received (the MCU stops answering). */
  readonly deaf: boolean;
  /** Drop everything sent, datagrams and stream writes (a crash: nothing leaves, not even BYE). */
  readonly mute: boolean;
}

export const NO_IMPAIRMENT: Impairment = { delayMs: 0, jitterMs: 0, loss: 0, deaf: false, mute: false };

/** Linux's minimum retransmission timeout (TCP_RTO_MIN): what one lost segment costs a stream. */
export const TCP_RTO_MS = 200;

/** What the emulator did to an MCU's TCP connections. */
export interface TcpWireStats {
  /** Connections open now. */
  open: number;
  /** Connections seen since the MCU started (accepted or opened). */
  connections: number;
  /** Chunks delivered late by the delay (either direction). */
  delayed: number;
  /** Chunks that waited a retransmission timeout for a loss. */
  retransmitted: number;
  /** Chunks held back by a stall. */
  stalled: number;
  /** Connections aborted with an RST. */
  resets: number;
}

/** What the emulator did to an MCU's traffic: UDP datagrams at the top level, TCP under `tcp`. */
export interface WireStats {
  /** Datagrams dropped (both directions). */
  dropped: number;
  /** Datagrams delayed (both directions). */
  delayed: number;
  readonly tcp: TcpWireStats;
}

/** The emulator as one MCU address sees it. */
export interface NetemPort {
  readonly impairment: Impairment;
  /** Stalled until this time (performance.now() ms), or 0. */
  readonly stalledUntil: number;
  set(impairment: Impairment): void;
  /** Hold every TCP chunk, both directions, for `ms` from now (0 ends a stall at once). */
  stall(ms: number): void;
  /** Abort every open TCP connection with an RST; returns how many. */
  reset(): number;
  stats(): WireStats;
  detach(): void;
}

interface Queued {
  readonly due: number;
  readonly run: () => void;
}

/** A FIFO released in order: nothing overtakes an earlier chunk (a byte stream). */
class Lane {
  readonly #q: Queued[] = [];
  #head = 0;
  #timer?: NodeJS.Timeout;
  #lastDue = 0;
  constructor(readonly port: Port) {}

  get busy(): boolean {
    return this.#head < this.#q.length;
  }

  push(delay: number, run: () => void): void {
    const due = Math.max(performance.now() + delay, this.#lastDue);
    this.#lastDue = due;
    this.#q.push({ due, run });
    if (this.#timer === undefined) this.#arm();
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#q.length = 0;
    this.#head = 0;
  }

  #arm(): void {
    const next = this.#q[this.#head];
    if (next === undefined) return;
    const at = Math.max(next.due, this.port.stalledUntil);
    this.#timer = setTimeout(() => this.#pump(), Math.max(0, at - performance.now())).unref();
  }

  #pump(): void {
    this.#timer = undefined;
    const now = performance.now();
    while (this.#head < this.#q.length && now >= this.port.stalledUntil) {
      const item = this.#q[this.#head]!;
      if (item.due > now) break;
      this.#head++;
      item.run();
    }
    if (this.#head === this.#q.length) {
      this.#q.length = 0;
      this.#head = 0;
    } else this.#arm();
  }
}

interface Flow {
  readonly port: Port;
  readonly inbound: Lane;
  readonly outbound: Lane;
  endPending?: unknown[];
}

class Port implements NetemPort {
  impairment: Impairment = NO_IMPAIRMENT;
  stalledUntil = 0;
  readonly random: () => number;
  readonly udp = { dropped: 0, delayed: 0 };
  readonly tcp = { connections: 0, delayed: 0, retransmitted: 0, stalled: 0, resets: 0 };
  readonly sockets = new Set<net.Socket>();
  constructor(
    readonly key: string,
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  /** Is anything to be done to this MCU's traffic right now? */
  get active(): boolean {
    const i = this.impairment;
    return i.delayMs > 0 || i.jitterMs > 0 || i.loss > 0 || i.deaf || i.mute || performance.now() < this.stalledUntil;
  }

  set(impairment: Impairment): void {
    this.impairment = impairment;
  }

  stall(ms: number): void {
    this.stalledUntil = ms > 0 ? performance.now() + ms : 0;
  }

  reset(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) {
      const f = flows.get(s);
      f?.inbound.clear();
      f?.outbound.clear();
      try {
        s.resetAndDestroy();
      } catch {
        s.destroy(); // no handle left to send an RST on: it is going anyway
      }
    }
    this.tcp.resets += n;
    this.sockets.clear();
    return n;
  }

  stats(): WireStats {
    return { ...this.udp, tcp: { open: this.sockets.size, ...this.tcp } };
  }

  detach(): void {
    if (ports.get(this.key) === this) ports.delete(this.key);
  }

  /** The delay of one TCP chunk: delay, jitter, a retransmission timeout for a loss, a stall. */
  chunkDelay(): number {
    const i = this.impairment;
    let d = i.delayMs + (i.jitterMs > 0 ? this.random() * i.jitterMs : 0);
    if (d > 0) this.tcp.delayed++;
    if (i.loss > 0 && this.random() < i.loss) {
      d += TCP_RTO_MS;
      this.tcp.retransmitted++;
    }
    if (performance.now() < this.stalledUntil) this.tcp.stalled++;
    return d;
  }
}

const ports = new Map<string, Port>();
let installed = false;

/** Emulate the network of the MCU bound (UDP and TCP) to host:port. Seeded: replayable runs. */
export function attachNetem(host: string, port: number, seed = port): NetemPort {
  install();
  const p = new Port(`${host}:${port}`, seed);
  ports.set(p.key, p);
  return p;
}

// ---- UDP ---------------------------------------------------------------------

const udpKeys = new WeakMap<dgram.Socket, string | null>();

function udpPort(socket: dgram.Socket): Port | undefined {
  let k = udpKeys.get(socket);
  if (k === undefined) {
    try {
      const a = socket.address();
      k = `${a.address}:${a.port}`;
    } catch {
      return undefined; // not bound yet: cannot belong to a simulated MCU
    }
    udpKeys.set(socket, k);
  }
  return k === null ? undefined : ports.get(k);
}

/** What to do with one datagram: undefined = deliver now, -1 = drop, else delay in ms. */
function fate(p: Port, inbound: boolean): number | undefined {
  const i = p.impairment;
  if ((inbound ? i.deaf : i.mute) || (i.loss > 0 && p.random() < i.loss)) {
    p.udp.dropped++;
    return -1;
  }
  const d = i.delayMs + (i.jitterMs > 0 ? p.random() * i.jitterMs : 0);
  if (d <= 0) return undefined;
  p.udp.delayed++;
  return d;
}

function installUdp(): void {
  const proto = dgram.Socket.prototype as unknown as {
    send: (...args: unknown[]) => void;
    emit: (event: string | symbol, ...args: unknown[]) => boolean;
  };
  const send = proto.send;
  const emit = proto.emit;
  proto.send = function (this: dgram.Socket, ...args: unknown[]): void {
    const p = ports.size === 0 ? undefined : udpPort(this);
    const f = p?.active === true ? fate(p, false) : undefined;
    if (f === undefined) {
      send.apply(this, args);
      return;
    }
    if (f < 0) {
      // Lost on the wire: the sender still sees a successful send, as with real UDP.
      const cb = args.findLast((a) => typeof a === 'function') as (() => void) | undefined;
      if (cb !== undefined) queueMicrotask(cb);
      return;
    }
    setTimeout(() => {
      try {
        send.apply(this, args);
      } catch {
        // The socket closed while the datagram was "in flight": it is lost.
      }
    }, f).unref();
  };
  proto.emit = function (this: dgram.Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'message' || ports.size === 0) return emit.call(this, event, ...args);
    const p = udpPort(this);
    const f = p?.active === true ? fate(p, true) : undefined;
    if (f === undefined) return emit.call(this, event, ...args);
    if (f >= 0) setTimeout(() => emit.call(this, event, ...args), f).unref();
    return true;
  };
}

// ---- TCP ---------------------------------------------------------------------

/** Sockets of attached MCUs with their lanes; null: looked at, not ours. */
const flows = new WeakMap<net.Socket, Flow | null>();

function track(socket: net.Socket, p: Port): Flow {
  const f: Flow = { port: p, inbound: new Lane(p), outbound: new Lane(p) };
  flows.set(socket, f);
  p.sockets.add(socket);
  p.tcp.connections++;
  return f;
}

/** The top Via's sent-by of a request the MCU writes on a connection it opened (RFC 3261 18.1.1). */
const REQUEST_VIA = /^[A-Z]+ \S+ SIP\/2\.0\r\n(?:[^\r\n]*\r\n)*?(?:Via|v)[ \t]*:[ \t]*SIP\/2\.0\/TCP[ \t]+([^;,\s]+)/i;

function classifyOutbound(socket: net.Socket, chunk: unknown): Flow | undefined {
  if (!Buffer.isBuffer(chunk) && typeof chunk !== 'string') return undefined;
  const head = (typeof chunk === 'string' ? chunk : chunk.toString('latin1', 0, 2048)).slice(0, 2048);
  if (head.startsWith('SIP/2.0 ')) return undefined; // a response: its top Via is the peer's; look again later
  const m = REQUEST_VIA.exec(head);
  const p = m === null ? undefined : ports.get(m[1]!.replace(/^\[|\]/g, ''));
  if (p === undefined) {
    flows.set(socket, null);
    return undefined;
  }
  return track(socket, p);
}

function installTcp(): void {
  const server = net.Server.prototype as unknown as { emit: (event: string | symbol, ...args: unknown[]) => boolean };
  const serverEmit = server.emit;
  server.emit = function (this: net.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'connection' && ports.size > 0) {
      const a = this.address();
      const p = a !== null && typeof a === 'object' ? ports.get(`${a.address}:${a.port}`) : undefined;
      if (p !== undefined) track(args[0] as net.Socket, p);
    }
    return serverEmit.call(this, event, ...args);
  };

  const proto = net.Socket.prototype as unknown as {
    emit: (event: string | symbol, ...args: unknown[]) => boolean;
    write: (...args: unknown[]) => boolean;
    end: (...args: unknown[]) => unknown;
  };
  const emit = proto.emit;
  const write = proto.write;
  const end = proto.end;

  proto.emit = function (this: net.Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (ports.size === 0 || (event !== 'data' && event !== 'end' && event !== 'close'))
      return emit.call(this, event, ...args);
    const f = flows.get(this);
    if (f == null) return emit.call(this, event, ...args);
    if (event === 'close') f.port.sockets.delete(this);
    const lane = f.inbound;
    if (event === 'data') {
      if (!f.port.active && !lane.busy) return emit.call(this, event, ...args);
      lane.push(f.port.chunkDelay(), () => emit.call(this, event, ...args));
      return true;
    }
    // 'end' and 'close' follow the data still on its way.
    if (!lane.busy) return emit.call(this, event, ...args);
    lane.push(0, () => emit.call(this, event, ...args));
    return true;
  };

  proto.write = function (this: net.Socket, ...args: unknown[]): boolean {
    if (ports.size === 0) return write.apply(this, args);
    let f = flows.get(this);
    if (f === undefined) f = classifyOutbound(this, args[0]);
    if (f == null) return write.apply(this, args);
    if (f.port.impairment.mute) return true; // a crashed box: nothing leaves
    const lane = f.outbound;
    if (!f.port.active && !lane.busy) return write.apply(this, args);
    lane.push(f.port.chunkDelay(), () => {
      // Destroyed while "in flight" (a reset, a close): the bytes are lost.
      if (!this.destroyed) write.apply(this, args);
    });
    // Held by the emulator, not by the socket's buffer: no backpressure to report.
    return true;
  };

  proto.end = function (this: net.Socket, ...args: unknown[]): unknown {
    const f = ports.size === 0 ? undefined : flows.get(this);
    if (f == null || !f.outbound.busy) return end.apply(this, args);
    // A FIN must not overtake the data still held: it follows it (end(data) writes the data first).
    const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    const data = args[0];
    if (data !== undefined && typeof data !== 'function')
      proto.write.call(this, data, ...(typeof args[1] === 'string' ? [args[1]] : []));
    f.outbound.push(0, () => {
      if (!this.destroyed) end.call(this, ...(cb === undefined ? [] : [cb]));
    });
    return this;
  };
}

function install(): void {
  if (installed) return;
  installed = true;
  installUdp();
  installTcp();
}
