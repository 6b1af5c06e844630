/**
 * A lower bound on tier 1 of the objective (the weight of the endpoints at the depth bound D)
 * from the shape of the cascade tree alone, where the flow relaxation is weakest.
 *
 * The flow charges a parent's cascade ports whether or not that parent is itself linked at the
 * depth its children need: it lets an MCU cascade into a neighbour that is left out, or one that
 * is itself one level too deep. On a network whose root has far fewer cascade ports than the MCUs
 * that want one (issue 9), that is where the whole difficulty lies: which MCUs get the root's
 * ports, and which go one level down under an MCU that did get one.
 *
 * The model here works on MCUs only. Each MCU either stays out (only if it may) or sits at some
 * depth k under a parent at k - 1, and costs the weight it must host (`weight`: the members that
 * fit nowhere else, a lower bound on what it really hosts) when k = D. (Re-planning under a
 * shortage bounds the unplaced members instead: there an MCU costs, when it stays out, the members
 * that then fit nowhere; maximum flow is submodular in the MCUs available, so these add up.)
 * A parent at depth j takes
 * at most `childCap` children, and only if it sits at j itself:
 *     sum_c z(c, p, j+1) <= childCap(p) * y(p, j)        (aggregated)
 *     z(c, p, j+1) <= y(p, j)                            (per child)
 * Every plan maps to a solution of this model that costs no more than the plan's tier 1, so the
 * model's optimum is a valid bound. It is bounded from below by Lagrangian relaxation of both
 * constraint families: with multipliers fixed, every MCU picks its cheapest option on its own,
 * so one evaluation is linear in the options, and a few hundred subgradient steps (warm-started
 * from the parent node) get close to the linear-programming bound of the model, which on the
 * generated national networks is often the model's integer optimum. Any multipliers give a valid
 * bound, so stopping early never breaks exactness.
 */

export interface TreeModel {
  /** The depth bound D. */
  readonly depth: number;
  readonly root: number;
  /** Per MCU, the weight it must host whenever it takes part (counted when it sits at D). */
  readonly weight: ArrayLike<number>;
  /**
   * Under a shortage (the bound is then on the unplaced members, not on depth): per MCU, the
   * members that go unplaced when it stays out, on top of `base` that go unplaced whatever happens.
   * Depths cost nothing then.
   */
  readonly outCost?: ArrayLike<number>;
  readonly base?: number;
  /** Per MCU, whether it may be left out at all (no member needs it). */
  readonly optional: ArrayLike<number>;
  /** Per MCU, how many children it can take (cascade ports; ports after its own needs). */
  readonly childCap: ArrayLike<number>;
  /** Per MCU, its usable parents (none for the root). */
  readonly parents: readonly (readonly number[])[];
}

/** Multipliers of one node, handed to its children as their starting point. */
export interface TreeMultipliers {
  /** Per (MCU, depth j): the aggregated constraint of its children at j + 1. */
  readonly gate: Float64Array;
  /** Per option with a parent other than the root: its per-child constraint. */
  readonly pair: Float64Array;
}

/** The labels of a search node: MCU m may sit at depths lo[m]..hi[m]; unusedOk[m] = 1: it may stay out. */
export interface TreeLabels {
  readonly lo: ArrayLike<number>;
  readonly hi: ArrayLike<number>;
  readonly unusedOk: ArrayLike<number>;
}

/**
 * Multipliers turned into integer arc costs for the flow relaxation (tier 1): an uplink of m into
 * p at depth k costs `arc`, and every way of m other than sitting at depth j gains `hold(m, j)`
 * (expressed with non-negative costs: sitting at depth k costs holdMax(m) - hold(m, k), staying
 * unlinked holdMax(m), and the flow's tier 1 is reduced by holdMax(m) for every MCU it may link).
 * Rounding the multipliers down keeps them valid.
 */
export interface TreePenalties {
  arc(m: number, p: number, k: number): number;
  hold(m: number, k: number): number;
  holdMax(m: number): number;
}

export interface TreeBoundResult {
  /** A valid lower bound on tier 1 (+Infinity: no tree fits the labels). */
  readonly value: number;
  readonly multipliers: TreeMultipliers;
}

