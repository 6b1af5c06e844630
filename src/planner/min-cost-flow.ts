/**
 * Min-cost flow with lexicographic (vector) costs, by the primal-dual method:
 * Dijkstra on reduced costs finds the shortest-path distances, then a Dinic
 * blocking flow pushes along every shortest path at once. The planner's
 * networks carry thousands of endpoint units through a few hundred arcs, so
 * pushing whole shortest-path layers at once (instead of one path at a time)
 * keeps the number of Dijkstra runs to the number of distinct path costs.
 *
 * Costs are vectors of K integers compared lexicographically: the planner's
 * objective tiers (depth, preference, links ...) cannot be packed into one
 * float without overflowing 2^53 at national scale, and vectors keep every
 * comparison exact.
 *
 * The search solves thousands of small networks (about 280 nodes, 25 phases
 * each at national scale), so a phase costs what it explores, not the whole
 * network: Dijkstra stops at t, only the nodes it settled move their potential
 * (kept less dist[t], which leaves every reduced cost as it is), the blocking
 * flow tests arcs for zero reduced cost as it walks them and its breadth-first
 * pass stops at t's level. A network is emptied and refilled (`reset`) rather
 * than rebuilt, and the work arrays live with it: no garbage per flow. Storage
 * is typed arrays, and adjacent cost tiers are packed into one number where
 * exact. Together these halved the national search's time (issue 9).
 */

/** Capacity standing for "unbounded": larger than any supply the planner builds. */
export const UNBOUNDED = 2 ** 40;

export class FlowNetwork {
  readonly #k: number;
  #nodes = 0;
  #arcs = 0;
  #from = new Int32Array(64);
  #to = new Int32Array(64);
  #cap = new Float64Array(64);
  #flow = new Float64Array(64);
  #cost = new Float64Array(64);
  #start: Int32Array = new Int32Array(1);
  #adj: Int32Array = new Int32Array(0);
  /** Work space of `solve`, kept between calls: the search solves thousands of networks of one size. */
  #work: Work | null = null;

  constructor(tiers: number) {
    this.#k = tiers;
    this.#cost = new Float64Array(64 * tiers);
  }

  /** Empties the network for the next one, keeping its storage (no reallocation, no garbage). */
  reset(): void {
    this.#nodes = 0;
    this.#arcs = 0;
  }

  get k(): number {
    return this.#k;
  }

  addNode(): number {
    return this.#nodes++;
  }

  get nodeCount(): number {
    return this.#nodes;
  }

