/**
 * The planner's entry points: `plan` for a new session, `replan` for a change
 * to a live one. Both are pure: plain data in, plain data out, no I/O.
 */
import type { Inventory } from '../inventory/index.js';
import { PlanError } from './errors.js';
import { buildProblem, indexOf, type Previous, type Problem } from './model.js';
import { explainInfeasible } from './reasons.js';
import {
  keptSolution,
  type Limits,
  Optimiser,
  type Outcome,
  PLAN_TIERS,
  REPLAN_TIERS,
  type Solution,
  shedding,
  type Tiers,
  withUnplaced,
} from './search.js';
import type {
  InfeasibilityReason,
  McuUsage,
  Objective,
  ObjectiveBound,
  Plan,
  PlanChanges,
  PlanClock,
  PlanOptions,
  SearchStats,
  Session,
  SessionChange,
} from './types.js';

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Default time budgets (ms): a few seconds for a plan asked for by a person, less mid-session. */
export const PLAN_BUDGET_MS = 5_000;
export const REPLAN_BUDGET_MS = 1_000;

const realClock: PlanClock = { now: () => performance.now() };

function limits(options: { budgetMs?: number; clock?: PlanClock }, fallback: number): Limits {
  const budget = options.budgetMs ?? fallback;
  if (typeof budget !== 'number' || !(budget >= 0) || !Number.isFinite(budget)) {
    throw new PlanError('PLAN_ERR_INVALID_SESSION', `budgetMs must be a number of milliseconds >= 0 (${budget})`, {
      details: { budgetMs: budget },
    });
  }
  const clock = options.clock ?? realClock;
  return { now: () => clock.now(), deadline: clock.now() + budget };
}

/**
 * The optimal cascade plan for a session (objective: docs/planner.md), within a time budget:
 * when it runs out first, the best plan found (`optimal: false`, with the best proven bound).
 * Throws PlanError PLAN_ERR_INVALID_SESSION, PLAN_ERR_INFEASIBLE (with `details.reasons`) or
 * PLAN_ERR_TIMEOUT (no plan found within the budget).
 */
export function plan(inventory: Inventory, session: Session, options: PlanOptions = {}): Plan {
  const limit = limits(options, PLAN_BUDGET_MS);
  const problem = buildProblem(
    inventory,
    session.endpoints,
    session.chair,
    { unavailable: options.unavailableMcus ?? [], root: session.root, reserved: options.reserved ?? {} },
    null,
  );
  const next = solve(problem, null, false, limit);
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
  for (const part of [p.objective, p.reserved, p.bound, p.search]) deep(part);
  if (p.changes !== undefined) deep(p.changes);
  Object.freeze(p);
}

/**
 * Re-plans a live session after a change: the depth stays optimal, then as
 * few existing links are re-parented and as few endpoints moved as possible,
 * then the rest of the objective applies. `changes` lists what moved.
 */
export function replan(inventory: Inventory, previous: Plan, change: SessionChange, options: ReplanOptions = {}): Plan {
  return replanning(inventory, previous, change, options, true);
}

/** Options of a re-plan: the budget, and the capacity other sessions hold now (default: as recorded in the previous plan). */
export type ReplanOptions = Pick<PlanOptions, 'budgetMs' | 'clock' | 'reserved'>;

/**
 * `replan` by the full search only, never keeping the previous plan without one (`keptSolution`):
 * the tests hold the shortcut to it. Not part of the public API.
 */
export function replanByFullSearch(
  inventory: Inventory,
  previous: Plan,
  change: SessionChange,
  options: ReplanOptions = {},
): Plan {
  return replanning(inventory, previous, change, options, false);
}

