/**
 * A whole simulated network: one simulated MCU per inventory MCU, each on the
 * address of its conference URI and hosting its rooms (`conferences`), with
 * the inventory's endpoints joined to the lobby of their first candidate MCU
 * that has room (src/sim/placement.ts; or to none), dialled out from there
 * into rooms by REFER (wherever they sit), and display queries answered
 * across the live cascade links.
 */
import type { Logger } from 'pino';
import { readMcuSecret } from '../config/index.js';
import { onceClose } from '../core/index.js';
import { conferenceUris, type Inventory, type Mcu } from '../inventory/index.js';
import { parseUri, type SessionTimerOptions, type TimerConfig } from '../sip/index.js';
import { DisplayModel, type EndpointView, type ScreenView } from './display.js';
import { SimError } from './errors.js';
import type { Impairment } from './netem.js';
import { placeFromInventory } from './placement.js';
import { createSimMcu, entityOf, type SimAuth, type SimMcu } from './sim-mcu.js';

export interface SimNetworkOptions {
  readonly inventory: Inventory;
  /**
   * Where endpoints join: 'inventory' (each on its first candidate MCU with
   * room, default), 'none', or an explicit endpoint -> MCU map.
   */
  readonly placement?: 'inventory' | 'none' | Readonly<Record<string, string>>;
  /** Impairment applied to every MCU at start (each can be changed later). */
  readonly impairment?: Partial<Impairment>;
  /** Delay before every request of every MCU, ms (default 0). */
  readonly processingDelayMs?: number;
  /**
   * INFO processing delay of every MCU, ms, over the inventory's `sim.processingDelayMs` and the
   * drawn default (tests that need commands answered at once give 0).
   */
  readonly infoDelayMs?: number;
  /** Environment for the secrets of challenging MCUs (`auth.passwordEnv`, credentials); default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly timers?: Partial<TimerConfig>;
  /** Session timer of the cascade links the MCUs dial (RFC 4028; default 90 s, false for none). */
  readonly sessionTimer?: SessionTimerOptions | false;
  readonly logger?: Logger;
}

/** An endpoint's view with inventory ids instead of URIs. */
export interface EndpointViewById extends EndpointView {
  /** Inventory ids of the endpoints on the screen. */
  readonly seesIds: readonly string[];
  readonly hearsIds: readonly string[];
}

export interface SimNetwork {
  readonly mcus: ReadonlyMap<string, SimMcu>;
  /** Endpoints the placement could not seat (every candidate MCU full), in inventory order. */
  readonly unplaced: readonly string[];
  /** The SIP identity a simulated endpoint has in rosters. */
  endpointUri(endpointId: string): string;
  /** The inventory id of a roster entity (endpoint, or an MCU's lobby or room URI: the MCU's id). */
  idOf(entity: string): string | undefined;
  mcu(id: string): SimMcu;
  /** Where a simulated endpoint is: its MCU and conference, or undefined when in none. */
  whereIs(endpointId: string): { readonly mcu: string; readonly conference: string } | undefined;
  /** What an endpoint sees and hears, following cascade links; SIM_ERR_UNKNOWN_PARTICIPANT if it is in no conference. */
  endpointView(endpointId: string): EndpointViewById;
  /**
   * What `mcu` sends on `output` (a participant entity), following links: in
   * `conference` (a room name or URI) when given, else in the conference of
   * the MCU that has `output` (the lobby when none has).
   */
  screen(mcuId: string, output: string, conference?: string): ScreenView;
  close(): Promise<void>;
}

/** The credentials a challenging MCU asks for: its inventory `auth`, with the secret read where it lives. */
function simAuth(m: Mcu, env?: Readonly<Record<string, string | undefined>>): SimAuth {
  if (m.auth === undefined)
    throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${m.id}: the challenging profile needs auth`);
  return {
    username: m.auth.username,
    password: readMcuSecret(m.auth, env),
    ...(m.auth.realm === undefined ? {} : { realm: m.auth.realm }),
  };
}

/** Endpoints without a SIP URI of their own get one in a reserved domain (RFC 6761 .invalid). */
export function simulatedEndpointUri(id: string, sip?: string): string {
  if (sip !== undefined) {
    const u = parseUri(sip);
    if (u !== undefined) return entityOf(u);
  }
  return `sip:${encodeURIComponent(id)}@endpoints.invalid`;
}

/**
 * The rooms of an MCU as the simulator serves them: user parts on the MCU's
 * own address (one SIP user agent per simulated MCU).
 */
function simRooms(m: Mcu): string[] | undefined {
  if (m.conferences === undefined) return undefined;
  const lobby = parseUri(m.sip[0] ?? '')!;
  return conferenceUris(m).map((uri) => {
    const u = parseUri(uri);
    const samePort = lobby.port === 0 || (u?.port ?? 5060) === (lobby.port ?? 5060);
    if (u === undefined || u.user === undefined || u.host !== lobby.host || !samePort)
      throw new SimError(
        'SIM_ERR_INVALID_ARGUMENT',
        `MCU ${m.id}: room ${uri}: the simulator serves an MCU's rooms as users on its own address (${m.sip[0]})`,
      );
    return u.user;
  });
}

