/**
 * The simulator as a child process of the daemon (`cascaded --with-sim`,
 * `npm start`): `cascaded-sim` runs in its own process so that what the
 * simulator does to its sockets (the network emulator, stalls, resets) and its
 * event loop never touch the daemon's.
 *
 * The child reports readiness over the IPC channel; it stops on SIGTERM and
 * also when the channel closes (the daemon is gone, whatever the cause), so a
 * crashed daemon never leaves the simulator holding the MCU addresses. An exit
 * the daemon did not ask for is reported as an error.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { SimError } from './errors.js';

export interface SimulatorProcessOptions {
  /** The config file whose inventory the simulator serves. */
  readonly configFile: string;
  /** Loopback port of the control interface (0 picks one). */
  readonly controlPort?: number;
  readonly logLevel?: string;
  readonly logger?: Logger;
  /** Bound on the start, ms (the national network takes a few seconds on a loaded machine). */
  readonly startTimeoutMs?: number;
  /** Bound on the orderly stop before SIGKILL, ms. */
  readonly stopTimeoutMs?: number;
  /** More Node.js options for the child (a benchmark's `--cpu-prof --cpu-prof-dir DIR`). */
  readonly execArgv?: readonly string[];
}

/** What the child sends once its MCUs are bound (see cascaded-sim). */
export interface SimulatorReady {
  readonly type: 'ready';
  readonly control: string;
  readonly mcus: number;
  readonly participants: number;
}

export interface SimulatorExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The process ended without being asked to (a crash). */
  readonly unexpected: boolean;
}

export interface SimulatorProcess {
  readonly pid: number;
  /** URL of the control interface. */
  readonly control: string;
  readonly mcus: number;
  readonly participants: number;
  /** Settles when the process has ended, asked to or not. */
  readonly exited: Promise<SimulatorExit>;
  /** SIGTERM, then SIGKILL after the stop bound; resolves with how it ended. Idempotent. */
  close(): Promise<SimulatorExit>;
}

const SCRIPT = fileURLToPath(new URL('../cli/cascaded-sim.js', import.meta.url));
const DEFAULT_START_MS = 120_000;
/** The simulator process's young generation, MB per semi-space (V8's default is at most 16). */
const SEMI_SPACE_MB = 64;
const DEFAULT_STOP_MS = 10_000;

export function isSimulatorReady(m: unknown): m is SimulatorReady {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ready';
}

export async function spawnSimulator(o: SimulatorProcessOptions): Promise<SimulatorProcess> {
  const log = o.logger?.child({ module: 'sim-process' });
  const args = ['--config', o.configFile, '--control-port', String(o.controlPort ?? 0)];
  if (o.logLevel !== undefined) args.push('--log-level', o.logLevel);
  // --expose-gc: the simulator drops the garbage of parsing a national inventory once it is up (docs/sim.md).
  // --max-semi-space-size: one process stands in for some 74 MCUs, each its own box in the field; with V8's
  // default young generation it scavenged every few ms in a national dial (about an eighth of its CPU then),
  // delaying the MCUs' answers on the dial's critical path (docs/sim.md, "One process").
  const child: ChildProcess = fork(SCRIPT, args, {
    execArgv: ['--expose-gc', `--max-semi-space-size=${SEMI_SPACE_MB}`, ...(o.execArgv ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Its own process group: a Ctrl-C at the terminal reaches only the daemon, which then stops the
    // simulator after itself (the closing order); the IPC channel still ends it if the daemon dies.
    detached: true,
  });
  let stopping = false;
  const exited = new Promise<SimulatorExit>((resolve) => {
    child.once('exit', (code, signal) => {
      const unexpected = !stopping;
      if (unexpected) log?.error({ pid: child.pid, code, signal }, 'simulator exited unexpectedly');
      else log?.info({ pid: child.pid, code, signal }, 'simulator stopped');
      resolve({ code, signal, unexpected });
    });
  });
  let ready: SimulatorReady;
  try {
    ready = await new Promise<SimulatorReady>((resolve, reject) => {
      const bound = o.startTimeoutMs ?? DEFAULT_START_MS;
      const timer = setTimeout(
        () => reject(new SimError('SIM_ERR_PROCESS', `the simulator was not ready within ${bound} ms`)),
        bound,
      );
      child.on('message', (m) => {
        if (!isSimulatorReady(m)) return;
        clearTimeout(timer);
        resolve(m);
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new SimError('SIM_ERR_PROCESS', 'the simulator process could not be started', { cause: err }));
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new SimError('SIM_ERR_PROCESS', `the simulator exited before it was ready (code ${code}, ${signal})`));
      });
    });
  } catch (err) {
    stopping = true;
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  log?.info({ pid: child.pid, control: ready.control }, `simulator process ${child.pid} ready`);
  let closing: Promise<SimulatorExit> | undefined;
  return {
    pid: child.pid!,
    control: ready.control,
    mcus: ready.mcus,
    participants: ready.participants,
    exited,
    close() {
      closing ??= (async () => {
        stopping = true;
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), o.stopTimeoutMs ?? DEFAULT_STOP_MS);
        const how = await exited;
        clearTimeout(kill);
        return how;
      })();
      return closing;
    },
  };
}
