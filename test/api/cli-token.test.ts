/**
 * `cascaded token create|list|revoke` and `cascaded audit verify` against
 * the store of a running daemon, through the real CLI processes: a token
 * made works at once, a revoked one fails at once, only hashes are stored.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { cli, runningDaemon } from './cli-daemon.js';
import { call } from './harness.js';

// Child processes (the daemon, each CLI run) take seconds each on a loaded machine: a bound, not a wait.
t.setTimeout(240_000);

t.test('tokens made and revoked while the daemon runs; audit verify on its store', async (t) => {
  const { file, url, cert } = await runningDaemon(t);
  const [bad, ghost, made] = await Promise.all([
    cli(['token', 'create', '--config', file, '--role', 'operator']),
    cli(['token', 'create', '--config', file, '--role', 'operator', '--scope', 'province:atlantis']),
    cli([
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
    ]),
  ]);
  t.equal(bad.code, 2, 'an operator token needs a scope');
  t.match(bad.stderr, /API_ERR_TOKEN_SPEC|scope/);
  t.equal(ghost.code, 2);
  t.match(ghost.stderr, /no province "atlantis"/);
  t.equal(made.code, 0, made.stderr);
  const rec = JSON.parse(made.stdout) as { token: string; id: string; role: string; scope: string; expiresAt: string };
  t.match(rec, { role: 'operator', scope: 'province:ninh-binh' });
  t.ok(Date.parse(rec.expiresAt) > Date.now() + 89 * 86_400_000);

  const status = await call(url, cert, 'GET', '/v1/status', { token: rec.token });
  t.match(status, { status: 200, body: { caller: { id: rec.id, scope: 'province:ninh-binh' } } });
  const db = new Database(join(file, '..', 'state', 'cascaded.db'), { readonly: true });
  t.teardown(() => db.close());
  const stored = JSON.stringify(db.prepare('SELECT * FROM api_tokens').all());
  t.notMatch(stored, rec.token.split('.')[2]!, 'the secret is not stored');

  const list = await cli(['token', 'list', '--config', file]);
  t.equal(list.code, 0);
  t.match(list.stdout, new RegExp(`${rec.id}\\s+operator-ninh-binh\\s+operator\\s+province:ninh-binh .* active`));

  const [revoked, nothex] = await Promise.all([
    cli(['token', 'revoke', '--config', file, rec.id]),
    cli(['token', 'revoke', '--config', file, 'nothex']),
  ]);
  t.equal(revoked.code, 0, revoked.stderr);
  t.equal(nothex.code, 2);
  t.match(await call(url, cert, 'GET', '/v1/status', { token: rec.token }), {
    status: 401,
    body: { details: { reason: 'revoked' } },
  });

  const verified = await cli(['audit', 'verify', '--config', file, '--json']);
  t.equal(verified.code, 0, verified.stdout);
  const v = JSON.parse(verified.stdout) as { ok: boolean; checked: number; head: string };
  t.match(v, { ok: true, checked: 2 }, 'token.create and token.revoke audited');
  const [same, other] = await Promise.all([
    cli(['audit', 'verify', '--config', file, '--head', v.head]),
    cli(['audit', 'verify', '--config', file, '--head', 'f'.repeat(64)]),
  ]);
  t.equal(same.code, 0, same.stdout);
  t.equal(other.code, 1, 'a head it does not end at: rows were cut');
});
