import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import t from 'tap';
import { ConfigError, configSchema, loadConfigFile, parseConfig, type Violation } from '../../src/config/index.js';
import { baseConfig, type Mutable, toYaml } from './fixtures.js';

function violationsOf(text: string): Violation[] {
  try {
    parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError && err.code === 'CFG_ERR_INVALID') {
      return (err.details as { violations: Violation[] }).violations;
    }
    throw err;
  }
  throw new Error('expected CFG_ERR_INVALID, but the config was accepted');
}

t.test('the base fixture, the example and the demo are valid', async (t) => {
  const c = parseConfig(toYaml(baseConfig()));
  t.equal(c.inventory.levels.length, 4, 'default levels: central, province, district, commune');
  t.same(
    c.inventory.levels.map((l) => l.id),
    ['central', 'province', 'district', 'commune'],
  );
  t.ok(await loadConfigFile('config/example.yaml'));
  const demo = await loadConfigFile('config/demo.yaml');
  t.equal(demo.inventory.mcus.filter((m) => m.role === 'master').length, 1);
});

t.test('defaults are filled in and the result is deeply frozen', async (t) => {
  const c = parseConfig(toYaml(baseConfig()), { cwd: '/srv', env: {} });
  t.equal(c.daemon.shutdownTimeoutMs, 10_000);
  t.equal(c.daemon.store.path, '/tmp/cascaded-test/cascaded.db');
  t.equal(c.daemon.api.port, 8443);
  t.same(c.daemon.sip.listen, [{ transport: 'udp', host: '127.0.0.1', port: 5060 }]);
  t.same(c.daemon.mcu, {
    healthIntervalMs: 5_000,
    healthFailures: 3,
    requestTimeoutMs: 5_000,
    connectTimeoutMs: 10_000,
    dialTimeoutMs: 30_000,
    sessionExpires: 1800,
    qualityReports: false,
  });
  const qb = c.inventory.mcus.find((m) => m.id === 'qb-vnpt-1')!;
  t.equal(qb.capacity.cascadePorts, 0);
  t.equal(qb.driver, 'sip-msml');
  t.equal(c.inventory.endpoints[0]!.connection, 'direct');
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.inventory.mcus[0]!.capacity) && Object.isFrozen(c.daemon.sip.listen));
  t.throws(() => {
    (c.inventory.mcus as unknown as unknown[]).push({});
  });
});

t.test('stateDir falls back to STATE_DIRECTORY, then ./var', async (t) => {
  const o = baseConfig();
  delete o.daemon.stateDir;
  t.equal(
    parseConfig(toYaml(o), { cwd: '/srv', env: { STATE_DIRECTORY: '/var/lib/cascaded:/x' } }).daemon.stateDir,
    '/var/lib/cascaded',
  );
  t.equal(parseConfig(toYaml(o), { cwd: '/srv', env: {} }).daemon.stateDir, '/srv/var');
});

t.test('a 3-level inventory (after the 2025 reform) loads', async (t) => {
  const o = baseConfig();
  o.levels = [
    { id: 'central', name: 'Trung ương' },
    { id: 'province', name: 'Tỉnh' },
    { id: 'commune', name: 'Xã' },
  ];
  o.endpoints = o.endpoints.filter((e: { level: string }) => e.level !== 'district');
  const c = parseConfig(toYaml(o));
  t.same(
    c.inventory.levels.map((l) => l.id),
    ['central', 'province', 'commune'],
  );
  // ...and a district endpoint in it is an unknown level.
  const bad = baseConfig();
  bad.levels = o.levels;
  t.match(violationsOf(toYaml(bad)), [{ path: '/endpoints/2/level', message: 'unknown level "district"' }]);
});

