/**
 * Where the simulated endpoints sit, read from the inventory alone: each
 * endpoint, in inventory order, joins its first candidate MCU that has room.
 * The cascade planner is deliberately not used: the simulated network is the
 * world the planner and the drivers are tested in, so it must not be built by
 * them.
 *
 * "Room" keeps back the ports an MCU's cascade links need (a link takes one
 * port at each end, docs/planner.md): one per child MCU it accepts
 * (`cascadePorts`) and one for its own link to a parent when it has parents.
 * Without that reserve an MCU filled with rooms could not take part in any
 * cascade.
 */
import type { Inventory, Mcu } from '../inventory/index.js';

export interface Placement {
  /** Endpoint id -> MCU id. */
  readonly assignments: Readonly<Record<string, string>>;
  /** Endpoints (not relayed) none of whose candidate MCUs had room, in inventory order. */
  readonly unplaced: readonly string[];
}

/** Ports of an MCU left for endpoints once its cascade links are provided for. */
export function endpointRoom(m: Mcu): number {
  return Math.max(0, m.capacity.ports - m.capacity.cascadePorts - (m.parents.length > 0 ? 1 : 0));
}

export function placeFromInventory(inv: Inventory): Placement {
  const room = new Map(inv.mcus.map((m) => [m.id, endpointRoom(m)]));
  const assignments: Record<string, string> = {};
  const unplaced: string[] = [];
  for (const e of inv.endpoints) {
    // A relayed room has no call of its own: the AV matrix carries it (docs/planner.md).
    if (e.connection === 'relay') continue;
    const home = e.mcus.find((id) => (room.get(id) ?? 0) > 0);
    if (home === undefined) {
      unplaced.push(e.id);
      continue;
    }
    room.set(home, room.get(home)! - 1);
    assignments[e.id] = home;
  }
  return { assignments, unplaced };
}
