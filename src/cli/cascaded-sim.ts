#!/usr/bin/env node
/**
 * `cascaded-sim`: every MCU of an inventory as a simulated MCU on its own
 * loopback address, in one process, with a loopback HTTP control interface.
 * Started by the daemon (`cascaded --with-sim`) it also reports readiness over
 * the IPC channel and stops when that channel closes (the daemon is gone).
 * Exit codes: 0 stopped by a signal; 1 runtime failure or the parent process
 * gone; 2 bad usage or invalid config.
 */
import { parseArgs } from 'node:util';
import { destination, pino } from 'pino';
import { ConfigError, formatViolations } from '../config/index.js';
import { DEFAULT_CONTROL_PORT, type SimulatorReady, startSimulator } from '../sim/index.js';
import { DEFAULT_CONFIG, loadCommandConfig } from './config-file.js';
import { exitOnClosedPipe, exitWhenFlushed } from './exit.js';

const HELP = `cascaded-sim: the MCU simulator (every MCU of an inventory, one process)

Usage:
  cascaded-sim [--config FILE] [--control-port N] [--placement inventory|none] [--log-level LEVEL]

Options:
  -c, --config FILE       inventory (YAML), default config/demo.yaml: the national network.
                          Each MCU listens (UDP and TCP) on the host:port of its first SIP URI.
      --control-port N    loopback HTTP control interface (default ${DEFAULT_CONTROL_PORT}; 0 picks one):
                          GET /v1/mcus, GET /v1/mcus/ID, GET /v1/endpoints/ID/view,
                          POST /v1/mcus/ID/{faults,impairment,restart,drop-link}. See docs/sim.md.
      --placement P       inventory: each endpoint joins its first candidate MCU with room
                          (ports kept back for cascade links; default); none: empty conferences.
  -l, --log-level LEVEL   fatal, error, warn, info (default), debug, trace, silent.
  -h, --help              this text.
`;

async function main(argv: string[]): Promise<number> {
  let values: { config?: string; 'control-port'?: string; placement?: string; 'log-level'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'control-port': { type: 'string' },
        placement: { type: 'string' },
        'log-level': { type: 'string', short: 'l' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`cascaded-sim: ${(err as Error).message}\nTry 'cascaded-sim --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const port = Number(values['control-port'] ?? DEFAULT_CONTROL_PORT);
  const placement = values.placement ?? 'inventory';
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (placement !== 'inventory' && placement !== 'none')) {
    process.stderr.write(`cascaded-sim: bad --control-port or --placement\nTry 'cascaded-sim --help'.\n`);
    return 2;
  }
  const file = values.config ?? DEFAULT_CONFIG;
  let inventory: Awaited<ReturnType<typeof loadCommandConfig>>['inventory'];
  try {
    inventory = (await loadCommandConfig(file)).inventory;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const v = (err.details as { violations?: [] } | undefined)?.violations;
    process.stderr.write(`${v ? formatViolations(file, v) : err.message}\n`);
    return err.code === 'CFG_ERR_READ' ? 1 : 2;
  }
  // Synchronous, as the daemon's (cascaded.ts): lines reach the pipe in the order they were logged.
  const logger = pino(
    { level: values['log-level'] ?? 'info', base: { service: 'cascaded-sim', pid: process.pid } },
    destination({ dest: 1, sync: true }),
  );
  const sim = await startSimulator({ inventory, logger, controlPort: port, placement });
  const ipc = process.send !== undefined;
  if (ipc && process.connected) {
    let participants = 0;
    for (const m of sim.network.mcus.values()) participants += m.participants.size;
    const ready: SimulatorReady = {
      type: 'ready',
      control: sim.control.url,
      mcus: sim.network.mcus.size,
      participants,
    };
    process.send!(ready);
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: Record<string, unknown>, code: number) => {
      if (stopping) return;
      stopping = true;
      logger[code === 0 ? 'info' : 'error'](why, code === 0 ? 'stopping' : 'parent process gone: stopping');
      sim.close().then(
        () => resolve(code),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', (signal) => stop({ signal }, 0));
    process.once('SIGINT', (signal) => stop({ signal }, 0));
    // Started by the daemon: a closed channel means the daemon ended without stopping us (a crash, kill -9).
    if (ipc) {
      if (process.connected) process.once('disconnect', () => stop({}, 1));
      else stop({}, 1);
    }
  }).then(
    (code) =>
      new Promise<number>((resolve) => {
        logger.flush(() => resolve(code));
      }),
  );
}

exitOnClosedPipe();
main(process.argv.slice(2)).then(exitWhenFlushed, (err: unknown) => {
  process.stderr.write(`cascaded-sim: ${(err as Error)?.stack ?? String(err)}\n`);
  exitWhenFlushed(1);
});