t.test('allowed parents may form cycles, the master may have parents: the root is per session', async (t) => {
  const o = baseConfig();
  o.mcus[0].parents = ['nb'];
  o.mcus[1].parents = ['master', 'qb-vnpt-1'];
  o.mcus[2].parents = ['master', 'nb'];
  const c = parseConfig(toYaml(o));
  t.same(c.inventory.mcus[1]!.parents, ['master', 'qb-vnpt-1']);
  t.same(c.warnings, [], 'a cycle is not even a warning');
});

t.test('an endpoint with no candidate MCU loads with a warning (it cannot join a session)', async (t) => {
  const o = baseConfig();
  o.endpoints[2].mcus = [];
  delete o.endpoints[3].mcus;
  const c = parseConfig(toYaml(o), { source: 'w.yaml' });
  t.same(c.inventory.endpoints[2]!.mcus, []);
  t.match(c.warnings, [
    { path: '/endpoints/2/mcus', message: /no candidate MCU: it cannot join any session/, line: Number },
    { path: '/endpoints/3/mcus', message: /no candidate MCU/, line: Number },
  ]);
  t.equal(c.warnings.length, 2);
  t.ok(Object.isFrozen(c.warnings) && Object.isFrozen(c.warnings[0]));
  t.same(parseConfig(toYaml(baseConfig())).warnings, [], 'none on a clean file');
});

