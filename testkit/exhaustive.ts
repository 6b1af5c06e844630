/**
 * The exhaustive oracle: every cascade tree (each MCU but the session's root
 * left out or under one of its allowed parents, cycles rejected), every
 * assignment of every endpoint to one of its candidates, kept if every
 * capacity left by other sessions holds; the lexicographically best
 * objective wins. Written from the definitions only, sharing no code
 * with the planner, so the two can check each other.
 */
import type { Inventory } from '../src/inventory/index.js';
import type { Session } from '../src/planner/index.js';

export interface OracleObjective {
  readonly maxDepth: number;
  readonly atMaxDepth: number;
  readonly depthSum: number;
  readonly preferenceSum: number;
  readonly links: number;
  /** The fullest MCU's [used, ports]. */
  readonly utilisation: readonly [number, number];
}

export function compareObjectives(a: OracleObjective, b: OracleObjective): number {
  const ta = [a.maxDepth, a.atMaxDepth, a.depthSum, a.preferenceSum, a.links];
  const tb = [b.maxDepth, b.atMaxDepth, b.depthSum, b.preferenceSum, b.links];
  for (let i = 0; i < ta.length; i++) if (ta[i] !== tb[i]) return ta[i]! - tb[i]!;
  return a.utilisation[0] * b.utilisation[1] - b.utilisation[0] * a.utilisation[1];
}

/**
 * The session rule, shared by both oracles: the chair takes part, a
 * relay endpoint brings in the endpoint it is relayed through, and that
 * endpoint's depth counts once more for each relay on it.
 */
export function sessionMembers(
  inv: Inventory,
  session: Session,
): { members: Set<string>; weight: Map<string, number> } {
  const byId = new Map(inv.endpoints.map((e) => [e.id, e]));
  const members = new Set(session.endpoints);
  if (session.chair !== undefined) members.add(session.chair);
  const weight = new Map<string, number>();
  for (const id of [...members]) {
    const e = byId.get(id)!;
    if (e.connection === 'relay') {
      members.add(e.relayVia!);
      weight.set(e.relayVia!, (weight.get(e.relayVia!) ?? 1) + 1);
    }
  }
  return { members, weight };
}

/** Ports and cascade ports of one MCU held by other live sessions. */
export interface Held {
  readonly ports: number;
  readonly cascadePorts: number;
}

export function exhaustive(
  inv: Inventory,
  session: Session,
  unavailable: readonly string[],
  reserved: Readonly<Record<string, Held>> = {},
): OracleObjective | null {
  const down = new Set(unavailable);
  const mcus = inv.mcus.filter((m) => !down.has(m.id));
  const rootId = session.root ?? inv.mcus.find((m) => m.role === 'master')?.id;
  const root = mcus.find((m) => m.id === rootId);
  if (root === undefined) return null;
  const slaves = mcus.filter((m) => m !== root);
  const held = (id: string) => reserved[id] ?? { ports: 0, cascadePorts: 0 };
  const byId = new Map(inv.endpoints.map((e) => [e.id, e]));
  const { members, weight } = sessionMembers(inv, session);
  const placed = [...members].filter((id) => byId.get(id)!.connection !== 'relay');

  let best: OracleObjective | null = null;
  const parentOf = new Map<string, string | null>();
  const chooseTree = (i: number): void => {
    if (i < slaves.length) {
      const s = slaves[i]!;
      parentOf.set(s.id, null);
      chooseTree(i + 1);
      for (const p of new Set(s.parents)) {
        if (down.has(p) || p === s.id) continue;
        parentOf.set(s.id, p);
        chooseTree(i + 1);
      }
      parentOf.delete(s.id);
      return;
    }
    // A valid tree: every used slave's parent chain reaches the root without a cycle.
    const depth = new Map<string, number>([[root.id, 0]]);
    const depthOf = (id: string, steps: number): number => {
      if (depth.has(id)) return depth.get(id)!;
      const p = parentOf.get(id);
      if (p === null || p === undefined || steps > mcus.length) return Number.NaN;
      const d = depthOf(p, steps + 1) + 1;
      if (!Number.isNaN(d)) depth.set(id, d);
      return d;
    };
    const ports = new Map<string, number>(mcus.map((m) => [m.id, 0]));
    const cascade = new Map<string, number>(mcus.map((m) => [m.id, 0]));
    let links = 0;
    for (const s of slaves) {
      const p = parentOf.get(s.id);
      if (p === null || p === undefined) continue;
      if (Number.isNaN(depthOf(s.id, 0))) return;
      links++;
      ports.set(s.id, ports.get(s.id)! + 1);
      ports.set(p, ports.get(p)! + 1);
      cascade.set(p, cascade.get(p)! + 1);
    }
    // Only MCUs taking part must fit: an MCU other sessions fill up is simply not used.
    for (const m of mcus) {
      const h = held(m.id);
      if (ports.get(m.id)! > 0 && ports.get(m.id)! + h.ports > m.capacity.ports) return;
      if (cascade.get(m.id)! > 0 && cascade.get(m.id)! + h.cascadePorts > m.capacity.cascadePorts) return;
    }
    const capacity = new Map(mcus.map((m) => [m.id, m.capacity.ports - held(m.id).ports]));
    const on = new Map<string, string>();
    const assign = (k: number, pref: number): void => {
      if (k === placed.length) {
        let maxDepth = 0;
        const ds: [number, number][] = placed.map((id) => [depth.get(on.get(id)!)!, weight.get(id) ?? 1]);
        for (const [d] of ds) maxDepth = Math.max(maxDepth, d);
        let atMaxDepth = 0;
        let depthSum = 0;
        for (const [d, w] of ds) {
          if (d === maxDepth) atMaxDepth += w;
          depthSum += d * w;
        }
        // The load of an MCU taking part: this session's ports and those other sessions hold.
        let utilisation: [number, number] = [0, 1];
        for (const m of mcus) {
          const load = ports.get(m.id)! + held(m.id).ports;
          const cap = m.capacity.ports;
          if ((m === root || parentOf.get(m.id)) && cap > 0 && load * utilisation[1] > utilisation[0] * cap) {
            utilisation = [load, cap];
          }
        }
        const obj: OracleObjective = { maxDepth, atMaxDepth, depthSum, preferenceSum: pref, links, utilisation };
        if (best === null || compareObjectives(obj, best) < 0) best = obj;
        return;
      }
      const id = placed[k]!;
      const options = id === session.chair ? [root.id] : byId.get(id)!.mcus;
      options.forEach((m, rank) => {
        if (!depth.has(m) || ports.get(m)! >= capacity.get(m)!) return;
        ports.set(m, ports.get(m)! + 1);
        on.set(id, m);
        assign(k + 1, pref + (id === session.chair ? 0 : rank));
        ports.set(m, ports.get(m)! - 1);
      });
    };
    assign(0, 0);
  };
  chooseTree(0);
  return best;
}
