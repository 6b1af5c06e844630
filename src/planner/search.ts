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
 *     weight it must host whenever it takes part (`#mustWeight`: the members
 *     that cannot fit anywhere else, a valid lower bound);
 *   - an MCU that may still be left out may host without an uplink and does
 *     not reserve the port its own link would take.
 * Both only enlarge the feasible set and lower costs, so the flow's cost
 * bounds the subtree; the flow's own tree, evaluated with its real depths, is
 * a feasible plan whenever it is consistent. A node is closed when that plan
 * costs what the bound says. Finding the best D is NP-hard in general (it
 * contains dominating set through cascade-port limits), so the search is
 * exponential in the worst case, and a time budget bounds it: on expiry the
 * best plan found is returned with the smallest bound of the open nodes.
 *
 * What makes tight networks fast (issue 9: a root with far fewer cascade
 * ports than the MCUs that want them). Charging only the members an MCU must
 * host (rather than only those with no other candidate) makes the flow rank
 * the MCUs competing for the root's cascade ports by what each really loses
 * one level deeper. Branching goes to the MCU whose inconsistency costs the
 * most (not the first found), and every node also completes its relaxation
 * into a plan (labels fixed at the flow's real depths, one more flow), so a
 * good incumbent prunes from the first nodes on.
 *
 * Costs are vectors compared lexicographically; the layout is given by `Tiers`.
 * Port balance (tier 5, the fullest MCU's utilisation) is not a flow cost: it
 * is minimised by descent, re-running the search with every MCU capped just
 * below the current fullest utilisation until the earlier tiers would worsen.
 */
import { FlowNetwork, UNBOUNDED } from './min-cost-flow.js';
import type { Problem } from './model.js';
import { TreeBound, type TreeMultipliers, type TreePenalties } from './tree-bound.js';

/** Indexes of the flow cost vector. Re-planning puts its change counts first, a shortage the unplaced. */
export interface Tiers {
  readonly k: number;
  /** Weight of the members left unplaced (re-plans under a shortage); -1 when everyone must be placed. */
  readonly unplaced: number;
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
  unplaced: -1,
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
  unplaced: -1,
  relink: 0,
  moved: 1,
  atDepth: 2,
  depthSum: 3,
  preference: 4,
  links: 5,
  parentRank: 6,
};

/** The same order with the weight of unplaced members first: place as many as possible, then the rest. */
export function withUnplaced(t: Tiers): Tiers {
  const shift = (i: number) => (i < 0 ? i : i + 1);
  return {
    k: t.k + 1,
    unplaced: 0,
    relink: shift(t.relink),
    moved: shift(t.moved),
    atDepth: shift(t.atDepth),
    depthSum: shift(t.depthSum),
    preference: shift(t.preference),
    links: shift(t.links),
    parentRank: shift(t.parentRank),
  };
}

export interface Solution {
  readonly depthBound: number;
  /** Parent index per MCU: -1 for the root, -2 when left out. */
  readonly parent: Int32Array;
  /** Depth per MCU, -1 when left out. */
  readonly depth: Int32Array;
  /** Per demand, how many of its members go to each of its candidates. */
  readonly alloc: readonly (readonly number[])[];
  /** Per demand, how many members are left unplaced (only under a shortage). */
  readonly unplaced: readonly number[];
  readonly cost: readonly number[];
}

/** When the search must stop: `now()` past `deadline` (milliseconds on the same clock). */
export interface Limits {
  readonly now: () => number;
  readonly deadline: number;
}

export interface SearchCounters {
  nodes: number;
  flows: number;
  /** Set once the deadline has passed: every search from then on stops at its next node. */
  exhausted: boolean;
}

/** What `run` found. */
export interface Outcome {
  readonly solution: Solution | null;
  /** The solution is proven optimal, or (with none) the problem is proven infeasible. */
  readonly complete: boolean;
  /**
   * A lexicographic lower bound: no plan fits within a smaller depth bound than `depth`, and none
   * within `depth` costs less than `tiers`. Null when infeasibility is proven.
   */
  readonly bound: { readonly depth: number; readonly tiers: readonly number[] } | null;
}

const NONE = -2;
const ROOT = -1;
/** Subgradient steps of the tree bound at a search's root node, and at every other node (warm-started). */
const ROOT_STEPS = 300;
const NODE_STEPS = 30;
/** Nodes a search may take past the budget to find a first plan when it has none (see `#fallback`). */
const FALLBACK_NODES = 64;
/** Once there is an incumbent, nodes between two completions of a relaxation into a plan. */
const COMPLETE_EVERY = 8;

interface BaseFlow {
  readonly depth: number;
  readonly supply: number;
  readonly value: number;
  /** Per demand, the members on each of its candidates. */
  readonly onCand: readonly (readonly number[])[];
  /** Per MCU, its ports the flow leaves free. */
  readonly spare: readonly number[];
  /** The network, its flow, and its arcs: from the source to each demand, each demand to each candidate, each MCU to the sink. */
  readonly g: FlowNetwork;
  readonly s: number;
  readonly t: number;
  readonly saved: Float64Array;
  readonly sourceArcs: readonly number[];
  readonly arcs: readonly (readonly number[])[];
  readonly ports: readonly { readonly arc: number; readonly cap: number }[];
}

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
  /** Per demand, its arc to the sink for unplaced members (-1: none). */
  readonly dropArcs: readonly number[];
  /** Per MCU, its uplink arcs to each usable parent. */
  readonly upArcs: readonly (readonly { p: number; arc: number }[])[];
  /** What the tree penalties added to every flow's tier 1 regardless of its choices (subtracted from the bound). */
  readonly offset: number;
  /** Per demand, the candidate its members were folded onto (their only usable one here), -1 if none. */
  readonly folded: Int32Array;
  /** The cost of the folded members (priced networks). */
  readonly constant: readonly number[];
}

interface NodeResult {
  readonly bound: number[];
  readonly plan: Solution | null;
  readonly closed: boolean;
  /** MCU to branch on, -1 if none. */
  readonly branch: number;
  /**
   * What repairing the branch MCU's inconsistency costs (see `#relax`): above 1 when the flow
   * really places it wrongly, 1 or less when it was picked for want of a better one.
   */
  readonly impact: number;
  /** MCUs that may be left out yet host endpoints or children without a link of their own. */
  readonly hostingUnlinked: readonly number[];
  /** The flow's tree: parent per MCU and its real depth (-1: not linked to the root). */
  readonly parent: Int32Array;
  readonly realDepth: Int32Array;
}

/** A node waiting in the search: its labels, the bound and tree multipliers of the node it came from. */
interface Open {
  readonly st: State;
  readonly bound: readonly number[] | null;
  readonly mult: TreeMultipliers | null;
}

interface SearchResult {
  readonly best: Solution | null;
  /** The whole tree was searched: `best` is optimal (or null: no plan within this depth). */
  readonly complete: boolean;
  /** When not complete: the smallest bound among the open nodes and `best`; null if none is known. */
  readonly lower: readonly number[] | null;
  /**
   * The nodes set aside that may still hold a plan as good as `best` on every tier but the
   * parent-preference tie-break: port balance, the next tier, needs to look only there.
   */
  readonly ties: readonly Open[];
}

function lexCompare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** The optimiser for one problem; `run` returns the lexicographically best solution or null if infeasible. */
export class Optimiser {
  readonly stats: SearchCounters = { nodes: 0, flows: 0, exhausted: false };
  readonly #p: Problem;
  readonly #t: Tiers;
  readonly #limits: Limits;
  /** Under a shortage members may stay unplaced, so no MCU is needed by anyone in particular. */
  readonly #partial: boolean;
  /** Weight and count of the members that can only use each MCU. */
  readonly #forcedWeight: number[];
  readonly #forcedCount: number[];
  /** Per MCU, the weight and count it must host whenever it takes part within the depth bound `#mustDepth` (-1: not yet known). */
  #mustWeight: number[];
  #mustCount = new Int32Array(0);
  #mustDepth = -1;
  /** The maximum flow of all members into every MCU usable at `#mustDepth`, which most `#must` answers need alone. */
  #base: BaseFlow | null = null;
  #tree: TreeBound | null = null;
  /**
   * The networks every flow of this search is built in, emptied and refilled each time (one with
   * the cost tiers, one without): thousands of flows of one size, no garbage. A network is read
   * only until the next one is built.
   */
  readonly #pricedNet: FlowNetwork;
  readonly #plainNet = new FlowNetwork(1);

  constructor(problem: Problem, tiers: Tiers, limits: Limits) {
    this.#p = problem;
    this.#t = tiers;
    this.#pricedNet = new FlowNetwork(tiers.k);
    this.#limits = limits;
    this.#partial = tiers.unplaced >= 0;
    const n = problem.net.ids.length;
    this.#forcedWeight = new Array<number>(n).fill(0);
    this.#forcedCount = new Array<number>(n).fill(0);
    if (!this.#partial) {
      for (const d of problem.demands) {
        if (d.cands.length !== 1) continue;
        this.#forcedWeight[d.cands[0]!]! += d.members.length * d.weight;
        this.#forcedCount[d.cands[0]!]! += d.members.length;
      }
    }
    this.#mustWeight = this.#forcedWeight;
  }

  /** An empty network to build the next flow in (see `#pricedNet`). */
  #fresh(priced: boolean): FlowNetwork {
    const g = priced ? this.#pricedNet : this.#plainNet;
    g.reset();
    return g;
  }

  #expired(): boolean {
    if (!this.stats.exhausted && this.#limits.now() > this.#limits.deadline) this.stats.exhausted = true;
    return this.stats.exhausted;
  }

  /**
   * Smallest feasible D, then the best plan at D with balanced ports.
   *
   * `kept` (re-planning only, from `keptSolution`): the previous plan minus what left, with no
   * endpoint moved and no link re-parented. If no plan fits below its depth, it is the answer
   * without a search at its depth (see `keptSolution` for why); feasibility is monotone in D,
   * so one search just below it settles that.
   */
  run(kept: Solution | null = null): Outcome {
    if (this.#partial) return this.#runPartial();
    const { net, demands } = this.#p;
    let dLow = 0;
    for (const d of demands) dLow = Math.max(dLow, Math.min(...d.cands.map((m) => net.dist[m]!)));
    let below: SearchResult | null = null;
    if (kept !== null) {
      // The unpriced root relaxation usually settles it; the full search at D - 1 only when it does not.
      const shallower = kept.depthBound - 1;
      const done = { solution: kept, complete: true, bound: { depth: kept.depthBound, tiers: kept.cost } };
      if (kept.depthBound <= dLow || this.#portsShort(shallower) || !this.#mayFit(shallower)) return done;
      below = this.#search(shallower, null, null);
      if (below.best === null && below.complete) return done;
      if (below.best === null) {
        return { solution: kept, complete: false, bound: { depth: shallower, tiers: this.#zeroIfNull(below.lower) } };
      }
    }
    for (let depth = dLow; depth <= net.height; depth++) {
      if (this.#expired()) return this.#fallback(depth, null);
      if (this.#portsShort(depth) || !this.#mayFit(depth)) continue;
      // A shallower plan exists: the first feasible depth is at most the one already searched.
      const r =
        below !== null && kept !== null && depth === kept.depthBound - 1 ? below : this.#search(depth, null, null);
      if (r.best !== null) {
        if (!r.complete) return { solution: r.best, complete: false, bound: { depth, tiers: r.lower! } };
        const balanced = this.#balance(r.best, r.ties);
        return { solution: balanced.best, complete: balanced.complete, bound: { depth, tiers: r.best.cost } };
      }
      if (!r.complete) return this.#fallback(depth, r.lower);
    }
    return { solution: null, complete: true, bound: null };
  }

  /**
   * The budget ran out before any plan within `depth` was found: the first plan a short dive of
   * the search finds within `depth` or deeper, with the bound proven so far (nothing fits within a
   * smaller depth bound).
   */
  #fallback(depth: number, lower: readonly number[] | null): Outcome {
    const bound = { depth, tiers: this.#zeroIfNull(lower) };
    for (let d = depth; d <= this.#p.net.height; d++) {
      if (this.#portsShort(d) || !this.#mayFit(d)) continue;
      const r = this.#search(d, null, null, { dive: FALLBACK_NODES });
      if (r.best !== null) return { solution: r.best, complete: false, bound };
    }
    return { solution: null, complete: false, bound };
  }

  #zeroIfNull(v: readonly number[] | null): readonly number[] {
    return v ?? new Array<number>(this.#t.k).fill(0);
  }

  /**
   * Under a shortage: the fewest unplaced (weighted) members, then the smallest depth bound that
   * places that many, then the rest of the objective there. Depth bounds are tried upwards, each
   * search only for plans leaving fewer unplaced than the best so far (a deeper bound can only
   * place more), and the tries stop once the count meets a lower bound from the ports alone.
   */
  #runPartial(): Outcome {
    const { net } = this.#p;
    const t = this.#t;
    const least = this.#unplacedAtLeast(net.height);
    const lower = new Array<number>(t.k).fill(0);
    lower[t.unplaced] = least;
    let best: Solution | null = null;
    let ties: readonly Open[] = [];
    for (let depth = 0; depth <= net.height; depth++) {
      let cutoff: number[] | null = null;
      if (best !== null) {
        cutoff = new Array<number>(t.k).fill(Number.POSITIVE_INFINITY);
        cutoff[t.unplaced] = best.cost[t.unplaced]! - 1;
      }
      const r = this.#search(depth, null, cutoff);
      if (r.best !== null) {
        best = r.best;
        ties = r.ties;
      }
      if (!r.complete) return { solution: best, complete: false, bound: { depth: 0, tiers: lower } };
      if (best !== null && best.cost[t.unplaced]! <= least) break;
    }
    if (best === null) return { solution: null, complete: true, bound: null };
    const balanced = this.#balance(best, ties);
    return {
      solution: balanced.best,
      complete: balanced.complete,
      bound: { depth: best.depthBound, tiers: best.cost },
    };
  }

  /**
   * Members no plan within depth D can place, whatever the tree: a maximum flow of the members into
   * the ports of the MCUs within D of the root (each other than the root keeping one for its own link).
   */
  #unplacedAtLeast(depth: number): number {
    const { net, demands } = this.#p;
    const g = this.#fresh(false);
    const s = g.addNode();
    const t = g.addNode();
    const port = net.ids.map((_, m) => {
      const v = g.addNode();
      if (net.dist[m]! <= depth) g.addArc(v, t, Math.max(0, net.ports[m]! - (m === net.root ? 0 : 1)));
      return v;
    });
    let supply = 0;
    for (const d of demands) {
      const v = g.addNode();
      g.addArc(s, v, d.members.length);
      supply += d.members.length;
      for (const m of d.cands) g.addArc(v, port[m]!, UNBOUNDED);
    }
    this.stats.flows++;
    return supply - g.solve(s, t).value;
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

  /** The fullest MCU taking part as [load, ports], the load counting other sessions' ports; [0, 1] when none. */
  maxUtilisation(s: Solution): [number, number] {
    const { net } = this.#p;
    const use = this.portUse(s);
    let best: [number, number] = [0, 1];
    use.forEach((u, m) => {
      const cap = net.capacity[m]!;
      const load = u + net.held[m]!;
      if (s.parent[m] !== NONE && cap > 0 && load * best[1] > best[0] * cap) best = [load, cap];
    });
    return best;
  }

  /**
   * Port balance (tier 5) by descent: every MCU capped just below the fullest one's utilisation,
   * searched again with the earlier tiers as a cut-off. Only the nodes the previous search set
   * aside as possibly holding a plan as good on the earlier tiers are searched again (`ties`): a
   * node closed or pruned against a strictly better plan holds none, and caps only narrow.
   */
  #balance(first: Solution, ties: readonly Open[]): { best: Solution; complete: boolean } {
    const { net } = this.#p;
    // Lower bound: the load an MCU that must take part carries (what it must host, its own link, other sessions).
    this.#prepare(first.depthBound);
    let low: [number, number] = [0, 1];
    net.ids.forEach((_, m) => {
      if (net.dist[m]! > first.depthBound) return;
      const must = m === net.root ? this.#must(m) : this.#forcedCount[m]! > 0 ? this.#must(m) : 0;
      const needed = m === net.root || must > 0;
      if (!needed) return;
      const load = must + (m === net.root ? 0 : 1) + net.held[m]!;
      const cap = net.capacity[m]!;
      if (cap > 0 && load * low[1] > low[0] * cap) low = [load, cap];
    });
    let best = first;
    let from = ties;
    for (;;) {
      const [used, cap] = this.maxUtilisation(best);
      if (used * low[1] <= low[0] * cap) return { best, complete: true };
      // Every MCU strictly below used/cap: a load of at most ceil(used*P/cap) - 1 ports, this session's part of it.
      const caps = net.capacity.map((p, m) => Math.floor((used * p - 1) / cap) - net.held[m]!);
      const cutoff = [...best.cost];
      cutoff[this.#t.parentRank] = Number.POSITIVE_INFINITY;
      const next = this.#search(best.depthBound, caps, cutoff, { from });
      if (next.best === null || !this.#samePrimary(next.best.cost, best.cost)) return { best, complete: next.complete };
      best = next.best;
      if (!next.complete) return { best, complete: false };
      from = next.ties;
    }
  }

  /** The search's root labels for depth bound D; null when an MCU some members need cannot sit within D. */
  #root(depth: number): State | null {
    const { net } = this.#p;
    const n = net.ids.length;
    const root: State = { lo: new Int32Array(n), hi: new Int32Array(n), unusedOk: new Uint8Array(n) };
    for (let m = 0; m < n; m++) {
      if (m === net.root) continue; // label 0, always used
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
   * Per depth bound D, what each MCU must host whenever it takes part: its forced members, and
   * those of the others that cannot fit anywhere else (all members minus a maximum flow into the
   * other MCUs usable within D, each keeping a port for its own link). Valid at every node of the
   * search at D, which only narrows the choices. The flow's uplink charges need it only for MCUs
   * that can sit deeper than their shallowest label; the tree bound needs it for all, so it is
   * computed per MCU on first use, from one maximum flow into all of them (`#baseFlow`) with m's
   * members re-routed (about 60 full flows before, most of a re-plan's fixed cost).
   */
  #prepare(depth: number): void {
    if (this.#mustDepth === depth) return;
    this.#mustDepth = depth;
    const { net } = this.#p;
    const n = net.ids.length;
    this.#mustCount = new Int32Array(n).fill(-1);
    this.#mustWeight = [...this.#forcedWeight];
    this.#tree = null;
    // Under a shortage an MCU may leave its members unplaced instead: no charge is certain.
    if (this.#partial) return;
    for (let m = 0; m < n; m++) {
      if (m === net.root || net.dist[m]! > depth) continue;
      const deeper = net.parents[m]!.some((p) => p !== net.root && Math.max(net.dist[p]!, net.dist[m]!) + 1 <= depth);
      if (deeper) this.#must(m);
    }
  }

  /** The count of members MCU m must host at the current depth bound (and its must weight, as a side effect). */
  #must(m: number): number {
    const known = this.#mustCount[m]!;
    if (known >= 0) return known;
    let minWeight = Number.POSITIVE_INFINITY;
    for (const d of this.#p.demands) {
      if (d.cands.length > 1 && d.cands.includes(m)) minWeight = Math.min(minWeight, d.weight);
    }
    let count = this.#forcedCount[m]!;
    if (minWeight < Number.POSITIVE_INFINITY) {
      const base = this.#baseFlow();
      // When m's members fit elsewhere greedily the flow without m is the base one (it cannot grow).
      const without = this.#reroutes(base, m) ? base.value : this.#withoutFlow(base, m);
      count = Math.max(count, base.supply - without);
      if (count > this.#forcedCount[m]! && !this.#partial) {
        this.#mustWeight[m] = this.#forcedWeight[m]! + (count - this.#forcedCount[m]!) * minWeight;
      }
    }
    this.#mustCount[m] = count;
    return count;
  }

  /**
   * The members into every MCU usable within `#mustDepth` (each but the root keeping a port for its
   * own link): a maximum flow, what it puts on each candidate, and the ports it leaves free.
   */
  #baseFlow(): BaseFlow {
    const depth = this.#mustDepth;
    if (this.#base !== null && this.#base.depth === depth) return this.#base;
    const { net, demands } = this.#p;
    // A network of its own: `#withoutFlow` re-solves it between other flows.
    const g = new FlowNetwork(1);
    const s = g.addNode();
    const t = g.addNode();
    const ports = net.ids.map((_, x) => {
      const v = g.addNode();
      const cap = net.dist[x]! <= depth ? Math.max(0, net.ports[x]! - (x === net.root ? 0 : 1)) : 0;
      return { v, cap, arc: g.addArc(v, t, cap) };
    });
    let supply = 0;
    const sourceArcs: number[] = [];
    const arcs = demands.map((d) => {
      const v = g.addNode();
      sourceArcs.push(g.addArc(s, v, d.members.length));
      supply += d.members.length;
      return d.cands.map((c) => g.addArc(v, ports[c]!.v, UNBOUNDED));
    });
    this.stats.flows++;
    const value = g.solve(s, t).value;
    const onCand = arcs.map((row) => row.map((a) => g.flowOn(a)));
    const spare = ports.map((x) => x.cap - g.flowOn(x.arc));
    this.#base = { depth, supply, value, onCand, spare, g, s, t, saved: g.saveFlow(), sourceArcs, arcs, ports };
    return this.#base;
  }

  /**
   * The maximum flow with MCU m taken out, from the base flow: its members on m sent back, m's
   * ports closed, the rest re-augmented (a few paths instead of the whole flow again).
   */
  #withoutFlow(base: BaseFlow, m: number): number {
    const { g, ports } = base;
    g.restoreFlow(base.saved);
    let removed = 0;
    this.#p.demands.forEach((d, i) => {
      const j = d.cands.indexOf(m);
      const f = j < 0 ? 0 : base.onCand[i]![j]!;
      if (f === 0) return;
      g.addFlow(base.arcs[i]![j]!, -f);
      g.addFlow(base.sourceArcs[i]!, -f);
      g.addFlow(ports[m]!.arc, -f);
      removed += f;
    });
    g.setCapacity(ports[m]!.arc, 0);
    this.stats.flows++;
    const added = g.solve(base.s, base.t).value;
    g.setCapacity(ports[m]!.arc, ports[m]!.cap);
    return base.value - removed + added;
  }

  /**
   * Whether the base flow's members on MCU m all fit, greedily, in the ports the others leave free:
   * then a maximum flow without m is as large as the base flow. False proves nothing.
   */
  #reroutes(base: BaseFlow, m: number): boolean {
    const { demands } = this.#p;
    const spare = base.spare.slice();
    for (let i = 0; i < demands.length; i++) {
      const d = demands[i]!;
      const j = d.cands.indexOf(m);
      if (j < 0) continue;
      let left = base.onCand[i]![j]!;
      for (let c = 0; c < d.cands.length && left > 0; c++) {
        const x = d.cands[c]!;
        if (x === m) continue;
        const take = Math.min(left, spare[x]!);
        spare[x]! -= take;
        left -= take;
      }
      if (left > 0) return false;
    }
    return true;
  }

  /** The tree bound of the current depth bound, built on first use (it needs every MCU's must-host). */
  #treeBound(): TreeBound {
    if (this.#tree !== null) return this.#tree;
    const { net } = this.#p;
    const depth = this.#mustDepth;
    const n = net.ids.length;
    const optional = new Uint8Array(n);
    const childCap = new Float64Array(n);
    // Under a shortage: what goes unplaced whatever happens, and what each MCU adds when it stays out.
    const base = this.#partial ? this.#unplacedAtLeast(depth) : 0;
    const outCost = new Float64Array(n);
    for (let m = 0; m < n; m++) {
      if (net.dist[m]! > depth) continue;
      const must = this.#must(m);
      optional[m] = m !== net.root && (this.#partial || must === 0) ? 1 : 0;
      outCost[m] = Math.max(0, must - base);
      // Under a shortage an MCU may host less to take more children.
      const own = this.#partial ? 0 : must;
      childCap[m] = Math.max(0, Math.min(net.cascadePorts[m]!, net.ports[m]! - own - (m === net.root ? 0 : 1)));
    }
    this.#tree = new TreeBound({
      depth,
      root: net.root,
      weight: this.#mustWeight,
      optional,
      childCap,
      parents: net.parents,
      ...(this.#partial ? { outCost, base } : {}),
    });
    return this.#tree;
  }

  /**
   * A counting proof that no plan fits within depth D, cheaper than `#mayFit`'s flow: an MCU sits no
   * shallower than its distance to the root, so members with one candidate within distance D must
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
      if (only === -1) return true;
      if (only >= 0) need[only]! += d.members.length;
    }
    for (let m = 0; m < need.length; m++) {
      if (need[m]! > 0 && need[m]! + (m === net.root ? 0 : 1) > net.ports[m]!) return true;
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

  /**
   * The branch and bound within depth bound D. With `dive` (a node count), the search ignores the
   * deadline and stops at its first plan or after that many nodes: the answer when the budget ran
   * out before any plan was found.
   */
  #search(
    depth: number,
    caps: number[] | null,
    cutoff: number[] | null,
    how: { readonly dive?: number; readonly from?: readonly Open[] } = {},
  ): SearchResult {
    const dive = how.dive ?? null;
    const root = this.#root(depth);
    if (root === null) return { best: null, complete: true, lower: null, ties: [] };
    this.#prepare(depth);
    let best: Solution | null = null;
    const accept = (s: Solution | null) => {
      if (s === null || (cutoff !== null && lexCompare(s.cost, cutoff) > 0)) return;
      if (best === null || lexCompare(s.cost, best.cost) < 0) best = s;
    };
    const pruned = (b: readonly number[]) =>
      (cutoff !== null && lexCompare(b, cutoff) > 0) || (best !== null && lexCompare(b, best.cost) >= 0);
    // The tree bound is on the weight at the depth bound, or under a shortage on the unplaced weight.
    const treeTier = this.#partial ? this.#t.unplaced : this.#t.atDepth;
    const zeros = new Array<number>(this.#t.k).fill(0);
    // Best bound first, depth first among equal bounds (from the root, or from the nodes a previous
    // search set aside): the nodes below a poor first dive wait until the incumbent has improved.
    const stack: Open[] = how.from === undefined ? [{ st: root, bound: null, mult: null }] : [...how.from].reverse();
    const setAside: Open[] = [];
    const start = this.stats.nodes;
    while (stack.length > 0) {
      if (dive !== null && (best !== null || this.stats.nodes - start >= dive)) {
        return { best, complete: false, lower: null, ties: [] };
      }
      if (dive === null && this.#expired()) {
        let lower: readonly number[] | null = best === null ? null : (best as Solution).cost;
        for (const open of stack) {
          if (open.bound === null) return { best, complete: false, lower: null, ties: [] };
          if (lower === null || lexCompare(open.bound, lower) < 0) lower = open.bound;
        }
        return { best, complete: false, lower, ties: [] };
      }
      const open = takeBest(stack);
      if (open.bound !== null && pruned(open.bound)) {
        setAside.push(open);
        continue;
      }
      this.stats.nodes++;
      let st = open.st;
      let mult = open.mult;
      // The tree penalties go on the depth tier (under a shortage no weight is certain to be hosted).
      const penalise = !this.#partial;
      let r = this.#relaxAndProbe(
        st,
        depth,
        caps,
        mult !== null && penalise ? this.#treeBound().penalties(mult) : null,
      );
      if (r !== null && !pruned(r.relaxed.bound)) accept(r.relaxed.plan);
      if (r !== null && mult === null && !r.relaxed.closed && !pruned(r.relaxed.bound)) {
        // The first node the flow alone cannot close: the tree bound from here on. MCUs that must host
        // someone take part in every plan; its multipliers start from zero.
        const tree = this.#treeBound();
        st = this.#withMustUse(r.st, depth);
        mult = tree.bound(
          st,
          tree.initial(),
          this.#guess(treeTier, best, cutoff, r.relaxed.bound),
          ROOT_STEPS,
        ).multipliers;
        r = this.#relaxAndProbe(st, depth, caps, penalise ? tree.penalties(mult) : null);
        if (r !== null && !pruned(r.relaxed.bound)) accept(r.relaxed.plan);
      }
      if (r === null) continue;
      st = r.st;
      let relaxed = r.relaxed;
      // A node done with (closed, or no better than the incumbent) may still hold a plan as good.
      const aside = (bound: readonly number[]) => setAside.push({ st, bound, mult });
      if (pruned(relaxed.bound) || relaxed.closed || relaxed.branch < 0) {
        aside(relaxed.bound);
        continue;
      }
      let bound: readonly number[] = relaxed.bound;
      if (relaxed.plan !== null && mult !== null && penalise && relaxed.impact <= 1) {
        // The penalised flow's own tree is a valid plan, dearer than its bound only through the
        // multipliers: when it shows no MCU really out of place, the flow without them shows where
        // the tree is inconsistent. (When it does, branching there is better: a third to a half of
        // the nodes on the national instances, and one flow fewer per node.)
        const plain = this.#relax(st, depth, caps, null);
        if (plain === null) continue;
        accept(plain.plan);
        if (lexCompare(plain.bound, bound) > 0) bound = plain.bound;
        if (plain.closed || plain.branch < 0 || pruned(bound)) {
          aside(bound);
          continue;
        }
        relaxed = plain;
      }
      if (mult !== null) {
        const tb = this.#treeBound().bound(st, mult, this.#guess(treeTier, best, cutoff, relaxed.bound), NODE_STEPS);
        mult = tb.multipliers;
        // Valid with the flow's earlier tiers kept: among plans equal on those, the tree bounds this tier.
        const tier = Math.ceil(tb.value - 1e-6);
        if (tier > bound[treeTier]!) bound = [...bound.slice(0, treeTier), tier, ...zeros.slice(treeTier + 1)];
        if (pruned(bound)) {
          aside(bound);
          continue;
        }
      }
      // Completing the relaxation into a plan costs a flow: at every node until there is an
      // incumbent, then now and then (the incumbent rarely improves late).
      if (best === null || this.stats.nodes % COMPLETE_EVERY === 0) accept(this.#complete(st, relaxed, depth, caps));
      if (pruned(bound)) {
        aside(bound);
        continue;
      }
      const kids = this.#options(st, relaxed);
      for (let i = kids.length - 1; i >= 0; i--) stack.push({ st: kids[i]!, bound, mult });
    }
    if (best === null) return { best, complete: true, lower: null, ties: [] };
    const found = best as Solution;
    const ties = setAside.filter((o) => this.#samePrimary(o.bound!, found.cost));
    return { best, complete: true, lower: found.cost, ties };
  }

  /** Equal on every tier but the parent-preference tie-break (a node's bound against a plan's cost). */
  #samePrimary(a: readonly number[], b: readonly number[]): boolean {
    for (let i = 0; i < a.length; i++) if (i !== this.#t.parentRank && a[i] !== b[i]) return false;
    return true;
  }

  /**
   * A node's relaxation, with probing: an MCU the relaxation leans on without linking it, that
   * cannot be left out, must take part. Fixing all such at once, with a cheap feasibility flow
   * each, spares a branch per MCU. Null when the node is infeasible.
   */
  #relaxAndProbe(
    start: State,
    depth: number,
    caps: number[] | null,
    pen: TreePenalties | null,
  ): { st: State; relaxed: NodeResult } | null {
    let st = start;
    for (;;) {
      const r = this.#relax(st, depth, caps, pen);
      if (r === null) return null;
      if (r.closed || r.branch < 0) return { st, relaxed: r };
      const needed = r.hostingUnlinked.filter((m) => !this.#canLeaveOut(st, m, depth, caps));
      if (needed.length === 0) return { st, relaxed: r };
      const unusedOk = st.unusedOk.slice();
      for (const m of needed) unusedOk[m] = 0;
      st = { lo: st.lo, hi: st.hi, unusedOk };
    }
  }

  /** The node with every MCU that must host someone within depth D fixed to take part. */
  #withMustUse(st: State, depth: number): State {
    if (this.#partial) return st;
    const unusedOk = st.unusedOk.slice();
    for (let m = 0; m < unusedOk.length; m++) {
      if (unusedOk[m] === 1 && this.#p.net.dist[m]! <= depth && this.#must(m) > 0) unusedOk[m] = 0;
    }
    return { lo: st.lo, hi: st.hi, unusedOk };
  }

  /** What the tree bound's steps aim at: the incumbent's value of the tier, or without one a little above a known bound. */
  #guess(
    tier: number,
    best: Solution | null,
    cutoff: readonly number[] | null,
    bound: readonly number[] | null,
  ): number {
    if (best !== null) return best.cost[tier]!;
    if (cutoff !== null && Number.isFinite(cutoff[tier]!)) return cutoff[tier]!;
    if (bound !== null) return bound[tier]! * 1.25 + 10;
    // Every MCU at the depth bound with only what it must host: more than the tree model's optimum.
    return this.#mustWeight.reduce((a, b) => a + b, 0);
  }

  /**
   * Children of a node: the branching MCU fixed to each of its remaining labels, or left out. The
   * depth the flow gave it comes first (the dive follows the relaxation), then the others from the
   * shallowest; leaving it out comes first when the flow did not link it.
   */
  #options(st: State, r: NodeResult): State[] {
    const m = r.branch;
    const fix = (lo: number, hi: number, unusedOk: number) => {
      const c: State = { lo: st.lo.slice(), hi: st.hi.slice(), unusedOk: st.unusedOk.slice() };
      c.lo[m] = lo;
      c.hi[m] = hi;
      c.unusedOk[m] = unusedOk;
      return c;
    };
    const out: State[] = [];
    const seen = r.realDepth[m]!;
    if (seen >= st.lo[m]! && seen <= st.hi[m]!) out.push(fix(seen, seen, 0));
    for (let k = st.lo[m]!; k <= st.hi[m]!; k++) if (k !== seen) out.push(fix(k, k, 0));
    if (st.unusedOk[m]) {
      const leaveOut = fix(1, 0, 1);
      if (r.parent[m] === NONE) out.unshift(leaveOut);
      else out.push(leaveOut);
    }
    return out;
  }

  /**
   * The relaxation's flow network for a node. Without costs (`priced` false)
   * it is a plain feasibility network, used to probe whether an MCU may be left out
   * and whether a depth bound may fit at all.
   */
  #network(
    st: State,
    depth: number,
    caps: number[] | null,
    priced: boolean,
    pen: TreePenalties | null = null,
  ): Relaxation | null {
    const { net, demands, prevParent } = this.#p;
    const t = this.#t;
    const n = net.ids.length;
    const usable = (m: number) => st.lo[m]! <= st.hi[m]!;
    const mustUse = (m: number) => usable(m) && st.unusedOk[m] === 0;
    const portCap = (m: number) => Math.min(net.ports[m]!, caps === null ? net.ports[m]! : caps[m]!);

    const g = this.#fresh(priced);
    const s = g.addNode();
    const sink = g.addNode();
    const vec = () => new Array<number>(t.k).fill(0);
    // Arc costs are built here and copied by addArc: one array for all of them.
    const costOfArc = vec();
    const scratch = () => costOfArc.fill(0);
    // The MCUs that can take part here, and the ports each offers endpoints.
    const open = new Uint8Array(n);
    const room = new Int32Array(n);
    for (let m = 0; m < n; m++) {
      if (!usable(m)) continue;
      const own = m !== net.root && mustUse(m) ? 1 : 0;
      const cap = portCap(m) - own;
      // An MCU that hosts anything needs a port for its own link; with none it cannot take part.
      if (cap < 0 || (m !== net.root && portCap(m) < 1)) {
        if (mustUse(m)) return null;
        continue;
      }
      open[m] = 1;
      room[m] = cap;
    }
    // Members with one usable candidate here go there: no flow needed, only their cost and the ports
    // they take (a third of the national network's arcs). Not under a shortage, where they may stay out.
    const folded = new Int32Array(demands.length).fill(-1);
    const constant = vec();
    const chargeOf = (d: (typeof demands)[number], j: number, count: number, into: number[]) => {
      const m = d.cands[j]!;
      const k = st.lo[m]!;
      if (k === depth) into[t.atDepth]! += d.weight * count;
      into[t.depthSum]! += d.weight * k * count;
      if (!d.chair) into[t.preference]! += d.ranks[j]! * count;
      if (t.moved >= 0 && d.prev >= 0 && d.prev !== m) into[t.moved]! += count;
    };
    if (!this.#partial) {
      demands.forEach((d, i) => {
        let only = -1;
        for (let j = 0; j < d.cands.length; j++) {
          if (!open[d.cands[j]!]) continue;
          if (only >= 0) return;
          only = j;
        }
        if (only < 0) return;
        folded[i] = only;
        room[d.cands[only]!]! -= d.members.length;
        if (priced) chargeOf(d, only, d.members.length, constant);
      });
    }
    const portNode = new Int32Array(n).fill(-1);
    const cascadeNode = new Int32Array(n).fill(-1);
    for (let m = 0; m < n; m++) {
      if (!open[m]) continue;
      // The members with no other usable candidate do not fit.
      if (room[m]! < 0) return null;
      portNode[m] = g.addNode();
      g.addArc(portNode[m]!, sink, room[m]!);
      if (net.cascadePorts[m]! > 0) {
        cascadeNode[m] = g.addNode();
        g.addArc(cascadeNode[m]!, portNode[m]!, net.cascadePorts[m]!);
      }
    }

    let supply = 0;
    const demandArcs: number[][] = [];
    const dropArcs: number[] = [];
    demands.forEach((d, i) => {
      const arcs: number[] = [];
      demandArcs.push(arcs);
      if (folded[i]! >= 0) {
        dropArcs.push(-1);
        return;
      }
      const node = g.addNode();
      g.addArc(s, node, d.members.length);
      supply += d.members.length;
      d.cands.forEach((m, j) => {
        if (portNode[m]! < 0) {
          arcs.push(-1);
          return;
        }
        let c: number[] | undefined;
        if (priced) {
          c = scratch();
          chargeOf(d, j, 1, c);
        }
        arcs.push(g.addArc(node, portNode[m]!, UNBOUNDED, c));
      });
      if (this.#partial && !d.chair) {
        const c = scratch();
        c[t.unplaced] = d.weight;
        dropArcs.push(g.addArc(node, sink, d.members.length, priced ? c : undefined));
      } else dropArcs.push(-1);
    });

    const upArcs: { p: number; arc: number }[][] = [];
    let offset = 0;
    for (let m = 0; m < n; m++) {
      const ups: { p: number; arc: number }[] = [];
      upArcs.push(ups);
      if (m === net.root || portNode[m]! < 0) continue;
      const node = g.addNode();
      g.addArc(s, node, 1);
      supply += 1;
      const most = pen === null ? 0 : pen.holdMax(m);
      offset += most;
      if (!mustUse(m)) {
        const c = scratch();
        c[t.atDepth] = most;
        g.addArc(node, sink, 1, priced ? c : undefined);
      }
      net.parents[m]!.forEach((p, r) => {
        if (cascadeNode[p]! < 0 || st.lo[p]! + 1 > st.hi[m]!) return;
        const first = Math.max(st.lo[m]!, st.lo[p]! + 1);
        // With tree penalties an uplink per exact depth (the penalties are per depth); without, the
        // shallowest is the cheapest and stands for all.
        const last = pen === null ? first : Math.min(st.hi[m]!, st.hi[p]! + 1);
        for (let k = first; k <= last; k++) {
          const c = scratch();
          const mw = this.#mustWeight[m]!;
          c[t.atDepth] = mw * ((k === depth ? 1 : 0) - (st.lo[m] === depth ? 1 : 0));
          c[t.depthSum] = mw * (k - st.lo[m]!);
          c[t.links] = 1;
          c[t.parentRank] = net.parentRank[m]![r]!;
          if (t.relink >= 0) c[t.relink] = prevParent !== null && prevParent[m]! >= 0 && prevParent[m] !== p ? 1 : 0;
          if (pen !== null) c[t.atDepth]! += pen.arc(m, p, k) + most - pen.hold(m, k);
          ups.push({ p, arc: g.addArc(node, cascadeNode[p]!, 1, priced ? c : undefined) });
        }
      });
    }

    return { g, s, sink, supply, demandArcs, dropArcs, upArcs, offset, folded, constant };
  }

  /** Per demand, how many members the flow (or the folding) put on each candidate. */
  #allocation(r: Relaxation): number[][] {
    return this.#p.demands.map((d, i) => {
      const only = r.folded[i]!;
      if (only >= 0) return d.cands.map((_, j) => (j === only ? d.members.length : 0));
      return d.cands.map((_, j) => (r.demandArcs[i]![j]! < 0 ? 0 : r.g.flowOn(r.demandArcs[i]![j]!)));
    });
  }

  /** Whether the node's relaxation stays feasible with MCU m left out (if not, m must take part). */
  #canLeaveOut(st: State, m: number, depth: number, caps: number[] | null): boolean {
    if (this.#partial) return true;
    const probe: State = { lo: st.lo.slice(), hi: st.hi.slice(), unusedOk: st.unusedOk };
    probe.lo[m] = 1;
    probe.hi[m] = 0;
    const r = this.#network(probe, depth, caps, false);
    if (r === null) return false;
    this.stats.flows++;
    return r.g.solve(r.s, r.sink).value === r.supply;
  }

  #relax(st: State, depth: number, caps: number[] | null, pen: TreePenalties | null = null): NodeResult | null {
    const { net, demands } = this.#p;
    const n = net.ids.length;
    const mustUse = (m: number) => st.lo[m]! <= st.hi[m]! && st.unusedOk[m] === 0;
    const portCap = (m: number) => Math.min(net.ports[m]!, caps === null ? net.ports[m]! : caps[m]!);
    const built = this.#network(st, depth, caps, true, pen);
    if (built === null) return null;
    const { g, s, sink, supply, dropArcs, upArcs } = built;
    const { value, cost } = g.solve(s, sink);
    this.stats.flows++;
    if (value < supply) return null;
    for (let i = 0; i < cost.length; i++) cost[i]! += built.constant[i]!;
    cost[this.#t.atDepth]! -= built.offset;

    const alloc = this.#allocation(built);
    const unplaced = dropArcs.map((a) => (a < 0 ? 0 : g.flowOn(a)));
    const parent = new Int32Array(n).fill(NONE);
    parent[net.root] = ROOT;
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
    const realDepth = depthsOf(parent, net.root);
    // Each inconsistency with what it would cost to repair: branching on the costliest one first
    // moves the bound most.
    const impact = new Float64Array(n);
    const hostingUnlinked: number[] = [];
    let consistent = true;
    for (let m = 0; m < n; m++) {
      if (m === net.root) continue;
      const busy = hosted[m]! > 0 || children[m]! > 0;
      const dm = realDepth[m]!;
      const extra = hostedWeight[m]! - this.#mustWeight[m]!;
      if (parent[m] === NONE) {
        if (!busy) continue;
        consistent = false;
        hostingUnlinked.push(m);
        impact[m] = 1 + hostedWeight[m]! * (depth - st.lo[m]! + 1) + children[m]! * n;
        continue;
      }
      if (dm < 0 || dm > depth) {
        consistent = false;
        impact[m] = 1 + Math.max(0, extra) * (depth - st.lo[m]! + 1) + children[m]! * n;
        continue;
      }
      // Charged at its shallowest label, but really deeper: its endpoints beyond the must-host ones, or its children, cost more.
      if (dm > st.lo[m]! && (extra > 0 || children[m]! > 0))
        impact[m] = 1 + Math.max(0, extra) * (dm - st.lo[m]!) + children[m]!;
      // An MCU that may be left out did not reserve its own link's port.
      if (!mustUse(m) && hosted[m]! + children[m]! + 1 > portCap(m)) impact[m] = Math.max(impact[m]!, 1);
    }

    let plan: Solution | null = null;
    if (consistent) plan = this.#evaluate(parent, alloc, unplaced, depth, caps);
    const closed = plan !== null && lexCompare(plan.cost, cost) === 0;
    let branch = -1;
    let bestImpact = 0;
    if (!closed) {
      for (let m = 0; m < n; m++) {
        if (impact[m]! <= bestImpact || (st.lo[m] === st.hi[m] && st.unusedOk[m] === 0)) continue;
        bestImpact = impact[m]!;
        branch = m;
      }
      if (branch < 0) {
        for (let m = 0; m < n && branch < 0; m++) {
          if (m !== net.root && (st.lo[m]! < st.hi[m]! || (st.lo[m]! <= st.hi[m]! && st.unusedOk[m] === 1))) branch = m;
        }
      }
    }
    return { bound: cost, plan, closed, branch, impact: bestImpact, hostingUnlinked, parent, realDepth };
  }

  /**
   * A plan from a node's relaxation: every MCU the flow linked consistently keeps its real depth,
   * every other MCU that must take part sits at its deepest label, the rest are left out; one more
   * flow with every label fixed is exact, and MCUs left with nothing below them are dropped.
   */
  #complete(st: State, r: NodeResult, depth: number, caps: number[] | null): Solution | null {
    const { net } = this.#p;
    const n = net.ids.length;
    const fixed: State = { lo: new Int32Array(n), hi: new Int32Array(n), unusedOk: new Uint8Array(n) };
    for (let m = 0; m < n; m++) {
      if (m === net.root) continue;
      const k = r.realDepth[m]!;
      if (r.parent[m]! !== NONE && k >= st.lo[m]! && k <= st.hi[m]!) {
        fixed.lo[m] = k;
        fixed.hi[m] = k;
      } else if (st.unusedOk[m] === 0 && st.lo[m]! <= st.hi[m]!) {
        fixed.lo[m] = st.hi[m]!;
        fixed.hi[m] = st.hi[m]!;
      } else {
        fixed.lo[m] = 1;
        fixed.hi[m] = 0;
        fixed.unusedOk[m] = 1;
      }
    }
    const built = this.#network(fixed, depth, caps, true);
    if (built === null) return null;
    const { g, s, sink, supply, dropArcs, upArcs } = built;
    this.stats.flows++;
    if (g.solve(s, sink).value < supply) return null;
    const parent = new Int32Array(n).fill(NONE);
    parent[net.root] = ROOT;
    for (let m = 0; m < n; m++) for (const u of upArcs[m]!) if (g.flowOn(u.arc) > 0) parent[m] = u.p;
    const alloc = this.#allocation(built);
    const unplaced = dropArcs.map((a) => (a < 0 ? 0 : g.flowOn(a)));
    return this.#evaluate(pruneIdle(parent, alloc, this.#p.demands, net.root), alloc, unplaced, depth, caps);
  }

  /** The exact cost of a tree and an allocation, or null when it breaks a rule (depth, ports, cascade ports). */
  #evaluate(
    parent: Int32Array,
    alloc: readonly (readonly number[])[],
    unplaced: readonly number[],
    depthBound: number,
    caps: number[] | null,
  ): Solution | null {
    const { net, demands, prevParent } = this.#p;
    const t = this.#t;
    const n = net.ids.length;
    const depth = depthsOf(parent, net.root);
    const hosted = new Int32Array(n);
    const children = new Int32Array(n);
    const cost = new Array<number>(t.k).fill(0);
    for (let m = 0; m < n; m++) if (parent[m]! >= 0) children[parent[m]!]!++;
    for (let i = 0; i < demands.length; i++) {
      const d = demands[i]!;
      if (t.unplaced >= 0) cost[t.unplaced]! += unplaced[i]! * d.weight;
      for (let j = 0; j < d.cands.length; j++) {
        const f = alloc[i]![j]!;
        if (f === 0) continue;
        const m = d.cands[j]!;
        const dm = depth[m]!;
        if (dm < 0 || dm > depthBound) return null;
        hosted[m]! += f;
        if (dm === depthBound) cost[t.atDepth]! += f * d.weight;
        cost[t.depthSum]! += f * d.weight * dm;
        if (!d.chair) cost[t.preference]! += f * d.ranks[j]!;
        if (t.moved >= 0 && d.prev >= 0 && d.prev !== m) cost[t.moved]! += f;
      }
    }
    for (let m = 0; m < n; m++) {
      const p = parent[m]!;
      const cap = Math.min(net.ports[m]!, caps === null ? net.ports[m]! : caps[m]!);
      if (children[m]! > net.cascadePorts[m]!) return null;
      if (p === NONE) {
        if (m !== net.root && (hosted[m]! > 0 || children[m]! > 0)) return null;
        continue;
      }
      if (hosted[m]! + children[m]! + (m === net.root ? 0 : 1) > cap) return null;
      if (p < 0) continue;
      if (depth[m]! < 0 || depth[m]! > depthBound) return null;
      cost[t.links]!++;
      cost[t.parentRank]! += net.parentRank[m]![net.parents[m]!.indexOf(p)]!;
      if (t.relink >= 0 && prevParent !== null && prevParent[m]! >= 0 && prevParent[m] !== p) cost[t.relink]!++;
    }
    return { depthBound, parent, depth, alloc, unplaced, cost };
  }
}

