/**
 * The exact optimiser: the smallest depth bound D that admits a plan, then a
 * branch and bound over MCU depth labels whose every node is one min-cost flow.
 *
 * Why this shape. For fixed labels (which MCUs take part, and how deep each
 * may sit) the rest of the problem is a flow: endpoints to MCU ports, and one
 * uplink unit per cascaded MCU to a parent's cascade port and then its port.
 * What a flow cannot express is the fixed charge of a link (an MCU hosting
 * anything must be cascaded) and an MCU's depth following its parent's: the
 * search branches on exactly those. The relaxation at a node:
 *   - an MCU whose label is still open is charged at its shallowest label,
 *     and its uplink to a parent at label k is charged the extra depth of the
 *     endpoints that can only use this MCU (a valid lower bound, exact for them);
 *   - an MCU that may still be left out may host without an uplink and does
 *     not reserve the port its own link would take.
 * Both only enlarge the feasible set and lower costs, so the flow's cost
 * bounds the subtree; the flow's own tree, evaluated with its real depths, is
 * a feasible plan whenever it is consistent. A node is closed when that plan
 * costs what the bound says. Finding the best D is NP-hard in general (it
 * contains dominating set through cascade-port limits), so the search is
 * exponential in the worst case; on the national network it closes in a
 * handful of nodes.
 *
 * Costs are vectors compared lexicographically; the layout is given by `Tiers`.
 * Port balance (tier 5, the fullest MCU's utilisation) is not a flow cost: it
 * is minimised by descent, re-running the search with every MCU capped just
 * below the current fullest utilisation until the earlier tiers would worsen.
 */
import { FlowNetwork, UNBOUNDED } from './min-cost-flow.js';
import type { Problem } from './model.js';

/** Indexes of the flow cost vector. Re-planning puts its change counts first. */
export interface Tiers {
  readonly k: number;
  /** Re-planning: MCUs relinked to another parent; -1 when planning afresh. */
  readonly relink: number;
  /** Re-planning: endpoints moved to another MCU; -1 when planning afresh. */
  readonly moved: number;
  readonly atDepth: number;
  readonly depthSum: number;
  readonly preference: number;
  readonly links: number;
  /** Parent preference: the last tie-break, after port balance. */
  readonly parentRank: number;
}

export const PLAN_TIERS: Tiers = {
  k: 5,
  relink: -1,
  moved: -1,
  atDepth: 0,
  depthSum: 1,
  preference: 2,
  links: 3,
  parentRank: 4,
};
export const REPLAN_TIERS: Tiers = {
  k: 7,
  relink: 0,
  moved: 1,
  atDepth: 2,
  depthSum: 3,
  preference: 4,
  links: 5,
  parentRank: 6,
};

export interface Solution {
  readonly depthBound: number;
  /** Parent index per MCU: -1 for the master, -2 when left out. */
  readonly parent: Int32Array;
  /** Depth per MCU, -1 when left out. */
  readonly depth: Int32Array;
  /** Per demand, how many of its members go to each of its candidates. */
  readonly alloc: readonly (readonly number[])[];
  readonly cost: readonly number[];
}

export interface SearchStats {
  nodes: number;
  flows: number;
}

const NONE = -2;
const ROOT = -1;

interface State {
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  readonly unusedOk: Uint8Array;
}

interface Relaxation {
  readonly g: FlowNetwork;
  readonly s: number;
  readonly sink: number;
  readonly supply: number;
  /** Per demand, the arc to each candidate (-1: candidate not usable here). */
  readonly demandArcs: readonly (readonly number[])[];
  /** Per MCU, its uplink arcs to each usable parent. */
  readonly upArcs: readonly (readonly { p: number; arc: number }[])[];
}

interface NodeResult {
  readonly bound: number[];
  readonly plan: Solution | null;
  readonly closed: boolean;
  /** MCU to branch on, -1 if none. */
  readonly branch: number;
  /** MCUs that may be left out yet host endpoints or children without a link of their own. */
  readonly hostingUnlinked: readonly number[];
}

function lexCompare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** The optimiser for one problem; `run` returns the lexicographically best solution or null if infeasible. */
export class Optimiser {
  readonly stats: SearchStats = { nodes: 0, flows: 0 };
  readonly #p: Problem;
  readonly #t: Tiers;
  /** Weight and count of the members that can only use each MCU. */
  readonly #forcedWeight: number[];
  readonly #forcedCount: number[];

