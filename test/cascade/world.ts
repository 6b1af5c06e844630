/**
 * A small model of MCUs for the reconciler's property tests, written from
 * the MCU's side (what a focus does on REFER, what its roster says, what a
 * driver without the conference event package knows), not from the
 * reconciler's rules. Rooms hold participants; a link is two entries with
 * one Call-ID; an MCU may name the far end of a link by its address of
 * record instead of the room; an MCU without the event package shows only
 * what the driver did, including links that dropped by themselves since.
 */

import type {
  Action,
  DesiredSession,
  EndpointDirectory,
  Observed,
  ObservedEntry,
  ObservedRoom,
  RoomState,
} from '../../src/cascade/index.js';
import { roomKey } from '../../src/cascade/index.js';
import type { Plan } from '../../src/planner/index.js';

export interface WorldMcu {
  up: boolean;
  since: number;
  /** Serves the conference event package. */
  reports: boolean;
  /** Names the far end of a link it was called on by the caller's address of record (sip:conf@host), if it reports. */
  namesByAddress: boolean;
  /** Refuses every link dialled to it (a full MCU: 486). */
  busy: boolean;
}

interface WorldRoom {
  readonly mcu: string;
  readonly key: string;
  readonly host: string;
  /** What the MCU has. */
  readonly entries: Map<string, ObservedEntry>;
  /** What a driver without the event package learned from its own successful commands. */
  readonly learned: Map<string, ObservedEntry>;
  opened: boolean;
  /** An open in flight: its control dialog is up (`ObservedRoom.established`), its roster not in yet. */
  opening?: boolean;
  /** When the MCU last reported the roster, on the count of the entries' `gen` (absent: unknown). */
  reportedAt?: number;
}

export class World {
  readonly mcus = new Map<string, WorldMcu>();
  readonly rooms = new Map<string, WorldRoom>();
  /** Layouts the MCUs were told: room key -> output entity -> source entity. */
  readonly screens = new Map<string, Map<string, string>>();
  readonly finished = new Set<string>();
  #calls = 0;
  #gens = 0;

  addMcu(id: string, o: Partial<WorldMcu> = {}): void {
    this.mcus.set(id, { up: true, since: 0, reports: true, namesByAddress: false, busy: false, ...o });
  }

  addRoom(mcu: string, uri: string): void {
    const key = roomKey(uri);
    const host = key.slice(key.lastIndexOf('@') + 1);
    this.rooms.set(key, { mcu, key, host, entries: new Map(), learned: new Map(), opened: false });
  }

  room(uri: string): WorldRoom {
    const r = this.rooms.get(roomKey(uri));
    if (r === undefined) throw new Error(`no room ${uri}`);
    return r;
  }

  #entry(entity: string, kind: 'endpoint' | 'link', callId?: string): ObservedEntry {
    return { entity, kind, status: 'connected', gen: ++this.#gens, ...(callId === undefined ? {} : { callId }) };
  }