/** Depth of every MCU in a parent array (-1: left out, or not linked to the root: a cycle or a dangling chain). */
function depthsOf(parent: Int32Array, root: number): Int32Array {
  const n = parent.length;
  const UNKNOWN = -3;
  const ON_PATH = -2;
  const depth = new Int32Array(n).fill(UNKNOWN);
  depth[root] = 0;
  const path: number[] = [];
  for (let m = 0; m < n; m++) {
    let u = m;
    while (u >= 0 && depth[u] === UNKNOWN) {
      depth[u] = ON_PATH;
      path.push(u);
      u = parent[u]!;
    }
    // Walked up to a known depth, to no parent (u < 0), or back onto the path itself (a cycle).
    let d = u >= 0 && depth[u]! >= 0 ? depth[u]! : -1;
    for (let i = path.length - 1; i >= 0; i--) {
      d = d < 0 ? -1 : d + 1;
      depth[path[i]!] = d;
    }
    path.length = 0;
  }
  return depth;
}

/** The tree without MCUs that host nothing and have no children left (a link for nothing). */
function pruneIdle(
  parentIn: Int32Array,
  alloc: readonly (readonly number[])[],
  demands: Problem['demands'],
  root: number,
): Int32Array {
  const parent = parentIn.slice();
  const n = parent.length;
  const busy = new Int32Array(n);
  demands.forEach((d, i) => {
    d.cands.forEach((m, j) => {
      busy[m]! += alloc[i]![j]!;
    });
  });
  for (let m = 0; m < n; m++) if (parent[m]! >= 0) busy[parent[m]!]!++;
  const idle: number[] = [];
  for (let m = 0; m < n; m++) if (m !== root && parent[m]! >= 0 && busy[m] === 0) idle.push(m);
  while (idle.length > 0) {
    const m = idle.pop()!;
    const p = parent[m]!;
    parent[m] = NONE;
    if (p >= 0 && --busy[p]! === 0 && p !== root && parent[p]! >= 0) idle.push(p);
  }
  return parent;
}

