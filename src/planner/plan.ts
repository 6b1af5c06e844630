/**
 * The planner's entry points: `plan` for a new session, `replan` for a change
 * to a live one. Both are pure: plain data in, plain data out, no I/O.
 */
import type { Inventory } from '../inventory/types.js';
import { PlanError } from './errors.js';
import { buildProblem, type Previous, type Problem } from './model.js';
import { explainInfeasible } from './reasons.js';
import { Optimiser, PLAN_TIERS, REPLAN_TIERS, type SearchStats, type Solution } from './search.js';
import type { McuUsage, Objective, Plan, PlanChanges, PlanOptions, Session, SessionChange } from './types.js';

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Search effort of the last call in this process (for the benchmark and tests). */
export const lastSearchStats: SearchStats = { nodes: 0, flows: 0 };

/**
 * The optimal cascade plan for a session (objective: docs/planner.md).
 * Throws PlanError PLAN_ERR_INVALID_SESSION or PLAN_ERR_INFEASIBLE (with `details.reasons`).
 */
export function plan(inventory: Inventory, session: Session, options: PlanOptions = {}): Plan {
  const problem = buildProblem(inventory, session.endpoints, session.chair, options.unavailableMcus ?? [], null);
  return solve(problem, null);
}

/**
 * Re-plans a live session after a change: the depth stays optimal, then as
 * few existing links are re-parented and as few endpoints moved as possible,
 * then the rest of the objective applies. `changes` lists what moved.
 */
export function replan(inventory: Inventory, previous: Plan, change: SessionChange): Plan {
  checkPrevious(inventory, previous);
  const remove = new Set(change.removeEndpoints ?? []);
  if (previous.chair !== null && remove.has(previous.chair)) {
    throw new PlanError(
      'PLAN_ERR_INVALID_SESSION',
      `the chair ${previous.chair} cannot be removed from a live session`,
      {
        details: { chair: previous.chair },
      },
    );
  }
  // Endpoints that were only there for a relay are re-derived, so they leave with their last relay.
  const added = new Set(previous.addedForRelay);
  const endpoints = [
    ...previous.endpoints.filter((e) => !added.has(e) && !remove.has(e)),
    ...(change.addEndpoints ?? []),
  ];
  const restored = new Set(change.restoredMcus ?? []);
  const unavailable = [...previous.unavailableMcus, ...(change.lostMcus ?? [])].filter((m) => !restored.has(m));
  const prev: Previous = { assignments: previous.assignments, links: previous.links };
  let problem = buildProblem(inventory, endpoints, previous.chair ?? undefined, unavailable, prev);
  // Mid-session, losing an MCU must not stop the whole session: endpoints left with no reachable
  // candidate (and relays through them) leave it, and the rest is re-planned. The chair cannot leave.
  const reasons = problem.stranded.length > 0 ? explainInfeasible(problem) : [];
  const stranded = new Set(problem.stranded.flatMap((s) => s.endpoints));
  if (stranded.size > 0 && (previous.chair === null || !stranded.has(previous.chair))) {
    for (const [relayId, via] of problem.relays) if (stranded.has(via)) stranded.add(relayId);
    const kept = problem.endpoints.filter((e) => !stranded.has(e));
    if (kept.length === 0)
      throw new PlanError('PLAN_ERR_INFEASIBLE', 'no endpoint of the session can be placed', { details: { reasons } });
    // Stranded endpoints are in no demand, so dropping them leaves the demands (and relay weights) as they are.
    problem = {
      ...problem,
      endpoints: kept,
      relays: new Map([...problem.relays].filter(([r]) => !stranded.has(r))),
      addedForRelay: problem.addedForRelay.filter((e) => !stranded.has(e)),
      stranded: [],
    };
  }
  const next = solve(problem, previous);
  return { ...next, changes: { ...diff(previous, next), droppedEndpoints: [...stranded].sort(), reasons } };
}