/** [what, mutate, expected violations (path and message pattern)] */
const cases: [string, (o: Mutable) => void, [string, RegExp][]][] = [
  ['port count below 1', (o) => (o.mcus[1].capacity.ports = 0), [['/mcus/1/capacity/ports', /must be >= 1/]]],
  [
    'port count not an integer',
    (o) => (o.mcus[1].capacity.ports = 'many'),
    [['/mcus/1/capacity/ports', /must be integer/]],
  ],
  [
    'unknown MCU in a candidate list',
    (o) => (o.endpoints[3].mcus = ['nb', 'qb-vnpt']),
    [['/endpoints/3/mcus/1', /unknown MCU "qb-vnpt"/]],
  ],
  ['unknown level', (o) => (o.endpoints[2].level = 'ward'), [['/endpoints/2/level', /unknown level "ward"/]]],
  [
    'unknown province',
    (o) => (o.endpoints[2].province = 'atlantis'),
    [['/endpoints/2/province', /unknown province "atlantis"/]],
  ],
  [
    'unknown operator of an MCU',
    (o) => (o.mcus[1].operator = 'nobody'),
    [['/mcus/1/operator', /unknown operator "nobody"/]],
  ],
  ['unknown parent MCU', (o) => (o.mcus[1].parents = ['ghost']), [['/mcus/1/parents/0', /unknown MCU "ghost"/]]],
  [
    'duplicate MCU id',
    (o) => o.mcus.push({ ...o.mcus[1], sip: ['sip:conf@127.0.0.9'] }),
    [['/mcus/3/id', /duplicate id "nb" \(first at \/mcus\/1\)/]],
  ],
  ['duplicate endpoint id', (o) => (o.endpoints[3].id = 'nb-h1'), [['/endpoints/3/id', /duplicate id "nb-h1"/]]],
  ['no master', (o) => (o.mcus[0].role = 'slave'), [['/mcus', /no MCU has role "master"/]]],
  [
    'two masters',
    (o) => {
      o.mcus[1].role = 'master';
      o.mcus[1].parents = [];
    },
    [['/mcus/1/role', /a second master/]],
  ],
  [
    'an MCU cascading into itself',
    (o) => (o.mcus[1].parents = ['nb']),
    [['/mcus/1/parents/0', /cannot cascade into itself/]],
  ],
  [
    'relay endpoint without relayVia',
    (o) => delete o.endpoints[5].relayVia,
    [['/endpoints/5/relayVia', /is required/]],
  ],
  [
    'relay through an unknown endpoint',
    (o) => (o.endpoints[5].relayVia = 'nope'),
    [['/endpoints/5/relayVia', /unknown endpoint "nope"/]],
  ],
  [
    'relay through a relay endpoint',
    (o) => o.endpoints.push({ id: 'nb-x10', name: 'x', level: 'commune', connection: 'relay', relayVia: 'nb-x9' }),
    [['/endpoints/6/relayVia', /itself relayed/]],
  ],
  ['relay endpoint with MCUs', (o) => (o.endpoints[5].mcus = ['nb']), [['/endpoints/5/mcus', /takes no MCU port/]]],
  ['via-operator without operator', (o) => delete o.endpoints[4].operator, [['/endpoints/4/operator', /is required/]]],
  [
    'via-operator preferring another MCU',
    (o) => (o.endpoints[4].mcus = ['nb', 'qb-vnpt-1']),
    [['/endpoints/4/mcus/0', /must prefer an MCU of its operator "vnpt"/]],
  ],
  [
    'operator on a direct endpoint',
    (o) => (o.endpoints[2].operator = 'vnpt'),
    [['/endpoints/2/operator', /only to via-operator/]],
  ],
  [
    'unknown property with a hint',
    (o) => (o.endpoints[2].candidates = ['nb']),
    [['/endpoints/2/candidates', /unknown property \(did you mean "mcus"\?\)/]],
  ],
  [
    'misspelt property',
    (o) => (o.mcus[0].capacity.cascadeport = 3),
    [['/mcus/0/capacity/cascadeport', /did you mean "cascadePorts"/]],
  ],
  ['missing required property', (o) => delete o.mcus[1].sip, [['/mcus/1/sip', /is required/]]],
  [
    'bad enum',
    (o) => (o.endpoints[2].connection = 'satellite'),
    [['/endpoints/2/connection', /must be one of "direct", "via-operator", "relay"/]],
  ],
  ['bad id', (o) => (o.endpoints[2].id = 'Bad Id'), [['/endpoints/2/id', /must be an id/]]],
  ['bad SIP URI', (o) => (o.mcus[1].sip = ['http://x']), [['/mcus/1/sip/0', /must match/]]],
  [
    'duplicate SIP URI',
    (o) => (o.mcus[2].sip = ['sip:conf@127.0.0.3']),
    [['/mcus/2/sip/0', /already used by \/mcus\/1/]],
  ],
  [
    'duplicate candidate',
    (o) => (o.endpoints[3].mcus = ['nb', 'nb']),
    [['/endpoints/3/mcus/1', /duplicate of item 0/]],
  ],
  ['bad daemon setting', (o) => (o.daemon.logLevel = 'loud'), [['/daemon/logLevel', /must be one of/]]],
  ['renamed daemon key', (o) => (o.daemon.log_level = 'info'), [['/daemon/log_level', /did you mean "logLevel"/]]],
  [
    'health interval too short',
    (o) => (o.daemon.mcu = { healthIntervalMs: 10 }),
    [['/daemon/mcu/healthIntervalMs', /must be >= 500/]],
  ],
  [
    'conferences: a template without {room}',
    (o) => (o.mcus[1].conferences = { template: 'sip:room@127.0.0.3', rooms: { from: 1, to: 3 } }),
    [['/mcus/1/conferences/template', /must contain \{room\}/]],
  ],
  [
    'conferences: a template that gives no SIP URI',
    (o) => (o.mcus[1].conferences = { template: 'http://x/{room}', rooms: { from: 1, to: 3 } }),
    [['/mcus/1/conferences/template', /must give a SIP URI/]],
  ],
  [
    'conferences: a range backwards',
    (o) => (o.mcus[1].conferences = { template: 'sip:{room}@127.0.0.3', rooms: { from: 9, to: 3 } }),
    [['/mcus/1/conferences/rooms', /from \(9\) is after to \(3\)/]],
  ],
  [
    'conferences: a range too large',
    (o) => (o.mcus[1].conferences = { template: 'sip:{room}@127.0.0.3', rooms: { from: 1, to: 5000 } }),
    [['/mcus/1/conferences/rooms', /5000 rooms: at most 1000 per MCU/]],
  ],
  [
    'conferences: a template without rooms',
    (o) => (o.mcus[1].conferences = { template: 'sip:{room}@127.0.0.3' }),
    [['/mcus/1/conferences/rooms', /is required with a template/]],
  ],
  [
    'conferences: both forms',
    (o) =>
      (o.mcus[1].conferences = {
        template: 'sip:{room}@127.0.0.3',
        rooms: { from: 1, to: 2 },
        uris: ['sip:a@127.0.0.3'],
      }),
    [['/mcus/1/conferences', /either a template with rooms, or uris, not both/]],
  ],
  ['conferences: empty', (o) => (o.mcus[1].conferences = {}), [['/mcus/1/conferences', /needs a template/]]],
  [
    'conferences: a room number not an integer',
    (o) => (o.mcus[1].conferences = { template: 'sip:{room}@127.0.0.3', rooms: { from: 1.5, to: 3 } }),
    [['/mcus/1/conferences/rooms/from', /must be integer/]],
  ],
  [
    'conferences: a list with a bad URI and a duplicate',
    (o) => (o.mcus[1].conferences = { uris: ['sip:a@127.0.0.3', 'mailto:x', 'sip:a@127.0.0.3'] }),
    [
      ['/mcus/1/conferences/uris/1', /must match/],
      ['/mcus/1/conferences/uris/2', /duplicate of item 0/],
    ],
  ],
  [
    'conferences: two MCUs share rooms (reported once per pair, spelled differently)',
    (o) => {
      o.mcus[1].conferences = { template: 'sip:{room}@127.0.0.9:5060', rooms: { from: 10, to: 20 } };
      o.mcus[2].conferences = { template: 'sip:{room}@127.0.0.9', rooms: { from: 15, to: 30 } };
    },
    [['/mcus/2/conferences/template', /conference URI "sip:15@127.0.0.9" is already used by \/mcus\/1/]],
  ],
  [
    "conferences: a room that is another MCU's address",
    (o) => (o.mcus[2].conferences = { uris: ['sip:a@127.0.0.4', 'sip:conf@127.0.0.3:5060;transport=udp'] }),
    [['/mcus/2/conferences/uris/1', /is already used by \/mcus\/1/]],
  ],
  [
    'conferences: unknown key with a hint',
    (o) => (o.mcus[1].conferences = { template: 'sip:{room}@127.0.0.3', room: { from: 1, to: 2 } }),
    [
      ['/mcus/1/conferences/room', /did you mean "rooms"/],
      ['/mcus/1/conferences/rooms', /is required with a template/],
    ],
  ],
  ['wrong version', (o) => (o.version = 2), [['/version', /must be 1/]]],
  [
    'province operator without province',
    (o) => delete o.operators[1].province,
    [['/operators/1/province', /is required/]],
  ],
];

