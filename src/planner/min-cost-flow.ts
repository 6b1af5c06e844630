/**
 * Min-cost flow with lexicographic (vector) costs, by the primal-dual method:
 * Dijkstra on reduced costs finds the shortest-path distances, then a Dinic
 * blocking flow pushes along every shortest path at once. The planner's
 * networks carry thousands of endpoint units through a few hundred arcs, so
 * pushing whole shortest-path layers at once (instead of one path at a time)
 * keeps the number of Dijkstra runs to the number of distinct path costs.
 *
 * Costs are vectors of K non-negative integers compared lexicographically:
 * the planner's objective tiers (depth, preference, links ...) cannot be
 * packed into one float without overflowing 2^53 at national scale, and
 * vectors keep every comparison exact.
 */

/** Capacity standing for "unbounded": larger than any supply the planner builds. */
export const UNBOUNDED = 2 ** 40;

export class FlowNetwork {
  readonly k: number;
  #nodes = 0;
  readonly #from: number[] = [];
  readonly #to: number[] = [];
  readonly #cap: number[] = [];
  readonly #cost: number[] = [];
  readonly #flow: number[] = [];
  #start = new Int32Array(1);
  #adj = new Int32Array(0);

  constructor(tiers: number) {
    this.k = tiers;
  }

  addNode(): number {
    return this.#nodes++;
  }

  get nodeCount(): number {
    return this.#nodes;
  }

  /** Adds arc u->v and its residual twin; returns the arc id (even). `cost` has K entries (or is omitted: zero). */
  addArc(u: number, v: number, cap: number, cost?: readonly number[]): number {
    const id = this.#to.length;
    this.#from.push(u, v);
    this.#to.push(v, u);
    this.#cap.push(cap, 0);
    this.#flow.push(0, 0);
    for (let i = 0; i < this.k; i++) this.#cost.push(cost === undefined ? 0 : cost[i]!);
    for (let i = 0; i < this.k; i++) this.#cost.push(cost === undefined ? 0 : -cost[i]!);
    return id;
  }

  flowOn(arc: number): number {
    return this.#flow[arc]!;
  }

