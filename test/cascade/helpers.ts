/**
 * Shared parts of the cascade manager's tests against the simulator: small
 * networks on loopback addresses of their own (so tests may run beside
 * others), the daemon's parts (SIP user agent, driver pool, store, cascade
 * manager) started the way the daemon starts them, and waiting for
 * conditions with a bound instead of sleeping.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import type { CascadeManager } from '../../src/cascade/index.js';
import { startCascadeManager } from '../../src/cascade/index.js';
import { type CascadeSettings, parseConfig } from '../../src/config/index.js';
import type { Inventory } from '../../src/inventory/index.js';
import { type McuPool, startMcuPool } from '../../src/mcu/index.js';
import { createUserAgent, type UserAgent } from '../../src/sip/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { waitFor } from '../sim/helpers.js';

/** A base address 127.A.B. of its own: hosts are base + 1..N, all on port 5060. */
export function loopbackBase(): string {
  const r = (n: number) => Math.floor(Math.random() * n);
  return `127.${100 + r(100)}.${r(256)}.`;
}

export interface NetMcu {
  readonly id: string;
  readonly parents?: readonly string[];
  readonly ports?: number;
  readonly cascadePorts?: number;
  readonly profile?: 'full' | 'no-conference-events' | 'full-state-only' | 'challenging';
  /** Digest credentials it asks for (the challenging profile): the file holding the secret. */
  readonly secretFile?: string;
  readonly rooms?: number;
}

export interface NetEndpoint {
  readonly id: string;
  readonly level?: string;
  readonly mcus: readonly string[];
}

/**
 * A config (as an object, YAML's superset JSON) with each MCU on its own loopback address (rooms 7001.. when
 * `rooms`) and endpoints with SIP URIs; `daemon` settings as given.
 */
export function networkConfig(
  base: string,
  mcus: readonly NetMcu[],
  endpoints: readonly NetEndpoint[],
  daemon: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    version: 1,
    levels: [
      { id: 'central', name: 'Central' },
      { id: 'province', name: 'Province' },
      { id: 'district', name: 'District' },
      { id: 'commune', name: 'Commune' },
    ],
    operators: [{ id: 'op', name: 'Operator', kind: 'central' }],
    mcus: mcus.map((m, i) => ({
      id: m.id,
      name: m.id,
      operator: 'op',
      role: i === 0 ? 'master' : 'slave',
      sip: [`sip:conf@${base}${i + 1}:5060`],
      ...(m.rooms === undefined
        ? {}
        : { conferences: { template: `sip:{room}@${base}${i + 1}:5060`, rooms: { from: 7001, to: 7000 + m.rooms } } }),
      capacity: { ports: m.ports ?? 40, cascadePorts: m.cascadePorts ?? 8 },
      parents: m.parents ?? [],
      sim: { profile: m.profile ?? 'full', processingDelayMs: 5 },
      ...(m.secretFile === undefined ? {} : { auth: { username: 'cascaded', passwordFile: m.secretFile } }),
    })),
    endpoints: endpoints.map((e) => ({
      id: e.id,
      name: e.id,
      level: e.level ?? 'commune',
      mcus: e.mcus,
      sip: `sip:${e.id}@endpoints.invalid`,
    })),
    daemon,
  };
}

/** The inventory of `networkConfig`. */
export function network(base: string, mcus: readonly NetMcu[], endpoints: readonly NetEndpoint[]): Inventory {
  return parseConfig(JSON.stringify(networkConfig(base, mcus, endpoints))).inventory;
}

export const SETTINGS: CascadeSettings = {
  linkConcurrency: 16,
  endpointConcurrency: 16,
  layoutConcurrency: 16,
  dialEndpoints: true,
  halfDeadGraceMs: 1_000,
  linkProbeMs: 500,
  replanAfterMs: 5_000,
  unexpectedLinks: 'report',
  pollMs: 200,
  retry: { baseMs: 100, maxMs: 1_000, jitter: 0.25 },
};

export interface Parts {
  readonly ua: UserAgent;
  readonly pool: McuPool;
  readonly store: Store;
  readonly manager: CascadeManager;
  close(): Promise<void>;
}

/** The daemon's parts for `inventory`, in the daemon's order; `close` undoes them in reverse. */
export async function startParts(
  inventory: Inventory,
  dir: string,
  settings: Partial<CascadeSettings> = {},
  driver: { readonly qualityReports?: boolean; readonly subscribeTransport?: 'udp' | 'tcp' } = {},
): Promise<Parts> {
  const logger = pino({ level: process.env.CASCADE_TEST_LOG ?? 'silent' });
  const store = await openSqliteStore({ path: join(dir, 'cascaded.db') });
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    maxMessageSize: 2 * 1_048_576,
  });
  const pool = await startMcuPool({
    ua,
    mcus: inventory.mcus,
    logger,
    driver: {
      healthIntervalMs: 500,
      healthFailures: 2,
      requestTimeoutMs: 2_000,
      resubscribeIntervalMs: 1_000,
      ...driver,
    },
  });
  await pool.firstAttempts;
  const manager = await startCascadeManager({
    store,
    inventory,
    mcus: pool,
    settings: { ...SETTINGS, ...settings },
    logger,
  });
  return {
    ua,
    pool,
    store,
    manager,
    close: async () => {
      await manager.close();
      await pool.close();
      await ua.close();
      await store.close();
    },
  };
}

/** waitFor (test/sim/helpers.ts) with the cascade tests' bounds: 20 s, polled every 20 ms. */
export const until = <T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 20,
): Promise<T> => waitFor(what, probe, timeoutMs, everyMs);
