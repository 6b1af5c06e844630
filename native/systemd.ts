/**
 * systemd integration through FFI (koffi): sd_notify(3) from libsystemd.so.0.
 * Node has no AF_UNIX datagram sockets, which sd_notify's protocol needs, so
 * the library call is the simplest correct route. Where the library cannot be
 * loaded or NOTIFY_SOCKET is unset (not under systemd, a container, a test),
 * every call is a silent no-op.
 */
import koffi from 'koffi';
import type { Logger } from 'pino';
import { type Clock, onceClose, realClock, type TimerHandle } from '../src/core/index.js';

export interface SystemdNotifier {
  /** True when messages actually go somewhere (library loaded and NOTIFY_SOCKET set). */
  readonly active: boolean;
  /** READY=1 (plus STATUS), then WATCHDOG=1 every half of WATCHDOG_USEC when the manager asks for it. */
  ready(status?: string): void;
  /** STATUS=...: one line shown by `systemctl status`. */
  status(text: string): void;
  /** STOPPING=1 (plus STATUS). */
  stopping(status?: string): void;
  /** Stop the watchdog timer. Idempotent. */
  close(): Promise<void>;
}

export interface NotifierOptions {
  /** Defaults to process.env; sd_notify itself reads the real environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Library to load (tests point it at a missing name to prove the no-op path). */
  readonly library?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

type SdNotify = (unsetEnvironment: number, state: string) => number;

let cached: { name: string; fn: SdNotify | undefined } | undefined;
function loadSdNotify(name: string): SdNotify | undefined {
  if (cached?.name === name) return cached.fn;
  let fn: SdNotify | undefined;
  try {
    fn = koffi.load(name).func('int sd_notify(int unset_environment, const char *state)') as SdNotify;
  } catch {
    fn = undefined;
  }
  cached = { name, fn };
  return fn;
}

/** STATUS is one line: newlines would start a new assignment in the protocol. */
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').slice(0, 1024);

export function createSystemdNotifier(options: NotifierOptions = {}): SystemdNotifier {
  const env = options.env ?? process.env;
  const clock = options.clock ?? realClock;
  const fn = env.NOTIFY_SOCKET ? loadSdNotify(options.library ?? 'libsystemd.so.0') : undefined;
  const log = options.logger?.child({ module: 'systemd' });
  let watchdog: TimerHandle | undefined;
  let closed = false;

  const send = (state: string) => {
    if (fn === undefined) return;
    const rc = fn(0, state);
    if (rc < 0) log?.warn({ rc, state: state.split('\n')[0] }, 'sd_notify failed');
  };

  const startWatchdog = () => {
    // WATCHDOG_PID, when set, names the process the manager expects pings from.
    const usec = Number(env.WATCHDOG_USEC);
    if (!Number.isFinite(usec) || usec <= 0) return;
    if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== process.pid) return;
    const interval = Math.max(1, Math.floor(usec / 2000)); // half the timeout, in ms
    const tick = () => {
      if (closed) return;
      send('WATCHDOG=1');
      watchdog = clock.setTimeout(tick, interval);
    };
    watchdog = clock.setTimeout(tick, interval);
  };

  return {
    active: fn !== undefined,
    ready(status) {
      send(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${oneLine(status)}`);
      if (fn !== undefined && watchdog === undefined && !closed) startWatchdog();
    },
    status(text) {
      send(`STATUS=${oneLine(text)}`);
    },
    stopping(status) {
      send(status === undefined ? 'STOPPING=1' : `STOPPING=1\nSTATUS=${oneLine(status)}`);
    },
    close: onceClose(async () => {
      closed = true;
      clock.clearTimeout(watchdog);
    }),
  };
}
