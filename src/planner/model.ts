/**
 * Turns an inventory and a session into the planner's canonical problem:
 * the network as seen from the session's root (distances, capacity left by
 * other sessions), MCUs and endpoints numbered in sorted id order, endpoints grouped into demands (endpoints
 * with the same usable candidates, the same depth weight and, when
 * re-planning, the same previous MCU are interchangeable). Sorting everything
 * by id here is what makes the plan independent of input order.
 */
import type { Endpoint, Inventory } from '../inventory/index.js';
import { PlanError } from './errors.js';
import type { HeldCapacity } from './types.js';

export interface Network {
  /** MCU ids, sorted; an MCU's index is its position here. */
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** The session's root MCU (depth 0). */
  readonly root: number;
  /** Ports and cascade ports left to this session: the capacity minus what other sessions hold. */
  readonly ports: readonly number[];
  readonly cascadePorts: readonly number[];
  /** The ports of each MCU and those other sessions hold there (the utilisation counts both). */
  readonly capacity: readonly number[];
  readonly cascadeCapacity: readonly number[];
  readonly held: readonly number[];
  readonly heldCascade: readonly number[];
  readonly available: readonly boolean[];
  /** Available parents of each MCU, in the inventory's preference order (none for the root). */
  readonly parents: readonly (readonly number[])[];
  /** Position of each of those parents in the inventory's list (the parent-preference tie-break). */
  readonly parentRank: readonly (readonly number[])[];
  /** Fewest links from each MCU to the root through available MCUs (Infinity: no path). */
  readonly dist: readonly number[];
  /** The deepest an MCU can sit in any tree: no plan needs a larger depth bound. */
  readonly height: number;
}

/** Interchangeable endpoints: the unit the flow network moves. */
export interface Demand {
  /** Usable candidate MCUs (available, with a path to the root), in preference order. */
  readonly cands: readonly number[];
  /** Position of each usable candidate in the endpoint's own list (the preference cost). */
  readonly ranks: readonly number[];
  /** The endpoints, by number (see `Problem.ids`), ascending. */
  readonly members: readonly number[];
  /** Depth weight of each member: itself plus the relay endpoints relayed through it. */
  readonly weight: number;
  /** Re-planning: the MCU the members were on (-1: new to the session or MCU lost). */
  readonly prev: number;
  /** The chair: pinned to the root, no preference cost. */
  readonly chair: boolean;
  /** Candidate MCU ids left out because unavailable or without a path to the root (for reasons). */
  readonly blocked: readonly string[];
}

/** Members whose candidates are all unusable, grouped by their candidate lists. */
export interface Stranded {
  /** The endpoints, by number, ascending. */
  readonly members: readonly number[];
  readonly candidates: readonly string[];
}

