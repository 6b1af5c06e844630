/**
 * The planner's entry points: `plan` for a new session, `replan` for a change
 * to a live one. Both are pure: plain data in, plain data out, no I/O.
 */
import type { Inventory } from '../inventory/index.js';
import { PlanError } from './errors.js';
import { buildProblem, indexOf, type Previous, type Problem } from './model.js';
import { explainInfeasible } from './reasons.js';
import { keptSolution, Optimiser, PLAN_TIERS, REPLAN_TIERS, type SearchStats, type Solution } from './search.js';
import type { McuUsage, Objective, Plan, PlanChanges, PlanOptions, Session, SessionChange } from './types.js';

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Search effort of the last call in this process (for the benchmark and tests). `shortcut`: whether
 * the last re-plan offered the previous plan (`keptSolution`) and whether it was kept or a shallower
 * plan found ('none' when it did not apply, and for `plan`).
 */
export const lastSearchStats: SearchStats & { shortcut: 'none' | 'kept' | 'shallower' } = {
  nodes: 0,
  flows: 0,
  shortcut: 'none',
};

/**
 * The optimal cascade plan for a session (objective: docs/planner.md).
 * Throws PlanError PLAN_ERR_INVALID_SESSION or PLAN_ERR_INFEASIBLE (with `details.reasons`).
 */
export function plan(inventory: Inventory, session: Session, options: PlanOptions = {}): Plan {
  const problem = buildProblem(inventory, session.endpoints, session.chair, options.unavailableMcus ?? [], null);
  const next = solve(problem, null, false);
  return remember(inventory, problem, next.place, next.plan);
}

/**
 * What `replan` reads of a plan this module returned, by number, kept beside it: reading its
 * 10^4-key records back (ids to numbers, MCU ids to indexes) costs milliseconds per re-plan, and a
 * live session is re-planned from the plan returned last. Keyed by the plan object, so a copy, or
 * a plan read back from storage, takes the reading path; the plan is frozen, so what is kept here
 * cannot go stale under a caller's mutation.
 */
interface Known {
  readonly inventory: Inventory;
  /** The plan's endpoints by number, ascending. */
  readonly endpoints: readonly number[];
  /** Per endpoint number, the index of its MCU in the plan's `assignments` (-1: none). */
  readonly mcuOf: Int32Array;
}
const known = new WeakMap<Plan, Known>();

function remember(inventory: Inventory, problem: Problem, place: Int32Array, result: Plan): Plan {
  const mcuOf = place.slice();
  for (const e of problem.session) if (problem.relayVia[e]! >= 0) mcuOf[e] = -1;
  freezePlan(result);
  known.set(result, { inventory, endpoints: problem.session, mcuOf });
  return result;
}

/**
 * Freezes a plan in depth, field by field: walking the values of its 10^4-key records (strings
 * and numbers) to find objects would cost more than freezing them.
 */
function freezePlan(p: Plan): void {
  const deep = (o: object): void => {
    Object.freeze(o);
    for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) deep(v);
  };
  for (const m of p.mcus) {
    for (const part of [m.endpoints, m.children, m.ports, m.cascadePorts, m]) Object.freeze(part);
  }
  for (const flat of [p.endpoints, p.addedForRelay, p.unavailableMcus, p.unusedMcus, p.mcus]) Object.freeze(flat);
  for (const record of [p.assignments, p.relays, p.depths, p.links]) Object.freeze(record);
  deep(p.objective);
  if (p.changes !== undefined) deep(p.changes);
  Object.freeze(p);
}

/**
 * Re-plans a live session after a change: the depth stays optimal, then as
 * few existing links are re-parented and as few endpoints moved as possible,
 * then the rest of the objective applies. `changes` lists what moved.
 */
export function replan(inventory: Inventory, previous: Plan, change: SessionChange): Plan {
  return replanning(inventory, previous, change, true);
}

/**
 * `replan` by the full search only, never keeping the previous plan without one (`keptSolution`):
 * the tests hold the shortcut to it. Not part of the public API.
 */
export function replanByFullSearch(inventory: Inventory, previous: Plan, change: SessionChange): Plan {
  return replanning(inventory, previous, change, false);
}

