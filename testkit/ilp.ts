/**
 * The integer-programming oracle, solved by HiGHS (npm `highs`, a dev
 * dependency): the reference the planner is checked against on medium random
 * instances and national ones, in the tests and in bench/planner.ts.
 *
 * Formulation, for a depth bound D (depth labels are exact; the root is the
 * session's root MCU, the master unless the session names another):
 *   y[m,k]   binary   MCU m takes part at depth k (the root: k = 0, always)
 *   z[m,p,k] binary   m at depth k cascades into p (then p is at depth k-1)
 *   x[c,m,k] integer  members of endpoint class c on m at depth k
 * with   sum_k y[m,k] <= 1,   sum_p z[m,p,k] = y[m,k],   z[m,p,k] <= y[p,k-1],
 *        sum_{m,k} x[c,m,k] = |c|,   x[c,m,k] <= |c| y[m,k],
 *        ports:   sum x[.,m,.] + sum_k y[m,k] (not the root) + sum z[.,m,.] <= ports(m) - held(m),
 *        cascade: sum z[.,m,.] <= cascadePorts(m) - heldCascade(m),
 * where held counts what other live sessions hold on m. Parent links may form
 * cycles: depths strictly decrease along every z, so a solution is a tree.
 * Endpoints are grouped into classes (same candidate list, same relay weight):
 * one variable set per endpoint does not finish on the national network.
 * The lexicographic objective is solved stage by stage, each stage's optimum
 * fixed as a constraint for the next; the last stage minimises a continuous
 * utilisation bound u with use(m) + held(m) <= u ports(m) over the MCUs taking part.
 *
 * HiGHS with presolve on has been seen to call feasible models of this kind
 * infeasible, so presolve is off; and the final solution is rounded and
 * re-checked in exact integer arithmetic before its objective is trusted.
 */
import highsModule, { type Highs } from 'highs';
import type { Inventory } from '../src/inventory/index.js';
import type { Session } from '../src/planner/index.js';
import { type Held, type OracleObjective, sessionMembers } from './exhaustive.js';

// The package ships an ES build whose default export is the loader, but its CommonJS-typed
// declarations make TypeScript see the namespace: accept either shape.
const highsLoader = (
  typeof highsModule === 'function' ? highsModule : highsModule.default
) as typeof highsModule.default;
let highs: Promise<Highs> | undefined;

interface Klass {
  readonly count: number;
  readonly weight: number;
  readonly chair: boolean;
  /** [mcu index, preference rank] of each available candidate. */
  readonly cands: readonly (readonly [number, number])[];
}

interface Unit {
  readonly id: string;
  readonly parents: readonly string[];
  /** Ports and cascade ports left to this session. */
  readonly ports: number;
  readonly cascadePorts: number;
  /** Ports held by other sessions (for the utilisation). */
  readonly held: number;
  readonly capacity: number;
}

export interface IlpResult {
  /** The optimum, recomputed exactly from the rounded solution; null if infeasible. */
  readonly objective: OracleObjective | null;
  readonly ms: number;
  /** The same on this process's CPU time (HiGHS runs in it, on one thread): what a busy machine does not inflate. */
  readonly cpuMs: number;
  /** MIP solves run (depth bounds tried plus objective stages). */
  readonly solves: number;
}

