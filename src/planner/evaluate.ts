/**
 * An independent check of a plan against the inventory: every capacity, the
 * tree, each endpoint's candidates, relays, and the objective recomputed from
 * the plan's own fields. The planner's result is tested against it, and a plan
 * read back from storage can be re-validated with it before it is dialed.
 */
import type { Inventory } from '../inventory/index.js';
import type { HeldCapacity, Objective, Plan } from './types.js';

export interface PlanCheck {
  /** Human-readable violations; empty when the plan is valid. */
  readonly violations: readonly string[];
  /** The objective recomputed from the assignments and links. */
  readonly objective: Objective;
}

/**
 * `reserved`: the capacity other live sessions hold, which the plan must leave free (default: what
 * the plan records it was made with).
 */
export function checkPlan(
  inventory: Inventory,
  plan: Plan,
  options: { readonly reserved?: Readonly<Record<string, HeldCapacity>> } = {},
): PlanCheck {
  const violations: string[] = [];
  const mcus = new Map(inventory.mcus.map((m) => [m.id, m]));
  const endpoints = new Map(inventory.endpoints.map((e) => [e.id, e]));
  const down = new Set(plan.unavailableMcus);
  const reserved = options.reserved ?? plan.reserved ?? {};
  const heldPorts = (id: string) => reserved[id]?.ports ?? 0;
  const heldCascade = (id: string) => reserved[id]?.cascadePorts ?? 0;
  const root = plan.root;
  if (!mcus.has(root)) violations.push(`the root ${root} is not an MCU of the inventory`);

  // The tree: every linked MCU reaches the root through allowed, available parents.
  const used = new Set<string>([root]);
  for (const [child, parent] of Object.entries(plan.links)) {
    used.add(child);
    used.add(parent);
    const c = mcus.get(child);
    if (c === undefined) violations.push(`unknown MCU ${child}`);
    else if (!c.parents.includes(parent)) violations.push(`${child} may not cascade into ${parent}`);
    if (child === root) violations.push('the root has a parent');
  }
  const depthOf = new Map<string, number>([[root, 0]]);
  const resolve = (m: string, seen: Set<string>): number => {
    const known = depthOf.get(m);
    if (known !== undefined) return known;
    const p = plan.links[m];
    if (p === undefined || seen.has(m)) return Number.NaN;
    seen.add(m);
    const d = resolve(p, seen) + 1;
    depthOf.set(m, d);
    return d;
  };
  for (const m of used) {
    if (Number.isNaN(resolve(m, new Set()))) violations.push(`MCU ${m} does not reach the root`);
    if (down.has(m)) violations.push(`MCU ${m} is unavailable but used`);
    if (!mcus.has(m)) violations.push(`unknown MCU ${m}`);
  }

  const portUse = new Map<string, number>();
  const cascadeUse = new Map<string, number>();
  const add = (map: Map<string, number>, k: string) => map.set(k, (map.get(k) ?? 0) + 1);
  for (const [child, parent] of Object.entries(plan.links)) {
    add(portUse, child);
    add(portUse, parent);
    add(cascadeUse, parent);
  }

  const depths: number[] = [];
  let preferenceSum = 0;
  for (const id of plan.endpoints) {
    const e = endpoints.get(id);
    if (e === undefined) {
      violations.push(`unknown endpoint ${id}`);
      continue;
    }
    if (e.connection === 'relay') {
      const via = plan.relays[id];
      if (via !== e.relayVia) violations.push(`relay ${id} must go through ${e.relayVia}`);
      if (via === undefined || plan.assignments[via] === undefined)
        violations.push(`relay ${id}: ${via} is not placed`);
      else depths.push(depthOf.get(plan.assignments[via]!) ?? Number.NaN);
      continue;
    }
    const m = plan.assignments[id];
    if (m === undefined) {
      violations.push(`endpoint ${id} is not placed`);
      continue;
    }
    if (id === plan.chair) {
      if (m !== root) violations.push(`the chair ${id} is on ${m}, not on the root`);
    } else {
      const rank = e.mcus.indexOf(m);
      if (rank < 0) violations.push(`endpoint ${id} is on ${m}, not one of its candidates`);
      else preferenceSum += rank;
    }
    if (!used.has(m)) violations.push(`endpoint ${id} is on ${m}, which is not in the cascade`);
    add(portUse, m);
    depths.push(depthOf.get(m) ?? Number.NaN);
  }
  for (const id of Object.keys(plan.assignments)) {
    if (!plan.endpoints.includes(id)) violations.push(`endpoint ${id} is assigned but not in the session`);
  }
  for (const e of plan.endpoints) {
    const r = endpoints.get(e);
    if (r?.connection === 'relay' && !plan.endpoints.includes(r.relayVia!))
      violations.push(`relay ${e}: ${r.relayVia} not in session`);
  }

  // Ports held by other sessions count against the capacity and towards the load.
  let fullest = { mcu: root, used: 0, ports: Math.max(1, mcus.get(root)?.capacity.ports ?? 1) };
  for (const id of [...used].sort()) {
    const m = mcus.get(id);
    if (m === undefined) continue;
    const u = portUse.get(id) ?? 0;
    const c = cascadeUse.get(id) ?? 0;
    const load = u + heldPorts(id);
    if (load > m.capacity.ports) {
      violations.push(`MCU ${id} uses ${u} ports with ${heldPorts(id)} held by other sessions, of ${m.capacity.ports}`);
    }
    if (c + heldCascade(id) > m.capacity.cascadePorts) {
      violations.push(
        `MCU ${id} uses ${c} cascade ports with ${heldCascade(id)} held by other sessions, of ${m.capacity.cascadePorts}`,
      );
    }
    if (m.capacity.ports > 0 && load * fullest.ports > fullest.used * m.capacity.ports) {
      fullest = { mcu: id, used: load, ports: m.capacity.ports };
    }
  }
  if (depths.some((d) => Number.isNaN(d))) violations.push('some endpoint has no depth');
  const maxDepth = depths.length === 0 ? 0 : Math.max(...depths);
  return {
    violations,
    objective: {
      maxDepth,
      atMaxDepth: depths.filter((d) => d === maxDepth).length,
      depthSum: depths.reduce((a, b) => a + b, 0),
      preferenceSum,
      links: Object.keys(plan.links).length,
      maxUtilisation: fullest,
    },
  };
}