  #grow(): void {
    const size = this.#from.length * 2;
    const more = <T extends Int32Array | Float64Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.#from = more(this.#from, size);
    this.#to = more(this.#to, size);
    this.#cap = more(this.#cap, size);
    this.#flow = more(this.#flow, size);
    this.#cost = more(this.#cost, size * this.#k);
  }

  /** Adds arc u->v and its residual twin; returns the arc id (even). `cost` has K entries (or is omitted: zero). */
  addArc(u: number, v: number, cap: number, cost?: readonly number[]): number {
    const id = this.#arcs;
    if (id + 2 > this.#from.length) this.#grow();
    const k = this.#k;
    this.#from[id] = u;
    this.#to[id] = v;
    this.#cap[id] = cap;
    this.#flow[id] = 0;
    this.#from[id + 1] = v;
    this.#to[id + 1] = u;
    this.#cap[id + 1] = 0;
    this.#flow[id + 1] = 0;
    const c = this.#cost;
    for (let i = 0; i < k; i++) {
      const x = cost === undefined ? 0 : cost[i]!;
      c[id * k + i] = x;
      c[(id + 1) * k + i] = -x;
    }
    this.#arcs = id + 2;
    return id;
  }

  flowOn(arc: number): number {
    return this.#flow[arc]!;
  }

  /** A copy of the flow on every arc, for `restoreFlow`. */
  saveFlow(): Float64Array {
    return this.#flow.slice(0, this.#arcs);
  }

  restoreFlow(saved: Float64Array): void {
    this.#flow.set(saved);
  }

  setCapacity(arc: number, cap: number): void {
    this.#cap[arc] = cap;
  }

  /** Changes the flow on an arc (and its twin) by delta: the caller keeps it a flow. */
  addFlow(arc: number, delta: number): void {
    this.#flow[arc]! += delta;
    this.#flow[arc ^ 1]! -= delta;
  }

  /**
   * Sends as much flow as possible from s to t at minimum cost among maximum
   * flows. Returns the flow value and its cost vector. It starts from the flow
   * already on the arcs (zero on a new network), which must then be of minimum
   * cost for its value (any flow is, when every cost is zero); the value
   * returned is what this call adds.
   */
  solve(s: number, t: number): { value: number; cost: number[] } {
    const n = this.#nodes;
    const m = this.#arcs;
    const from = this.#from;
    const to = this.#to;
    const cap = this.#cap;
    const flow = this.#flow;
    let w = this.#work;
    if (w === null || w.nodes < n || w.arcs < m || w.k < this.#k) {
      w = new Work(Math.max(n, 2 * (w?.nodes ?? 0)), Math.max(m, 2 * (w?.arcs ?? 0)), this.#k);
      this.#work = w;
    }
    const { k, cost } = packCosts(this.#cost, this.#k, m, n, w.packed);
    // Adjacency in CSR form: arcs grouped by tail.
    const start = w.start;
    start.fill(0, 0, n + 1);
    for (let e = 0; e < m; e++) start[from[e]! + 1]!++;
    for (let v = 0; v < n; v++) start[v + 1]! += start[v]!;
    const adj = w.adj;
    const fill = w.iter;
    fill.set(start.subarray(0, n));
    for (let e = 0; e < m; e++) adj[fill[from[e]!]!++] = e;
    this.#start = start;
    this.#adj = adj;

    const { pi, dist, done, reached, popped, level, iter, queue, pathArc } = w;
    pi.fill(0, 0, n * k);
    const heap = w.heap;
    heap.reset(k);
    let value = 0;

    for (;;) {
      // Dijkstra on reduced costs (all >= 0 lexicographically by the potential invariant).
      done.fill(0, 0, n);
      reached.fill(0, 0, n);
      reached[s] = 1;
      for (let i = 0; i < k; i++) dist[s * k + i] = 0;
      heap.clear();
      heap.push(s);
      let settled = 0;
      while (heap.size > 0) {
        const u = heap.pop();
        if (done[u]) continue;
        done[u] = 1;
        popped[settled++] = u;
        // Nothing popped after t can be on a shortest path to it: its potential is capped at t's below.
        if (u === t) break;
        const du = u * k;
        for (let a = start[u]!; a < start[u + 1]!; a++) {
          const e = adj[a]!;
          if (cap[e]! - flow[e]! <= 0) continue;
          const v = to[e]!;
          if (done[v]) continue;
          const dv = v * k;
          const ek = e * k;
          // Is dist[u] + reduced(e) < dist[v]? Compared tier by tier, without building the vector.
          let better = reached[v] === 0;
          if (!better) {
            for (let i = 0; i < k; i++) {
              const x = dist[du + i]! + cost[ek + i]! + pi[du + i]! - pi[dv + i]!;
              const y = dist[dv + i]!;
              if (x !== y) {
                better = x < y;
                break;
              }
            }
          }
          if (better) {
            for (let i = 0; i < k; i++) dist[dv + i] = dist[du + i]! + cost[ek + i]! + pi[du + i]! - pi[dv + i]!;
            reached[v] = 1;
            heap.push(v);
          }
        }
      }
      if (!reached[t]) break;
      // Potentials: pi += min(dist, dist[t]) keeps every residual reduced cost >= 0. Kept less
      // dist[t] (the same for every node: reduced costs do not change), only the nodes Dijkstra
      // settled before t move, and a phase costs what it explores, not the whole network.
      const tk = t * k;
      for (let j = 0; j < settled; j++) {
        const vk = popped[j]! * k;
        for (let i = 0; i < k; i++) pi[vk + i]! += dist[vk + i]! - dist[tk + i]!;
      }
      // Blocking flows on the admissible subgraph: arcs of zero reduced cost (shortest paths).
      const tight = (e: number): boolean => {
        const uk = from[e]! * k;
        const vk = to[e]! * k;
        const ek = e * k;
        for (let i = 0; i < k; i++) if (cost[ek + i]! + pi[uk + i]! - pi[vk + i]! !== 0) return false;
        return true;
      };
      for (;;) {
        level.fill(-1, 0, n);
        level[s] = 0;
        let qh = 0;
        let qt = 0;
        queue[qt++] = s;
        while (qh < qt) {
          const u = queue[qh++]!;
          // Nodes as deep as t lead to no shortest augmenting path.
          if (level[t]! >= 0 && level[u]! >= level[t]!) break;
          for (let a = start[u]!; a < start[u + 1]!; a++) {
            const e = adj[a]!;
            const v = to[e]!;
            if (level[v]! >= 0 || cap[e]! - flow[e]! <= 0 || !tight(e)) continue;
            level[v] = level[u]! + 1;
            queue[qt++] = v;
          }
        }
        if (level[t]! < 0) break;
        for (let v = 0; v < n; v++) iter[v] = start[v]!;
        // Depth-first along level-increasing admissible arcs; each path found is saturated at once.
        for (;;) {
          let u = s;
          let depth = 0;
          while (u !== t) {
            let advanced = false;
            for (; iter[u]! < start[u + 1]!; iter[u]!++) {
              const e = adj[iter[u]!]!;
              const v = to[e]!;
              if (level[v] !== level[u]! + 1 || cap[e]! - flow[e]! <= 0 || !tight(e)) continue;
              pathArc[depth++] = e;
              u = v;
              advanced = true;
              break;
            }
            if (advanced) continue;
            // Dead end: no path through u this round; step back.
            level[u] = -1;
            if (depth === 0) break;
            const back = pathArc[--depth]!;
            u = from[back]!;
            iter[u]!++;
          }
          if (u !== t) break;
          let push = UNBOUNDED;
          for (let i = 0; i < depth; i++) {
            const e = pathArc[i]!;
            push = Math.min(push, cap[e]! - flow[e]!);
          }
          for (let i = 0; i < depth; i++) {
            const e = pathArc[i]!;
            flow[e]! += push;
            flow[e ^ 1]! -= push;
          }
          value += push;
        }
      }
    }

    const tiers = this.#k;
    const original = this.#cost;
    const total = new Array<number>(tiers).fill(0);
    for (let e = 0; e < m; e += 2) {
      const f = flow[e]!;
      if (f > 0) for (let i = 0; i < tiers; i++) total[i]! += f * original[e * tiers + i]!;
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

/** The arrays `solve` works in, sized for a number of nodes, arcs and cost words. */
class Work {
  readonly start: Int32Array;
  readonly adj: Int32Array;
  readonly pi: Float64Array;
  readonly dist: Float64Array;
  readonly done: Uint8Array;
  readonly reached: Uint8Array;
  readonly popped: Int32Array;
  readonly level: Int32Array;
  readonly iter: Int32Array;
  readonly queue: Int32Array;
  readonly pathArc: Int32Array;
  readonly packed: Float64Array;
  readonly heap: MinHeap;

  constructor(
    readonly nodes: number,
    readonly arcs: number,
    readonly k: number,
  ) {
    this.start = new Int32Array(nodes + 1);
    this.adj = new Int32Array(arcs);
    this.pi = new Float64Array(nodes * k);
    this.dist = new Float64Array(nodes * k);
    this.done = new Uint8Array(nodes);
    this.reached = new Uint8Array(nodes);
    this.popped = new Int32Array(nodes);
    this.level = new Int32Array(nodes);
    this.iter = new Int32Array(nodes);
    this.queue = new Int32Array(nodes);
    this.pathArc = new Int32Array(nodes);
    this.packed = new Float64Array(arcs * k);
    this.heap = new MinHeap(this.dist, nodes);
  }
}

/** Largest magnitude a packed cost word may reach, with room for the few additions the solver makes. */
const PACK_LIMIT = 2 ** 48;

/**
 * The arc costs with adjacent tiers packed into one number where that is exact, so each
 * comparison and addition handles fewer words. Every quantity the solver forms in tier i (a
 * distance, a potential, a reduced cost, a sum of these) stays within R_i = 5 n C_i, where C_i is
 * the largest |cost| of the tier: distances and potentials are path costs over at most n arcs.
 * A word holding tiers i..j as sum v_x * W_x, with W_j = 1 and W_x = W_(x+1) * (2 R_(x+1) + 1),
 * then orders and adds exactly like the vector, as long as the product of the (2 R + 1) stays
 * below 2^48 (below 2^53 with room to add).
 */
function packCosts(
  cost: Float64Array,
  k: number,
  arcs: number,
  nodes: number,
  into: Float64Array,
): { k: number; cost: Float64Array } {
  if (k <= 1) return { k, cost };
  const span = new Float64Array(k);
  for (let e = 0; e < arcs; e++) {
    for (let i = 0; i < k; i++) span[i] = Math.max(span[i]!, Math.abs(cost[e * k + i]!));
  }
  for (let i = 0; i < k; i++) span[i] = 2 * 5 * Math.max(1, nodes) * span[i]! + 1;
  // Groups of consecutive tiers, greedily from the most important.
  const group = new Int32Array(k);
  const weight = new Float64Array(k);
  let words = 0;
  for (let i = 0; i < k; ) {
    let j = i;
    let product = span[i]!;
    while (j + 1 < k && product * span[j + 1]! <= PACK_LIMIT) product *= span[++j]!;
    let w = 1;
    for (let x = j; x >= i; x--) {
      group[x] = words;
      weight[x] = w;
      w *= span[x]!;
    }
    words++;
    i = j + 1;
  }
  if (words === k) return { k, cost };
  const packed = into;
  packed.fill(0, 0, arcs * words);
  for (let e = 0; e < arcs; e++) {
    for (let i = 0; i < k; i++) packed[e * words + group[i]!]! += cost[e * k + i]! * weight[i]!;
  }
  return { k: words, cost: packed };
}

/**
 * Binary heap of nodes keyed by their distance vector, with decrease-key: each node is in the
 * heap at most once (its position is tracked), so the heap never holds more than the nodes and a
 * lowered distance only sifts the node up.
 */
class MinHeap {
  #k = 1;
  readonly #dist: Float64Array;
  readonly #heap: Int32Array;
  readonly #pos: Int32Array;
  #size = 0;

  constructor(dist: Float64Array, nodes: number) {
    this.#dist = dist;
    this.#heap = new Int32Array(nodes);
    this.#pos = new Int32Array(nodes).fill(-1);
  }

  /** Empty, for distance vectors of k words. */
  reset(k: number): void {
    this.clear();
    this.#k = k;
  }

  get size(): number {
    return this.#size;
  }

  clear(): void {
    for (let i = 0; i < this.#size; i++) this.#pos[this.#heap[i]!] = -1;
    this.#size = 0;
  }

  #less(a: number, b: number): boolean {
    const k = this.#k;
    const d = this.#dist;
    if (k === 1) return d[a]! < d[b]! || (d[a] === d[b] && a < b);
    for (let i = 0; i < k; i++) {
      const x = d[a * k + i]!;
      const y = d[b * k + i]!;
      if (x !== y) return x < y;
    }
    return a < b; // ties by node id: the same network always yields the same flow
  }

  /** Inserts v, or moves it up after its distance dropped. */
  push(v: number): void {
    const h = this.#heap;
    const pos = this.#pos;
    let i = pos[v]!;
    if (i < 0) {
      i = this.#size++;
      h[i] = v;
    }
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(v, h[p]!)) break;
      h[i] = h[p]!;
      pos[h[i]!] = i;
      i = p;
    }
    h[i] = v;
    pos[v] = i;
  }

  pop(): number {
    const h = this.#heap;
    const pos = this.#pos;
    const top = h[0]!;
    pos[top] = -1;
    const size = --this.#size;
    if (size > 0) {
      const v = h[size]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        const r = l + 1;
        const c = r < size && this.#less(h[r]!, h[l]!) ? r : l;
        if (!this.#less(h[c]!, v)) break;
        h[i] = h[c]!;
        pos[h[i]!] = i;
        i = c;
      }
      h[i] = v;
      pos[v] = i;
    }
    return top;
  }
}