export interface Problem {
  readonly net: Network;
  readonly demands: readonly Demand[];
  readonly stranded: readonly Stranded[];
  /**
   * Every endpoint id of the inventory, sorted: an endpoint's number is its position here. Numbers,
   * not ids, flow through the planner: hashing 10^4 ids at every step costs milliseconds.
   */
  readonly ids: readonly string[];
  /** The session (relays, the chair and the endpoints added for relays included), by number, ascending. */
  readonly session: readonly number[];
  /** Per endpoint number: the number of the endpoint it is relayed through, -1 if it is not a relay. */
  readonly relayVia: Int32Array;
  readonly addedForRelay: readonly string[];
  readonly chair: string | null;
  readonly unavailable: readonly string[];
  /** The capacity other sessions hold, by MCU id (MCUs with none left out), sorted by id. */
  readonly reserved: Readonly<Record<string, { readonly ports: number; readonly cascadePorts: number }>>;
  /** Re-planning: each MCU's previous parent (-1: the root or not in the previous tree). */
  readonly prevParent: readonly number[] | null;
  /** Re-planning: per endpoint number, its MCU in the previous plan, available or not (-1: none). */
  readonly prevMcu: Int32Array | null;
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** What the network is built from, besides the inventory. */
export interface NetworkInput {
  readonly unavailable: readonly string[];
  /** The root MCU's id; undefined: the inventory's master. */
  readonly root: string | undefined;
  readonly reserved: Readonly<Record<string, HeldCapacity>>;
}

export function buildNetwork(inventory: Inventory, input: NetworkInput): Network {
  const ids = inventory.mcus.map((m) => m.id).sort(byId);
  const index = new Map(ids.map((id, i) => [id, i]));
  const byIndex = ids.map((id) => inventory.mcus.find((m) => m.id === id)!);
  const unknown = [...input.unavailable, ...Object.keys(input.reserved)].filter((id) => !index.has(id));
  if (input.root !== undefined && !index.has(input.root)) unknown.push(input.root);
  if (unknown.length > 0) {
    const list = [...new Set(unknown)];
    throw new PlanError('PLAN_ERR_INVALID_SESSION', `unknown MCU${list.length > 1 ? 's' : ''}: ${list.join(', ')}`, {
      details: { unknownMcus: list },
    });
  }
  const badHeld = Object.entries(input.reserved).filter(
    ([, h]) => !isCount(h.ports ?? 0) || !isCount(h.cascadePorts ?? 0),
  );
  if (badHeld.length > 0) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `reserved capacity must be whole numbers >= 0 (${badHeld.map(([id]) => id).join(', ')})`,
      { details: { reserved: badHeld.map(([id]) => id) } },
    );
  }
  const down = new Set(input.unavailable);
  const available = ids.map((id) => !down.has(id));
  let root: number;
  if (input.root === undefined) {
    const masters = byIndex.flatMap((m, i) => (m.role === 'master' ? [i] : []));
    if (masters.length !== 1) {
      throw new PlanError(
        'PLAN_ERR_INVALID_SESSION',
        `the inventory must have exactly one master MCU (${masters.length}), or the session must name its root`,
      );
    }
    root = masters[0]!;
  } else root = index.get(input.root)!;
  const parents: number[][] = [];
  const parentRank: number[][] = [];
  byIndex.forEach((m, c) => {
    const ps: number[] = [];
    const rs: number[] = [];
    // The root has no parent, whatever the inventory allows it for sessions rooted elsewhere.
    if (c !== root) {
      m.parents.forEach((pid, rank) => {
        const p = index.get(pid);
        if (p !== undefined && p !== c && available[p] && !ps.includes(p)) {
          ps.push(p);
          rs.push(rank);
        }
      });
    }
    parents.push(ps);
    parentRank.push(rs);
  });
  // Breadth-first from the root along reversed parent links.
  const children: number[][] = ids.map(() => []);
  parents.forEach((ps, c) => {
    if (available[c]) for (const p of ps) children[p]!.push(c);
  });
  const dist = ids.map(() => Number.POSITIVE_INFINITY);
  if (available[root]) {
    dist[root] = 0;
    const queue = [root];
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
  const held = byIndex.map((m) => input.reserved[m.id]?.ports ?? 0);
  const heldCascade = byIndex.map((m) => input.reserved[m.id]?.cascadePorts ?? 0);
  return {
    ids,
    index,
    root,
    ports: byIndex.map((m, i) => Math.max(0, m.capacity.ports - held[i]!)),
    cascadePorts: byIndex.map((m, i) => Math.max(0, m.capacity.cascadePorts - heldCascade[i]!)),
    capacity: byIndex.map((m) => m.capacity.ports),
    cascadeCapacity: byIndex.map((m) => m.capacity.cascadePorts),
    held,
    heldCascade,
    available,
    parents,
    parentRank,
    dist,
    height: longestPath(ids.length, parents, dist),
  };
}

/** The capacity other sessions hold, as the plan records it: MCUs with some, in id order. */
function heldRecord(net: Network): Record<string, { ports: number; cascadePorts: number }> {
  const out: Record<string, { ports: number; cascadePorts: number }> = {};
  net.ids.forEach((id, m) => {
    if (net.held[m]! > 0 || net.heldCascade[m]! > 0)
      out[id] = { ports: net.held[m]!, cascadePorts: net.heldCascade[m]! };
  });
  return out;
}