for (const [what, mutate, expected] of cases) {
  t.test(`violation: ${what}`, async (t) => {
    const o = baseConfig();
    mutate(o);
    const vs = violationsOf(toYaml(o));
    t.equal(vs.length, expected.length, `exactly ${expected.length}: ${JSON.stringify(vs)}`);
    for (const [path, message] of expected) {
      t.ok(
        vs.some((v) => new RegExp(`^${path}$`).test(v.path) && message.test(v.message)),
        `${path}: ${message} in ${JSON.stringify(vs)}`,
      );
    }
    for (const v of vs) t.type(v.line, 'number', `${v.path} has a line number`);
  });
}

t.test('one error lists every violation, in file order, with line numbers', async (t) => {
  const o = baseConfig();
  o.mcus[1].capacity.ports = 0;
  o.endpoints[3].mcus = ['nb', 'qb-vnpt'];
  o.endpoints[2].level = 'ward';
  const text = toYaml(o);
  const err = t.throws(() => parseConfig(text, { source: 'x.yaml' })) as unknown as ConfigError;
  t.equal(err.code, 'CFG_ERR_INVALID');
  t.equal(err.status, 400);
  const lines = err.message.split('\n');
  t.equal(lines[0], 'x.yaml: 3 problems');
  t.match(lines[1], /^ {2}\/mcus\/1\/capacity\/ports \(line \d+:\d+\): must be >= 1$/);
  t.match(lines[2], /^ {2}\/endpoints\/2\/level \(line \d+:\d+\): unknown level "ward"$/);
  t.match(lines[3], /^ {2}\/endpoints\/3\/mcus\/1 \(line \d+:\d+\): unknown MCU "qb-vnpt"$/);
  const vs = (err.details as { violations: Violation[] }).violations;
  const portsLine = text.split('\n').findIndex((l) => /ports: 0/.test(l)) + 1;
  t.equal(vs[0]!.line, portsLine, 'the line points at the offending value');
});

