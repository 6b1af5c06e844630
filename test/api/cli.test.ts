/**
 * `cascaded token` and `cascaded audit verify` against the store of a running
 * daemon, and SIGHUP certificate reload, through the real CLI processes.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import selfsigned from 'selfsigned';
import t from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { call } from './harness.js';

const run = promisify(execFile);
const certFor = (cn: string) =>
  selfsigned.generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7 as const, ip: '127.0.0.1' }] }],
  });
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['dist/src/cli/cascaded.js', ...args], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('tokens made and revoked while the daemon runs; audit verify; SIGHUP reload', async (t) => {
  const dir = t.testdir();
  const sims = await Promise.all(
    ['master', 'nb', 'qb-vnpt-1'].map((id) => createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20 })),
  );
  t.teardown(() => Promise.all(sims.map((s) => s.close())));
  const first = await certFor('first');
  writeFileSync(join(dir, 'api.crt'), first.cert);
  writeFileSync(join(dir, 'api.key'), first.private);
  const o = baseConfig();
  o.daemon = {
    logLevel: 'info',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0, tls: { cert: join(dir, 'api.crt'), key: join(dir, 'api.key') } },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
  };
  sims.forEach((s, i) => {
    o.mcus[i].sip = [s.uri];
  });
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, toYaml(o));
  const d = spawnDaemon(['--config', file]);
  t.teardown(() => d.child.kill('SIGKILL'));
  const ready = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'), 60_000);
  const url = /API (https:\S+)/.exec(String(ready.msg))![1]!;

  const bad = await cli(['token', 'create', '--config', file, '--role', 'operator']);
  t.equal(bad.code, 2, 'an operator token needs a scope');
  t.match(bad.stderr, /API_ERR_TOKEN_SPEC|scope/);
  const ghost = await cli(['token', 'create', '--config', file, '--role', 'operator', '--scope', 'province:atlantis']);
  t.equal(ghost.code, 2);
  t.match(ghost.stderr, /no province "atlantis"/);

  const made = await cli([
    'token',
    'create',
    '--config',
    file,
    '--role',
    'operator',
    '--scope',
    'province:ninh-binh',
    '--expires',
    '90d',
    '--json',
  ]);
  t.equal(made.code, 0, made.stderr);
  const rec = JSON.parse(made.stdout) as { token: string; id: string; role: string; scope: string; expiresAt: string };
  t.match(rec, { role: 'operator', scope: 'province:ninh-binh' });
  t.ok(Date.parse(rec.expiresAt) > Date.now() + 89 * 86_400_000);
  const pinned = first.cert;
  const status = await call(url, pinned, 'GET', '/v1/status', { token: rec.token });
  t.match(status, { status: 200, body: { caller: { id: rec.id, scope: 'province:ninh-binh' } } });
  const db = new Database(join(dir, 'state', 'cascaded.db'), { readonly: true });
  t.teardown(() => db.close());
  const stored = JSON.stringify(db.prepare('SELECT * FROM api_tokens').all());
  t.notMatch(stored, rec.token.split('.')[2]!, 'the secret is not stored');

  const list = await cli(['token', 'list', '--config', file]);
  t.equal(list.code, 0);
  t.match(list.stdout, new RegExp(`${rec.id}\\s+operator-ninh-binh\\s+operator\\s+province:ninh-binh .* active`));

  t.equal((await cli(['token', 'revoke', '--config', file, rec.id])).code, 0);
  t.match(await call(url, pinned, 'GET', '/v1/status', { token: rec.token }), {
    status: 401,
    body: { details: { reason: 'revoked' } },
  });
  t.equal((await cli(['token', 'revoke', '--config', file, 'nothex'])).code, 2);

  const verified = await cli(['audit', 'verify', '--config', file, '--json']);
  t.equal(verified.code, 0, verified.stdout);
  const v = JSON.parse(verified.stdout) as { ok: boolean; checked: number; head: string };
  t.match(v, { ok: true, checked: 2 }, 'token.create and token.revoke audited');
  t.equal((await cli(['audit', 'verify', '--config', file, '--head', v.head])).code, 0);
  t.equal((await cli(['audit', 'verify', '--config', file, '--head', 'f'.repeat(64)])).code, 1, 'a cut tail');

  // SIGHUP: the renewed certificate is served to new connections.
  const second = await certFor('second');
  writeFileSync(join(dir, 'api.crt'), second.cert);
  writeFileSync(join(dir, 'api.key'), second.private);
  d.child.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'API certificate reloaded');
  const u = new URL(url);
  const fp = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
  t.equal(fp, new X509Certificate(second.cert).fingerprint256);
  // A broken file keeps the old certificate and the daemon.
  writeFileSync(join(dir, 'api.key'), 'garbage');
  d.child.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'API certificate reload failed; the old one stays');
  t.equal((await call(url, second.cert, 'GET', '/healthz')).status, 200, 'still serving');

  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null });
  // Tampering after the fact, around the triggers: verify says where.
  const rw = new Database(join(dir, 'state', 'cascaded.db'));
  rw.exec('DROP TRIGGER audit_no_update');
  rw.prepare("UPDATE audit SET actor = 'someone-else' WHERE id = 1").run();
  rw.close();
  const broken = await cli(['audit', 'verify', '--config', file]);
  t.equal(broken.code, 1);
  t.match(broken.stdout, /BROKEN at row 1/);
  t.ok(readFileSync(file, 'utf8').length > 0);
});