const isCount = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/**
 * The deepest an MCU can sit in a tree rooted at the root: the longest parent chain when the
 * allowed parents of the reachable MCUs form no cycle; with cycles (allowed: which way a link
 * goes depends on the session's root), a tree path visits each reachable MCU at most once.
 */
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
  let reachable = 0;
  for (let m = 0; m < n; m++) {
    if (dist[m]! === Number.POSITIVE_INFINITY) continue;
    reachable++;
    h = Math.max(h, depth(m));
  }
  return cyclic ? Math.max(0, reachable - 1) : h;
}

export interface Previous {
  /** The previous session's endpoints that stay requested, by number (checked against the inventory). */
  readonly endpoints: readonly number[];
  /** endpoint id -> MCU id it was assigned to. */
  readonly assignments: Readonly<Record<string, string>>;
  /**
   * The same by number (MCU index, -1: none) when already known, that is for a plan this module
   * returned; null: read `assignments`.
   */
  readonly mcuOf: Int32Array | null;
  /** child MCU id -> parent MCU id. */
  readonly links: Readonly<Record<string, string>>;
}

/** Per-inventory lookups, built once: inventories are immutable (frozen by the config loader). */
interface InventoryIndex {
  /** Endpoint ids, sorted (UTF-16 code-unit order, as `byId`): an endpoint's number is its position. */
  readonly ids: readonly string[];
  readonly number: ReadonlyMap<string, number>;
  readonly endpoints: readonly Endpoint[];
  /** Per number: a number shared by exactly the endpoints with the same candidate list. */
  readonly signature: Int32Array;
  /** Per number: the relay's source endpoint, -1 if not a relay, -2 if the source is unknown. */
  readonly relayVia: Int32Array;
}
const indexes = new WeakMap<Inventory, InventoryIndex>();
export function indexOf(inventory: Inventory): InventoryIndex {
  let idx = indexes.get(inventory);
  if (idx === undefined) {
    const byId = new Map(inventory.endpoints.map((e) => [e.id, e]));
    const ids = [...byId.keys()].sort();
    const number = new Map(ids.map((id, i) => [id, i]));
    const endpoints = ids.map((id) => byId.get(id)!);
    const lists = new Map<string, number>();
    const signature = new Int32Array(ids.length);
    const relayVia = new Int32Array(ids.length).fill(-1);
    endpoints.forEach((e, i) => {
      const key = e.mcus.join('\u0000');
      if (!lists.has(key)) lists.set(key, lists.size);
      signature[i] = lists.get(key)!;
      if (e.connection === 'relay') relayVia[i] = number.get(e.relayVia ?? '') ?? -2;
    });
    idx = { ids, number, endpoints, signature, relayVia };
    indexes.set(inventory, idx);
  }
  return idx;
}

