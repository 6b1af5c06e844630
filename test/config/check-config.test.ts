import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { baseConfig, toYaml } from './fixtures.js';

const CLI = 'dist/src/cli/cascaded.js';
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });

t.test('--check-config: valid file exits 0 with a summary', async (t) => {
  const r = run('--check-config', 'config/example.yaml');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /config\/example\.yaml: ok \(3 levels, 2 provinces, 4 operators, 3 mcus, 5 endpoints\)/);
});

t.test('--check-config: invalid file exits 2 listing every violation, like nginx -t', async (t) => {
  const dir = t.testdir();
  const o = baseConfig();
  o.mcus[1].capacity.ports = 0;
  o.endpoints[3].mcus = ['nb', 'qb-vnpt'];
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, toYaml(o));
  const r = run('--check-config', file);
  t.equal(r.status, 2);
  t.match(r.stderr, /2 problems/);
  t.match(r.stderr, /\/mcus\/1\/capacity\/ports \(line \d+:\d+\): must be >= 1/);
  t.match(r.stderr, /\/endpoints\/3\/mcus\/1 \(line \d+:\d+\): unknown MCU "qb-vnpt"/);

  const j = run('--check-config', file, '--json');
  t.equal(j.status, 2);
  const body = JSON.parse(j.stdout);
  t.equal(body.ok, false);
  t.equal(body.code, 'CFG_ERR_INVALID');
  t.same(
    body.details.violations.map((v: { path: string }) => v.path),
    ['/mcus/1/capacity/ports', '/endpoints/3/mcus/1'],
  );
});

t.test('--check-config --json on a valid file', async (t) => {
  const r = run('--check-config', 'config/example.yaml', '--json');
  t.equal(r.status, 0);
  t.same(JSON.parse(r.stdout), {
    ok: true,
    source: 'config/example.yaml',
    counts: { levels: 3, provinces: 2, operators: 4, mcus: 3, endpoints: 5 },
    warnings: [],
  });
});

t.test('--check-config: warnings do not fail the check, and are listed with their path', async (t) => {
  const dir = t.testdir();
  const o = baseConfig();
  o.endpoints[2].mcus = [];
  const file = join(dir, 'warn.yaml');
  writeFileSync(file, toYaml(o));
  const r = run('--check-config', file);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /: ok \(.*, 1 warning\)/);
  t.match(r.stderr, /1 warning\n\s+\/endpoints\/2\/mcus \(line \d+:\d+\): endpoint has no candidate MCU/);
  const j = run('--check-config', file, '--json');
  t.equal(j.status, 0);
  t.match(JSON.parse(j.stdout), { ok: true, warnings: [{ path: '/endpoints/2/mcus', line: Number }] });
});

t.test('usage errors and help', async (t) => {
  const bad = run('--no-such-flag');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /Unknown option '--no-such-flag'/);
  const help = run('--help');
  t.equal(help.status, 0);
  for (const flag of ['--config', '--check-config', '--json', '--log-level', '--help', '--version']) {
    t.match(help.stdout, flag, `--help documents ${flag}`);
  }
  t.match(run('--version').stdout, /^cascaded \d+\.\d+\.\d+/);
  t.equal(run('--log-level', 'loud').status, 2);
  t.equal(run('--check-config', '/nonexistent.yaml').status, 1);
});

t.test(
  'the embedded demo checks out from any working directory (its secret file is found from the installation)',
  async (t) => {
    // Its relative paths (config/demo-secrets/mcu.secret) were taken from the working directory: the installed
    // command run anywhere but at the package root refused its own default (CFG_ERR_INVALID, 4 secret files).
    const demo = join(process.cwd(), 'config/demo.yaml');
    const dir = t.testdir();
    const r = spawnSync(process.execPath, [join(process.cwd(), CLI), '--check-config', demo, '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: dir,
    });
    t.equal(r.status, 0, r.stdout + r.stderr);
    t.equal(JSON.parse(r.stdout).counts.endpoints, 11_398);
    // Another config's relative paths still come from the working directory (a service's WorkingDirectory=).
    const other = join(dir, 'other.yaml');
    writeFileSync(other, readFileSync(demo, 'utf8'));
    const o = spawnSync(process.execPath, [join(process.cwd(), CLI), '--check-config', other, '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: dir,
    });
    t.equal(o.status, 2, 'a copy elsewhere: its secret file is looked for from the working directory');
    t.match(JSON.parse(o.stdout).details.violations[0].message, /cannot read secret file/);
  },
);
