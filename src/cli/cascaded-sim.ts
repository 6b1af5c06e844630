#!/usr/bin/env node
/**
 * `cascaded-sim`: every MCU of an inventory as a simulated MCU on its own
 * loopback address, in one process, with a loopback HTTP control interface.
 * Exit codes: 0 stopped by a signal; 1 runtime failure; 2 bad usage or invalid config.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, formatViolations, loadConfigFile } from '../config/index.js';
import { DEFAULT_CONTROL_PORT, startSimulator } from '../sim/index.js';

const HELP = `cascaded-sim: the MCU simulator (every MCU of an inventory, one process)

Usage:
  cascaded-sim [--config FILE] [--control-port N] [--placement plan|none] [--log-level LEVEL]

Options:
  -c, --config FILE       inventory (YAML), default config/demo.yaml: the national network.
                          Each MCU listens (UDP and TCP) on the host:port of its first SIP URI.
      --control-port N    loopback HTTP control interface (default ${DEFAULT_CONTROL_PORT}; 0 picks one):
                          GET /v1/mcus, GET /v1/mcus/ID, GET /v1/endpoints/ID/view,
                          POST /v1/mcus/ID/{faults,impairment,restart,drop-link}. See docs/sim.md.
      --placement P       plan: endpoints join the MCUs the cascade planner assigns (default);
                          none: empty conferences.
  -l, --log-level LEVEL   fatal, error, warn, info (default), debug, trace, silent.
  -h, --help              this text.
`;

const DEFAULT_CONFIG = fileURLToPath(new URL('../../../config/demo.yaml', import.meta.url));

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
  const placement = values.placement ?? 'plan';
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (placement !== 'plan' && placement !== 'none')) {
    process.stderr.write(`cascaded-sim: bad --control-port or --placement\nTry 'cascaded-sim --help'.\n`);
    return 2;
  }
  const file = values.config ?? DEFAULT_CONFIG;
  let inventory: Awaited<ReturnType<typeof loadConfigFile>>['inventory'];
  try {
    inventory = (await loadConfigFile(file)).inventory;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const v = (err.details as { violations?: [] } | undefined)?.violations;
    process.stderr.write(`${v ? formatViolations(file, v) : err.message}\n`);
    return err.code === 'CFG_ERR_READ' ? 1 : 2;
  }
  const logger = pino({ level: values['log-level'] ?? 'info', base: { service: 'cascaded-sim' } });
  const sim = await startSimulator({ inventory, logger, controlPort: port, placement: placement as 'plan' | 'none' });
  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'stopping');
      sim.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }).then(
    (code) =>
      new Promise<number>((resolve) => {
        logger.flush(() => resolve(code));
      }),
  );
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cascaded-sim: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