export async function createSimNetwork(options: SimNetworkOptions): Promise<SimNetwork> {
  const inv = options.inventory;
  const byEntity = new Map<string, string>();
  const focus = new Set<string>();
  const rooms = new Map<string, string[] | undefined>();
  for (const m of inv.mcus) {
    const u = parseUri(m.sip[0] ?? '');
    if (u === undefined) throw new SimError('SIM_ERR_INVALID_ARGUMENT', `MCU ${m.id} has no SIP URI`);
    focus.add(entityOf(u));
    byEntity.set(entityOf(u), m.id);
    rooms.set(m.id, simRooms(m));
  }
  const epUri = new Map<string, string>();
  for (const e of inv.endpoints) {
    const uri = simulatedEndpointUri(e.id, e.sip);
    epUri.set(e.id, uri);
    byEntity.set(uri, e.id);
  }

  const infoDelay = (m: Mcu) => {
    const ms = options.infoDelayMs ?? m.sim?.processingDelayMs;
    return ms === undefined ? {} : { infoDelayMs: ms };
  };
  const mcus = new Map<string, SimMcu>();
  const simulated = new Set(epUri.values());
  // A dial-out takes the endpoint from wherever it sits (few MCUs hold it: one, or none after a restart).
  const endpoints = {
    has: (entity: string) => simulated.has(entity),
    release: (entity: string, to: SimMcu) => {
      for (const m of mcus.values()) if (m !== to && m.locate(entity) !== undefined) m.leave(entity);
    },
  };
  let unplaced: readonly string[] = [];
  const closeAll = async () => {
    await Promise.allSettled([...mcus.values()].map((m) => m.close()));
  };
  try {
    // Bind in batches: every MCU is two sockets, and a burst of 150 binds gains nothing.
    const BATCH = 16;
    for (let i = 0; i < inv.mcus.length; i += BATCH) {
      const batch = inv.mcus.slice(i, i + BATCH);
      const started = await Promise.all(
        batch.map((m) =>
          createSimMcu({
            id: m.id,
            uri: m.sip[0]!,
            ports: m.capacity.ports,
            displayText: m.name,
            isFocus: (entity) => focus.has(entity),
            endpoints,
            ...(rooms.get(m.id) === undefined ? {} : { rooms: rooms.get(m.id)! }),
            ...(options.sessionTimer === undefined ? {} : { sessionTimer: options.sessionTimer }),
            ...(m.sim?.profile === undefined ? {} : { profile: m.sim.profile }),
            ...(m.sim?.profile === 'challenging' ? { auth: simAuth(m, options.env) } : {}),
            ...infoDelay(m),
            ...(options.impairment === undefined ? {} : { impairment: options.impairment }),
            ...(options.processingDelayMs === undefined ? {} : { processingDelayMs: options.processingDelayMs }),
            ...(options.timers === undefined ? {} : { timers: options.timers }),
            ...(options.logger === undefined ? {} : { logger: options.logger }),
          }),
        ),
      );
      for (const s of started) {
        mcus.set(s.id, s);
        // An MCU bound on port 0 is known by the URI it actually serves; its rooms are foci too.
        for (const uri of [s.uri, ...(rooms.get(s.id) ?? []).map((r) => s.roomUri(r))]) {
          focus.add(uri);
          byEntity.set(uri, s.id);
        }
      }
    }
    const placement = options.placement ?? 'inventory';
    let assignments: Readonly<Record<string, string>> = {};
    if (placement === 'inventory') ({ assignments, unplaced } = placeFromInventory(inv));
    else if (placement !== 'none') assignments = placement;
    const names = new Map(inv.endpoints.map((e) => [e.id, e.name]));
    for (const [ep, mcuId] of Object.entries(assignments)) {
      const m = mcus.get(mcuId);
      const uri = epUri.get(ep);
      if (m === undefined || uri === undefined)
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', `placement of ${ep} on ${mcuId}: unknown endpoint or MCU`);
      m.seat(uri, names.get(ep));
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  options.logger?.info(
    { mcus: mcus.size, endpoints: [...mcus.values()].reduce((n, m) => n + m.participants.size, 0) },
    'simulated network up',
  );
  if (unplaced.length > 0)
    options.logger?.warn(
      { unplaced: unplaced.length, first: unplaced.slice(0, 10) },
      'endpoints left out: every candidate MCU is full',
    );

  const model = () => new DisplayModel([...mcus.values()].flatMap((m) => m.display()));
  const ids = (entities: readonly string[]) => entities.map((e) => byEntity.get(e) ?? e);
  return {
    mcus,
    unplaced,
    endpointUri(id) {
      const uri = epUri.get(id);
      if (uri === undefined) throw new SimError('SIM_ERR_UNKNOWN_PARTICIPANT', `no endpoint ${id}`);
      return uri;
    },
    idOf: (entity) => byEntity.get(entity),
    mcu(id) {
      const m = mcus.get(id);
      if (m === undefined) throw new SimError('SIM_ERR_UNKNOWN_MCU', `no simulated MCU ${id}`);
      return m;
    },
    whereIs(id) {
      const uri = epUri.get(id);
      if (uri === undefined) throw new SimError('SIM_ERR_UNKNOWN_PARTICIPANT', `no endpoint ${id}`);
      for (const m of mcus.values()) {
        const conference = m.locate(uri);
        if (conference !== undefined) return { mcu: m.id, conference };
      }
      return undefined;
    },
    endpointView(id) {
      const uri = epUri.get(id);
      const v = uri === undefined ? undefined : model().endpointView(uri);
      if (v === undefined) throw new SimError('SIM_ERR_UNKNOWN_PARTICIPANT', `endpoint ${id} is in no conference`);
      return { ...v, seesIds: ids(v.sees), hearsIds: ids(v.hears) };
    },
    screen(mcuId, output, conference) {
      const m = mcus.get(mcuId);
      if (m === undefined) throw new SimError('SIM_ERR_UNKNOWN_MCU', `no simulated MCU ${mcuId}`);
      return model().screen(conference === undefined ? (m.locate(output) ?? m.uri) : m.roomUri(conference), output);
    },
    close: onceClose(closeAll),
  };
}