function replanning(
  inventory: Inventory,
  previous: Plan,
  change: SessionChange,
  options: ReplanOptions,
  shortcut: boolean,
): Plan {
  const limit = limits(options, REPLAN_BUDGET_MS);
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
  const input = { unavailable, root: previous.root, reserved: options.reserved ?? previous.reserved };
  let problem = buildProblem(inventory, change.addEndpoints ?? [], previous.chair ?? undefined, input, prev);
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
  const next = solve(problem, previous, shortcut, limit);
  const all = [...droppedEndpoints, ...next.dropped].sort(byId);
  return remember(inventory, next.problem, next.place, {
    ...next.plan,
    changes: {
      ...diff(previous, next.plan, next.problem, next.place),
      droppedEndpoints: all,
      reasons: [...reasons, ...next.reasons],
    },
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
  if (!mcus.has(previous.root)) bad.push(`root ${previous.root}`);
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

interface Solved {
  readonly plan: Plan;
  readonly place: Int32Array;
  /** The problem the plan answers: without the members a shortage left out. */
  readonly problem: Problem;
  /** Endpoints a re-plan under a shortage left out, and why. */
  readonly dropped: readonly string[];
  readonly reasons: readonly InfeasibilityReason[];
}

function solve(problem: Problem, previous: Plan | null, shortcut: boolean, limit: Limits): Solved {
  const infeasible = () =>
    new PlanError('PLAN_ERR_INFEASIBLE', 'no cascade plan fits this session', {
      details: { reasons: explainInfeasible(problem) },
    });
  if (problem.stranded.length > 0) throw infeasible();
  const tiers = previous === null ? PLAN_TIERS : REPLAN_TIERS;
  const optimiser = new Optimiser(problem, tiers, limit);
  const kept = previous === null || !shortcut ? null : keptSolution(problem, tiers);
  let outcome = optimiser.run(kept);
  let used = optimiser;
  let bound = (o: Outcome) => boundOf(o, tiers);
  let solved = problem;
  const dropped: string[] = [];
  let reasons: InfeasibilityReason[] = [];
  if (outcome.solution === null && outcome.complete && previous !== null) {
    // Mid-session, a shortage must not end the session: place as many as fit, report the rest.
    reasons = explainInfeasible(problem);
    // First leave out what the ports alone cannot place (the cheapest to lose: the fewest, then
    // those whose MCU was lost), and plan the rest exactly. The count left out is then minimal, and
    // the plan optimal too when nobody else could have been left out instead to better effect.
    const shed = shedding(problem);
    const reduced = withoutUnplaced(problem, shed.drop, dropped);
    const rest = carryOn(new Optimiser(reduced, tiers, limit), optimiser);
    const second = rest.run(null);
    if (second.solution !== null) {
      const leftOut = problem.demands.reduce((w, d, i) => w + d.weight * shed.drop[i]!, 0);
      used = rest;
      solved = reduced;
      outcome = { ...second, complete: second.complete && shed.interchangeable };
      // Beyond the count, the bound holds only when whom to leave out was no choice.
      bound = (o) => ({ unplaced: leftOut, ...(o.complete ? boundOf(o, tiers) : zeroBound(boundOf(o, tiers))) });
    } else {
      // Cascade ports are short too: search over whom to leave out as well.
      dropped.length = 0;
      const partial = withUnplaced(tiers);
      used = carryOn(new Optimiser(problem, partial, limit), rest);
      outcome = used.run(null);
      bound = (o) => boundOf(o, partial);
      if (outcome.solution !== null) solved = withoutUnplaced(problem, outcome.solution.unplaced, dropped);
    }
  }
  const stats: SearchStats = {
    nodes: used.stats.nodes,
    flows: used.stats.flows,
    shortcut: kept === null ? 'none' : outcome.solution === kept ? 'kept' : 'shallower',
    budgetExhausted: used.stats.exhausted,
  };
  const solution = outcome.solution;
  if (solution === null) {
    if (outcome.complete) throw infeasible();
    throw new PlanError('PLAN_ERR_TIMEOUT', 'the time budget ran out before any plan was found', {
      details: { bound: outcome.bound === null ? null : bound(outcome) },
    });
  }
  const place = placement(solved, solution);
  const plan = render(solved, solution, place, { optimal: outcome.complete, bound: bound(outcome), search: stats });
  return { plan, place, problem: solved, dropped, reasons };
}

/** A second optimiser continues the first's counts (a plan reports the effort of the whole call). */
function carryOn(next: Optimiser, before: Optimiser): Optimiser {
  next.stats.nodes = before.stats.nodes;
  next.stats.flows = before.stats.flows;
  next.stats.exhausted = before.stats.exhausted;
  return next;
}

/** A bound that says nothing about the tiers of `b`. */
function zeroBound(b: ObjectiveBound): ObjectiveBound {
  return {
    maxDepth: 0,
    ...(b.relinkedMcus === undefined ? {} : { relinkedMcus: 0, movedEndpoints: 0 }),
    atMaxDepth: 0,
    depthSum: 0,
    preferenceSum: 0,
    links: 0,
  };
}

/** The outcome's lower bound as the plan reports it, in the objective's order for this search. */
function boundOf(outcome: Outcome, t: Tiers): ObjectiveBound {
  const b = outcome.bound!;
  const at = (i: number) => b.tiers[i]!;
  return {
    ...(t.unplaced >= 0 ? { unplaced: at(t.unplaced) } : {}),
    maxDepth: b.depth,
    ...(t.relink >= 0 ? { relinkedMcus: at(t.relink), movedEndpoints: at(t.moved) } : {}),
    atMaxDepth: at(t.atDepth),
    depthSum: at(t.depthSum),
    preferenceSum: at(t.preference),
    links: at(t.links),
  };
}

/**
 * The problem without the members a shortage leaves unplaced (per demand, its last members: they
 * are interchangeable) and the relays through them; their ids go to `dropped`.
 */
function withoutUnplaced(problem: Problem, unplaced: readonly number[], dropped: string[]): Problem {
  const { ids, relayVia } = problem;
  const gone = new Uint8Array(ids.length);
  problem.demands.forEach((d, i) => {
    for (let k = d.members.length - unplaced[i]!; k < d.members.length; k++) gone[d.members[k]!] = 1;
  });
  const session = problem.session.filter((e) => {
    const via = relayVia[e]!;
    if (via >= 0 && gone[via] === 1) gone[e] = 1;
    if (gone[e] === 1) dropped.push(ids[e]!);
    return gone[e] === 0;
  });
  const left = new Set(dropped);
  return {
    ...problem,
    session,
    // Demands left empty stay (in place: solutions index demands by position).
    demands: problem.demands.map((d, i) => ({ ...d, members: d.members.slice(0, d.members.length - unplaced[i]!) })),
    addedForRelay: problem.addedForRelay.filter((e) => !left.has(e)),
  };
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

function render(
  problem: Problem,
  s: Solution,
  place: Int32Array,
  result: Pick<Plan, 'optimal' | 'bound' | 'search'>,
): Plan {
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
  let fullest = { mcu: net.ids[net.root]!, used: 0, ports: Math.max(1, net.capacity[net.root]!) };
  net.ids.forEach((id, m) => {
    if (s.parent[m] === -2) return;
    const ep = onMcu[m]!;
    const ch = children[m]!;
    const used = ep.length + ch.length + (m === net.root ? 0 : 1);
    const capacity = net.capacity[m]!;
    const load = used + net.held[m]!;
    // Ids ascend here, so a tie keeps the first MCU by id.
    if (capacity > 0 && load * fullest.ports > fullest.used * capacity)
      fullest = { mcu: id, used: load, ports: capacity };
    mcus.push({
      id,
      parent: s.parent[m]! >= 0 ? net.ids[s.parent[m]!]! : null,
      depth: s.depth[m]!,
      endpoints: ep,
      children: ch,
      ports: { used, held: net.held[m]!, capacity },
      cascadePorts: { used: ch.length, held: net.heldCascade[m]!, capacity: net.cascadeCapacity[m]! },
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
    root: net.ids[net.root]!,
    chair: problem.chair,
    endpoints,
    addedForRelay: problem.addedForRelay,
    unavailableMcus: problem.unavailable,
    reserved: problem.reserved,
    assignments: assigned,
    relays,
    depths,
    links,
    mcus,
    unusedMcus: net.ids.filter((_, m) => net.available[m] && s.parent[m] === -2),
    objective,
    ...result,
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