  constructor(problem: Problem, tiers: Tiers) {
    this.#p = problem;
    this.#t = tiers;
    const n = problem.net.ids.length;
    this.#forcedWeight = new Array<number>(n).fill(0);
    this.#forcedCount = new Array<number>(n).fill(0);
    for (const d of problem.demands) {
      if (d.cands.length !== 1) continue;
      this.#forcedWeight[d.cands[0]!]! += d.members.length * d.weight;
      this.#forcedCount[d.cands[0]!]! += d.members.length;
    }
  }

  /**
   * Smallest feasible D, then the best plan at D with balanced ports.
   *
   * `kept` (re-planning only, from `keptSolution`): the previous plan minus what left, with no
   * endpoint moved and no link re-parented. If no plan fits below its depth, it is the answer
   * without a search at its depth (see `keptSolution` for why); feasibility is monotone in D,
   * so one search just below it settles that.
   */
  run(kept: Solution | null = null): Solution | null {
    const { net, demands } = this.#p;
    let dLow = 0;
    for (const d of demands) dLow = Math.max(dLow, Math.min(...d.cands.map((m) => net.dist[m]!)));
    let below: Solution | null = null;
    if (kept !== null) {
      // The unpriced root relaxation usually settles it; the full search at D - 1 only when it does not.
      const shallower = kept.depthBound - 1;
      if (kept.depthBound <= dLow || this.#portsShort(shallower) || !this.#mayFit(shallower)) return kept;
      below = this.#search(kept.depthBound - 1, null, null);
      if (below === null) return kept;
    }
    for (let depth = dLow; depth <= net.height; depth++) {
      // A shallower plan exists: the first feasible depth is at most the one already searched.
      const best = kept !== null && depth === kept.depthBound - 1 ? below : this.#search(depth, null, null);
      if (best !== null) return this.#balance(best);
    }
    return null;
  }

  /** Port use per MCU of a solution: endpoints, child links and its own link. */
  portUse(s: Solution): number[] {
    const use = this.#p.net.ids.map(() => 0);
    this.#p.demands.forEach((d, i) => {
      d.cands.forEach((m, j) => {
        use[m]! += s.alloc[i]![j]!;
      });
    });
    s.parent.forEach((p, m) => {
      if (p >= 0) {
        use[m]!++;
        use[p]!++;
      }
    });
    return use;
  }

  /** The fullest MCU as [used, ports]; [0, 1] when nothing is used. */
  maxUtilisation(s: Solution): [number, number] {
    const use = this.portUse(s);
    let best: [number, number] = [0, 1];
    use.forEach((u, m) => {
      const cap = this.#p.net.ports[m]!;
      if (cap > 0 && u * best[1] > best[0] * cap) best = [u, cap];
    });
    return best;
  }

  #balance(first: Solution): Solution {
    const { net } = this.#p;
    // Lower bound: ports an MCU must give to the members that can only use it (and its own link).
    let low: [number, number] = [0, 1];
    net.ids.forEach((_, m) => {
      const forced = this.#forcedCount[m]! + (this.#forcedCount[m]! > 0 && m !== net.master ? 1 : 0);
      const cap = net.ports[m]!;
      if (cap > 0 && forced * low[1] > low[0] * cap) low = [forced, cap];
    });
    const primary = (s: Solution) => s.cost.filter((_, i) => i !== this.#t.parentRank);
    let best = first;
    for (;;) {
      const [used, cap] = this.maxUtilisation(best);
      if (used * low[1] <= low[0] * cap) return best;
      // Every MCU strictly below used/cap: at most ceil(used*P/cap) - 1 ports.
      const caps = net.ports.map((p) => Math.floor((used * p - 1) / cap));
      const cutoff = [...best.cost];
      cutoff[this.#t.parentRank] = Number.POSITIVE_INFINITY;
      const next = this.#search(best.depthBound, caps, cutoff);
      if (next === null || lexCompare(primary(next), primary(best)) !== 0) return best;
      best = next;
    }
  }

  /** The search's root labels for depth bound D; null when an MCU some members need cannot sit within D. */
  #root(depth: number): State | null {
    const { net } = this.#p;
    const n = net.ids.length;
    const root: State = { lo: new Int32Array(n), hi: new Int32Array(n), unusedOk: new Uint8Array(n) };
    for (let m = 0; m < n; m++) {
      if (m === net.master) continue; // label 0, always used
      const reach = net.dist[m]!;
      if (reach <= depth) {
        root.lo[m] = reach;
        root.hi[m] = depth;
      } else {
        root.lo[m] = 1;
        root.hi[m] = 0;
        if (this.#forcedCount[m]! > 0) return null;
      }
      root.unusedOk[m] = this.#forcedCount[m]! > 0 ? 0 : 1;
    }
    return root;
  }

  /**
   * A counting proof that no plan fits within depth D, cheaper than `#mayFit`'s flow: an MCU sits no
   * shallower than its distance to the master, so members with one candidate within distance D must
   * all be on it, and it also needs a port for its own link. True proves that no plan fits; false
   * proves nothing.
   */
  #portsShort(depth: number): boolean {
    const { net, demands } = this.#p;
    const need = new Int32Array(net.ids.length);
    for (const d of demands) {
      let only = -1;
      for (const m of d.cands) {
        if (net.dist[m]! > depth) continue;
        if (only >= 0) {
          only = -2;
          break;
        }
        only = m;
      }
      if (only >= 0) need[only]! += d.members.length;
    }
    for (let m = 0; m < need.length; m++) {
      if (need[m]! > 0 && need[m]! + (m === net.master ? 0 : 1) > net.ports[m]!) return true;
    }
    return false;
  }

  /**
   * Whether a plan within depth D may exist: the root relaxation without costs (one cheap flow).
   * The relaxation only enlarges the feasible set, so false proves that none does.
   */
  #mayFit(depth: number): boolean {
    const root = this.#root(depth);
    if (root === null) return false;
    const r = this.#network(root, depth, null, false);
    if (r === null) return false;
    this.stats.flows++;
    return r.g.solve(r.s, r.sink).value === r.supply;
  }

  #search(depth: number, caps: number[] | null, cutoff: number[] | null): Solution | null {
    const root = this.#root(depth);
    if (root === null) return null;
    let best: Solution | null = null;
    const visit = (node: State): void => {
      this.stats.nodes++;
      let st = node;
      for (;;) {
        const r = this.#relax(st, depth, caps);
        if (r === null) return;
        if (cutoff !== null && lexCompare(r.bound, cutoff) > 0) return;
        if (best !== null && lexCompare(r.bound, best.cost) >= 0) return;
        if (
          r.plan !== null &&
          (best === null || lexCompare(r.plan.cost, best.cost) < 0) &&
          (cutoff === null || lexCompare(r.plan.cost, cutoff) <= 0)
        ) {
          best = r.plan;
        }
        if (r.closed || r.branch < 0) return;
        if (best !== null && lexCompare(r.bound, best.cost) >= 0) return;
        // Probing: an MCU the relaxation leans on that cannot be left out must take part. Fixing all such
        // at once, with a cheap feasibility flow each, spares a branch per MCU (the capacity-driven
        // second-level MCUs and the operators' MCUs of the national network are all caught here).
        const needed = r.hostingUnlinked.filter((m) => !this.#canLeaveOut(st, m, depth, caps));
        if (needed.length === 0) {
          for (const child of this.#options(st, r.branch, r.plan)) visit(child);
          return;
        }
        const unusedOk = st.unusedOk.slice();
        for (const m of needed) unusedOk[m] = 0;
        st = { lo: st.lo, hi: st.hi, unusedOk };
      }
    };
    visit(root);
    return best;
  }

  /** Children of a node: MCU m fixed to each of its remaining labels (shallowest first), or left out. */
  #options(st: State, m: number, plan: Solution | null): State[] {
    const out: State[] = [];
    const fix = (lo: number, hi: number, unusedOk: number) => {
      const c: State = { lo: st.lo.slice(), hi: st.hi.slice(), unusedOk: st.unusedOk.slice() };
      c.lo[m] = lo;
      c.hi[m] = hi;
      c.unusedOk[m] = unusedOk;
      return c;
    };
    const leaveOut = st.unusedOk[m] ? fix(1, 0, 1) : null;
    for (let k = st.lo[m]!; k <= st.hi[m]!; k++) out.push(fix(k, k, 0));
    if (leaveOut !== null) {
      // Try leaving it out first when the relaxation did not use it at all.
      if (plan !== null && plan.parent[m] === NONE) out.unshift(leaveOut);
      else out.push(leaveOut);
    }
    return out;
  }

  /**
   * The relaxation's flow network for a node. Without costs (`priced` false)
   * it is a plain feasibility network, used to probe whether an MCU may be left out
   * and whether a depth bound may fit at all.
   */
  #network(st: State, depth: number, caps: number[] | null, priced: boolean): Relaxation | null {
    const { net, demands, prevParent } = this.#p;
    const t = this.#t;
    const n = net.ids.length;
    const usable = (m: number) => st.lo[m]! <= st.hi[m]!;
    const mustUse = (m: number) => usable(m) && st.unusedOk[m] === 0;
    const portCap = (m: number) => Math.min(net.ports[m]!, caps === null ? net.ports[m]! : caps[m]!);

    const g = new FlowNetwork(priced ? t.k : 1);
    const s = g.addNode();
    const sink = g.addNode();
    const portNode = new Int32Array(n).fill(-1);
    const cascadeNode = new Int32Array(n).fill(-1);
    for (let m = 0; m < n; m++) {
      if (!usable(m)) continue;
      const own = m !== net.master && mustUse(m) ? 1 : 0;
      const cap = portCap(m) - own;
      // An MCU that hosts anything needs a port for its own link; with none it cannot take part.
      if (cap < 0 || (m !== net.master && portCap(m) < 1)) {
        if (mustUse(m)) return null;
        continue;
      }
      portNode[m] = g.addNode();
      g.addArc(portNode[m]!, sink, cap);
      if (net.cascadePorts[m]! > 0) {
        cascadeNode[m] = g.addNode();
        g.addArc(cascadeNode[m]!, portNode[m]!, net.cascadePorts[m]!);
      }
    }

    let supply = 0;
    const vec = () => new Array<number>(t.k).fill(0);
    const demandArcs: number[][] = [];
    for (const d of demands) {
      const node = g.addNode();
      g.addArc(s, node, d.members.length);
      supply += d.members.length;
      const arcs: number[] = [];
      d.cands.forEach((m, j) => {
        if (portNode[m]! < 0) {
          arcs.push(-1);
          return;
        }
        const k = st.lo[m]!;
        const c = vec();
        c[t.atDepth] = k === depth ? d.weight : 0;
        c[t.depthSum] = d.weight * k;
        c[t.preference] = d.chair ? 0 : d.ranks[j]!;
        if (t.moved >= 0) c[t.moved] = d.prev >= 0 && d.prev !== m ? 1 : 0;
        arcs.push(g.addArc(node, portNode[m]!, UNBOUNDED, priced ? c : undefined));
      });
      demandArcs.push(arcs);
    }

    const upArcs: { p: number; arc: number }[][] = [];
    for (let m = 0; m < n; m++) {
      const ups: { p: number; arc: number }[] = [];
      upArcs.push(ups);
      if (m === net.master || portNode[m]! < 0) continue;
      const node = g.addNode();
      g.addArc(s, node, 1);
      supply += 1;
      if (!mustUse(m)) g.addArc(node, sink, 1);
      net.parents[m]!.forEach((p, r) => {
        if (cascadeNode[p]! < 0 || st.lo[p]! + 1 > st.hi[m]!) return;
        const k = Math.max(st.lo[m]!, st.lo[p]! + 1);
        const c = vec();
        const fw = this.#forcedWeight[m]!;
        c[t.atDepth] = fw * ((k === depth ? 1 : 0) - (st.lo[m] === depth ? 1 : 0));
        c[t.depthSum] = fw * (k - st.lo[m]!);
        c[t.links] = 1;
        c[t.parentRank] = net.parentRank[m]![r]!;
        if (t.relink >= 0) c[t.relink] = prevParent !== null && prevParent[m]! >= 0 && prevParent[m] !== p ? 1 : 0;
        ups.push({ p, arc: g.addArc(node, cascadeNode[p]!, 1, priced ? c : undefined) });
      });
    }

    return { g, s, sink, supply, demandArcs, upArcs };
  }

  /** Whether the node's relaxation stays feasible with MCU m left out (if not, m must take part). */
  #canLeaveOut(st: State, m: number, depth: number, caps: number[] | null): boolean {
    const probe: State = { lo: st.lo.slice(), hi: st.hi.slice(), unusedOk: st.unusedOk };
    probe.lo[m] = 1;
    probe.hi[m] = 0;
    const r = this.#network(probe, depth, caps, false);
    if (r === null) return false;
    this.stats.flows++;
    return r.g.solve(r.s, r.sink).value === r.supply;
  }

  #relax(st: State, depth: number, caps: number[] | null): NodeResult | null {
    const { net, demands, prevParent } = this.#p;
    const t = this.#t;
    const n = net.ids.length;
    const mustUse = (m: number) => st.lo[m]! <= st.hi[m]! && st.unusedOk[m] === 0;
    const portCap = (m: number) => Math.min(net.ports[m]!, caps === null ? net.ports[m]! : caps[m]!);
    const built = this.#network(st, depth, caps, true);
    if (built === null) return null;
    const { g, s, sink, supply, demandArcs, upArcs } = built;
    const vec = () => new Array<number>(t.k).fill(0);
    const { value, cost } = g.solve(s, sink);
    this.stats.flows++;
    if (value < supply) return null;

    // The flow's own plan, evaluated with its real depths.
    const alloc = demands.map((d, i) =>
      d.cands.map((_, j) => (demandArcs[i]![j]! < 0 ? 0 : g.flowOn(demandArcs[i]![j]!))),
    );
    const parent = new Int32Array(n).fill(NONE);
    parent[net.master] = ROOT;
    const children = new Int32Array(n);
    for (let m = 0; m < n; m++) {
      for (const u of upArcs[m]!) {
        if (g.flowOn(u.arc) > 0) {
          parent[m] = u.p;
          children[u.p]!++;
        }
      }
    }
    const hosted = new Int32Array(n);
    const hostedWeight = new Float64Array(n);
    demands.forEach((d, i) => {
      d.cands.forEach((m, j) => {
        hosted[m]! += alloc[i]![j]!;
        hostedWeight[m]! += alloc[i]![j]! * d.weight;
      });
    });
    const discrepant: number[] = [];
    for (let m = 0; m < n; m++) {
      if (parent[m] === NONE && (hosted[m]! > 0 || children[m]! > 0)) discrepant.push(m);
    }
    const hostingUnlinked = [...discrepant];
    const realDepth = new Int32Array(n).fill(-1);
    const depthOf = (m: number): number => {
      if (realDepth[m]! >= 0) return realDepth[m]!;
      const p = parent[m]!;
      const d = p === ROOT ? 0 : p === NONE ? -1 : depthOf(p) < 0 ? -1 : depthOf(p) + 1;
      realDepth[m] = d;
      return d;
    };
    let consistent = discrepant.length === 0;
    for (let m = 0; m < n; m++) {
      if (parent[m] === NONE) continue;
      const dm = depthOf(m);
      if (dm < 0 || dm > depth) consistent = false;
      // Charged at its shallowest label, but really deeper: its endpoints beyond the forced ones, or its children, cost more.
      if (dm > st.lo[m]! && (hostedWeight[m]! > this.#forcedWeight[m]! || children[m]! > 0)) discrepant.push(m);
      // An MCU that may be left out did not reserve its own link's port.
      if (m !== net.master && !mustUse(m) && hosted[m]! + children[m]! + 1 > portCap(m)) discrepant.push(m);
    }

    let plan: Solution | null = null;
    if (consistent) {
      const real = vec();
      demands.forEach((d, i) => {
        d.cands.forEach((m, j) => {
          const f = alloc[i]![j]!;
          if (f === 0) return;
          const dm = realDepth[m]!;
          real[t.atDepth]! += dm === depth ? f * d.weight : 0;
          real[t.depthSum]! += f * d.weight * dm;
          real[t.preference]! += d.chair ? 0 : f * d.ranks[j]!;
          if (t.moved >= 0 && d.prev >= 0 && d.prev !== m) real[t.moved]! += f;
        });
      });
      let ownPortsOk = true;
      for (let m = 0; m < n; m++) {
        const p = parent[m]!;
        if (p < 0) continue;
        real[t.links]!++;
        real[t.parentRank]! += net.parentRank[m]![net.parents[m]!.indexOf(p)]!;
        if (t.relink >= 0 && prevParent !== null && prevParent[m]! >= 0 && prevParent[m] !== p) real[t.relink]!++;
        if (hosted[m]! + children[m]! + 1 > portCap(m)) ownPortsOk = false;
      }
      if (ownPortsOk) plan = { depthBound: depth, parent, depth: realDepth, alloc, cost: real };
    }
    const closed = plan !== null && lexCompare(plan.cost, cost) === 0;
    let branch = -1;
    if (!closed) {
      // Shallowest discrepancy first: fixing a parent's label makes its children's charges exact.
      let bestKey = Number.POSITIVE_INFINITY;
      for (const m of discrepant) {
        const key = st.lo[m]! * n + m;
        if (key < bestKey && !(st.lo[m] === st.hi[m] && st.unusedOk[m] === 0)) {
          bestKey = key;
          branch = m;
        }
      }
      if (branch < 0) {
        for (let m = 0; m < n && branch < 0; m++) {
          if (m !== net.master && (st.lo[m]! < st.hi[m]! || (st.lo[m]! <= st.hi[m]! && st.unusedOk[m] === 1)))
            branch = m;
        }
      }
    }
    return { bound: cost, plan, closed, branch, hostingUnlinked };
  }
}

