/**
 * The simulator's settings in the inventory (`mcus[].sim`): validated at the
 * door like the rest of the config, every problem with its path, and read by
 * the simulated network (profile, INFO delay, the challenging profile's
 * credentials from the MCU's `auth` secret).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, parseConfig, type Violation } from '../../src/config/index.js';
import { createSimNetwork } from '../../src/sim/index.js';
import { baseConfig, type Mutable, toYaml } from '../config/fixtures.js';

t.setTimeout(30_000);

function violations(o: Mutable, env: Record<string, string> = {}): Violation[] {
  try {
    parseConfig(toYaml(o), { env });
  } catch (err) {
    if (err instanceof ConfigError && err.code === 'CFG_ERR_INVALID')
      return (err.details as { violations: Violation[] }).violations;
    throw err;
  }
  return [];
}

t.test('sim settings are checked with their paths', async (t) => {
  const o = baseConfig();
  o.mcus[0].sim = { profile: 'friendly', processingDelayMs: -5 };
  o.mcus[1].sim = { profile: 'challenging' };
  o.mcus[2].sim = { delay: 3 };
  t.match(
    violations(o).map((v) => [v.path, v.message]),
    [
      ['/mcus/0/sim/profile', /must be one of "full", "no-conference-events", "full-state-only", "challenging"/],
      ['/mcus/0/sim/processingDelayMs', /must be >= 0/],
      ['/mcus/1/sim/profile', /challenging profile needs the MCU's auth/],
      ['/mcus/2/sim/delay', /unknown property/],
    ],
  );
  const ok = baseConfig();
  ok.mcus[0].sim = { profile: 'full-state-only', processingDelayMs: 0 };
  ok.mcus[1].sim = { profile: 'challenging' };
  ok.mcus[1].auth = { username: 'cascaded', passwordEnv: 'NB_SECRET' };
  t.same(violations(ok, { NB_SECRET: 's3cret' }), []);
});

t.test('the simulated network plays each MCU as its sim settings say', async (t) => {
  const dir = t.testdir();
  const secret = join(dir, 'mcu.secret');
  writeFileSync(secret, 'demo-only\n');
  const o = baseConfig();
  o.mcus[0].sim = { profile: 'full-state-only', processingDelayMs: 0 };
  o.mcus[1].sim = { profile: 'challenging', processingDelayMs: 45 };
  o.mcus[1].auth = { username: 'cascaded', passwordFile: secret, realm: 'nb' };
  o.mcus[2].sim = { profile: 'no-conference-events' };
  // Port 0 on an address of its own per MCU: distinct URIs, as the config rules want.
  o.mcus.forEach((m: Mutable, i: number) => {
    m.sip = [`sip:conf@127.0.0.${10 + i}:0`];
  });
  const inventory = parseConfig(toYaml(o)).inventory;
  const net = await createSimNetwork({ inventory, placement: 'none' });
  t.teardown(() => net.close());
  t.match(
    inventory.mcus.map((m) => {
      const s = net.mcu(m.id);
      return [s.id, s.profile, s.infoDelayMs];
    }),
    [
      ['master', 'full-state-only', 0],
      ['nb', 'challenging', 45],
      ['qb-vnpt-1', 'no-conference-events', Number],
    ],
  );
  const drawn = net.mcu('qb-vnpt-1').infoDelayMs;
  t.ok(drawn >= 20 && drawn < 80, `an MCU without a delay draws one: ${drawn} ms`);
  const fast = await createSimNetwork({ inventory, placement: 'none', infoDelayMs: 0 });
  t.teardown(() => fast.close());
  t.same(
    [...fast.mcus.values()].map((m) => m.infoDelayMs),
    [0, 0, 0],
    'a test can ask for no delay at all',
  );
});
