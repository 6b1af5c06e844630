/**
 * Turns an inventory and a session into the planner's canonical problem:
 * MCUs indexed in sorted id order, endpoints grouped into demands (endpoints
 * with the same usable candidates, the same depth weight and, when
 * re-planning, the same previous MCU are interchangeable). Sorting everything
 * by id here is what makes the plan independent of input order.
 */
import type { Endpoint, Inventory } from '../inventory/types.js';
import { PlanError } from './errors.js';

export interface Network {
  /** MCU ids, sorted; an MCU's index is its position here. */
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  readonly master: number;
  readonly ports: readonly number[];
  readonly cascadePorts: readonly number[];
  readonly available: readonly boolean[];
  /** Available parents of each MCU, in the inventory's preference order. */
  readonly parents: readonly (readonly number[])[];
  /** Position of each of those parents in the inventory's list (the parent-preference tie-break). */
  readonly parentRank: readonly (readonly number[])[];
  /** Fewest links from each MCU to the master through available MCUs (Infinity: no path). */
  readonly dist: readonly number[];
  /** The deepest an MCU can sit in any tree: no plan needs a larger depth bound. */
  readonly height: number;
}

/** Interchangeable endpoints: the unit the flow network moves. */
export interface Demand {
  /** Usable candidate MCUs (available, with a path to the master), in preference order. */
  readonly cands: readonly number[];
  /** Position of each usable candidate in the endpoint's own list (the preference cost). */
  readonly ranks: readonly number[];
  /** The endpoints, sorted. */
  readonly members: readonly string[];
  /** Depth weight of each member: itself plus the relay endpoints relayed through it. */
  readonly weight: number;
  /** Re-planning: the MCU the members were on (-1: new to the session or MCU lost). */
  readonly prev: number;
  /** The chair: pinned to the master, no preference cost. */
  readonly chair: boolean;
  /** Candidate MCU ids left out because unavailable or without a path to the master (for reasons). */
  readonly blocked: readonly string[];
}

/** Members whose candidates are all unusable, grouped by their candidate lists. */
export interface Stranded {
  readonly endpoints: readonly string[];
  readonly candidates: readonly string[];
}

