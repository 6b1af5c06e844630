/**
 * A seeded generator of national-scale planning instances, shared by the planner's tests and its
 * benchmark: the demo network's shape (a master, 63 provinces, second MCUs under the largest, six
 * regional operator MCUs, about 11,400 endpoints) with randomised capacities and the shapes that
 * make planning hard (issue 9): a master with far fewer cascade ports than slave MCUs, operator
 * MCUs with few cascade ports, provinces whose MCU is too small, allowed parents that form cycles
 * between neighbouring provinces, a random session root, and capacity already held by other
 * sessions. Provinces may cascade into the master, into a hub of their region (its two largest
 * provinces), sometimes into a neighbour or an operator's MCU. Same seed, same instance.
 */
import { createHash } from 'node:crypto';
import { seededRandom } from '../src/core/index.js';
import type { Endpoint, Inventory, Mcu } from '../src/inventory/index.js';
import type { Session } from '../src/planner/index.js';
import type { Held } from './exhaustive.js';

export interface NationalOptions {
  /** Root of the session: the master always, or a random MCU for about a quarter of the seeds. */
  readonly roots?: 'master' | 'random';
  /** Capacity held by other sessions on random MCUs, for about half of the seeds. */
  readonly reserved?: boolean;
  /** One random MCU whose endpoints have another candidate down, for about a fifth of the seeds. */
  readonly unavailable?: boolean;
}

export interface NationalInstance {
  readonly seed: number;
  readonly inventory: Inventory;
  readonly session: Session;
  readonly unavailable: readonly string[];
  /** MCU id -> ports and cascade ports held by other live sessions. */
  readonly reserved: Readonly<Record<string, Held>>;
}

const REGIONS = [
  { id: 'north', from: 0, to: 25 },
  { id: 'central', from: 25, to: 44 },
  { id: 'south', from: 44, to: 63 },
] as const;
const PROVINCES = 63;
const CENTRAL = 31;