t.test('malformed YAML is CFG_ERR_YAML with a line', async (t) => {
  for (const text of ['mcus: [a, b\nendpoints: {', 'a: 1\na: 2\n', 'mcus:\n  - id: x\n   name: y\n']) {
    const err = t.throws(() => parseConfig(text)) as unknown as ConfigError;
    t.equal(err.code, 'CFG_ERR_YAML', text);
    t.type((err.details as { violations: Violation[] }).violations[0]!.line, 'number');
  }
});

t.test('not a mapping, empty, or JSON', async (t) => {
  t.match(violationsOf('- 1\n- 2\n'), [{ path: '', message: 'must be object' }]);
  t.match(violationsOf(''), [{ path: '/endpoints' }, { path: '/mcus' }, { path: '/operators' }]);
  t.ok(parseConfig(JSON.stringify(baseConfig())), 'JSON is YAML too');
});

t.test('unreadable file is CFG_ERR_READ', async (t) => {
  await t.rejects(loadConfigFile('/nonexistent/cascaded.yaml'), { code: 'CFG_ERR_READ' });
});

t.test('config/cascaded.schema.json is the schema of src/config/schema.ts (npm run gen:schema)', async (t) => {
  t.same(JSON.parse(readFileSync('config/cascaded.schema.json', 'utf8')), configSchema);
});

t.test('the schema is a valid JSON Schema (the loader compiles it without checking, src/config/load.ts)', async (t) => {
  const ajv = new Ajv({ strict: true });
  t.equal(ajv.validateSchema(configSchema), true, JSON.stringify(ajv.errors));
  t.equal(ajv.validateSchema({ type: 'object', properties: { a: { type: 'nope' } } }), false, 'and the check can fail');
});

t.test('daemon.sip.limits: the transport caps, each checked with its path', async (t) => {
  const o = baseConfig() as Mutable;
  o.daemon = { sip: { limits: { maxConnections: 64, maxConnectionsPerAddress: 4, idleTimeoutMs: 30_000 } } };
  const c = parseConfig(toYaml(o));
  t.same(c.daemon.sip.limits, { maxConnections: 64, maxConnectionsPerAddress: 4, idleTimeoutMs: 30_000 });
  t.same(parseConfig(toYaml(baseConfig())).daemon.sip.limits, {}, "absent: the stack's defaults");
  o.daemon = { sip: { limits: { maxConnections: 0, maxHeaderSize: 10, maxQueuedBytes: 'lots', noSuchCap: 1 } } };
  const vs = violationsOf(toYaml(o)).map((v) => v.path);
  for (const path of [
    '/daemon/sip/limits/maxConnections',
    '/daemon/sip/limits/maxHeaderSize',
    '/daemon/sip/limits/maxQueuedBytes',
    '/daemon/sip/limits/noSuchCap',
  ])
    t.ok(vs.includes(path), `${path} is named (${vs.join(', ')})`);
});
