/**
 * The display model end to end: a three-MCU network (master <- province <-
 * operator: two cascade levels) driven only through sip-msml drivers over
 * real sockets; each case applies driver operations, then checks what
 * endpoints see and hear, following the live cascade links.
 */
import t from 'tap';
import type { Inventory } from '../../src/inventory/types.js';
import { createSipMsmlDriver, type LayoutName, type McuDriver } from '../../src/mcu/index.js';
import { createSimNetwork, type SimNetwork } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { waitFor } from './helpers.js';

t.setTimeout(60_000);

const FAST = { t1: 50, t2: 400, t4: 500 };

const mcu = (id: string, host: string, parents: string[]) => ({
  id,
  name: id,
  operator: 'op',
  role: parents.length === 0 ? ('master' as const) : ('slave' as const),
  driver: 'sip-msml' as const,
  sip: [`sip:conf@${host}:0`],
  vendor: 'sim',
  capacity: { ports: 10, cascadePorts: 2 },
  parents,
});
const ep = (id: string, mcus: string[]) => ({
  id,
  name: id,
  level: 'x',
  mcus,
  connection: 'direct' as const,
  vcs: 'sim',
});

const inventory: Inventory = {
  levels: [{ id: 'x', name: 'x' }],
  provinces: [],
  operators: [{ id: 'op', name: 'op', kind: 'central' }],
  mcus: [mcu('M', '127.0.0.1', []), mcu('P', '127.0.0.1', ['M']), mcu('V', '127.0.0.1', ['P'])],
  endpoints: [ep('chair', ['M']), ep('ubnd', ['M']), ep('h1', ['P']), ep('x1', ['V']), ep('x2', ['V'])],
};

type Op =
  | ['layout', string, string, LayoutName]
  | ['show', string, string, number, string]
  | ['mute' | 'unmute', string, string]
  | ['drop', string, string];

interface Case {
  readonly name: string;
  readonly ops: readonly Op[];
  readonly sees?: Readonly<Record<string, readonly string[]>>;
  readonly hears?: Readonly<Record<string, readonly string[]>>;
}

// Names in ops: an MCU id as a participant means the cascade link to that MCU; anything else is an endpoint id.
const cases: Case[] = [
  {
    name: 'nothing set: empty screens, everyone hears everyone else across both levels',
    ops: [],
    sees: { chair: [], x1: [] },
    hears: { chair: ['h1', 'ubnd', 'x1', 'x2'], x1: ['chair', 'h1', 'ubnd', 'x2'], h1: ['chair', 'ubnd', 'x1', 'x2'] },
  },
  {
    name: 'one level: the chair sees a province endpoint through the P->M link',
    ops: [
      ['show', 'P', 'M', 1, 'h1'],
      ['show', 'M', 'chair', 1, 'P'],
    ],
    sees: { chair: ['h1'], ubnd: [] },
  },
  {
    name: 'two levels: the chair sees a commune endpoint through V->P->M',
    ops: [
      ['show', 'V', 'P', 1, 'x1'],
      ['show', 'P', 'M', 1, 'V'],
    ],
    sees: { chair: ['x1'] },
  },
  {
    name: '2x2 on the master mixes a local endpoint and the cascaded one',
    ops: [
      ['layout', 'M', 'chair', '2x2'],
      ['show', 'M', 'chair', 1, 'ubnd'],
      ['show', 'M', 'chair', 2, 'P'],
    ],
    sees: { chair: ['ubnd', 'x1'] },
  },
  {
    name: 'a 2x2 on the province link nests inside the chair 2x2',
    ops: [
      ['layout', 'P', 'M', '2x2'],
      ['show', 'P', 'M', 1, 'h1'],
      ['show', 'P', 'M', 2, 'V'],
      ['show', 'V', 'P', 1, 'x2'],
    ],
    sees: { chair: ['ubnd', 'h1', 'x2'] },
  },
  {
    name: 'downstream: a commune endpoint sees the chair two levels up',
    ops: [
      ['show', 'M', 'P', 1, 'chair'],
      ['show', 'P', 'V', 1, 'M'],
      ['show', 'V', 'x2', 1, 'P'],
    ],
    sees: { x2: ['chair'], x1: [] },
  },
  {
    name: 'muting a commune endpoint on its MCU silences it everywhere',
    ops: [['mute', 'V', 'x2']],
    hears: { chair: ['h1', 'ubnd', 'x1'], x1: ['chair', 'h1', 'ubnd'], h1: ['chair', 'ubnd', 'x1'] },
  },
  {
    name: 'muting the province link on the master: the chair hears only the master, below still hear the chair',
    ops: [['mute', 'M', 'P']],
    hears: { chair: ['ubnd'], ubnd: ['chair'], x1: ['chair', 'h1', 'ubnd'] },
  },
  {
    name: 'unmuting restores the mix',
    ops: [
      ['unmute', 'M', 'P'],
      ['unmute', 'V', 'x2'],
    ],
    hears: { chair: ['h1', 'ubnd', 'x1', 'x2'] },
  },
  {
    name: 'a dropped V-P link takes the commune pictures and sounds off the chair',
    ops: [['drop', 'V', 'P']],
    sees: { chair: ['ubnd', 'h1'], x2: [] },
    hears: { chair: ['h1', 'ubnd'], x1: ['x2'] },
  },
];

