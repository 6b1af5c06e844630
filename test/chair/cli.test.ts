/**
 * The chair through the daemon: the real `cascaded` process with its
 * simulator child (`--with-sim`), a session created with `cascaded session
 * create`, and `cascaded chair SESSION ENDPOINT` over the REST API printing
 * the path and every step's timing; the simulator's display model says what
 * the chair sees; the call is in the audit trail and the command, with its
 * steps, in the session's events.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';
import { call } from '../api/harness.js';
import { loopbackBase, networkConfig, until } from '../cascade/helpers.js';
import { spawnDaemon } from '../helpers/daemon.js';

t.setTimeout(300_000);
const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, ['dist/src/cli/cascaded.js', ...args], { timeout: 60_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout, err: e.stderr };
  }
}

t.test('cascaded chair SESSION ENDPOINT through the running daemon', async (t) => {
  const dir = t.testdir();
  const state = join(dir, 'state');
  const cfg = networkConfig(
    loopbackBase(),
    [
      { id: 'm', rooms: 2 },
      { id: 'p', parents: ['m'], rooms: 2, profile: 'no-conference-events' },
      { id: 'v', parents: ['p'], rooms: 2 },
    ],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      { id: 'p-room', level: 'province', mcus: ['p'] },
      { id: 'v-x1', mcus: ['v'] },
    ],
    {
      logLevel: 'info',
      stateDir: state,
      api: { host: '127.0.0.1', port: 0 },
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
      mcu: { healthIntervalMs: 1_000 },
      cascade: { pollMs: 200 },
    },
  );
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, JSON.stringify(cfg, null, 1));
  const d = spawnDaemon(['--config', file, '--with-sim', '--sim-control-port', '0']);
  t.teardown(() => d.child.kill('SIGKILL'));
  const sim = await d.waitForLog((l) => /^simulator process \d+ ready$/.test(String(l.msg)), 120_000);
  const ready = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'), 120_000);
  const url = /API (https:\S+)/.exec(String(ready.msg))![1]!;
  const ca = readFileSync(join(state, 'tls', 'api.crt'), 'utf8');
  const view = async (e: string) =>
    (await (await fetch(`${String(sim.control)}/v1/endpoints/${e}/view`)).json()) as { seesIds?: string[] };

  const token = (await cli(['token', 'create', '--config', file, '--role', 'admin', '--name', 'tech'])).out.trim();
  const created = await cli(['session', 'create', '--config', file, '--id', 's1', '--all', '--chair', 'chair']);
  t.equal(created.code, 0, created.err);
  await until(
    'the cascade up and every endpoint in its room',
    async () => {
      const c = await call(url, ca, 'GET', '/v1/sessions/s1/cascade', { token });
      const links = (c.body as { links?: { state: string }[] } | undefined)?.links ?? [];
      if (links.length !== 2 || links.some((l) => l.state !== 'up')) return false;
      const placed = await Promise.all(['chair', 'p-room', 'v-x1'].map((e) => view(e)));
      return placed.every((v) => v.seesIds !== undefined);
    },
    120_000,
    250,
  );

  const preview = await cli(['chair', 's1', 'v-x1', '--preview', '--url', url, '--token', token, '--config', file]);
  t.equal(preview.code, 0, preview.err);
  t.match(preview.out, /^would bring v-x1 to the chair of s1 over v -> p -> m\n/);
  t.notSame((await view('chair')).seesIds, ['v-x1'], 'a preview switches nothing');

  const r = await cli(['chair', 's1', 'v-x1', '--url', url, '--token', token, '--config', file]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^v-x1 to the chair of s1 in [\d.]+ ms over v -> p -> m\n/, 'the path and the time');
  t.match(r.out, /\nSTEP\s+MCU\s+OUTPUT\s+SHOWS\s+ATTEMPTS\s+DONE MS\s+KEYFRAME MS\n/, 'a table of steps');
  t.match(r.out, /\nswitch\s+v\s+\S+\s+sip:v-x1@endpoints\.invalid\s+1\s+[\d.]+\s+[\d.]+\n/, 'each with its timings');
  await until('the chair sees v-x1', async () => (await view('chair')).seesIds?.join() === 'v-x1', 10_000);
  t.pass('the chair sees the endpoint');

  const bad = await cli(['chair', 's1', 'nobody', '--url', url, '--token', token, '--config', file]);
  t.equal(bad.code, 1, 'an endpoint not in the session fails');
  t.match(bad.err, /CHAIR_ERR_NOT_IN_SESSION/);

  const back = await cli(['chair', 's1', '--default', '--url', url, '--token', token, '--config', file, '--json']);
  t.equal(back.code, 0, back.err);
  t.match(JSON.parse(back.out), { endpoint: null, outcome: 'ok', path: ['m'] });

  const audit = await call(url, ca, 'GET', '/v1/audit?action=chair.switch', { token });
  t.match((audit.body as { items: unknown[] }).items, [{ action: 'chair.switch', target: 's1' }]);
  const store = await openSqliteStore({ path: join(state, 'cascaded.db') });
  t.teardown(() => store.close());
  // Written behind, a second at most after each command (docs/chair.md): read until all three are there.
  const commands = await until(
    "the three commands in the session's events",
    async () => {
      const events = await store.listEvents({ subject: 's1', limit: 100 });
      const c = events.filter((e) => e.type === 'chair.command').map((e) => e.data as Record<string, unknown>);
      return c.length >= 3 && c;
    },
    10_000,
    100,
  );
  t.match(
    commands.find((c) => c.endpoint === 'v-x1' && c.outcome === 'ok'),
    { actor: String, steps: [{ id: 'switch:v' }, { id: 'switch:p' }, { id: 'switch:m' }] },
    "the command with its steps in the session's events",
  );
  t.ok(
    commands.some((c) => c.endpoint === 'nobody' && c.outcome === 'CHAIR_ERR_NOT_IN_SESSION'),
    'refusals recorded too',
  );
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null });
});