function replanning(inventory: Inventory, previous: Plan, change: SessionChange, shortcut: boolean): Plan {
  const cached = known.get(previous);
  const mine = cached !== undefined && cached.inventory === inventory ? cached : null;
  // A plan this module returned for this inventory matches it: only another plan needs the check.
  const before = mine?.endpoints ?? checkPrevious(inventory, previous);
  const remove = change.removeEndpoints ?? [];
  if (previous.chair !== null && remove.includes(previous.chair)) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `the chair ${previous.chair} cannot be removed from a live session`,
      {
        details: { chair: previous.chair },
      },
    );
  }
  // Endpoints that were only there for a relay are re-derived, so they leave with their last relay.
  const { number } = indexOf(inventory);
  const leaving = new Uint8Array(number.size);
  for (const id of [...previous.addedForRelay, ...remove]) {
    const e = number.get(id);
    if (e !== undefined) leaving[e] = 1;
  }
  const restored = new Set(change.restoredMcus ?? []);
  const unavailable = [...previous.unavailableMcus, ...(change.lostMcus ?? [])].filter((m) => !restored.has(m));
  const prev: Previous = {
    endpoints: before.filter((e) => leaving[e] === 0),
    assignments: previous.assignments,
    mcuOf: mine?.mcuOf ?? null,
    links: previous.links,
  };
  let problem = buildProblem(inventory, change.addEndpoints ?? [], previous.chair ?? undefined, unavailable, prev);
  // Mid-session, losing an MCU must not stop the whole session: endpoints left with no reachable
  // candidate (and relays through them) leave it, and the rest is re-planned. The chair cannot leave.
  const reasons = problem.stranded.length > 0 ? explainInfeasible(problem) : [];
  const droppedEndpoints: string[] = [];
  const chairStranded = problem.stranded.some((g) => g.members.some((e) => problem.ids[e] === problem.chair));
  if (problem.stranded.length > 0 && !chairStranded) {
    const { ids, relayVia } = problem;
    const dropped = new Uint8Array(ids.length);
    for (const g of problem.stranded) for (const e of g.members) dropped[e] = 1;
    const session = problem.session.filter((e) => {
      const via = relayVia[e]!;
      if (via >= 0 && dropped[via] === 1) dropped[e] = 1;
      if (dropped[e] === 1) droppedEndpoints.push(ids[e]!);
      return dropped[e] === 0;
    });
    if (session.length === 0)
      throw new PlanError('PLAN_ERR_INFEASIBLE', 'no endpoint of the session can be placed', { details: { reasons } });
    const gone = new Set(droppedEndpoints);
    // Stranded endpoints are in no demand, so dropping them leaves the demands (and relay weights) as they are.
    problem = {
      ...problem,
      session,
      addedForRelay: problem.addedForRelay.filter((e) => !gone.has(e)),
      stranded: [],
    };
  }
  const next = solve(problem, previous, shortcut);
  return remember(inventory, problem, next.place, {
    ...next.plan,
    changes: { ...diff(previous, next.plan, problem, next.place), droppedEndpoints, reasons },
  });
}

/** Checks that the previous plan belongs to this inventory; returns its endpoints by number. */
function checkPrevious(inventory: Inventory, previous: Plan): number[] {
  const mcus = new Set(inventory.mcus.map((m) => m.id));
  const { number } = indexOf(inventory);
  const endpoints: number[] = [];
  const bad: string[] = [];
  for (const id of previous.endpoints) {
    const e = number.get(id);
    if (e === undefined) bad.push(`endpoint ${id}`);
    else endpoints.push(e);
  }
  // The assignments' MCUs are checked as they are read (buildProblem): one pass over 10^4 records.
  bad.push(
    ...previous.mcus.filter((m) => !mcus.has(m.id)).map((m) => `MCU ${m.id}`),
    ...Object.entries(previous.links)
      .filter(([c, p]) => !mcus.has(c) || !mcus.has(p))
      .map(([c, p]) => `link ${c} -> ${p}`),
  );
  if (!mcus.has(previous.master)) bad.push(`master ${previous.master}`);
  if (bad.length > 0) {
    const unique = [...new Set(bad)];
    throw new PlanError(
      'PLAN_ERR_INVALID_PLAN',
      `the previous plan does not match the inventory: ${unique.slice(0, 5).join(', ')}`,
      {
        details: { unknown: unique },
      },
    );
  }
  return endpoints;
}

function solve(problem: Problem, previous: Plan | null, shortcut: boolean): { plan: Plan; place: Int32Array } {
  const infeasible = () =>
    new PlanError('PLAN_ERR_INFEASIBLE', 'no cascade plan fits this session', {
      details: { reasons: explainInfeasible(problem) },
    });
  if (problem.stranded.length > 0) throw infeasible();
  const tiers = previous === null ? PLAN_TIERS : REPLAN_TIERS;
  const optimiser = new Optimiser(problem, tiers);
  const kept = previous === null || !shortcut ? null : keptSolution(problem, tiers);
  const solution = optimiser.run(kept);
  lastSearchStats.nodes = optimiser.stats.nodes;
  lastSearchStats.flows = optimiser.stats.flows;
  lastSearchStats.shortcut = kept === null ? 'none' : solution === kept ? 'kept' : 'shallower';
  if (solution === null) throw infeasible();
  const place = placement(problem, solution);
  return { plan: render(problem, solution, place), place };
}