export class TreeBound {
  readonly #m: TreeModel;
  readonly #n: number;
  /** Options (child m at depth k under parent p), grouped by child: indexes from start[m] to start[m+1]. */
  readonly #start: Int32Array;
  readonly #k: Int32Array;
  readonly #p: Int32Array;
  readonly #child: Int32Array;

  constructor(model: TreeModel) {
    this.#m = model;
    const n = model.parents.length;
    this.#n = n;
    const ks: number[] = [];
    const ps: number[] = [];
    const cs: number[] = [];
    const start = new Int32Array(n + 1);
    for (let m = 0; m < n; m++) {
      start[m] = ks.length;
      if (m === model.root) continue;
      for (const p of model.parents[m]!) {
        if (model.childCap[p]! <= 0) continue;
        if (p === model.root) {
          ks.push(1);
          ps.push(p);
          cs.push(m);
          continue;
        }
        for (let k = 2; k <= model.depth; k++) {
          ks.push(k);
          ps.push(p);
          cs.push(m);
        }
      }
    }
    start[n] = ks.length;
    this.#start = start;
    this.#k = Int32Array.from(ks);
    this.#p = Int32Array.from(ps);
    this.#child = Int32Array.from(cs);
  }

  penalties(mult: TreeMultipliers): TreePenalties {
    const { depth, root, childCap } = this.#m;
    const n = this.#n;
    const width = depth + 1;
    const gate = new Float64Array(n * width);
    for (let i = 0; i < gate.length; i++) gate[i] = Math.floor(mult.gate[i]!);
    const pairAt = new Map<number, number>();
    const hold = new Float64Array(n * width);
    for (let m = 0; m < n; m++)
      for (let j = 0; j <= depth; j++) hold[m * width + j] = gate[m * width + j]! * childCap[m]!;
    for (let o = 0; o < this.#k.length; o++) {
      const p = this.#p[o]!;
      if (p === root) continue;
      const v = Math.floor(mult.pair[o]!);
      if (v <= 0) continue;
      const k = this.#k[o]!;
      pairAt.set((this.#child[o]! * n + p) * width + k, v);
      hold[p * width + k - 1]! += v;
    }
    const most = new Float64Array(n);
    for (let m = 0; m < n; m++) for (let j = 0; j <= depth; j++) most[m] = Math.max(most[m]!, hold[m * width + j]!);
    return {
      arc: (m, p, k) => (p === root ? 0 : gate[p * width + k - 1]! + (pairAt.get((m * n + p) * width + k) ?? 0)),
      hold: (m, k) => hold[m * width + k]!,
      holdMax: (m) => most[m]!,
    };
  }

  /** Zero multipliers: the bound then counts only the MCUs that must sit at D. */
  initial(): TreeMultipliers {
    return { gate: new Float64Array(this.#n * (this.#m.depth + 1)), pair: new Float64Array(this.#k.length) };
  }

  /**
   * The best bound found in at most `steps` subgradient steps from `start`. `target` is an upper
   * bound on tier 1 (the incumbent's, or a guess): the steps aim at it, and the search stops as
   * soon as the bound exceeds it (the node is pruned anyway).
   */
  bound(labels: TreeLabels, start: TreeMultipliers, target: number, steps: number): TreeBoundResult {
    const { depth, root, weight, optional, childCap, outCost } = this.#m;
    const n = this.#n;
    const width = depth + 1;
    const K = this.#k;
    const P = this.#p;
    const C = this.#child;
    const opts = K.length;
    const gate = start.gate.slice();
    const pair = start.pair.slice();
    const valid = new Uint8Array(opts);
    for (let o = 0; o < opts; o++) {
      const m = C[o]!;
      const k = K[o]!;
      const p = P[o]!;
      const parentAt = k - 1;
      valid[o] =
        k >= labels.lo[m]! &&
        k <= labels.hi[m]! &&
        (p === root ? parentAt === 0 : parentAt >= labels.lo[p]! && parentAt <= labels.hi[p]!)
          ? 1
          : 0;
    }
    const mayStayOut = new Uint8Array(n);
    for (let m = 0; m < n; m++) {
      const usable = labels.lo[m]! <= labels.hi[m]!;
      mayStayOut[m] = !usable || (optional[m] === 1 && labels.unusedOk[m] === 1) ? 1 : 0;
    }
    const choice = new Int32Array(n);
    const sumPair = new Float64Array(n * width);
    const gGate = new Float64Array(n * width);
    const gPair = new Float64Array(opts);
    let best = Number.NEGATIVE_INFINITY;
    let bestGate = gate.slice();
    let bestPair = pair.slice();
    let scale = 2;
    let stale = 0;
    for (let step = 0; step <= steps; step++) {
      // Lagrangian value: every MCU on its cheapest option, then the constant of the root's gate.
      sumPair.fill(0);
      for (let o = 0; o < opts; o++) if (valid[o] && P[o] !== root) sumPair[P[o]! * width + K[o]! - 1]! += pair[o]!;
      let value = (this.#m.base ?? 0) - gate[root * width]! * childCap[root]!;
      for (let m = 0; m < n; m++) {
        if (m === root) continue;
        let low = mayStayOut[m] ? (outCost === undefined ? 0 : outCost[m]!) : Number.POSITIVE_INFINITY;
        let pick = -1;
        for (let o = this.#start[m]!; o < this.#start[m + 1]!; o++) {
          if (!valid[o]) continue;
          const k = K[o]!;
          const p = P[o]!;
          const cost =
            (outCost === undefined && k === depth ? weight[m]! : 0) +
            gate[p * width + k - 1]! +
            (p === root ? 0 : pair[o]!) -
            gate[m * width + k]! * childCap[m]! -
            sumPair[m * width + k]!;
          if (cost < low) {
            low = cost;
            pick = o;
          }
        }
        if (low === Number.POSITIVE_INFINITY) {
          return { value: Number.POSITIVE_INFINITY, multipliers: { gate, pair } };
        }
        value += low;
        choice[m] = pick;
      }
      if (value > best + 1e-9) {
        best = value;
        bestGate = gate.slice();
        bestPair = pair.slice();
        stale = 0;
      } else if (++stale >= 5) {
        scale /= 2;
        stale = 0;
      }
      if (step === steps || best > target || scale < 1e-4) break;
      // Subgradient: how much each relaxed constraint is violated by the choices.
      gGate.fill(0);
      gPair.fill(0);
      gGate[root * width] = -childCap[root]!;
      for (let m = 0; m < n; m++) {
        const o = m === root ? -1 : choice[m]!;
        if (o < 0) continue;
        gGate[m * width + K[o]!]! -= childCap[m]!;
        gGate[P[o]! * width + K[o]! - 1]! += 1;
      }
      for (let o = 0; o < opts; o++) {
        if (!valid[o] || P[o] === root) continue;
        const parentChoice = choice[P[o]!]!;
        const parentThere = parentChoice >= 0 && K[parentChoice] === K[o]! - 1 ? 1 : 0;
        gPair[o] = (choice[C[o]!] === o ? 1 : 0) - parentThere;
      }
      let norm = 0;
      for (let i = 0; i < gGate.length; i++) {
        if (gGate[i]! < 0 && gate[i]! <= 0) gGate[i] = 0;
        norm += gGate[i]! * gGate[i]!;
      }
      for (let o = 0; o < opts; o++) {
        if (gPair[o]! < 0 && pair[o]! <= 0) gPair[o] = 0;
        norm += gPair[o]! * gPair[o]!;
      }
      // A zero subgradient: the choices satisfy every relaxed constraint at these multipliers, which is optimal.
      if (norm === 0) break;
      const aim = Math.max(target, best + 1);
      const length = (scale * (aim - value)) / norm;
      for (let i = 0; i < gate.length; i++) gate[i] = Math.max(0, gate[i]! + length * gGate[i]!);
      for (let o = 0; o < opts; o++) pair[o] = Math.max(0, pair[o]! + length * gPair[o]!);
    }
    return { value: best, multipliers: { gate: bestGate, pair: bestPair } };
  }
}