function checkPrevious(inventory: Inventory, previous: Plan): void {
  const mcus = new Set(inventory.mcus.map((m) => m.id));
  const endpoints = new Set(inventory.endpoints.map((e) => e.id));
  // The MCU list names every MCU the assignments use: checking it is cheaper than 10^4 record reads.
  const bad = [
    ...previous.endpoints.filter((e) => !endpoints.has(e)).map((e) => `endpoint ${e}`),
    ...previous.mcus.filter((m) => !mcus.has(m.id)).map((m) => `MCU ${m.id}`),
    ...Object.entries(previous.links)
      .filter(([c, p]) => !mcus.has(c) || !mcus.has(p))
      .map(([c, p]) => `link ${c} -> ${p}`),
  ];
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
}

function solve(problem: Problem, previous: Plan | null): Plan {
  const infeasible = () =>
    new PlanError('PLAN_ERR_INFEASIBLE', 'no cascade plan fits this session', {
      details: { reasons: explainInfeasible(problem) },
    });
  if (problem.stranded.length > 0) throw infeasible();
  const optimiser = new Optimiser(problem, previous === null ? PLAN_TIERS : REPLAN_TIERS);
  const solution = optimiser.run();
  lastSearchStats.nodes = optimiser.stats.nodes;
  lastSearchStats.flows = optimiser.stats.flows;
  if (solution === null) throw infeasible();
  return render(problem, solution);
}

function render(problem: Problem, s: Solution): Plan {
  const { net } = problem;
  const mcuOf = new Map<string, number>();
  const onMcu = net.ids.map((): string[] => []);
  let preferenceSum = 0;
  problem.demands.forEach((d, i) => {
    // Members of a demand are interchangeable (when re-planning, they also share their previous MCU).
    const members = d.members;
    let next = 0;
    d.cands.forEach((m, j) => {
      const count = s.alloc[i]![j]!;
      if (!d.chair) preferenceSum += d.ranks[j]! * count;
      for (let c = 0; c < count; c++) {
        const e = members[next++]!;
        mcuOf.set(e, m);
        onMcu[m]!.push(e);
      }
    });
  });

  const children = net.ids.map((): string[] => []);
  const links: Record<string, string> = {};
  s.parent.forEach((p, m) => {
    if (p >= 0) children[p]!.push(net.ids[m]!);
  });
  for (let m = 0; m < net.ids.length; m++) {
    const p = s.parent[m]!;
    if (p >= 0) links[net.ids[m]!] = net.ids[p]!;
  }

  // Objective from plain arrays: reading values back from 10^4-key records is slow.
  const depths: Record<string, number> = {};
  const assigned: Record<string, string> = {};
  const relays: Record<string, string> = {};
  const endpointDepth = problem.endpoints.map((e) => {
    const via = problem.relays.get(e);
    const m = mcuOf.get(via ?? e)!;
    const depth = s.depth[m]!;
    depths[e] = depth;
    if (via === undefined) assigned[e] = net.ids[m]!;
    else relays[e] = via;
    return depth;
  });
  let maxDepth = 0;
  let atMaxDepth = 0;
  let depthSum = 0;
  for (const d of endpointDepth) {
    if (d > maxDepth) {
      maxDepth = d;
      atMaxDepth = 0;
    }
    if (d === maxDepth) atMaxDepth++;
    depthSum += d;
  }

  const mcus: McuUsage[] = [];
  let fullest = { mcu: net.ids[net.master]!, used: 0, ports: Math.max(1, net.ports[net.master]!) };
  net.ids.forEach((id, m) => {
    if (s.parent[m] === -2) return;
    const ep = onMcu[m]!.sort();
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
    endpoints: problem.endpoints,
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

function diff(before: Plan, after: Plan): Omit<PlanChanges, 'droppedEndpoints' | 'reasons'> {
  const wasUsed = new Set(before.mcus.map((m) => m.id));
  const isUsed = new Set(after.mcus.map((m) => m.id));
  return {
    relinkedMcus: Object.keys(after.links).filter(
      (m) => before.links[m] !== undefined && before.links[m] !== after.links[m],
    ),
    droppedMcus: [...wasUsed].filter((m) => !isUsed.has(m)).sort(byId),
    addedMcus: [...isUsed].filter((m) => !wasUsed.has(m)).sort(byId),
    movedEndpoints: Object.keys(after.assignments).filter(
      (e) => before.assignments[e] !== undefined && before.assignments[e] !== after.assignments[e],
    ),
  };
}