/** The MCU of every endpoint in the session, by number (a relay: its source's MCU); -1 elsewhere. */
function placement(problem: Problem, s: Solution): Int32Array {
  const place = new Int32Array(problem.ids.length).fill(-1);
  problem.demands.forEach((d, i) => {
    // Members of a demand are interchangeable (when re-planning, they also share their previous MCU).
    let next = 0;
    d.cands.forEach((m, j) => {
      for (let c = s.alloc[i]![j]!; c > 0; c--) place[d.members[next++]!] = m;
    });
  });
  for (const e of problem.session) {
    const via = problem.relayVia[e]!;
    if (via >= 0) place[e] = place[via]!;
  }
  return place;
}

function render(problem: Problem, s: Solution, place: Int32Array): Plan {
  const { net, ids, relayVia } = problem;
  let preferenceSum = 0;
  problem.demands.forEach((d, i) => {
    if (d.chair) return;
    d.ranks.forEach((rank, j) => {
      preferenceSum += rank * s.alloc[i]![j]!;
    });
  });

  const children = net.ids.map((): string[] => []);
  const links: Record<string, string> = {};
  for (let m = 0; m < net.ids.length; m++) {
    const p = s.parent[m]!;
    if (p < 0) continue;
    children[p]!.push(net.ids[m]!);
    links[net.ids[m]!] = net.ids[p]!;
  }

  // One pass over the session in ascending numbers, that is in sorted id order: every record and
  // every MCU's endpoint list comes out sorted without a sort, and no 10^4-key record is read back.
  const endpoints: string[] = [];
  const onMcu = net.ids.map((): string[] => []);
  const depths: Record<string, number> = {};
  const assigned: Record<string, string> = {};
  const relays: Record<string, string> = {};
  let maxDepth = 0;
  let atMaxDepth = 0;
  let depthSum = 0;
  for (const e of problem.session) {
    const id = ids[e]!;
    const m = place[e]!;
    const depth = s.depth[m]!;
    endpoints.push(id);
    depths[id] = depth;
    const via = relayVia[e]!;
    if (via < 0) {
      assigned[id] = net.ids[m]!;
      onMcu[m]!.push(id);
    } else relays[id] = ids[via]!;
    if (depth > maxDepth) {
      maxDepth = depth;
      atMaxDepth = 0;
    }
    if (depth === maxDepth) atMaxDepth++;
    depthSum += depth;
  }

  const mcus: McuUsage[] = [];
  let fullest = { mcu: net.ids[net.master]!, used: 0, ports: Math.max(1, net.ports[net.master]!) };
  net.ids.forEach((id, m) => {
    if (s.parent[m] === -2) return;
    const ep = onMcu[m]!;
    const ch = children[m]!;
    const used = ep.length + ch.length + (m === net.master ? 0 : 1);
    const capacity = net.ports[m]!;
    // Ids ascend here, so a tie keeps the first MCU by id.
    if (capacity > 0 && used * fullest.ports > fullest.used * capacity) fullest = { mcu: id, used, ports: capacity };
    mcus.push({
      id,
      parent: s.parent[m]! >= 0 ? net.ids[s.parent[m]!]! : null,
      depth: s.depth[m]!,
      endpoints: ep,
      children: ch,
      ports: { used, capacity },
      cascadePorts: { used: ch.length, capacity: net.cascadePorts[m]! },
    });
  });
  mcus.sort((a, b) => a.depth - b.depth || byId(a.id, b.id));

  const objective: Objective = {
    maxDepth,
    atMaxDepth,
    depthSum,
    preferenceSum,
    links: Object.keys(links).length,
    maxUtilisation: fullest,
  };

  return {
    master: net.ids[net.master]!,
    chair: problem.chair,
    endpoints,
    addedForRelay: problem.addedForRelay,
    unavailableMcus: problem.unavailable,
    assignments: assigned,
    relays,
    depths,
    links,
    mcus,
    unusedMcus: net.ids.filter((_, m) => net.available[m] && s.parent[m] === -2),
    objective,
  };
}

function diff(
  before: Plan,
  after: Plan,
  problem: Problem,
  place: Int32Array,
): Omit<PlanChanges, 'droppedEndpoints' | 'reasons'> {
  const wasUsed = new Set(before.mcus.map((m) => m.id));
  const isUsed = new Set(after.mcus.map((m) => m.id));
  // Moves from the numbers: reading both 10^4-key assignment records back costs milliseconds.
  const prev = problem.prevMcu!;
  const movedEndpoints: string[] = [];
  for (const e of problem.session) {
    if (problem.relayVia[e] === -1 && prev[e]! >= 0 && prev[e] !== place[e]) movedEndpoints.push(problem.ids[e]!);
  }
  return {
    relinkedMcus: Object.keys(after.links).filter(
      (m) => before.links[m] !== undefined && before.links[m] !== after.links[m],
    ),
    droppedMcus: [...wasUsed].filter((m) => !isUsed.has(m)).sort(byId),
    addedMcus: [...isUsed].filter((m) => !wasUsed.has(m)).sort(byId),
    movedEndpoints,
  };
}
