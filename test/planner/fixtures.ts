/**
 * Test fixtures: seeded random inventories and sessions, small enough for the
 * exhaustive oracle or medium for the ILP, with tight capacities on purpose,
 * random session roots, cycles among allowed parents and capacity held by
 * other sessions.
 */
import { seededRandom } from '../../src/core/index.js';
import type { Endpoint, Inventory, Mcu } from '../../src/inventory/index.js';
import type { HeldCapacity, Session } from '../../src/planner/index.js';

/** The seeded PRNG, so every instance can be reproduced from its seed. */
export const prng = seededRandom;

export function mcu(id: string, ports: number, cascadePorts: number, parents: string[] = []): Mcu {
  return {
    id,
    name: id,
    operator: 'op',
    role: id === 'master' ? 'master' : 'slave',
    driver: 'sip-msml',
    sip: [`sip:conf@${id}.test`],
    vendor: 'test',
    capacity: { ports, cascadePorts },
    parents,
  };
}

export function endpoint(id: string, mcus: string[], extra: Partial<Endpoint> = {}): Endpoint {
  return { id, name: id, level: 'commune', mcus, connection: 'direct', vcs: 'test', ...extra };
}

export function relay(id: string, via: string): Endpoint {
  return { id, name: id, level: 'commune', mcus: [], connection: 'relay', relayVia: via, vcs: 'test' };
}

export function inventory(mcus: Mcu[], endpoints: Endpoint[]): Inventory {
  return { levels: [{ id: 'commune', name: 'commune' }], provinces: [], operators: [], mcus, endpoints };
}

export interface Instance {
  readonly seed: number;
  readonly inventory: Inventory;
  readonly session: Session;
  readonly unavailable: string[];
  readonly reserved: Readonly<Record<string, Required<HeldCapacity>>>;
}

export interface Shape {
  /** Slave MCUs, at least 1. */
  readonly slaves: [number, number];
  readonly endpoints: [number, number];
  /** Ports per slave MCU. */
  readonly ports: [number, number];
  readonly cascadePorts: [number, number];
  readonly maxCandidates: number;
  /** Chance that a slave has no parent at all (no path to the master). */
  readonly orphans: number;
}

export const SMALL: Shape = {
  slaves: [1, 4],
  endpoints: [1, 7],
  ports: [0, 6],
  cascadePorts: [0, 3],
  maxCandidates: 3,
  orphans: 0.15,
};
export const MEDIUM: Shape = {
  slaves: [4, 10],
  endpoints: [15, 60],
  ports: [4, 20],
  cascadePorts: [1, 4],
  maxCandidates: 3,
  orphans: 0.02,
};

/**
 * A random instance: slaves cascade into the master or into slaves created before them, and
 * sometimes also into one created after them (a cycle) or the master into a slave; the session's
 * root is the master or, for a quarter of the seeds, a random slave; other sessions hold part of
 * some MCUs' capacity for a third of the seeds.
 */
export function randomInstance(seed: number, shape: Shape): Instance {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  const slaves = int(...shape.slaves);
  // Ids chosen so that sorted order differs from creation order (the planner must not depend on either).
  const names = ['master', ...shuffle(Array.from({ length: slaves }, (_, i) => `m${String.fromCharCode(97 + i)}`))];
  const mcus: Mcu[] = [mcu('master', int(shape.ports[0] + 2, shape.ports[1] + 4), int(1, shape.cascadePorts[1] + 1))];
  for (let i = 1; i <= slaves; i++) {
    const earlier = names.slice(0, i);
    const parents = shuffle(earlier.filter(() => rnd() < 0.6));
    if (parents.length === 0 && rnd() >= shape.orphans) parents.push(earlier[int(0, earlier.length - 1)]!);
    // A parent created later closes a cycle: which way the link goes depends on the session's root.
    if (i < slaves && rnd() < 0.25) parents.push(names[int(i + 1, slaves)]!);
    mcus.push(mcu(names[i]!, int(...shape.ports), int(...shape.cascadePorts), parents));
  }
  if (rnd() < 0.3) mcus[0] = { ...mcus[0]!, parents: [names[int(1, slaves)]!] };
  const count = int(...shape.endpoints);
  const endpoints: Endpoint[] = [];
  for (let i = 0; i < count; i++) {
    const id = `e${String(i).padStart(2, '0')}`;
    const direct = endpoints.filter((e) => e.connection !== 'relay');
    if (direct.length > 0 && rnd() < 0.15) {
      endpoints.push(relay(id, direct[int(0, direct.length - 1)]!.id));
      continue;
    }
    const k = int(1, Math.min(shape.maxCandidates, names.length));
    const cands = shuffle([...names]).slice(0, k);
    endpoints.push(endpoint(id, cands, rnd() < 0.2 ? { connection: 'via-operator', operator: 'op' } : {}));
  }
  const chosen = shuffle(endpoints.filter(() => rnd() < 0.8).map((e) => e.id));
  if (chosen.length === 0) chosen.push(endpoints[0]!.id);
  const chairs = endpoints.filter((e) => e.connection !== 'relay');
  const chair = chairs.length > 0 && rnd() < 0.5 ? chairs[int(0, chairs.length - 1)]!.id : undefined;
  const unavailable = slaves > 1 && rnd() < 0.2 ? [names[int(1, slaves)]!] : [];
  const root = rnd() < 0.25 ? names[int(1, slaves)]! : undefined;
  const reserved: Record<string, Required<HeldCapacity>> = {};
  if (rnd() < 0.3) {
    for (const m of mcus) {
      if (rnd() < 0.4) reserved[m.id] = { ports: int(0, 2), cascadePorts: int(0, m.capacity.cascadePorts > 0 ? 1 : 0) };
    }
  }
  return {
    seed,
    inventory: inventory(shuffle(mcus), shuffle(endpoints)),
    session: {
      endpoints: chosen,
      ...(chair === undefined ? {} : { chair }),
      ...(root === undefined ? {} : { root }),
    },
    unavailable,
    reserved,
  };
}