  /**
   * Sends as much flow as possible from s to t at minimum cost among maximum
   * flows. Returns the flow value and its cost vector.
   */
  solve(s: number, t: number): { value: number; cost: number[] } {
    const n = this.#nodes;
    const k = this.k;
    const m = this.#to.length;
    // Adjacency in CSR form: arcs grouped by tail.
    const start = new Int32Array(n + 1);
    for (let e = 0; e < m; e++) start[this.#from[e]! + 1]!++;
    for (let v = 0; v < n; v++) start[v + 1]! += start[v]!;
    const adj = new Int32Array(m);
    const fill = start.slice(0, n);
    for (let e = 0; e < m; e++) adj[fill[this.#from[e]!]!++] = e;
    this.#start = start;
    this.#adj = adj;

    const to = this.#to;
    const cap = this.#cap;
    const flow = this.#flow;
    const cost = this.#cost;
    const pi = new Float64Array(n * k);
    const dist = new Float64Array(n * k);
    const done = new Uint8Array(n);
    const reached = new Uint8Array(n);
    const cand = new Float64Array(k);
    const heap = new MinHeap(k, dist, m + 1);
    const level = new Int32Array(n);
    const iter = new Int32Array(n);
    const queue = new Int32Array(n);
    let value = 0;

    const reducedIsZero = (e: number, u: number, v: number): boolean => {
      for (let i = 0; i < k; i++) if (cost[e * k + i]! + pi[u * k + i]! - pi[v * k + i]! !== 0) return false;
      return true;
    };

    for (;;) {
      // Dijkstra on reduced costs (all >= 0 lexicographically by the potential invariant).
      done.fill(0);
      reached.fill(0);
      dist.fill(0);
      reached[s] = 1;
      heap.clear();
      heap.push(s);
      while (heap.size > 0) {
        const u = heap.pop();
        if (done[u]) continue;
        done[u] = 1;
        for (let a = start[u]!; a < start[u + 1]!; a++) {
          const e = adj[a]!;
          if (cap[e]! - flow[e]! <= 0) continue;
          const v = to[e]!;
          if (done[v]) continue;
          for (let i = 0; i < k; i++) cand[i] = dist[u * k + i]! + cost[e * k + i]! + pi[u * k + i]! - pi[v * k + i]!;
          if (!reached[v] || lexLess(cand, 0, dist, v * k, k)) {
            for (let i = 0; i < k; i++) dist[v * k + i] = cand[i]!;
            reached[v] = 1;
            heap.push(v);
          }
        }
      }
      if (!reached[t]) break;
      // Potentials: pi += min(dist, dist[t]) keeps every residual reduced cost >= 0.
      for (let v = 0; v < n; v++) {
        const capAtT = !reached[v] || lexLess(dist, t * k, dist, v * k, k);
        const src = capAtT ? t * k : v * k;
        for (let i = 0; i < k; i++) pi[v * k + i]! += dist[src + i]!;
      }
      // Blocking flows on the admissible subgraph (residual arcs of zero reduced cost).
      for (;;) {
        level.fill(-1);
        level[s] = 0;
        let qh = 0;
        let qt = 0;
        queue[qt++] = s;
        while (qh < qt) {
          const u = queue[qh++]!;
          for (let a = start[u]!; a < start[u + 1]!; a++) {
            const e = adj[a]!;
            const v = to[e]!;
            if (level[v]! >= 0 || cap[e]! - flow[e]! <= 0 || !reducedIsZero(e, u, v)) continue;
            level[v] = level[u]! + 1;
            queue[qt++] = v;
          }
        }
        if (level[t]! < 0) break;
        for (let v = 0; v < n; v++) iter[v] = start[v]!;
        const push = (u: number, limit: number): number => {
          if (u === t) return limit;
          for (; iter[u]! < start[u + 1]!; iter[u]!++) {
            const e = adj[iter[u]!]!;
            const v = to[e]!;
            const r = cap[e]! - flow[e]!;
            if (r <= 0 || level[v] !== level[u]! + 1 || !reducedIsZero(e, u, v)) continue;
            const got = push(v, Math.min(limit, r));
            if (got > 0) {
              flow[e]! += got;
              flow[e ^ 1]! -= got;
              return got;
            }
          }
          return 0;
        };
        for (let got = push(s, UNBOUNDED); got > 0; got = push(s, UNBOUNDED)) value += got;
      }
    }

    const total = new Array<number>(k).fill(0);
    for (let e = 0; e < m; e += 2) {
      const f = flow[e]!;
      if (f > 0) for (let i = 0; i < k; i++) total[i]! += f * cost[e * k + i]!;
    }
    return { value, cost: total };
  }

  /** Nodes reachable from s in the residual network (after `solve`): the source side of a minimum cut. */
  residualReach(s: number): Uint8Array {
    const seen = new Uint8Array(this.#nodes);
    const stack = [s];
    seen[s] = 1;
    while (stack.length > 0) {
      const u = stack.pop()!;
      for (let a = this.#start[u]!; a < this.#start[u + 1]!; a++) {
        const e = this.#adj[a]!;
        if (this.#cap[e]! - this.#flow[e]! <= 0) continue;
        const v = this.#to[e]!;
        if (!seen[v]) {
          seen[v] = 1;
          stack.push(v);
        }
      }
    }
    return seen;
  }
}

/** a[ao..ao+k) < b[bo..bo+k) lexicographically. */
function lexLess(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, k: number): boolean {
  for (let i = 0; i < k; i++) {
    const x = a[ao + i]!;
    const y = b[bo + i]!;
    if (x !== y) return x < y;
  }
  return false;
}

/**
 * Binary heap of (node, distance snapshot) entries with lazy deletion: a node
 * whose distance drops is pushed again and its stale entry skipped when popped.
 * Keys are copied at push time so a later decrease cannot break heap order.
 * At most one push per arc relaxation plus the source: sized once per solve.
 */
class MinHeap {
  readonly #k: number;
  readonly #dist: Float64Array;
  readonly #nodes: Int32Array;
  readonly #keys: Float64Array;
  readonly #heap: Int32Array;
  #used = 0;
  #size = 0;

  constructor(k: number, dist: Float64Array, capacity: number) {
    this.#k = k;
    this.#dist = dist;
    this.#nodes = new Int32Array(capacity);
    this.#keys = new Float64Array(capacity * k);
    this.#heap = new Int32Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  clear(): void {
    this.#used = 0;
    this.#size = 0;
  }

  #less(a: number, b: number): boolean {
    const k = this.#k;
    const keys = this.#keys;
    for (let i = 0; i < k; i++) {
      const x = keys[a * k + i]!;
      const y = keys[b * k + i]!;
      if (x !== y) return x < y;
    }
    return this.#nodes[a]! < this.#nodes[b]!; // ties by node id: the same network always yields the same flow
  }

  push(v: number): void {
    const k = this.#k;
    const entry = this.#used++;
    this.#nodes[entry] = v;
    for (let i = 0; i < k; i++) this.#keys[entry * k + i] = this.#dist[v * k + i]!;
    const h = this.#heap;
    let i = this.#size++;
    h[i] = entry;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      const tmp = h[i]!;
      h[i] = h[p]!;
      h[p] = tmp;
      i = p;
    }
  }

  pop(): number {
    const h = this.#heap;
    const top = h[0]!;
    const size = --this.#size;
    if (size > 0) {
      h[0] = h[size]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let b = i;
        if (l < size && this.#less(h[l]!, h[b]!)) b = l;
        if (r < size && this.#less(h[r]!, h[b]!)) b = r;
        if (b === i) break;
        const tmp = h[i]!;
        h[i] = h[b]!;
        h[b] = tmp;
        i = b;
      }
    }
    return this.#nodes[top]!;
  }
}