/** CPU time this process has used, in milliseconds. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function ilpOptimum(
  inv: Inventory,
  session: Session,
  unavailable: readonly string[] = [],
  reserved: Readonly<Record<string, Held>> = {},
): Promise<IlpResult> {
  highs ??= highsLoader();
  const solver = await highs;
  const started = performance.now();
  const cpuStarted = cpuMs();
  const took = () => ({ ms: performance.now() - started, cpuMs: cpuMs() - cpuStarted });
  const down = new Set(unavailable);
  const units: Unit[] = inv.mcus
    .filter((m) => !down.has(m.id))
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((m) => {
      const held = reserved[m.id] ?? { ports: 0, cascadePorts: 0 };
      return {
        id: m.id,
        parents: m.parents,
        // Other sessions may hold more than an MCU has (then it has nothing left for this one).
        ports: Math.max(0, m.capacity.ports - held.ports),
        cascadePorts: Math.max(0, m.capacity.cascadePorts - held.cascadePorts),
        held: held.ports,
        capacity: m.capacity.ports,
      };
    });
  const index = new Map(units.map((m, i) => [m.id, i]));
  const rootId = session.root ?? inv.mcus.find((m) => m.role === 'master')?.id;
  const root = rootId === undefined ? -1 : (index.get(rootId) ?? -1);
  const byId = new Map(inv.endpoints.map((e) => [e.id, e]));
  const { members, weight } = sessionMembers(inv, session);
  const groups = new Map<string, { count: number; weight: number; chair: boolean; cands: [number, number][] }>();
  for (const id of members) {
    const e = byId.get(id)!;
    if (e.connection === 'relay') continue;
    const chair = id === session.chair;
    const w = weight.get(id) ?? 1;
    const key = `${chair ? '*chair' : e.mcus.join(',')}|${w}`;
    const g = groups.get(key);
    if (g !== undefined) {
      g.count++;
      continue;
    }
    const cands: [number, number][] = [];
    if (chair) {
      if (root >= 0) cands.push([root, 0]);
    } else {
      e.mcus.forEach((m, rank) => {
        const i = index.get(m);
        if (i !== undefined) cands.push([i, rank]);
      });
    }
    groups.set(key, { count: 1, weight: w, chair, cands });
  }
  const classes: Klass[] = [...groups.values()];
  if (root < 0 || classes.some((c) => c.cands.length === 0)) {
    return { objective: null, ...took(), solves: 0 };
  }

  let solves = 0;
  for (let depth = 0; depth < units.length; depth++) {
    const model = new Model(units, index, root, classes, depth);
    const stages = model.stages();
    const fixed: string[] = [];
    let values: Map<string, number> | null = null;
    for (const stage of stages) {
      solves++;
      const r = solver.solve(model.text(stage, fixed), { presolve: 'off', output_flag: false, mip_rel_gap: 0 });
      if (r.Status === 'Infeasible') break;
      if (r.Status !== 'Optimal') throw new Error(`HiGHS: ${r.Status} at depth bound ${depth}`);
      values = new Map(Object.entries(r.Columns).map(([name, c]) => [name, (c as { Primal: number }).Primal]));
      if (stage.integral) fixed.push(`${stage.expr} <= ${Math.round(r.ObjectiveValue) + 0.5}`);
    }
    if (values === null) continue;
    return { objective: model.exactObjective(values), ...took(), solves };
  }
  return { objective: null, ...took(), solves };
}

interface Stage {
  readonly expr: string;
  readonly integral: boolean;
}

class Model {
  readonly #lines: string[] = [];
  readonly #binaries: string[] = [];
  readonly #generals: string[] = [];
  readonly #bounds: string[] = [];
  readonly #x: { name: string; c: number; m: number; k: number; rank: number }[] = [];
  readonly #z: { name: string; m: number; p: number; k: number }[] = [];
  readonly #y: { name: string; m: number; k: number }[] = [];

  constructor(
    readonly units: readonly Unit[],
    readonly index: Map<string, number>,
    readonly root: number,
    readonly classes: readonly Klass[],
    readonly depth: number,
  ) {
    const labels = (m: number) => (m === root ? [0] : Array.from({ length: depth }, (_, i) => i + 1));
    units.forEach((_, m) => {
      for (const k of labels(m)) {
        const name = `y_${m}_${k}`;
        this.#y.push({ name, m, k });
        this.#binaries.push(name);
        if (m === root) this.#bounds.push(`${name} = 1`);
      }
      if (m !== root)
        this.#row(
          labels(m).map((k) => `+ y_${m}_${k}`),
          '<=',
          1,
        );
    });
    units.forEach((unit, m) => {
      if (m === root) return;
      for (const k of labels(m)) {
        const terms: string[] = [];
        for (const pid of new Set(unit.parents)) {
          const p = index.get(pid);
          if (p === undefined || p === m || (p === root ? k !== 1 : k < 2)) continue;
          const name = `z_${m}_${p}_${k}`;
          this.#z.push({ name, m, p, k });
          this.#binaries.push(name);
          terms.push(`+ ${name}`);
          this.#row([`+ ${name}`, `- y_${p}_${k - 1}`], '<=', 0);
        }
        this.#row([...terms, `- y_${m}_${k}`], '=', 0);
      }
    });
    classes.forEach((cl, c) => {
      const all: string[] = [];
      for (const [m, rank] of cl.cands) {
        for (const k of labels(m)) {
          const name = `x_${c}_${m}_${k}`;
          this.#x.push({ name, c, m, k, rank });
          this.#generals.push(name);
          this.#bounds.push(`0 <= ${name} <= ${cl.count}`);
          all.push(`+ ${name}`);
          this.#row([`+ ${name}`, `- ${cl.count} y_${m}_${k}`], '<=', 0);
        }
      }
      this.#row(all, '=', cl.count);
    });
    units.forEach((unit, m) => {
      this.#row(this.#use(m), '<=', unit.ports);
      const kids = this.#z.filter((z) => z.p === m).map((z) => `+ ${z.name}`);
      if (kids.length > 0) this.#row(kids, '<=', unit.cascadePorts);
    });
  }

  /** Port use of MCU m as LP terms. */
  #use(m: number): string[] {
    return [
      ...this.#x.filter((x) => x.m === m).map((x) => `+ ${x.name}`),
      ...(m === this.root ? [] : this.#y.filter((y) => y.m === m).map((y) => `+ ${y.name}`)),
      ...this.#z.filter((z) => z.p === m).map((z) => `+ ${z.name}`),
    ];
  }

  #row(terms: string[], op: string, rhs: number): void {
    this.#lines.push(
      ` r${this.#lines.length}: ${terms.length === 0 ? `0 y_${this.root}_0` : terms.join(' ')} ${op} ${rhs}`,
    );
  }

  stages(): Stage[] {
    const w = (x: { c: number }) => this.classes[x.c]!.weight;
    const sum = (terms: string[]) => (terms.length === 0 ? `0 y_${this.root}_0` : terms.join(' '));
    return [
      {
        expr: sum(this.#x.filter((x) => x.k === this.depth && w(x) > 0).map((x) => `+ ${w(x)} ${x.name}`)),
        integral: true,
      },
      { expr: sum(this.#x.filter((x) => x.k > 0).map((x) => `+ ${w(x) * x.k} ${x.name}`)), integral: true },
      {
        expr: sum(this.#x.filter((x) => x.rank > 0 && !this.classes[x.c]!.chair).map((x) => `+ ${x.rank} ${x.name}`)),
        integral: true,
      },
      { expr: sum(this.#y.filter((y) => y.m !== this.root).map((y) => `+ ${y.name}`)), integral: true },
      { expr: 'u', integral: false },
    ];
  }

  text(stage: Stage, fixed: readonly string[]): string {
    // Held ports count towards an MCU's load only when it takes part: held * (sum of its y).
    const util = this.units.flatMap((unit, m) => {
      if (unit.capacity <= 0) return [];
      const held = unit.held === 0 ? [] : this.#y.filter((y) => y.m === m).map((y) => `+ ${unit.held} ${y.name}`);
      return [` u${m}: ${[...this.#use(m), ...held].join(' ') || `0 y_${this.root}_0`} - ${unit.capacity} u <= 0`];
    });
    return [
      'Minimize',
      ` obj: ${stage.expr}`,
      'Subject To',
      ...this.#lines,
      ...fixed.map((f, i) => ` f${i}: ${f}`),
      ...(stage.expr === 'u' ? util : []),
      'Bounds',
      ...this.#bounds,
      ...(stage.expr === 'u' ? [' 0 <= u <= 1'] : []),
      'Binaries',
      ...this.#binaries.map((b) => ` ${b}`),
      'Generals',
      ...this.#generals.map((g) => ` ${g}`),
      'End',
    ].join('\n');
  }

  /** Rounds the solution, re-checks every constraint in integers and computes the objective exactly. */
  exactObjective(values: Map<string, number>): OracleObjective {
    const v = (name: string) => {
      const raw = values.get(name) ?? 0;
      const r = Math.round(raw);
      if (Math.abs(raw - r) > 1e-6) throw new Error(`HiGHS: ${name} = ${raw} is not integral`);
      return r;
    };
    const depthOf = new Map<number, number>([[this.root, 0]]);
    const ports = this.units.map(() => 0);
    const cascade = this.units.map(() => 0);
    let links = 0;
    for (const y of this.#y) {
      if (y.m !== this.root && v(y.name) === 1) {
        if (depthOf.has(y.m)) throw new Error(`exact check: MCU ${y.m} at two depths`);
        depthOf.set(y.m, y.k);
        ports[y.m]!++;
        links++;
      }
    }
    const parentOf = new Map<number, number>();
    for (const z of this.#z) {
      if (v(z.name) !== 1) continue;
      if (parentOf.has(z.m) || depthOf.get(z.m) !== z.k || depthOf.get(z.p) !== z.k - 1) {
        throw new Error(`exact check: bad link ${z.name}`);
      }
      parentOf.set(z.m, z.p);
      ports[z.p]!++;
      cascade[z.p]!++;
    }
    for (const m of depthOf.keys()) {
      if (m !== this.root && !parentOf.has(m)) throw new Error(`exact check: MCU ${m} has no parent`);
    }
    const placed = this.classes.map(() => 0);
    let atMaxDepth = 0;
    let depthSum = 0;
    let preferenceSum = 0;
    for (const x of this.#x) {
      const n = v(x.name);
      if (n === 0) continue;
      if (depthOf.get(x.m) !== x.k) throw new Error(`exact check: ${x.name} on an MCU not at depth ${x.k}`);
      const cl = this.classes[x.c]!;
      placed[x.c]! += n;
      ports[x.m]! += n;
      if (x.k === this.depth) atMaxDepth += n * cl.weight;
      depthSum += n * cl.weight * x.k;
      if (!cl.chair) preferenceSum += n * x.rank;
    }
    this.classes.forEach((cl, c) => {
      if (placed[c] !== cl.count) throw new Error(`exact check: class ${c} has ${placed[c]} of ${cl.count} placed`);
    });
    let utilisation: [number, number] = [0, 1];
    this.units.forEach((unit, m) => {
      if (ports[m]! > unit.ports || cascade[m]! > unit.cascadePorts) {
        throw new Error(`exact check: MCU ${unit.id} over capacity`);
      }
      const load = ports[m]! + unit.held;
      if (depthOf.has(m) && unit.capacity > 0 && load * utilisation[1] > utilisation[0] * unit.capacity)
        utilisation = [load, unit.capacity];
    });
    // With every class placed, the deepest endpoint is at the bound only if some weight sits there.
    const maxDepth = atMaxDepth > 0 ? this.depth : Number.NaN;
    if (Number.isNaN(maxDepth)) throw new Error('exact check: nothing at the depth bound');
    return { maxDepth, atMaxDepth, depthSum, preferenceSum, links, utilisation };
  }
}
