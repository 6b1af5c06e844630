/**
 * What the cascade and chair benchmarks share: the demo network moved to a loopback /24 of the run's own,
 * endpoints given the URIs the simulator names them by, the simulator in its own process and the daemon in
 * this one (so this process's CPU is the daemon's), every MCU's one-way delay set once the drivers are up.
 * The leading underscore keeps it off `npm run bench`'s list.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type Config, loadConfigFile } from '../src/config/index.js';
import type { Daemon } from '../src/daemon.js';
import { startDaemon } from '../src/daemon.js';
import type { Inventory } from '../src/inventory/index.js';
import { type SimulatorProcess, spawnSimulator } from '../src/sim/index.js';

/** One simulated MCU as the simulator's control interface lists it. */
export interface SimMcuInfo {
  readonly id: string;
  readonly processingDelayMs: number;
  readonly infoDelayMs: number;
  readonly impairment: { readonly delayMs: number };
}

export interface DemoWorld {
  readonly sim: SimulatorProcess;
  readonly daemon: Daemon;
  readonly inventory: Inventory;
  /** The simulator's control interface; a non-2xx answer throws. */
  control(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown>;
  /** Per MCU, as the simulator reports it once the impairment is set. */
  readonly mcus: ReadonlyMap<string, SimMcuInfo>;
  close(): Promise<void>;
}

export interface DemoWorldOptions {
  readonly file: string;
  /** The run's state directory: the moved network file and the store go there. */
  readonly dir: string;
  readonly delayMs: number;
  readonly loss?: number;
  readonly logger: Logger;
  /** `daemon.cascade` settings over the file's. */
  readonly cascade?: Partial<Config['daemon']['cascade']>;
  /** Progress lines (stderr: stdout's last line is the result). */
  readonly log: (msg: string) => void;
  /** More Node.js options for the simulator process (a CPU profile of it). */
  readonly simExecArgv?: readonly string[];
}

export async function demoWorld(o: DemoWorldOptions): Promise<DemoWorld> {
  const base = `127.${150 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.`;
  const moved = join(o.dir, `network-${Date.now()}.yaml`);
  writeFileSync(moved, readFileSync(o.file, 'utf8').replaceAll('127.0.1.', base));
  const loaded = await loadConfigFile(moved);
  const config: Config = {
    ...loaded,
    daemon: {
      ...loaded.daemon,
      logLevel: 'warn',
      stateDir: o.dir,
      store: { ...loaded.daemon.store, path: join(o.dir, `cascaded-${Date.now()}.db`) },
      api: { ...loaded.daemon.api, host: '127.0.0.1', port: 0 },
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
      cascade: { ...loaded.daemon.cascade, ...o.cascade },
    },
    inventory: {
      ...loaded.inventory,
      // The simulator names an endpoint without a URI sip:ID@endpoints.invalid (docs/sim.md): the same URI here.
      endpoints: loaded.inventory.endpoints.map((e) =>
        e.sip !== undefined || e.connection === 'relay' ? e : { ...e, sip: `sip:${e.id}@endpoints.invalid` },
      ),
    },
  };
  const sim = await spawnSimulator({
    configFile: moved,
    controlPort: 0,
    logLevel: 'warn',
    logger: o.logger,
    ...(o.simExecArgv === undefined ? {} : { execArgv: o.simExecArgv }),
  });
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ config, logger: o.logger, version: 'bench' });
  } catch (err) {
    await sim.close();
    throw err;
  }
  const control = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await fetch(`${sim.control}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const out = (await res.json()) as unknown;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(out)}`);
    return out;
  };
  const first = await daemon.mcus.firstAttempts;
  o.log(`MCUs up: ${first.up} of ${config.inventory.mcus.length}`);
  // The impairment once the drivers are connected: what is measured is the session, not the daemon's start.
  const impairment = o.loss === undefined ? { delayMs: o.delayMs } : { delayMs: o.delayMs, loss: o.loss };
  for (const m of config.inventory.mcus) await control('POST', `/v1/mcus/${m.id}/impairment`, impairment);
  const mcus = new Map<string, SimMcuInfo>();
  for (const m of (await control('GET', '/v1/mcus')) as SimMcuInfo[]) mcus.set(m.id, m);
  return {
    sim,
    daemon,
    inventory: config.inventory,
    control,
    mcus,
    close: async () => {
      await daemon.close();
      await sim.close();
    },
  };
}