/**
 * Re-planning shortcut: the previous plan minus what left (endpoints removed or dropped, MCUs
 * that no longer host anything below them), or null when it does not apply.
 *
 * It applies when every endpoint of the new session was placed before on an MCU it may still
 * use, every such MCU keeps its whole previous parent chain (available, allowed, up to the
 * root) and the result fits every capacity. Then it is the re-plan's unique optimum at its
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
  if (prevParent === null || tiers.relink < 0 || tiers.moved < 0 || tiers.unplaced >= 0) return null;
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
  // The tree: every hosting MCU's previous chain, which must still be allowed and reach the root.
  const parent = new Int32Array(n).fill(NONE);
  const depth = new Int32Array(n).fill(-1);
  parent[net.root] = ROOT;
  depth[net.root] = 0;
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
    if (hosted[m]! + children[m]! + (m === net.root ? 0 : 1) > net.ports[m]!) return null;
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
  return { depthBound, parent, depth, alloc, unplaced: demands.map(() => 0), cost };
}

/**
 * Under a shortage, which members to leave out first: a minimum-cost flow of the members into the
 * ports of the MCUs that can reach the root (each but the root keeping one for its own link),
 * where leaving a member out costs its weight, then 1 more if it was placed before on an MCU still
 * available (a member whose MCU was lost moves anyway). Per demand, how many to leave out; their
 * total weight is a lower bound on what any plan leaves out. `interchangeable`: every demand with
 * members left out has the same candidates and weight, so no other choice of whom to leave out
 * could do better on any tier.
 */
