/**
 * The chair end to end: the simulator in its own process (`cascaded-sim`,
 * its MCUs on loopback addresses of their own), the daemon's parts in this
 * process (SIP user agent, MCU drivers, store, cascade manager, chair
 * engine) started the way the daemon starts them, and the simulator's
 * control interface to ask what an endpoint really sees and hears and to
 * break things (loss, silence, dropped links).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChairEngine, cascadeSource, createChairEngine } from '../../src/chair/index.js';
import { type CascadeSettings, parseConfig } from '../../src/config/index.js';
import type { Inventory } from '../../src/inventory/index.js';
import { type SimulatorProcess, spawnSimulator } from '../../src/sim/index.js';
import { type NetEndpoint, type NetMcu, networkConfig, type Parts, startParts } from '../cascade/helpers.js';

export interface ChairWorld {
  readonly inventory: Inventory;
  readonly sim: SimulatorProcess;
  readonly parts: Parts;
  readonly chair: ChairEngine;
  /** GET or POST on the simulator's control interface. */
  control(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown>;
  /** What an endpoint sees and hears, by inventory ids, as the simulator's display model says. */
  view(endpoint: string): Promise<{ seesIds: string[]; hearsIds: string[] }>;
  close(): Promise<void>;
}

export interface WorldOptions {
  /** Extra keys per MCU (auth, sim settings) by MCU id. */
  readonly mcuExtra?: Readonly<Record<string, Record<string, unknown>>>;
  /** Endpoints added as they are (relay endpoints). */
  readonly extraEndpoints?: readonly Record<string, unknown>[];
  readonly deadlineMs?: number;
  readonly cascade?: Partial<CascadeSettings>;
}

export async function chairWorld(
  dir: string,
  base: string,
  mcus: readonly NetMcu[],
  endpoints: readonly NetEndpoint[],
  o: WorldOptions = {},
): Promise<ChairWorld> {
  const cfg = networkConfig(base, mcus, endpoints);
  const list = cfg.mcus as Record<string, unknown>[];
  for (const m of list) Object.assign(m, o.mcuExtra?.[m.id as string] ?? {});
  (cfg.endpoints as Record<string, unknown>[]).push(...(o.extraEndpoints ?? []));
  const file = join(dir, 'network.yaml');
  // JSON is YAML: the simulator and the daemon read the same file.
  writeFileSync(file, JSON.stringify(cfg, null, 1));
  const config = parseConfig(JSON.stringify(cfg), { cwd: dir });
  const inventory = config.inventory;
  const sim = await spawnSimulator({ configFile: file, logLevel: process.env.CHAIR_TEST_LOG ?? 'warn' });
  let parts: Parts;
  try {
    parts = await startParts(inventory, dir, o.cascade);
  } catch (err) {
    await sim.close();
    throw err;
  }
  const chair = createChairEngine({
    source: cascadeSource({
      cascade: parts.manager,
      drivers: parts.pool.drivers,
      inventory,
      settings: config.daemon.chair,
    }),
    deadlineMs: o.deadlineMs ?? 30_000,
  });
  const control = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await fetch(`${sim.control}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const out = (await res.json()) as unknown;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(out)}`);
    return out;
  };
  return {
    inventory,
    sim,
    parts,
    chair,
    control,
    view: async (endpoint) =>
      (await control('GET', `/v1/endpoints/${encodeURIComponent(endpoint)}/view`)) as {
        seesIds: string[];
        hearsIds: string[];
      },
    close: async () => {
      await chair.close();
      await parts.close();
      await sim.close();
    },
  };
}