export function nationalInstance(seed: number, options: NationalOptions = {}): NationalInstance {
  const rnd = seededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const real = (lo: number, hi: number) => lo + rnd() * (hi - lo);
  const roundUp = (n: number, step: number) => Math.max(step, Math.ceil(n / step) * step);
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  const pid = (p: number) => `p${String(p + 1).padStart(2, '0')}`;
  const regionOf = (p: number) => REGIONS.find((r) => p >= r.from && p < r.to)!;

  // Rooms per province: districts and communes (about 725 and 10,900 in all).
  const districts = Array.from({ length: PROVINCES }, () => int(5, 18));
  const communes = districts.map((n) => Array.from({ length: n }, () => int(9, 21)));
  const rooms = districts.map((n, p) => n + communes[p]!.reduce((a, b) => a + b, 0));

  const order = shuffle(Array.from({ length: PROVINCES }, (_, p) => p));
  const split = new Set(order.slice(0, int(3, 6)));
  const viaOperator = new Map(order.slice(6, 6 + int(8, 14)).map((p) => [p, rnd() < 0.5 ? 'vnpt' : 'viettel']));
  const relayed = new Set(order.slice(20, 23));
  // Provinces whose MCU is too small: their rooms may also use a neighbouring province's MCU.
  const tight = new Set(order.slice(23, 23 + int(4, 12)));
  const neighbour = (p: number, span: number) => {
    const r = regionOf(p);
    let q = p;
    while (q === p) q = Math.min(r.to - 1, Math.max(r.from, p + int(-span, span)));
    return q;
  };
  const telco = (op: string, p: number) => `${op}-${regionOf(p).id}`;

  const mcus: Mcu[] = [];
  const add = (id: string, ports: number, cascadePorts: number, parents: string[], operator = id) =>
    mcus.push({
      id,
      name: `MCU ${id}`,
      operator,
      role: id === 'master' ? 'master' : 'slave',
      driver: 'sip-msml',
      sip: [`sip:conf@${id}.national.test`],
      vendor: 'generated',
      capacity: { ports, cascadePorts },
      parents,
    });

  // Regional hubs: in each region the two largest provinces (not split) take more child MCUs; the
  // other provinces may cascade into the master, a hub of their region, sometimes a neighbour (the
  // allowed parents then form cycles: hubs and neighbours list each other) or an operator's MCU.
  const hubs = new Set<number>();
  for (const r of REGIONS) {
    const inRegion = Array.from({ length: r.to - r.from }, (_, i) => r.from + i).filter((p) => !split.has(p));
    inRegion.sort((a, b) => rooms[b]! - rooms[a]! || a - b);
    for (const p of inRegion.slice(0, 2)) hubs.add(p);
  }
  const hubOf = (p: number) => {
    const r = regionOf(p);
    const own = [...hubs].filter((h) => h !== p && h >= r.from && h < r.to);
    return own[int(0, own.length - 1)]!;
  };
  const parentsOf = (p: number): string[] => {
    const extra = new Set<string>([pid(hubOf(p))]);
    if (rnd() < 0.3) extra.add(pid(neighbour(p, 3)));
    if (rnd() < 0.3) extra.add(telco(rnd() < 0.5 ? 'vnpt' : 'viettel', p));
    const others = shuffle([...extra]);
    if (rnd() < 0.7) return ['master', ...others];
    return shuffle(['master', ...others]);
  };
  // Neighbours of tight provinces absorb their overflow: sized with room for it.
  const overflow = new Array<number>(PROVINCES).fill(0);
  const tightNeighbour = new Map<number, number>();
  for (const p of tight) {
    let q = neighbour(p, 2);
    for (let tries = 0; tries < 8 && (split.has(q) || viaOperator.has(q) || tight.has(q)); tries++) q = neighbour(p, 3);
    tightNeighbour.set(p, q);
    overflow[q]! += Math.ceil(rooms[p]! * 0.25);
  }
  for (let p = 0; p < PROVINCES; p++) {
    const n = rooms[p]!;
    const cascade = hubs.has(p) ? int(4, 8) : rnd() < 0.15 ? 0 : int(1, 2);
    if (split.has(p)) {
      add(pid(p), roundUp(n * real(0.5, 0.7), 10), Math.max(1, cascade), parentsOf(p));
      add(`${pid(p)}-2`, roundUp(n * real(0.5, 0.7), 10), 0, rnd() < 0.3 ? [pid(p), 'master'] : [pid(p)]);
    } else if (viaOperator.has(p)) {
      add(pid(p), roundUp(n * real(0.2, 0.35), 10), cascade, parentsOf(p));
    } else if (tight.has(p)) {
      add(pid(p), roundUp(n * real(0.8, 0.95), 10), cascade, parentsOf(p));
    } else {
      const headroom = hubs.has(p) ? 12 : 4;
      add(pid(p), roundUp((n + overflow[p]!) * real(1.05, 1.3) + headroom, 10), cascade, parentsOf(p));
    }
  }
  for (const op of ['vnpt', 'viettel']) {
    for (const r of REGIONS) {
      let served = 0;
      for (const [p, o] of viaOperator) if (o === op && regionOf(p) === r) served += rooms[p]!;
      const parents = ['master'];
      if (rnd() < 0.4) parents.push(pid(int(r.from, r.to - 1)));
      add(`${op}-${r.id}`, roundUp(served * real(1.1, 1.3) + 20, 10), int(1, 3), parents, op);
    }
  }
  const slavesUnderMaster = mcus.filter((m) => m.parents.includes('master')).length;
  // The master: every central and province room, and far fewer cascade ports than slave MCUs.
  const masterCascade = int(Math.round(slavesUnderMaster * 0.5), Math.round(slavesUnderMaster * 0.75));
  add('master', int(CENTRAL + PROVINCES + masterCascade + 10, 320), masterCascade, [], 'central');

  const endpoints: Endpoint[] = [];
  const room = (id: string, level: string, mcuIds: string[], extra: Partial<Endpoint> = {}) =>
    endpoints.push({ id, name: id, level, mcus: mcuIds, connection: 'direct', vcs: 'generated', ...extra });
  for (let c = 1; c <= CENTRAL; c++) room(`c${String(c).padStart(2, '0')}`, 'central', ['master']);
  for (let p = 0; p < PROVINCES; p++) {
    const ubnd = `${pid(p)}-ubnd`;
    room(ubnd, 'province', ['master', pid(p)], { province: pid(p) });
    const op = viaOperator.get(p);
    const cands = split.has(p)
      ? [pid(p), `${pid(p)}-2`]
      : op !== undefined
        ? [telco(op, p), pid(p)]
        : tight.has(p)
          ? [pid(p), pid(tightNeighbour.get(p)!)]
          : [pid(p)];
    const extra: Partial<Endpoint> =
      op === undefined ? { province: pid(p) } : { province: pid(p), connection: 'via-operator', operator: op };
    for (let d = 0; d < districts[p]!; d++) {
      const district = `${pid(p)}-h${String(d + 1).padStart(2, '0')}`;
      room(district, 'district', cands, extra);
      for (let x = 0; x < communes[p]![d]!; x++) {
        const id = `${district}-x${String(x + 1).padStart(2, '0')}`;
        if (relayed.has(p) && rnd() < 0.3) {
          endpoints.push({
            id,
            name: id,
            level: 'commune',
            province: pid(p),
            mcus: [],
            connection: 'relay',
            relayVia: ubnd,
            vcs: 'generated',
          });
        } else room(id, 'commune', cands, extra);
      }
    }
  }

  // The session: national (every room, or most) on the master, or rooted at a random MCU.
  let root = 'master';
  let chair = 'c01';
  let members = endpoints.filter(() => true);
  if (rnd() < 0.5) {
    const keep = real(0.7, 1);
    members = members.filter((e) => e.level !== 'commune' || rnd() < keep);
  }
  if (options.roots === 'random' && rnd() < 0.25) {
    const candidates = mcus.filter((m) => m.id !== 'master' && !m.id.endsWith('-2'));
    const r = candidates[int(0, candidates.length - 1)]!;
    root = r.id;
    // The master may cascade into the root (and one other MCU) for sessions rooted there.
    const master = mcus.find((m) => m.id === 'master')!;
    const other = candidates[int(0, candidates.length - 1)]!.id;
    mcus[mcus.indexOf(master)] = { ...master, parents: other === root ? [root] : [root, other] };
    mcus[mcus.indexOf(r)] = { ...r, capacity: { ports: r.capacity.ports + 10, cascadePorts: int(2, 4) } };
    if (r.id.startsWith('p')) {
      chair = `${r.id}-ubnd`;
      if (rnd() < 0.5) {
        // A provincial session: the root's region and the central rooms.
        const region = regionOf(Number(r.id.slice(1, 3)) - 1);
        members = endpoints.filter((e) => {
          const p = e.province === undefined ? -1 : Number(e.province.slice(1, 3)) - 1;
          return p < 0 || (p >= region.from && p < region.to);
        });
      }
    }
  }

  const unavailable: string[] = [];
  if (options.unavailable === true && rnd() < 0.2) {
    const spare = mcus.filter((m) => m.id !== root && (m.id.endsWith('-2') || /^(vnpt|viettel)-/.test(m.id)));
    unavailable.push(spare[int(0, spare.length - 1)]!.id);
  }

  const reserved: Record<string, Held> = {};
  if (options.reserved === true && rnd() < 0.5) {
    // Other sessions hold part of the slack only (ports a first-fit seating leaves free), so most
    // instances stay feasible.
    const load = new Map<string, number>();
    const capacity = new Map(mcus.map((m) => [m.id, m.capacity.ports]));
    for (const e of members) {
      const m = e.mcus.find((c) => (load.get(c) ?? 0) < capacity.get(c)! - 3);
      if (m !== undefined) load.set(m, (load.get(m) ?? 0) + 1);
    }
    for (const m of mcus) {
      if (rnd() >= 0.25) continue;
      const slack = m.capacity.ports - (load.get(m.id) ?? 0) - m.capacity.cascadePorts - 4;
      const ports = slack > 0 ? int(0, Math.floor(slack * 0.8)) : 0;
      const cascadePorts = m.capacity.cascadePorts > 2 ? int(0, m.id === 'master' ? 3 : 1) : 0;
      if (ports > 0 || cascadePorts > 0) reserved[m.id] = { ports, cascadePorts };
    }
  }

  return {
    seed,
    inventory: { levels: [], provinces: [], operators: [], mcus: shuffle(mcus), endpoints },
    session: { endpoints: members.map((e) => e.id), chair, ...(root === 'master' ? {} : { root }) },
    unavailable,
    reserved,
  };
}

/** The shape of the instances whose ILP verdicts the tests keep: random roots, capacity held by other sessions. */
export const VERDICT_OPTIONS: NationalOptions = { roots: 'random', reserved: true };

/** A digest of an instance: a cached verdict belongs to the instance the generator makes today. */
export function fingerprint(inst: NationalInstance): string {
  const { inventory, session, unavailable, reserved } = inst;
  return createHash('sha256').update(JSON.stringify({ inventory, session, unavailable, reserved })).digest('hex');
}
