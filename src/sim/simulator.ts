/**
 * The simulator as a running service: every MCU of an inventory plus the
 * loopback control interface. Used by `cascaded-sim` and by `cascaded --with-sim`.
 */
import type { Logger } from 'pino';
import { onceClose } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import { type SimControlServer, startSimControlServer } from './control-server.js';
import { createSimNetwork, type SimNetwork, type SimNetworkOptions } from './network.js';

export interface SimulatorOptions {
  readonly inventory: Inventory;
  readonly logger?: Logger;
  readonly placement?: SimNetworkOptions['placement'];
  /** Control interface address; port 0 picks one. */
  readonly controlHost?: string;
  readonly controlPort?: number;
}

export interface Simulator {
  readonly network: SimNetwork;
  readonly control: SimControlServer;
  close(): Promise<void>;
}

export const DEFAULT_CONTROL_PORT = 8091;

export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const log = options.logger?.child({ module: 'sim' });
  const t0 = performance.now();
  const network = await createSimNetwork({
    inventory: options.inventory,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.placement === undefined ? {} : { placement: options.placement }),
  });
  let control: SimControlServer;
  try {
    control = await startSimControlServer(
      network,
      options.controlHost ?? '127.0.0.1',
      options.controlPort ?? DEFAULT_CONTROL_PORT,
    );
  } catch (err) {
    await network.close();
    throw err;
  }
  // Loading a national inventory leaves ~150 MB of parse garbage that an idle simulator may keep
  // resident for a long time; when the process runs with --expose-gc (npm start, npm run sim), collect it now.
  (globalThis as { gc?: () => void }).gc?.();
  let participants = 0;
  for (const m of network.mcus.values()) participants += m.participants.size;
  log?.info(
    {
      mcus: network.mcus.size,
      participants,
      control: control.url,
      ms: Math.round(performance.now() - t0),
      rssMB: Math.round(process.memoryUsage().rss / 1_048_576),
    },
    `simulator ready: ${network.mcus.size} MCUs, ${participants} endpoints; control ${control.url}`,
  );
  return {
    network,
    control,
    close: onceClose(async () => {
      await control.close();
      await network.close();
    }),
  };
}
