/**
 * Why a session cannot be planned, in terms a technician can act on: which
 * endpoints, which MCU lacks how many ports or cascade ports, which MCU has no
 * cascade path to the session's root.
 *
 * Capacity shortages come from a minimum cut of a relaxed network (any depth,
 * links of optional MCUs free): if even the relaxation cannot place everyone,
 * the saturated arcs on the cut are exactly the MCUs whose ports (or cascade
 * ports) are too few, and the deficit is how many are missing.
 */
import { FlowNetwork, UNBOUNDED } from './min-cost-flow.js';
import type { Problem } from './model.js';
import type { InfeasibilityReason } from './types.js';

const LISTED = 5;

function list(ids: readonly string[]): string {
  return ids.length <= LISTED ? ids.join(', ') : `${ids.slice(0, LISTED).join(', ')} and ${ids.length - LISTED} more`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function explainInfeasible(problem: Problem): InfeasibilityReason[] {
  const { net } = problem;
  const reasons: InfeasibilityReason[] = [];
  if (!net.available[net.root]) {
    const mcu = net.ids[net.root]!;
    reasons.push({ kind: 'root-unavailable', mcu, message: `the session's root MCU ${mcu} is unavailable` });
  }
  const noPath = new Map<string, Set<string>>();
  const why = (mcu: string): 'unavailable' | 'no-path-to-root' => {
    const m = net.index.get(mcu);
    return m === undefined || !net.available[m] ? 'unavailable' : 'no-path-to-root';
  };

  for (const s of problem.stranded) {
    const endpoints = s.members.map((e) => problem.ids[e]!);
    const candidates = s.candidates.map((mcu) => ({ mcu, why: why(mcu) }));
    for (const c of candidates) {
      if (c.why !== 'no-path-to-root') continue;
      const set = noPath.get(c.mcu) ?? new Set<string>();
      for (const e of endpoints) set.add(e);
      noPath.set(c.mcu, set);
    }
    const detail =
      candidates.length === 0
        ? 'they have no candidate MCU'
        : candidates
            .map((c) => `${c.mcu} ${c.why === 'unavailable' ? 'is unavailable' : 'has no cascade path to the root'}`)
            .join('; ');
    reasons.push({
      kind: 'no-reachable-candidate',
      endpoints,
      candidates,
      message: `${plural(endpoints.length, 'endpoint')} (${list(endpoints)}) cannot be placed: ${detail}`,
    });
  }

  reasons.push(...capacityReasons(problem, noPath));

  for (const [mcu, endpoints] of [...noPath].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const eps = [...endpoints].sort();
    reasons.push({
      kind: 'no-path-to-root',
      mcu,
      endpoints: eps,
      message: `MCU ${mcu} has no cascade path to the root ${net.ids[net.root]} through available MCUs; it is a candidate of ${plural(eps.length, 'endpoint')} (${list(eps)})`,
    });
  }
  return reasons;
}

function capacityReasons(problem: Problem, noPath: Map<string, Set<string>>): InfeasibilityReason[] {
  const { net, demands } = problem;
  const n = net.ids.length;
  const forced = new Uint8Array(n);
  for (const d of demands) if (d.cands.length === 1) forced[d.cands[0]!] = 1;

  const g = new FlowNetwork(1);
  const s = g.addNode();
  const t = g.addNode();
  const port = net.ids.map(() => g.addNode());
  const cascade = net.ids.map(() => g.addNode());
  const portArc: number[] = [];
  const cascadeArc: number[] = [];
  for (let m = 0; m < n; m++) {
    const reachable = net.dist[m]! < Number.POSITIVE_INFINITY;
    const own = forced[m] && m !== net.root ? 1 : 0;
    portArc.push(g.addArc(port[m]!, t, reachable ? Math.max(0, net.ports[m]! - own) : 0));
    cascadeArc.push(g.addArc(cascade[m]!, port[m]!, reachable ? net.cascadePorts[m]! : 0));
  }
  let supply = 0;
  const demandNode = demands.map((d) => {
    const node = g.addNode();
    g.addArc(s, node, d.members.length);
    supply += d.members.length;
    for (const m of d.cands) g.addArc(node, port[m]!, UNBOUNDED);
    return node;
  });
  const upNode = net.ids.map((_, m) => {
    if (!forced[m] || m === net.root) return -1;
    const node = g.addNode();
    g.addArc(s, node, 1);
    supply += 1;
    for (const p of net.parents[m]!) g.addArc(node, cascade[p]!, 1);
    return node;
  });
  const { value } = g.solve(s, t);
  const reasons: InfeasibilityReason[] = [];
  if (value < supply) {
    const short = supply - value;
    const side = g.residualReach(s);
    // Source side of the minimum cut: its port (cascade) nodes are the MCUs whose ports (cascade ports) ran out.
    const portMcus = net.ids.filter((_, m) => side[port[m]!]);
    const cascadeShort = net.ids.filter((_, m) => side[cascade[m]!] && !side[port[m]!]);
    const competing = demands.filter((_, i) => side[demandNode[i]!]);
    const endpoints = competing
      .flatMap((d) => d.members)
      .sort((a, b) => a - b)
      .map((e) => problem.ids[e]!);
    const children = net.ids.filter((_, m) => upNode[m]! >= 0 && side[upNode[m]!]);
    // A blocked candidate would relieve the shortage if it had a path to the root: worth saying.
    for (const d of competing) {
      for (const mcu of d.blocked) {
        const m = net.index.get(mcu)!;
        if (!net.available[m]) continue;
        const set = noPath.get(mcu) ?? new Set<string>();
        for (const e of d.members) set.add(problem.ids[e]!);
        noPath.set(mcu, set);
      }
    }
    if (portMcus.length > 0 && endpoints.length > 0) {
      const who = portMcus.length === 1 ? `MCU ${portMcus[0]} is` : `MCUs ${list(portMcus)} together are`;
      reasons.push({
        kind: 'ports-short',
        mcus: portMcus,
        short,
        endpoints,
        message: `${who} short of ${plural(short, 'port')}: ${plural(endpoints.length, 'endpoint')} (${list(endpoints)}) can use no other MCU`,
      });
    }
    if (cascadeShort.length > 0) {
      const who = cascadeShort.length === 1 ? `MCU ${cascadeShort[0]} is` : `MCUs ${list(cascadeShort)} together are`;
      reasons.push({
        kind: 'cascade-ports-short',
        mcus: cascadeShort,
        short,
        children,
        message: `${who} short of ${plural(short, 'cascade port')} for the MCUs that can cascade only into them (${list(children)})`,
      });
    }
    if (reasons.length === 0) {
      reasons.push({
        kind: 'ports-short',
        mcus: [],
        short,
        endpoints,
        message: `${plural(short, 'port')} missing for ${plural(endpoints.length, 'endpoint')} (${list(endpoints)})`,
      });
    }
    return reasons;
  }
  if (problem.stranded.length > 0) return reasons;
  // Totals suffice but the exact search found no tree: name the MCUs the relaxation fills up, and the
  // parents (the root included) whose cascade ports other sessions hold entirely.
  const parentOfCandidate = new Uint8Array(n);
  parentOfCandidate[net.root] = 1;
  for (const d of demands) for (const c of d.cands) for (const p of net.parents[c]!) parentOfCandidate[p] = 1;
  const tight = net.ids.filter(
    (_, m) =>
      (net.ports[m]! > 0 && g.flowOn(portArc[m]!) >= net.ports[m]! - (forced[m] && m !== net.root ? 1 : 0)) ||
      (net.cascadePorts[m]! > 0 && g.flowOn(cascadeArc[m]!) >= net.cascadePorts[m]!) ||
      (parentOfCandidate[m] === 1 && net.cascadePorts[m] === 0 && net.heldCascade[m]! > 0),
  );
  reasons.push({
    kind: 'no-tree',
    mcus: tight,
    message: `the ports suffice in total but no cascade tree fits them (each link takes a port at both ends and a cascade port on the parent); the tightest MCUs: ${tight.length > 0 ? list(tight) : 'none'}`,
  });
  return reasons;
}
