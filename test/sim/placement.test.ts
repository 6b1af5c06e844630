/**
 * Placement from the inventory alone, on a small hand-written network whose
 * first candidates fill up: each endpoint on its first candidate MCU with
 * room (ports kept back for cascade links), relayed rooms on none, the rest
 * reported; then the same inventory as a running simulated network.
 */
import t from 'tap';
import type { Endpoint, Inventory, Mcu } from '../../src/inventory/index.js';
import { createSimNetwork, endpointRoom, placeFromInventory } from '../../src/sim/index.js';

t.setTimeout(30_000);

const mcu = (id: string, ports: number, cascadePorts: number, parents: string[]): Mcu => ({
  id,
  name: id,
  operator: 'op',
  role: parents.length === 0 ? 'master' : 'slave',
  driver: 'sip-msml',
  sip: ['sip:conf@127.0.0.1:0'],
  vendor: 'sim',
  capacity: { ports, cascadePorts },
  parents,
});
const ep = (id: string, mcus: string[], extra: Partial<Endpoint> = {}): Endpoint => ({
  id,
  name: `room ${id}`,
  level: 'x',
  mcus,
  connection: 'direct',
  vcs: 'sim',
  ...extra,
});

// M: 6 ports, 2 for its children's links -> room 4. A: 4 ports, 1 child link, 1 own link -> room 2.
// B: 3 ports, own link only -> room 2. C: 1 port, own link -> room 0.
const inventory: Inventory = {
  levels: [{ id: 'x', name: 'x' }],
  provinces: [],
  operators: [{ id: 'op', name: 'op', kind: 'central' }],
  mcus: [mcu('m', 6, 2, []), mcu('a', 4, 1, ['m']), mcu('b', 3, 0, ['a', 'm']), mcu('c', 1, 0, ['m'])],
  endpoints: [
    ep('e1', ['a', 'b']),
    ep('e2', ['a', 'b']),
    ep('e3', ['a', 'b']), // a is full: b
    ep('r1', [], { connection: 'relay', relayVia: 'e1' }),
    ep('e4', ['c', 'a', 'b']), // c has no room at all, a is full: b
    ep('e5', ['b', 'a']), // b full now, a full: m is no candidate -> unplaced
    ep('e6', ['c', 'm']),
    ep('e7', ['m']),
    ep('e8', ['m']),
    ep('e9', ['m']),
    ep('e10', ['m']), // m is full (4 rooms)
  ],
};

t.test('each endpoint joins its first candidate with room; links keep their ports', async (t) => {
  t.same(
    inventory.mcus.map((m) => endpointRoom(m)),
    [4, 2, 2, 0],
  );
  const p = placeFromInventory(inventory);
  t.same(p.assignments, { e1: 'a', e2: 'a', e3: 'b', e4: 'b', e6: 'm', e7: 'm', e8: 'm', e9: 'm' });
  t.same(p.unplaced, ['e5', 'e10']);
});

t.test('the simulated network seats the endpoints where the inventory says', async (t) => {
  const net = await createSimNetwork({ inventory });
  t.teardown(() => net.close());
  const seated = (id: string) => [...net.mcu(id).participants.keys()].map((e) => net.idOf(e)).sort();
  t.same(seated('a'), ['e1', 'e2']);
  t.same(seated('b'), ['e3', 'e4']);
  t.same(seated('c'), []);
  t.same(seated('m'), ['e6', 'e7', 'e8', 'e9']);
  t.same(net.unplaced, ['e5', 'e10']);
  const none = await createSimNetwork({ inventory, placement: 'none' });
  t.teardown(() => none.close());
  t.equal(
    [...none.mcus.values()].reduce((n, m) => n + m.participants.size, 0),
    0,
    "'none' seats nobody",
  );
});