t.test('what endpoints see and hear across one and two cascade levels', async (t) => {
  const net: SimNetwork = await createSimNetwork({
    inventory,
    placement: { chair: 'M', ubnd: 'M', h1: 'P', x1: 'V', x2: 'V' },
    timers: FAST,
  });
  t.teardown(() => net.close());
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    timers: FAST,
  });
  t.teardown(() => ua.close());
  const drivers = new Map<string, McuDriver>();
  for (const id of ['M', 'P', 'V']) {
    const d = createSipMsmlDriver({ ua, mcu: { id, uri: net.mcu(id).uri }, healthIntervalMs: 1_000 });
    t.teardown(() => d.close());
    drivers.set(id, d);
  }
  await Promise.all([...drivers.values()].map((d) => d.connect()));
  // The cascade, dialed the standard way: each parent is REFERred to its child.
  await drivers.get('M')!.dialLink(net.mcu('P').uri);
  await drivers.get('P')!.dialLink(net.mcu('V').uri);
  // The child side counts a link once its 200 is ACKed.
  await waitFor(
    'both links at the child side',
    () => net.mcu('P').participants.has(net.mcu('M').uri) && net.mcu('V').participants.has(net.mcu('P').uri),
  );

  const name = (x: string) => (drivers.has(x) ? net.mcu(x).uri : net.endpointUri(x));
  for (const c of cases) {
    for (const op of c.ops) {
      const d = drivers.get(op[1])!;
      switch (op[0]) {
        case 'layout':
          await d.setLayout(name(op[2]), op[3]);
          break;
        case 'show':
          await d.showSource(name(op[2]), op[3], name(op[4]));
          await d.requestKeyframe(name(op[2]));
          break;
        case 'mute':
          await d.mute(name(op[2]));
          break;
        case 'unmute':
          await d.unmute(name(op[2]));
          break;
        case 'drop':
          await net.mcu(op[1]).dropLink(name(op[2]));
          await waitFor('the far end to drop the link', () => !net.mcu(op[2]).participants.has(net.mcu(op[1]).uri));
          break;
      }
    }
    for (const [endpoint, expected] of Object.entries(c.sees ?? {}))
      t.same(net.endpointView(endpoint).seesIds, expected, `${c.name}: ${endpoint} sees`);
    for (const [endpoint, expected] of Object.entries(c.hears ?? {}))
      t.same(net.endpointView(endpoint).hearsIds, expected, `${c.name}: ${endpoint} hears`);
  }

  const view = net.endpointView('chair');
  t.equal(view.mcu, 'M');
  t.equal(view.screen.layout, '2x2');
  t.match(view.screen.regions[1], { region: 2, source: net.mcu('P').uri, via: { mcu: 'P', layout: '2x2' } });
  t.equal(
    net.mcu('M').outputs.get(net.endpointUri('chair'))?.keyframes,
    3,
    'a keyframe after each of the 3 switches of the chair screen',
  );
  t.throws(() => net.endpointView('nobody'), { code: 'SIM_ERR_UNKNOWN_PARTICIPANT' });
  t.throws(() => net.mcu('Z'), { code: 'SIM_ERR_UNKNOWN_MCU' });
});