export function shedding(problem: Problem): { readonly drop: readonly number[]; readonly interchangeable: boolean } {
  const { net, demands } = problem;
  const g = new FlowNetwork(2);
  const s = g.addNode();
  const t = g.addNode();
  const port = net.ids.map((_, m) => {
    const v = g.addNode();
    if (net.dist[m]! < Number.POSITIVE_INFINITY) g.addArc(v, t, Math.max(0, net.ports[m]! - (m === net.root ? 0 : 1)));
    return v;
  });
  const dropArc = demands.map((d) => {
    const v = g.addNode();
    g.addArc(s, v, d.members.length);
    for (const m of d.cands) g.addArc(v, port[m]!, UNBOUNDED);
    return d.chair ? -1 : g.addArc(v, t, d.members.length, [d.weight, d.prev >= 0 ? 1 : 0]);
  });
  g.solve(s, t);
  const drop = dropArc.map((a) => (a < 0 ? 0 : g.flowOn(a)));
  const shed = demands.filter((_, i) => drop[i]! > 0);
  const same = (a: (typeof demands)[number], b: (typeof demands)[number]) =>
    a.weight === b.weight && a.cands.length === b.cands.length && a.cands.every((m, j) => m === b.cands[j]);
  return { drop, interchangeable: shed.every((d) => same(d, shed[0]!)) };
}

/**
 * The open node with the smallest bound (the last pushed among equals: depth first within a tie).
 * A scan: there are at most a few thousand open nodes, each costing a flow.
 */
function takeBest(stack: Open[]): Open {
  let at = stack.length - 1;
  for (let i = stack.length - 2; i >= 0; i--) {
    const b = stack[i]!.bound;
    const c = stack[at]!.bound;
    if (b !== null && (c === null ? false : lexCompare(b, c) < 0)) at = i;
  }
  const [open] = stack.splice(at, 1);
  return open!;
}
