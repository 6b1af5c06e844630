/**
 * Shared parts of the cascade manager's tests against the simulator: small
 * networks on loopback addresses of their own (so tests may run beside
 * others), the daemon's parts (SIP user agent, driver pool, store, cascade
 * manager) started the way the daemon starts them, and waiting for
 * conditions with a bound instead of sleeping.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Test } from 'tap';
import type { CascadeManager, LinkEvent } from '../../src/cascade/index.js';
import { roomKey, startCascadeManager } from '../../src/cascade/index.js';
import { type CascadeSettings, parseConfig } from '../../src/config/index.js';
import type { Inventory } from '../../src/inventory/index.js';
import { type McuPool, startMcuPool } from '../../src/mcu/index.js';
import { createSimNetwork, type SimNetwork } from '../../src/sim/index.js';
import { createUserAgent, type UserAgent } from '../../src/sip/index.js';
import { type CascadeHead, openSqliteStore, type Store } from '../../src/store/index.js';
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

/** An endpoint's SIP URI in `networkConfig`. */
export const ep = (id: string) => `sip:${id}@endpoints.invalid`;

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

/** The simulator's view of one session: its room on each MCU, the links there, what goes over them. */
export function simView(sim: SimNetwork, head: CascadeHead) {
  const room = (m: string) => roomKey(head.rooms[m]!);
  const conf = (m: string) => sim.mcu(m).conferences.get(room(m));
  /** The entry for the link between m's room and peer's room, at m. */
  const linkAt = (m: string, peer: string) => conf(m)?.participants.get(room(peer));
  return {
    room,
    conf,
    linkAt,
    /** Up at both MCUs, on one call. */
    linked: (child: string, parent: string) => {
      const a = linkAt(parent, child);
      const b = linkAt(child, parent);
      return a?.status === 'connected' && b?.status === 'connected' && a.callId === b.callId;
    },
    /** What m's room sends over its link to peer. */
    shows: (m: string, peer: string) => {
      if (linkAt(m, peer) === undefined) return undefined;
      return sim.screen(m, room(peer), room(m)).regions.map((r) => r.source);
    },
    /** Is the endpoint in the session's room on m? */
    seated: (id: string, m: string) => sim.whereIs(id)?.conference === room(m),
  };
}

export type SimView = ReturnType<typeof simView>;

export interface LinkPair {
  readonly sim: SimNetwork;
  readonly parts: Parts;
  readonly head: CascadeHead;
  readonly v: SimView;
  /** The manager's link events, from before the admission on. */
  readonly links: LinkEvent[];
  /** The link p -> m up at both MCUs on one call, p sending p-room up it and m the chair down. */
  healthy(): boolean;
}

/**
 * The smallest cascade, where the link tests start: p (p-room's MCU) under m (the master, the chair's), two
 * rooms each, of `profile`, and `more` MCUs with no endpoint of the session; the simulator in this process,
 * the daemon's parts (`settings` as `startParts`'), and a session of every endpoint admitted. Everything closes
 * when the test ends.
 */
export async function linkPair(
  t: Test,
  o: {
    readonly profile?: NetMcu['profile'];
    readonly more?: readonly NetMcu[];
    readonly settings?: Partial<CascadeSettings>;
  } = {},
): Promise<LinkPair> {
  const profile = o.profile ?? 'full';
  const inv = network(
    loopbackBase(),
    [{ id: 'm', rooms: 2, profile }, { id: 'p', parents: ['m'], rooms: 2, profile }, ...(o.more ?? [])],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      { id: 'p-room', level: 'province', mcus: ['p'] },
    ],
  );
  const sim = await createSimNetwork({ inventory: inv, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  const parts = await startParts(inv, t.testdir(), o.settings);
  t.teardown(() => parts.close());
  const links: LinkEvent[] = [];
  parts.manager.on('link', (e) => links.push(e));
  const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });
  const v = simView(sim, head);
  const healthy = () =>
    v.linked('p', 'm') && v.shows('p', 'm')?.[0] === ep('p-room') && v.shows('m', 'p')?.[0] === ep('chair');
  return { sim, parts, head, v, links, healthy };
}

export interface CliRun {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/** `cascaded ARGS` (the compiled CLI) as a child process, to its end (or `timeoutMs`): exit code, stdout, stderr. */
export function cli(args: readonly string[], timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    // Bounded: a run that hangs fails its test with what it printed, not the file.
    const child = spawn(process.execPath, ['dist/src/cli/cascaded.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.once('close', (code) => resolve({ code, out, err }));
  });
}