  /** Join two rooms with a link, as if `from`'s focus had dialled `to` (used for set-up and for actions). */
  link(from: string, to: string): void {
    const a = this.room(from);
    const b = this.room(to);
    const callId = `call-${++this.#calls}`;
    a.entries.set(b.key, this.#entry(b.key, 'link', callId));
    // Only an MCU that reports its roster can name a link otherwise: for one without the event package the
    // reconciler has nothing but the room URI to name it by (docs/cascade.md).
    const callee = this.mcus.get(b.mcu)!;
    const callerName = callee.namesByAddress && callee.reports ? `sip:conf@${a.host}` : a.key;
    b.entries.set(callerName, this.#entry(callerName, 'link', callId));
  }

  /** A link drops by itself (a BYE from one MCU): both MCUs lose it; drivers without events do not notice. */
  drop(from: string, to: string): boolean {
    const a = this.room(from);
    const b = this.room(to);
    const atA = a.entries.get(b.key);
    if (atA === undefined) return false;
    a.entries.delete(b.key);
    for (const [k, e] of b.entries) if (e.callId === atA.callId) b.entries.delete(k);
    return true;
  }

  joinEndpoint(roomUri: string, ep: string): void {
    const r = this.room(roomUri);
    r.entries.set(roomKey(ep), this.#entry(roomKey(ep), 'endpoint'));
  }

  observed(now: number): Observed {
    const mcus = new Map([...this.mcus].map(([id, m]) => [id, { up: m.up, since: m.since }]));
    const rooms = new Map<string, ObservedRoom>();
    for (const r of this.rooms.values()) {
      const m = this.mcus.get(r.mcu)!;
      const opening = !r.opened && r.opening === true && m.up;
      const state: RoomState = opening ? 'opening' : !r.opened ? 'closed' : m.up ? 'open' : 'down';
      // Opening, the room is there but its roster is not known yet.
      const roster = opening ? new Map() : new Map(m.reports ? r.entries : r.learned);
      rooms.set(r.key, {
        state,
        reports: m.reports,
        roster,
        established: state === 'open' || opening,
        ...(r.reportedAt === undefined ? {} : { reportedAt: r.reportedAt }),
      });
    }
    return { now, mcus, rooms };
  }

  /** An action has started: an open's control dialog is up at once, its roster comes when it is applied. */
  start(a: Action): void {
    if (a.kind === 'open') this.room(a.room).opening = true;
  }

  /** Carry an action out as the MCUs would; throws (a failed command) when they would refuse it. */
  apply(a: Action): void {
    switch (a.kind) {
      case 'open': {
        const r = this.room(a.room);
        r.opening = false;
        if (!this.mcus.get(r.mcu)!.up) throw new Error('MCU down');
        r.opened = true;
        return;
      }
      case 'dial-link': {
        const p = this.room(a.room);
        const c = this.room(a.target);
        this.#upOrThrow(p.mcu);
        if (a.replace !== undefined) this.#hangUp(p, a.replace);
        if (a.replaceAtChild !== undefined) {
          this.#upOrThrow(c.mcu);
          this.#hangUp(c, a.replaceAtChild);
        }
        if (p.entries.get(c.key)?.status === 'connected') {
          this.#learn(p, c.key);
          return;
        }
        this.#upOrThrow(c.mcu);
        if (this.mcus.get(c.mcu)!.busy) throw new Error('486 Busy Here');
        this.link(a.room, a.target);
        this.#learn(p, c.key);
        return;
      }
      case 'hang-up-link': {
        const r = this.room(a.room);
        this.#upOrThrow(r.mcu);
        this.#hangUp(r, a.target);
        return;
      }
      case 'dial-participant': {
        const r = this.room(a.room);
        this.#upOrThrow(r.mcu);
        if (!r.entries.has(roomKey(a.endpoint))) this.joinEndpoint(a.room, a.endpoint);
        this.#learn(r, roomKey(a.endpoint));
        return;
      }
      case 'hang-up-participant': {
        const r = this.room(a.room);
        this.#upOrThrow(r.mcu);
        r.entries.delete(roomKey(a.endpoint));
        r.learned.delete(roomKey(a.endpoint));
        return;
      }
      case 'layout': {
        const r = this.room(a.room);
        this.#upOrThrow(r.mcu);
        if (!r.entries.has(a.output) || !r.entries.has(a.source)) throw new Error('404 unknown connection');
        const s = this.screens.get(r.key) ?? new Map<string, string>();
        this.screens.set(r.key, s);
        s.set(a.output, a.source);
        return;
      }
      case 'replan':
        throw new Error('the world model does not re-plan');
      case 'finish':
        this.finished.add(a.session);
        return;
    }
  }

  #upOrThrow(mcu: string): void {
    if (!this.mcus.get(mcu)!.up) throw new Error(`MCU ${mcu} down`);
  }

  #learn(r: WorldRoom, entity: string): void {
    const e = r.entries.get(entity);
    if (e !== undefined) r.learned.set(entity, e);
  }

  /** RFC 4579 REFER with method=BYE: the focus hangs that participant up; a link ends at both MCUs. */
  #hangUp(r: WorldRoom, entity: string): void {
    const e = r.entries.get(entity);
    r.learned.delete(entity);
    if (e === undefined) return;
    r.entries.delete(entity);
    if (e.kind !== 'link') return;
    for (const other of this.rooms.values())
      for (const [k, x] of other.entries) if (x.callId === e.callId) other.entries.delete(k);
  }

  /** Is the link between two rooms really there, at both MCUs, on one call? */
  linked(parentUri: string, childUri: string): boolean {
    const p = this.room(parentUri);
    const c = this.room(childUri);
    const atP = p.entries.get(c.key);
    return atP !== undefined && [...c.entries.values()].some((e) => e.callId === atP.callId);
  }

  /** Links present in a room (at the MCU). */
  linkCount(uri: string): number {
    return [...this.room(uri).entries.values()].filter((e) => e.kind === 'link').length;
  }
}

/** A fake plan object with what the reconciler reads (tests build trees by hand). */
export function fakePlan(
  root: string,
  parent: Readonly<Record<string, string>>,
  endpointsOn: Readonly<Record<string, readonly string[]>>,
  chair: string | null,
): Plan {
  const ids = [root, ...Object.keys(parent)];
  const depth = (m: string): number => (parent[m] === undefined ? 0 : 1 + depth(parent[m]!));
  const mcus = ids
    .map((id) => ({
      id,
      parent: parent[id] ?? null,
      depth: depth(id),
      endpoints: [...(endpointsOn[id] ?? [])].sort(),
      children: ids.filter((c) => parent[c] === id).sort(),
      ports: { used: 0, capacity: 0 },
      cascadePorts: { used: 0, capacity: 0 },
    }))
    .sort((a, b) => a.depth - b.depth || (a.id < b.id ? -1 : 1));
  const assignments: Record<string, string> = {};
  for (const [m, eps] of Object.entries(endpointsOn)) for (const e of eps) assignments[e] = m;
  return {
    chair,
    endpoints: Object.keys(assignments).sort(),
    assignments,
    relays: {},
    links: { ...parent },
    mcus,
  } as unknown as Plan;
}

/** Endpoint URIs `sip:ID@ep.invalid`; the level is the number after `L` in the id (e.g. a-L1), else 9. */
export const directory: EndpointDirectory = {
  uri: (id) => (id.startsWith('nouri') ? undefined : `sip:${id}@ep.invalid`),
  levelRank: (id) => Number(/-L(\d)/.exec(id)?.[1] ?? 9),
};

export type { DesiredSession };
