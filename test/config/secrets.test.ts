/**
 * Per-MCU digest credentials in the config (mcus[].auth) and per-MCU driver
 * settings (mcus[].control): exactly one source of the secret, checked
 * readable at load with the path of what is wrong; the secret itself never
 * in the loaded config.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, parseConfig, readMcuSecret, type Violation } from '../../src/config/index.js';
import { baseConfig, type Mutable, toYaml } from './fixtures.js';

const SECRET = 'correct horse battery staple';

function violationsOf(o: Mutable, env: Record<string, string> = {}, cwd = '/'): Violation[] {
  try {
    parseConfig(toYaml(o), { env, cwd });
  } catch (err) {
    if (err instanceof ConfigError && err.code === 'CFG_ERR_INVALID')
      return (err.details as { violations: Violation[] }).violations;
    throw err;
  }
  throw new Error('expected CFG_ERR_INVALID, but the config was accepted');
}

function withAuth(auth: Mutable): Mutable {
  const o = baseConfig();
  o.mcus[1].auth = auth;
  return o;
}

t.test('passwordFile: relative to the working directory, made absolute; one trailing newline dropped', async (t) => {
  const dir = t.testdir({ 'nb.secret': `${SECRET}\n` });
  const c = parseConfig(toYaml(withAuth({ username: 'cascaded', passwordFile: 'nb.secret', realm: 'nb' })), {
    cwd: dir,
    env: {},
  });
  const auth = c.inventory.mcus[1]!.auth!;
  t.same(auth, { username: 'cascaded', passwordFile: join(dir, 'nb.secret'), realm: 'nb' });
  t.equal(readMcuSecret(auth), SECRET);
  t.notMatch(JSON.stringify(c), SECRET, 'the secret is not in the loaded config (nor in the inventory snapshot)');
  writeFileSync(join(dir, 'crlf.secret'), `${SECRET}\r\n`);
  t.equal(readMcuSecret({ username: 'u', passwordFile: join(dir, 'crlf.secret') }), SECRET);
  writeFileSync(join(dir, 'two-lines.secret'), `${SECRET}\n\n`);
  t.equal(readMcuSecret({ username: 'u', passwordFile: join(dir, 'two-lines.secret') }), `${SECRET}\n`);
});

t.test('passwordEnv and credential ($CREDENTIALS_DIRECTORY, systemd LoadCredential=)', async (t) => {
  const c = parseConfig(toYaml(withAuth({ username: 'u', passwordEnv: 'CASCADED_NB_PASSWORD' })), {
    env: { CASCADED_NB_PASSWORD: SECRET },
  });
  t.equal(readMcuSecret(c.inventory.mcus[1]!.auth!, { CASCADED_NB_PASSWORD: SECRET }), SECRET);
  t.notMatch(JSON.stringify(c), SECRET);

  const creds = t.testdir({ 'nb-mcu': SECRET });
  const env = { CREDENTIALS_DIRECTORY: creds };
  const k = parseConfig(toYaml(withAuth({ username: 'u', credential: 'nb-mcu' })), { env });
  t.equal(readMcuSecret(k.inventory.mcus[1]!.auth!, env), SECRET);
});

t.test('a missing or unreadable secret is a violation naming its path, file or variable', async (t) => {
  const dir = t.testdir({ 'empty.secret': '\n', 'locked.secret': SECRET });
  const missing = join(dir, 'missing.secret');
  t.match(violationsOf(withAuth({ username: 'u', passwordFile: missing })), [
    { path: '/mcus/1/auth/passwordFile', message: `cannot read secret file ${missing} (ENOENT)` },
  ]);
  t.match(violationsOf(withAuth({ username: 'u', passwordFile: 'empty.secret' }), {}, dir), [
    { path: '/mcus/1/auth/passwordFile', message: `secret file ${join(dir, 'empty.secret')} is empty` },
  ]);
  t.match(violationsOf(withAuth({ username: 'u', passwordFile: dir })), [
    { path: '/mcus/1/auth/passwordFile', message: /EISDIR/ },
  ]);
  if (process.getuid?.() !== 0) {
    chmodSync(join(dir, 'locked.secret'), 0o000);
    t.match(violationsOf(withAuth({ username: 'u', passwordFile: join(dir, 'locked.secret') })), [
      { path: '/mcus/1/auth/passwordFile', message: /EACCES/ },
    ]);
  }
  t.match(violationsOf(withAuth({ username: 'u', passwordEnv: 'NB_PW' }), { NB_PW: '' }), [
    { path: '/mcus/1/auth/passwordEnv', message: 'environment variable NB_PW is not set or empty' },
  ]);
  t.match(violationsOf(withAuth({ username: 'u', credential: 'nb-mcu' })), [
    { path: '/mcus/1/auth/credential', message: /\$CREDENTIALS_DIRECTORY is not set/ },
  ]);
  t.match(violationsOf(withAuth({ username: 'u', credential: 'nb-mcu' }), { CREDENTIALS_DIRECTORY: dir }), [
    { path: '/mcus/1/auth/credential', message: `cannot read secret file ${join(dir, 'nb-mcu')} (ENOENT)` },
  ]);
});

t.test('exactly one source, never the secret inline, names that cannot escape the credentials directory', async (t) => {
  t.match(violationsOf(withAuth({ username: 'u' })), [
    { path: '/mcus/1/auth', message: /needs one source of the secret/ },
  ]);
  t.match(violationsOf(withAuth({ username: 'u', passwordEnv: 'A', credential: 'b' }), { A: 'x' }), [
    { path: '/mcus/1/auth', message: 'give exactly one source of the secret, not passwordEnv and credential' },
  ]);
  const inline = violationsOf(withAuth({ username: 'u', password: SECRET, passwordEnv: 'A' }), { A: 'x' });
  t.match(inline, [{ path: '/mcus/1/auth/password', message: 'unknown property (did you mean "passwordFile"?)' }]);
  t.notMatch(JSON.stringify(inline), SECRET, 'the violation does not echo the inline secret');
  for (const bad of ['../etc/shadow', '.hidden', 'a/b'])
    t.match(violationsOf(withAuth({ username: 'u', credential: bad }), { CREDENTIALS_DIRECTORY: '/x' }), [
      { path: '/mcus/1/auth/credential', message: /must match/ },
    ]);
  t.match(violationsOf(withAuth({ passwordEnv: 'A' }), { A: 'x' }), [
    { path: '/mcus/1/auth/username', message: 'is required' },
  ]);
});

t.test('readMcuSecret throws CFG_ERR_SECRET with the file or variable in details', async (t) => {
  t.throws(() => readMcuSecret({ username: 'u', passwordFile: '/nonexistent/s' }), {
    code: 'CFG_ERR_SECRET',
    details: { source: 'passwordFile', path: '/nonexistent/s' },
  });
  t.throws(() => readMcuSecret({ username: 'u', passwordEnv: 'NOPE' }, {}), {
    code: 'CFG_ERR_SECRET',
    details: { source: 'passwordEnv', variable: 'NOPE' },
  });
  t.throws(() => readMcuSecret({ username: 'u' }, {}), { code: 'CFG_ERR_SECRET' });
});

t.test('control: per-MCU driver settings, validated', async (t) => {
  const o = baseConfig();
  o.mcus[1].control = { transport: 'tcp', sessionExpires: 600, healthIntervalMs: 2_000, sdp: 'offer' };
  t.same(parseConfig(toYaml(o)).inventory.mcus[1]!.control, {
    transport: 'tcp',
    sessionExpires: 600,
    healthIntervalMs: 2_000,
    sdp: 'offer',
  });
  o.mcus[1].control = { transport: 'sctp', sessionExpires: 60, sdp: 'none', healthIntervalMs: 5 };
  const vs = violationsOf(o);
  t.same(vs.map((v) => v.path).sort(), [
    '/mcus/1/control/healthIntervalMs',
    '/mcus/1/control/sdp',
    '/mcus/1/control/sessionExpires',
    '/mcus/1/control/transport',
  ]);
  t.match(
    vs.find((v) => v.path.endsWith('sessionExpires')),
    { message: 'must be >= 90' },
    'RFC 4028 floor',
  );
});

t.test('--check-config reports a missing secret file with its path and exits 2', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'c.yaml');
  writeFileSync(file, toYaml(withAuth({ username: 'u', passwordFile: join(dir, 'nope.secret') })));
  const r = spawnSync(process.execPath, ['dist/src/cli/cascaded.js', '--check-config', file], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(r.status, 2);
  t.match(r.stderr, /\/mcus\/1\/auth\/passwordFile \(line \d+:\d+\): /);
  t.match(r.stderr, `cannot read secret file ${join(dir, 'nope.secret')} (ENOENT)`);
});
