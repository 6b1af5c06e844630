#!/usr/bin/env node
/**
 * `cascaded`: the daemon, and its offline subcommands.
 * Exit codes: 0 success; 1 runtime failure; 2 bad usage or invalid config;
 * 128+N when a second signal N forces the exit during shutdown.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { destination, type Logger, pino } from 'pino';
import { type Config, ConfigError, formatViolations } from '../config/index.js';
import { isCascadedError } from '../core/index.js';
import type { startDaemon } from '../daemon.js';
import type { SimulatorProcess } from '../sim/index.js';
import { DEFAULT_CONFIG, loadCommandConfig } from './config-file.js';
import { exitOnClosedPipe, exitWhenFlushed } from './exit.js';

const HELP = `cascaded: MCU cascade control daemon

Usage:
  cascaded [--config FILE] [--log-level LEVEL]   run the daemon
  cascaded --with-sim [--config FILE]            start the MCU simulator of the same
                                                 inventory as a child process
                                                 (cascaded-sim), then the daemon
                                                 driving it (the demo: npm start)
  cascaded --check-config FILE [--json]          validate a config file and exit
  cascaded plan [options]                        plan a session's cascade offline
                                                 (cascaded plan --help)
  cascaded token create|list|revoke [options]    API bearer tokens (cascaded token --help);
                                                 works while the daemon runs
  cascaded audit verify [--head HASH]            check the audit hash chain
  cascaded session create|list|show|end ...      sessions, against the store the running
                                                 daemon reconciles (cascaded session --help)
  cascaded cascade status [ID] [--watch]         the cascade of live sessions: links
                                                 planned, dialing, up, failed
  cascaded chair SESSION ENDPOINT [--preview]    bring ENDPOINT to the chair through the
                                                 running daemon's API, printing every step
                                                 and its timing (cascaded chair --help)
  cascaded --help | --version

Options:
  -c, --config FILE        config and inventory (YAML). Default: config/demo.yaml
                           of this installation, the simulated national network.
      --check-config FILE  validate FILE (schema and semantic rules) and exit:
                           0 valid, 2 invalid (every violation listed with its path).
      --json               with --check-config: print the result as JSON on stdout.
      --with-sim           first start cascaded-sim for the same config as a child
                           process and wait until every simulated MCU is bound;
                           its control interface is on 127.0.0.1:--sim-control-port
                           (default 8091, 0 picks one). It stops after the daemon;
                           an exit of its own is logged as an error and makes the
                           daemon's exit code 1. See docs/sim.md.
      --sim-control-port N the simulator's loopback HTTP control port.
      --demo-session       when no session is live, create one with every endpoint
                           of the inventory, rooted at the master, and dial it
                           (the demo: npm start). See docs/cascade.md.
  -l, --log-level LEVEL    override daemon.logLevel: fatal, error, warn, info,
                           debug, trace, silent.
  -h, --help               this text.
  -v, --version            print the version.

Signals: SIGTERM or SIGINT closes every part in reverse start order within
daemon.shutdownTimeoutMs (default 10 s) and exits 0; a second signal forces
the exit at once (128 + signal number). SIGHUP reads the API certificate
again and serves it to new connections (the old one stays if it fails), and
reads the MCUs' secrets again (an unreadable one keeps the old credentials).

Environment:
  NOTIFY_SOCKET, WATCHDOG_USEC  set by systemd (Type=notify, WatchdogSec=).
  STATE_DIRECTORY               default daemon.stateDir (systemd StateDirectory=).
  CREDENTIALS_DIRECTORY         where mcus[].auth.credential secrets are read
                                (systemd LoadCredential=).

Logs are JSON lines on stdout (pino). Documentation: README.md.
`;

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'plan') {
    const { runPlan } = await import('./plan.js');
    return runPlan(argv.slice(1));
  }
  if (argv[0] === 'token' || argv[0] === 'audit') {
    const { runAudit, runToken } = await import('./admin.js');
    return argv[0] === 'token' ? runToken(argv.slice(1)) : runAudit(argv.slice(1));
  }
  if (argv[0] === 'chair') {
    const { runChair } = await import('./chair.js');
    return runChair(argv.slice(1));
  }
  if (argv[0] === 'session' || argv[0] === 'cascade') {
    const { runCascade, runSession } = await import('./session.js');
    return argv[0] === 'session' ? runSession(argv.slice(1)) : runCascade(argv.slice(1));
  }
  let values: {
    config?: string;
    'check-config'?: string;
    json?: boolean;
    'log-level'?: string;
    'with-sim'?: boolean;
    'sim-control-port'?: string;
    'demo-session'?: boolean;
    help?: boolean;
    version?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'check-config': { type: 'string' },
        json: { type: 'boolean' },
        'log-level': { type: 'string', short: 'l' },
        'with-sim': { type: 'boolean' },
        'sim-control-port': { type: 'string' },
        'demo-session': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`cascaded: ${(err as Error).message}\nTry 'cascaded --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`cascaded ${version()}\n`);
    return 0;
  }
  if (values['check-config'] !== undefined) return checkConfig(values['check-config'], values.json === true);
  if (values['log-level'] !== undefined && !LEVELS.has(values['log-level'])) {
    process.stderr.write(`cascaded: --log-level must be one of ${[...LEVELS].join(', ')}\n`);
    return 2;
  }
  const simPort = values['sim-control-port'] === undefined ? undefined : Number(values['sim-control-port']);
  if (simPort !== undefined && (!Number.isInteger(simPort) || simPort < 0 || simPort > 65535)) {
    process.stderr.write('cascaded: --sim-control-port must be a port number\n');
    return 2;
  }
  const sim = values['with-sim'] === true ? { controlPort: simPort } : undefined;
  return runDaemon(values.config ?? DEFAULT_CONFIG, values['log-level'], sim, values['demo-session'] === true);
}

async function checkConfig(file: string, json: boolean): Promise<number> {
  try {
    const config = await loadCommandConfig(file);
    const inv = config.inventory;
    const counts = {
      levels: inv.levels.length,
      provinces: inv.provinces.length,
      operators: inv.operators.length,
      mcus: inv.mcus.length,
      endpoints: inv.endpoints.length,
    };
    const warnings = config.warnings;
    if (json) process.stdout.write(`${JSON.stringify({ ok: true, source: file, counts, warnings })}\n`);
    else {
      const summary = Object.entries(counts)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ');
      const warned = warnings.length === 0 ? '' : `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`;
      process.stdout.write(`${file}: ok (${summary}${warned})\n`);
      if (warnings.length > 0) process.stderr.write(`${formatViolations(file, warnings, 'warning')}\n`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (json) process.stdout.write(`${JSON.stringify({ ok: false, ...err.toJSON() })}\n`);
    else process.stderr.write(`${err.message}\n`);
    return err.code === 'CFG_ERR_READ' ? 1 : 2;
  }
}

async function runDaemon(
  file: string,
  levelOverride: string | undefined,
  withSim: { controlPort?: number } | undefined,
  demoSession: boolean,
): Promise<number> {
  let config: Config;
  try {
    config = await loadCommandConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      const details = err.details as { violations?: [] } | undefined;
      process.stderr.write(
        `${details?.violations ? formatViolations(file, details.violations) : err.message}\ncascaded: nothing started\n`,
      );
      return err.code === 'CFG_ERR_READ' ? 1 : 2;
    }
    throw err;
  }
  // Written synchronously: pino's default stream writes from libuv's thread pool, and at exit its synchronous
  // flush of what was queued overtook a write still in that pool ("closed store" after "stopped"); a line
  // logged is also on its way to the journal before a kill -9. At the default level there are few lines.
  const logger: Logger = pino(
    { level: levelOverride ?? config.daemon.logLevel, base: { service: 'cascaded' } },
    destination({ dest: 1, sync: true }),
  );
  const flush = () => new Promise<void>((resolve) => logger.flush(() => resolve()));
  for (const w of config.warnings) logger.warn({ path: w.path, line: w.line }, `config warning: ${w.message}`);

  // Handlers go in before anything starts: a signal during the start would otherwise end the process at once
  // (Node's default) with the store open and the simulator child left behind. It is kept and acted on as
  // soon as the start has completed.
  let early: NodeJS.Signals | undefined;
  let onSignal = (signal: NodeJS.Signals) => {
    early ??= signal;
  };
  const dispatch = (signal: NodeJS.Signals) => onSignal(signal);
  process.on('SIGTERM', dispatch);
  process.on('SIGINT', dispatch);
  // SIGHUP reloads the API certificate and the MCUs' secrets once the daemon runs; before that it is ignored (Node would exit).
  let onHangup = () => {};
  process.on('SIGHUP', () => onHangup());

  let sim: SimulatorProcess | undefined;
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    if (withSim !== undefined) {
      const { DEFAULT_CONTROL_PORT, spawnSimulator } = await import('../sim/index.js');
      sim = await spawnSimulator({
        configFile: file,
        controlPort: withSim.controlPort ?? DEFAULT_CONTROL_PORT,
        logLevel: levelOverride ?? config.daemon.logLevel,
        logger,
      });
    }
    // Loaded here, not at the top: the subcommands (plan, session, token ...) start without the daemon's parts.
    const { startDaemon } = await import('../daemon.js');
    daemon = await startDaemon({ config, logger, version: version(), demoSession });
  } catch (err) {
    logger.fatal({ err, code: isCascadedError(err) ? err.code : undefined }, 'start failed');
    await sim?.close();
    await flush();
    return 1;
  }
  // The simulator stops after the daemon, so the daemon ends its dialogs with live MCUs.
  const stopAll = async (): Promise<number> => {
    await daemon.close();
    if (sim === undefined) return 0;
    const how = await sim.close();
    return how.unexpected || how.code !== 0 ? 1 : 0;
  };

  return new Promise<number>((resolve) => {
    let stopping = false;
    onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: forcing exit');
        resolve(128 + (signal === 'SIGINT' ? 2 : 15));
        return;
      }
      stopping = true;
      logger.info({ signal, boundMs: config.daemon.shutdownTimeoutMs }, 'shutting down');
      const bound = setTimeout(() => {
        logger.error({ boundMs: config.daemon.shutdownTimeoutMs }, 'shutdown exceeded its bound: forcing exit');
        resolve(1);
      }, config.daemon.shutdownTimeoutMs);
      stopAll().then(
        (code) => {
          clearTimeout(bound);
          logger.info({ code }, 'stopped');
          resolve(code);
        },
        (err: unknown) => {
          clearTimeout(bound);
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    if (early !== undefined) onSignal(early);
    onHangup = () => {
      daemon.reloadSecrets();
      daemon
        .reloadTls()
        .catch((err: unknown) =>
          logger.error(
            { err, code: isCascadedError(err) ? err.code : undefined },
            'API certificate reload failed; the old one stays',
          ),
        );
    };
  }).then(async (code) => {
    await flush();
    return code;
  });
}

exitOnClosedPipe();
main(process.argv.slice(2)).then(exitWhenFlushed, (err: unknown) => {
  process.stderr.write(`cascaded: ${(err as Error)?.stack ?? String(err)}\n`);
  exitWhenFlushed(1);
});