/**
 * Re-planning shortcut: the previous plan minus what left (endpoints removed or dropped, MCUs
 * that no longer host anything below them), or null when it does not apply.
 *
 * It applies when every endpoint of the new session was placed before on an MCU it may still
 * use, every such MCU keeps its whole previous parent chain (available, allowed, up to the
 * master) and the result fits every capacity. Then it is the re-plan's unique optimum at its
 * own depth D, whatever the rest of the objective: it re-parents no link and moves no endpoint,
 * so the re-plan order's tiers 2 and 3 are at their minimum (0); any plan with both at 0 keeps
 * every endpoint where it was and, through its unchanged links, the whole chain above it, so
 * it contains this tree, and anything more only adds links and port use. Tiers 2 to 5 of the
 * objective and the tie-breaks leave no choice. What remains is tier 1: D must be the smallest
 * feasible depth, which `Optimiser.run` checks with a search at D - 1.
 * It does not apply once the session gains an endpoint (its MCU is a free choice) or an
 * endpoint must move or an MCU relink (an MCU or a parent lost): those take the full search.
 */
export function keptSolution(problem: Problem, tiers: Tiers): Solution | null {
  const { net, demands, prevParent } = problem;
  if (prevParent === null || tiers.relink < 0 || tiers.moved < 0) return null;
  const n = net.ids.length;
  const hosted = new Int32Array(n);
  const alloc: number[][] = [];
  for (const d of demands) {
    const j = d.cands.indexOf(d.prev);
    if (d.prev < 0 || j < 0) return null;
    const row = new Array<number>(d.cands.length).fill(0);
    row[j] = d.members.length;
    alloc.push(row);
    hosted[d.prev]! += d.members.length;
  }
  // The tree: every hosting MCU's previous chain, which must still be allowed and reach the master.
  const parent = new Int32Array(n).fill(NONE);
  const depth = new Int32Array(n).fill(-1);
  parent[net.master] = ROOT;
  depth[net.master] = 0;
  const children = new Int32Array(n);
  const chain: number[] = [];
  for (let h = 0; h < n; h++) {
    if (hosted[h] === 0) continue;
    let m = h;
    while (depth[m]! < 0) {
      const p = prevParent[m]!;
      // A cycle or a chain longer than the MCUs cannot come from a tree.
      if (p < 0 || !net.parents[m]!.includes(p) || chain.length >= n) return null;
      chain.push(m);
      m = p;
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const c = chain[i]!;
      parent[c] = prevParent[c]!;
      depth[c] = depth[parent[c]!]! + 1;
      children[parent[c]!]!++;
    }
    chain.length = 0;
  }
  let depthBound = 0;
  for (let m = 0; m < n; m++) {
    if (parent[m] === NONE) continue;
    if (hosted[m]! + children[m]! + (m === net.master ? 0 : 1) > net.ports[m]!) return null;
    if (children[m]! > net.cascadePorts[m]!) return null;
    if (hosted[m]! > 0) depthBound = Math.max(depthBound, depth[m]!);
  }
  const cost = new Array<number>(tiers.k).fill(0);
  for (const d of demands) {
    const count = d.members.length;
    const k = depth[d.prev]!;
    if (k === depthBound) cost[tiers.atDepth]! += count * d.weight;
    cost[tiers.depthSum]! += count * d.weight * k;
    if (!d.chair) cost[tiers.preference]! += count * d.ranks[d.cands.indexOf(d.prev)]!;
  }
  for (let m = 0; m < n; m++) {
    const p = parent[m]!;
    if (p < 0) continue;
    cost[tiers.links]!++;
    cost[tiers.parentRank]! += net.parentRank[m]![net.parents[m]!.indexOf(p)]!;
  }
  return { depthBound, parent, depth, alloc, cost };
}
