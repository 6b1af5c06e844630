/**
 * `npm run bench -- planner [--config FILE] [--runs N]`: the national plan of
 * config/demo.yaml with every endpoint in the session, timed over N runs,
 * compared with the HiGHS optimum (test/planner/ilp.ts: the floor this
 * benchmark reports its ratio against), and a re-plan after losing one
 * province MCU (the one carrying the most endpoints).
 */
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../src/config/index.js';
import { checkPlan, plan, replan } from '../src/planner/index.js';
// biome-ignore lint/style/noRestrictedImports: the planner issue moves the ILP oracle out of test/ and the search statistics into the result
import { lastSearchStats, replanByFullSearch } from '../src/planner/plan.js';
// biome-ignore lint/style/noRestrictedImports: the planner issue moves the ILP oracle out of test/ and the search statistics into the result
import { compareObjectives } from '../test/planner/exhaustive.js';
// biome-ignore lint/style/noRestrictedImports: the planner issue moves the ILP oracle out of test/ and the search statistics into the result
import { ilpOptimum } from '../test/planner/ilp.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const round = (x: number) => Math.round(x * 100) / 100;

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const config = opt('--config') ?? DEFAULT_CONFIG;
  const runs = Number(opt('--runs') ?? 50);
  const { inventory } = await loadConfigFile(config);
  const master = inventory.mcus.find((m) => m.role === 'master')!.id;
  const chair = inventory.endpoints.find((e) => e.connection !== 'relay' && e.mcus[0] === master)?.id;
  const session = { endpoints: inventory.endpoints.map((e) => e.id), ...(chair === undefined ? {} : { chair }) };

  for (let i = 0; i < 5; i++) plan(inventory, session); // warm-up: JIT, inventory index
  const times: number[] = [];
  let result = plan(inventory, session);
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    result = plan(inventory, session);
    times.push(performance.now() - t0);
  }
  const search = { ...lastSearchStats };
  const violations = checkPlan(inventory, result).violations;

  // Lose the province MCU (a provincial unit's MCU at depth 1) hosting the most endpoints: its
  // communes leave the session, the rest is re-planned.
  const provincial = new Set(inventory.mcus.filter((m) => m.province !== undefined).map((m) => m.id));
  const victim = result.mcus
    .filter((m) => m.depth === 1 && provincial.has(m.id))
    .sort((a, b) => b.endpoints.length - a.endpoints.length || (a.id < b.id ? -1 : 1))[0]!.id;
  const replanTimes: number[] = [];
  let after = replan(inventory, result, { lostMcus: [victim] });
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    after = replan(inventory, result, { lostMcus: [victim] });
    replanTimes.push(performance.now() - t0);
  }
  const replanShortcut = lastSearchStats.shortcut;
  const replanViolations = checkPlan(inventory, after).violations;
  // The shortcut must give exactly the full search's plan.
  const full = replanByFullSearch(inventory, result, { lostMcus: [victim] });
  const replanSameAsFull = JSON.stringify(full) === JSON.stringify(after);

  const ilp = await ilpOptimum(inventory, session);
  const o = result.objective;
  const mine = { ...o, utilisation: [o.maxUtilisation.used, o.maxUtilisation.ports] as const };
  const optimal = ilp.objective !== null && compareObjectives(mine, ilp.objective) === 0 && violations.length === 0;
  const planMs = p50(times);
  return {
    plan_ms_p50: round(planMs),
    ilp_ms: Math.round(ilp.ms),
    ratio: round(planMs / ilp.ms),
    max_depth: o.maxDepth,
    optimal,
    rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
    replan_ms_p50: round(p50(replanTimes)),
    replan_lost_mcu: victim,
    replan_moved_endpoints: after.changes!.movedEndpoints.length,
    replan_dropped_endpoints: after.changes!.droppedEndpoints.length,
    replan_relinked_mcus: after.changes!.relinkedMcus.length,
    replan_max_depth: after.objective.maxDepth,
    replan_valid: replanViolations.length === 0,
    replan_shortcut: replanShortcut,
    replan_same_as_full_search: replanSameAsFull,
    endpoints: result.endpoints.length,
    mcus_used: result.mcus.length,
    objective: o,
    ilp_objective: ilp.objective,
    ilp_solves: ilp.solves,
    search_nodes: search.nodes,
    search_flows: search.flows,
    runs,
    targets: { plan_ms: 50, replan_ms: 10 },
  };
}
