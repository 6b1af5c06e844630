/**
 * A network emulator for the simulator's UDP sockets, in the spirit of Linux
 * netem but per simulated MCU and inside the process: datagrams sent from or
 * received on a registered local address are delayed (one-way delay plus
 * uniform jitter) or dropped (loss probability), so SIP retransmissions and
 * timers run for real. It wraps node:dgram's Socket send and message
 * delivery, because the SIP stack owns its sockets; only registered addresses
 * are touched, and nothing is wrapped until the first registration.
 * Stream transports (TCP) are not impaired: TCP repairs loss itself.
 */
import dgram from 'node:dgram';
import { seededRandom } from '../core/index.js';

export interface Impairment {
  /** One-way delay, ms, each direction. */
  readonly delayMs: number;
  /** Uniform jitter added to the delay, ms (0 .. jitterMs). */
  readonly jitterMs: number;
  /** Probability (0..1) that a datagram is lost, each direction. */
  readonly loss: number;
  /** Drop every datagram received (the MCU stops answering). */
  readonly deaf: boolean;
  /** Drop every datagram sent (a crash: nothing leaves, not even BYE). */
  readonly mute: boolean;
}

export const NO_IMPAIRMENT: Impairment = { delayMs: 0, jitterMs: 0, loss: 0, deaf: false, mute: false };

/** What the emulator did to a socket's datagrams, both directions. */
export interface WireStats {
  dropped: number;
  delayed: number;
}

interface Entry {
  impairment: Impairment;
  random: () => number;
  readonly stats: WireStats;
}

const registry = new Map<string, Entry>();
const keys = new WeakMap<dgram.Socket, string | null>();
let installed = false;

function keyOf(socket: dgram.Socket): string | null {
  let k = keys.get(socket);
  if (k === undefined) {
    try {
      const a = socket.address();
      k = `${a.address}:${a.port}`;
    } catch {
      return null; // not bound yet: cannot belong to a simulated MCU
    }
    keys.set(socket, k);
  }
  return k;
}

/** What to do with one datagram: undefined = deliver now, -1 = drop, else delay in ms. */
function fate(e: Entry, inbound: boolean): number | undefined {
  const i = e.impairment;
  if ((inbound ? i.deaf : i.mute) || (i.loss > 0 && e.random() < i.loss)) {
    e.stats.dropped++;
    return -1;
  }
  const d = i.delayMs + (i.jitterMs > 0 ? e.random() * i.jitterMs : 0);
  if (d <= 0) return undefined;
  e.stats.delayed++;
  return d;
}

function install(): void {
  if (installed) return;
  installed = true;
  const proto = dgram.Socket.prototype as unknown as {
    send: (...args: unknown[]) => void;
    emit: (event: string | symbol, ...args: unknown[]) => boolean;
  };
  const send = proto.send;
  const emit = proto.emit;
  proto.send = function (this: dgram.Socket, ...args: unknown[]): void {
    const k = registry.size === 0 ? null : keyOf(this);
    const e = k === null ? undefined : registry.get(k);
    const f = e === undefined ? undefined : fate(e, false);
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
    if (event !== 'message' || registry.size === 0) return emit.call(this, event, ...args);
    const k = keyOf(this);
    const e = k === null ? undefined : registry.get(k);
    const f = e === undefined ? undefined : fate(e, true);
    if (f === undefined) return emit.call(this, event, ...args);
    if (f >= 0) setTimeout(() => emit.call(this, event, ...args), f).unref();
    return true;
  };
}

/** Impair the UDP socket bound to host:port; `undefined` removes the impairment. */
export function setImpairment(host: string, port: number, impairment: Impairment | undefined, seed = port): void {
  const k = `${host}:${port}`;
  if (impairment === undefined || isClean(impairment)) {
    registry.delete(k);
    return;
  }
  install();
  const existing = registry.get(k);
  if (existing !== undefined) existing.impairment = impairment;
  else registry.set(k, { impairment, random: seededRandom(seed), stats: { dropped: 0, delayed: 0 } });
}

/** Datagrams dropped and delayed on host:port since it was first impaired (zeros when never impaired). */
export function wireStats(host: string, port: number): WireStats {
  const s = registry.get(`${host}:${port}`)?.stats;
  return s === undefined ? { dropped: 0, delayed: 0 } : { ...s };
}

function isClean(i: Impairment): boolean {
  return i.delayMs <= 0 && i.jitterMs <= 0 && i.loss <= 0 && !i.deaf && !i.mute;
}