export interface Problem {
  readonly net: Network;
  readonly demands: readonly Demand[];
  readonly stranded: readonly Stranded[];
  readonly endpoints: readonly string[];
  readonly relays: ReadonlyMap<string, string>;
  readonly addedForRelay: readonly string[];
  readonly chair: string | null;
  readonly unavailable: readonly string[];
  /** Re-planning: each MCU's previous parent (-1: master or not in the previous tree). */
  readonly prevParent: readonly number[] | null;
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function buildNetwork(inventory: Inventory, unavailable: readonly string[]): Network {
  const ids = inventory.mcus.map((m) => m.id).sort(byId);
  const index = new Map(ids.map((id, i) => [id, i]));
  const byIndex = ids.map((id) => inventory.mcus.find((m) => m.id === id)!);
  const unknown = unavailable.filter((id) => !index.has(id));
  if (unknown.length > 0) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `unknown MCU${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
      {
        details: { unknownMcus: unknown },
      },
    );
  }
  const down = new Set(unavailable);
  const available = ids.map((id) => !down.has(id));
  const masters = byIndex.flatMap((m, i) => (m.role === 'master' ? [i] : []));
  if (masters.length !== 1) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `the inventory must have exactly one master MCU (${masters.length})`,
    );
  }
  const master = masters[0]!;
  const parents: number[][] = [];
  const parentRank: number[][] = [];
  for (const m of byIndex) {
    const ps: number[] = [];
    const rs: number[] = [];
    m.parents.forEach((pid, rank) => {
      const p = index.get(pid);
      if (p !== undefined && available[p] && !ps.includes(p)) {
        ps.push(p);
        rs.push(rank);
      }
    });
    parents.push(m.role === 'master' ? [] : ps);
    parentRank.push(m.role === 'master' ? [] : rs);
  }
  // Breadth-first from the master along reversed parent links.
  const children: number[][] = ids.map(() => []);
  parents.forEach((ps, c) => {
    if (available[c]) for (const p of ps) children[p]!.push(c);
  });
  const dist = ids.map(() => Number.POSITIVE_INFINITY);
  if (available[master]) {
    dist[master] = 0;
    const queue = [master];
    for (let h = 0; h < queue.length; h++) {
      const u = queue[h]!;
      for (const c of children[u]!) {
        if (dist[c] === Number.POSITIVE_INFINITY) {
          dist[c] = dist[u]! + 1;
          queue.push(c);
        }
      }
    }
  }
  return {
    ids,
    index,
    master,
    ports: byIndex.map((m) => m.capacity.ports),
    cascadePorts: byIndex.map((m) => m.capacity.cascadePorts),
    available,
    parents,
    parentRank,
    dist,
    height: longestPath(ids.length, parents, dist),
  };
}

/** Longest parent chain to the master among reachable MCUs (parent links are acyclic: config validation). */
function longestPath(n: number, parents: readonly (readonly number[])[], dist: readonly number[]): number {
  const memo = new Array<number>(n).fill(-1);
  const onStack = new Uint8Array(n);
  let cyclic = false;
  const depth = (m: number): number => {
    if (memo[m]! >= 0) return memo[m]!;
    if (onStack[m]) {
      cyclic = true;
      return 0;
    }
    onStack[m] = 1;
    let best = 0;
    for (const p of parents[m]!) if (dist[p]! < Number.POSITIVE_INFINITY) best = Math.max(best, depth(p) + 1);
    onStack[m] = 0;
    memo[m] = best;
    return best;
  };
  let h = 0;
  for (let m = 0; m < n; m++) if (dist[m]! < Number.POSITIVE_INFINITY) h = Math.max(h, depth(m));
  // A cycle would make the chain bound meaningless; any tree is still at most n-1 deep.
  return cyclic ? n - 1 : h;
}

export interface Previous {
  /** endpoint id -> MCU id it was assigned to. */
  readonly assignments: Readonly<Record<string, string>>;
  /** child MCU id -> parent MCU id. */
  readonly links: Readonly<Record<string, string>>;
}

/** Per-inventory lookups, built once: inventories are immutable (frozen by the config loader). */
interface InventoryIndex {
  readonly endpoints: ReadonlyMap<string, Endpoint>;
  /** Endpoint id -> a number shared by exactly the endpoints with the same candidate list. */
  readonly signature: ReadonlyMap<string, number>;
}
const indexes = new WeakMap<Inventory, InventoryIndex>();
function indexOf(inventory: Inventory): InventoryIndex {
  let idx = indexes.get(inventory);
  if (idx === undefined) {
    const lists = new Map<string, number>();
    const signature = new Map<string, number>();
    for (const e of inventory.endpoints) {
      const key = e.mcus.join('\u0000');
      if (!lists.has(key)) lists.set(key, lists.size);
      signature.set(e.id, lists.get(key)!);
    }
    idx = { endpoints: new Map(inventory.endpoints.map((e) => [e.id, e])), signature };
    indexes.set(inventory, idx);
  }
  return idx;
}

export function buildProblem(
  inventory: Inventory,
  sessionEndpoints: readonly string[],
  chairId: string | undefined,
  unavailable: readonly string[],
  previous: Previous | null,
): Problem {
  const net = buildNetwork(inventory, unavailable);
  const { endpoints: endpointsById, signature } = indexOf(inventory);
  const requested = [...new Set(chairId === undefined ? sessionEndpoints : [...sessionEndpoints, chairId])];
  const unknown = requested.filter((id) => !endpointsById.has(id)).sort();
  if (unknown.length > 0) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `unknown endpoint${unknown.length > 1 ? 's' : ''}: ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ', ...' : ''}`,
      { details: { unknownEndpoints: unknown } },
    );
  }
  if (requested.length === 0) throw new PlanError('PLAN_ERR_INVALID_SESSION', 'the session has no endpoint');
  if (chairId !== undefined && endpointsById.get(chairId)!.connection === 'relay') {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `the chair ${chairId} is a relay endpoint: it must sit on the master`,
      {
        details: { chair: chairId },
      },
    );
  }

  // A relay endpoint is seen and heard only through its province endpoint, so that endpoint joins the session.
  const inSession = new Set(requested);
  const relays = new Map<string, string>();
  const addedForRelay = new Set<string>();
  for (const id of requested) {
    const e = endpointsById.get(id)!;
    if (e.connection !== 'relay') continue;
    const via = e.relayVia!;
    relays.set(id, via);
    if (!inSession.has(via)) addedForRelay.add(via);
  }
  for (const via of addedForRelay) inSession.add(via);
  // Default sort is UTF-16 code-unit order, the same order as byId, and much faster on 10^4 ids.
  const endpoints = [...inSession].sort();
  const weight = new Map<string, number>();
  for (const via of relays.values()) weight.set(via, (weight.get(via) ?? 1) + 1);

  const prevMcu = (id: string): number => {
    const m = previous?.assignments[id];
    const i = m === undefined ? undefined : net.index.get(m);
    return i !== undefined && net.available[i] ? i : -1;
  };

  // Group first on the raw candidate list (cheap key), then resolve each group's usable candidates once.
  const groups = new Map<
    string | number,
    { e: Endpoint; weight: number; prev: number; chair: boolean; members: string[] }
  >();
  for (const id of endpoints) {
    const e = endpointsById.get(id)!;
    if (e.connection === 'relay') continue;
    const chair = id === chairId;
    const w = weight.get(id) ?? 1;
    const prev = previous === null ? -1 : prevMcu(id);
    const sig = signature.get(id)!;
    // A number, not a string: building and hashing 10^4 string keys costs milliseconds. Weights are
    // at most the session size + 1 and signatures fewer than the endpoints, so this stays below 2^53.
    const key = chair ? -1 : (sig * (endpoints.length + 2) + w) * (net.ids.length + 1) + prev + 1;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { e, weight: w, prev, chair, members: [id] });
    else g.members.push(id);
  }
  const demands: Demand[] = [];
  const stranded: Stranded[] = [];
  for (const g of groups.values()) {
    const cands: number[] = [];
    const ranks: number[] = [];
    if (g.chair) {
      if (net.dist[net.master] === 0) {
        cands.push(net.master);
        ranks.push(0);
      }
    } else {
      g.e.mcus.forEach((mid, rank) => {
        const m = net.index.get(mid);
        if (m !== undefined && net.dist[m]! < Number.POSITIVE_INFINITY && !cands.includes(m)) {
          cands.push(m);
          ranks.push(rank);
        }
      });
    }
    if (cands.length === 0) {
      stranded.push({ endpoints: g.members, candidates: g.chair ? [net.ids[net.master]!] : [...g.e.mcus] });
      continue;
    }
    const blocked = g.chair ? [] : g.e.mcus.filter((mid) => !cands.includes(net.index.get(mid)!));
    demands.push({ cands, ranks, weight: g.weight, prev: g.prev, chair: g.chair, blocked, members: g.members });
  }
  // Canonical order: by first member (members are sorted and each endpoint is in one demand).
  demands.sort((a, b) => byId(a.members[0]!, b.members[0]!));
  stranded.sort((a, b) => byId(a.endpoints[0]!, b.endpoints[0]!));

  let prevParent: number[] | null = null;
  if (previous !== null) {
    prevParent = net.ids.map(() => -1);
    for (const [child, parent] of Object.entries(previous.links)) {
      const c = net.index.get(child);
      const p = net.index.get(parent);
      if (c !== undefined && p !== undefined) prevParent[c] = p;
    }
  }

  return {
    net,
    demands,
    stranded,
    endpoints,
    relays,
    addedForRelay: [...addedForRelay].sort(byId),
    chair: chairId ?? null,
    unavailable: [...new Set(unavailable)].sort(byId),
    prevParent,
  };
}