export function buildProblem(
  inventory: Inventory,
  sessionEndpoints: readonly string[],
  chairId: string | undefined,
  input: NetworkInput,
  previous: Previous | null,
): Problem {
  const net = buildNetwork(inventory, input);
  const { ids, number, endpoints: byNumber, signature, relayVia } = indexOf(inventory);
  const count = ids.length;
  // 1: requested, 2: added because a requested relay goes through it.
  const inSession = new Uint8Array(count);
  const unknown = new Set<string>();
  let requested = 0;
  const request = (id: string) => {
    const e = number.get(id);
    if (e === undefined) unknown.add(id);
    else if (inSession[e] === 0) {
      inSession[e] = 1;
      requested++;
    }
  };
  for (const e of previous?.endpoints ?? []) {
    if (inSession[e] === 0) {
      inSession[e] = 1;
      requested++;
    }
  }
  for (const id of sessionEndpoints) request(id);
  if (chairId !== undefined) request(chairId);
  for (let e = 0; e < count; e++) if (inSession[e] === 1 && relayVia[e] === -2) unknown.add(byNumber[e]!.relayVia!);
  if (unknown.size > 0) {
    const list = [...unknown].sort();
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `unknown endpoint${list.length > 1 ? 's' : ''}: ${list.slice(0, 10).join(', ')}${list.length > 10 ? ', ...' : ''}`,
      { details: { unknownEndpoints: list } },
    );
  }
  if (requested === 0) throw new PlanError('PLAN_ERR_INVALID_SESSION', 'the session has no endpoint');
  const chairNo = chairId === undefined ? -1 : number.get(chairId)!;
  if (chairNo >= 0 && relayVia[chairNo]! !== -1) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `the chair ${chairId} is a relay endpoint: it must sit on the root MCU`,
      {
        details: { chair: chairId },
      },
    );
  }

  // A relay endpoint is seen and heard only through its province endpoint, so that endpoint joins the session.
  const weight = new Int32Array(count).fill(1);
  const addedForRelay: string[] = [];
  for (let e = 0; e < count; e++) {
    const via = relayVia[e]!;
    if (inSession[e] !== 1 || via < 0) continue;
    weight[via]!++;
    if (inSession[via] === 0) {
      inSession[via] = 2;
      addedForRelay.push(ids[via]!);
    }
  }
  const session: number[] = [];
  for (let e = 0; e < count; e++) if (inSession[e] !== 0) session.push(e);
  addedForRelay.sort();

  // The previous MCU of every endpoint in the session, available or not: it decides who moved.
  let prevMcu: Int32Array | null = null;
  if (previous !== null) {
    prevMcu = new Int32Array(count).fill(-1);
    const known = previous.mcuOf;
    for (const e of session) {
      if (known !== null) {
        prevMcu[e] = known[e]!;
        continue;
      }
      const mid = previous.assignments[ids[e]!];
      if (mid === undefined) continue;
      const m = net.index.get(mid);
      if (m === undefined) {
        throw new PlanError('PLAN_ERR_INVALID_PLAN', `the previous plan does not match the inventory: MCU ${mid}`, {
          details: { unknown: [`MCU ${mid}`] },
        });
      }
      prevMcu[e] = m;
    }
  }

  // Group first on the raw candidate list (cheap key), then resolve each group's usable candidates once.
  const groups = new Map<number, { e: Endpoint; weight: number; prev: number; chair: boolean; members: number[] }>();
  for (const id of session) {
    if (relayVia[id]! !== -1) continue;
    const chair = id === chairNo;
    const w = weight[id]!;
    const p = prevMcu === null ? -1 : prevMcu[id]!;
    const prev = p >= 0 && net.available[p] ? p : -1;
    // A number, not a string: building and hashing 10^4 string keys costs milliseconds. Weights are
    // at most the session size + 1 and signatures fewer than the endpoints, so this stays below 2^53.
    const key = chair ? -1 : (signature[id]! * (count + 2) + w) * (net.ids.length + 1) + prev + 1;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { e: byNumber[id]!, weight: w, prev, chair, members: [id] });
    else g.members.push(id);
  }
  const demands: Demand[] = [];
  const stranded: Stranded[] = [];
  for (const g of groups.values()) {
    const cands: number[] = [];
    const ranks: number[] = [];
    if (g.chair) {
      if (net.dist[net.root] === 0) {
        cands.push(net.root);
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
      stranded.push({ members: g.members, candidates: g.chair ? [net.ids[net.root]!] : [...g.e.mcus] });
      continue;
    }
    const blocked = g.chair ? [] : g.e.mcus.filter((mid) => !cands.includes(net.index.get(mid)!));
    demands.push({ cands, ranks, weight: g.weight, prev: g.prev, chair: g.chair, blocked, members: g.members });
  }
  // Canonical order: by first member (members ascend and each endpoint is in one demand).
  demands.sort((a, b) => a.members[0]! - b.members[0]!);
  stranded.sort((a, b) => a.members[0]! - b.members[0]!);

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
    ids,
    session,
    relayVia,
    addedForRelay,
    chair: chairId ?? null,
    unavailable: [...new Set(input.unavailable)].sort(byId),
    reserved: heldRecord(net),
    prevParent,
    prevMcu,
  };
}
