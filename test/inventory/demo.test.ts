import { readFileSync } from 'node:fs';
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { COMMUNES, DEMO_SEED, DISTRICTS, generateDemoYaml } from '../../src/inventory/demo.js';

const text = generateDemoYaml(DEMO_SEED);
const { inventory: inv } = parseConfig(text, { source: 'demo' });

t.test('the generator is deterministic and config/demo.yaml is its output', async (t) => {
  t.equal(generateDemoYaml(DEMO_SEED), text, 'same seed, same bytes');
  t.not(generateDemoYaml(DEMO_SEED + 1), text, 'another seed, another network');
  t.equal(readFileSync('config/demo.yaml', 'utf8'), text, 'committed demo.yaml is current: run npm run gen:demo');
});

t.test('national 2021 scale', async (t) => {
  const byLevel = (l: string) => inv.endpoints.filter((e) => e.level === l).length;
  t.equal(inv.provinces.length, 63);
  t.ok(
    inv.provinces.some((p) => p.name === 'Thừa Thiên Huế'),
    'real province names',
  );
  t.equal(byLevel('district'), DISTRICTS);
  t.equal(byLevel('commune'), COMMUNES);
  t.equal(byLevel('province'), 63);
  t.ok(byLevel('central') >= 20);
  t.ok(inv.endpoints.length >= 11_300 && inv.endpoints.length <= 11_500, `${inv.endpoints.length} endpoints`);
  t.equal(inv.mcus.filter((m) => m.role === 'master').length, 1);
  t.ok(inv.mcus.length >= 70 && inv.mcus.length <= 130, `${inv.mcus.length} MCUs`);
  for (const op of ['vnpt', 'viettel'])
    t.ok(
      inv.mcus.some((m) => m.operator === op),
      `${op} MCUs`,
    );
});

t.test('all three connection models are present', async (t) => {
  for (const model of ['direct', 'via-operator', 'relay'] as const) {
    t.ok(inv.endpoints.filter((e) => e.connection === model).length > 0, model);
  }
});

t.test('capacities force second-level cascades', async (t) => {
  const byId = new Map(inv.mcus.map((m) => [m.id, m]));
  // A provincial MCU too small for the endpoints that prefer it, whose overflow
  // can only go to an MCU that cascades into it and not into the master.
  const tooSmall = inv.mcus.filter((m) => {
    const wanting = inv.endpoints.filter((e) => e.mcus.includes(m.id)).length;
    return m.role === 'slave' && wanting > m.capacity.ports;
  });
  t.ok(tooSmall.length > 0, 'some MCU is too small for all its candidate endpoints');
  const deep = inv.mcus.filter((m) => m.parents.length > 0 && m.parents.every((p) => byId.get(p)?.role === 'slave'));
  t.ok(deep.length > 0, 'some MCU can only cascade under a slave (depth 2)');
  for (const m of deep) {
    const onlyThere = inv.endpoints.filter(
      (e) => e.mcus.length > 0 && e.mcus.every((c) => c === m.id || c === m.parents[0]),
    );
    const parent = byId.get(m.parents[0]!)!;
    t.ok(onlyThere.length > parent.capacity.ports - 2, `${m.id}: ${parent.id} cannot hold its endpoints alone`);
  }
});

t.test('every demo MCU has its own range of meeting rooms on its address', async (t) => {
  const { conferenceUris } = await import('../../src/inventory/index.js');
  const seen = new Set<string>();
  for (const m of inv.mcus) {
    const rooms = conferenceUris(m);
    t.ok(rooms.length >= 16, `${m.id}: ${rooms.length} rooms`);
    const host = /@([^;]+)$/.exec(m.sip[0]!)![1];
    t.ok(
      rooms.every((r) => r.endsWith(`@${host}`) && !r.startsWith('sip:conf@')),
      `${m.id}: rooms on the MCU's own address, apart from its lobby`,
    );
    for (const r of rooms) seen.add(r);
  }
  t.equal(
    seen.size,
    inv.mcus.reduce((n, m) => n + conferenceUris(m).length, 0),
    'no room shared',
  );
});
