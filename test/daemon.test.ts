import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { createSimMcu, type SimMcu } from '../src/sim/index.js';
import { baseConfig, type Mutable, toYaml } from './config/fixtures.js';
import { httpsGet, spawnDaemon } from './helpers/daemon.js';
import { openNotifySocket } from './helpers/notify-socket.js';

function writeConfig(dir: string, mutate: (o: Mutable) => void = () => {}): string {
  const o = baseConfig();
  o.daemon = {
    logLevel: 'info',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0 },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
  };
  mutate(o);
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, toYaml(o));
  return file;
}

/** Simulated MCUs for the three MCUs of the base config, on ephemeral loopback ports. */
async function simulateMcus(t: { teardown(fn: () => unknown): void }): Promise<SimMcu[]> {
  const sims = await Promise.all(
    ['master', 'nb', 'qb-vnpt-1'].map((id) => createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20 })),
  );
  t.teardown(() => Promise.all(sims.map((s) => s.close())));
  return sims;
}

t.test('starts in order, serves health, and on SIGTERM closes in reverse order and exits 0', async (t) => {
  const dir = t.testdir();
  const sock = openNotifySocket();
  t.teardown(() => sock.close());
  const sims = await simulateMcus(t);
  const file = writeConfig(dir, (o) => {
    sims.forEach((s, i) => {
      o.mcus[i].sip = [s.uri];
    });
  });
  const d = spawnDaemon(['--config', file], { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' });
  t.teardown(() => d.child.kill('SIGKILL'));

  const ready = await sock.waitFor('READY=1', 60_000); // a bound, not a wait: a loaded CI machine starts slowly
  t.match(ready, /^READY=1\nSTATUS=ready: 3 MCUs, 6 endpoints; API https:\/\/127\.0\.0\.1:\d+$/);
  const url = /API (https:\S+)/.exec(ready)![1]!;
  await sock.waitFor('WATCHDOG=1', 2_000);

  // Uptime depends on how fast a loaded machine got here: only its shape is fixed.
  const health = await httpsGet(`${url}/healthz`, join(dir, 'state'));
  t.match(health, { status: 200, body: { status: 'ok', uptimeSeconds: Number } });
  t.ok((health.body as { uptimeSeconds: number }).uptimeSeconds >= 0, 'uptime is not negative');
  const connected = await d.waitForLog((l) => l.msg === 'MCUs connected: 3 of 3 up');
  t.match(connected, { up: 3, down: 0 });
  t.match(await sock.waitFor('MCUs up: 3 of 3'), /^STATUS=ready: 3 MCUs, 6 endpoints; API \S+; MCUs up: 3 of 3$/);
  t.equal(sims[0]!.controlDialogs, 1, 'the daemon holds a control dialog with the master');
  const readyz = await httpsGet(`${url}/readyz`, join(dir, 'state'));
  t.match(readyz, {
    status: 200,
    body: {
      status: 'ready',
      checks: [
        { name: 'store', ok: true },
        { name: 'sip', ok: true },
        { name: 'master-mcu', ok: true, detail: 'master: connected' },
      ],
    },
  });
  const missing = await httpsGet(`${url}/nothing`, join(dir, 'state'));
  t.match(missing, { status: 404, body: { code: 'API_ERR_NOT_FOUND' } });
  // Every /v1 call is authenticated, even one that names no route.
  const anonymous = await httpsGet(`${url}/v1/nothing`, join(dir, 'state'));
  t.match(anonymous, { status: 401, body: { code: 'API_ERR_UNAUTHENTICATED' } });

  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'exit code 0');
  // Watchdog pings go on while the parts close (the notifier closes last), so STOPPING=1 need not be the last message.
  const sent = sock.messages();
  const stoppingAt = sent.findIndex((m) => m.startsWith('STOPPING=1'));
  t.ok(stoppingAt > sent.findIndex((m) => m.startsWith('READY=1')), 'STOPPING=1 follows READY=1');
  t.same(
    sent.slice(stoppingAt + 1).filter((m) => m !== 'WATCHDOG=1'),
    [],
    'only watchdog pings after STOPPING=1',
  );
  const order = d.logs.filter((l) => typeof l.part === 'string').map((l) => l.msg);
  t.same(order, [
    'started notifier',
    'started store',
    'started sip',
    'started mcus',
    'started cascade',
    'started live',
    'started chair-record',
    'started chair',
    'started session',
    'started api',
    'closed api',
    'closed session',
    'closed chair',
    'closed chair-record',
    'closed live',
    'closed cascade',
    'closed mcus',
    'closed sip',
    'closed store',
    'closed notifier',
  ]);
  t.equal(sims[0]!.controlDialogs, 0, 'the control dialog was ended with BYE on the way out');
  t.equal(d.logs.at(-1)?.msg, 'stopped');
  t.ok(existsSync(join(dir, 'state', 'cascaded.db')), 'the store file exists');
  const db = new Database(join(dir, 'state', 'cascaded.db'), { readonly: true });
  t.same(
    db.prepare("SELECT subject FROM events WHERE type = 'mcu.up' ORDER BY subject").all(),
    [{ subject: 'master' }, { subject: 'nb' }, { subject: 'qb-vnpt-1' }],
    'each MCU coming up is recorded in the events table',
  );
  db.close();
});

t.test('SIGINT also stops cleanly; a restart reuses the store and the certificate', async (t) => {
  const dir = t.testdir();
  const file = writeConfig(dir);
  for (let i = 0; i < 2; i++) {
    const d = spawnDaemon(['--config', file]);
    t.teardown(() => d.child.kill('SIGKILL'));
    const inv = await d.waitForLog((l) => l.msg === 'inventory loaded');
    t.equal(
      inv.changed,
      i === 0,
      i === 0 ? 'first start snapshots the inventory' : 'unchanged inventory: no new snapshot',
    );
    const ready = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'));
    t.equal(ready.selfSignedCertificate, true);
    d.child.kill('SIGINT');
    t.same(await d.exited, { code: 0, signal: null });
  }
});

t.test('an invalid config starts nothing and exits 2 with every violation', async (t) => {
  const dir = t.testdir();
  const file = writeConfig(dir, (o) => {
    o.mcus[1].capacity.ports = 0;
    o.endpoints[3].mcus = ['nb', 'qb-vnpt'];
  });
  const d = spawnDaemon(['--config', file]);
  t.same(await d.exited, { code: 2, signal: null });
  t.match(d.stderr(), /\/mcus\/1\/capacity\/ports \(line \d+:\d+\): must be >= 1/);
  t.match(d.stderr(), /\/endpoints\/3\/mcus\/1 \(line \d+:\d+\): unknown MCU "qb-vnpt"/);
  t.match(d.stderr(), /nothing started/);
  t.equal(d.logs.length, 0, 'no log line: the logger was never created');
  t.notOk(existsSync(join(dir, 'state')), 'no state directory, no store');
});

t.test('a port already in use fails the start, closes what was started and exits 1', async (t) => {
  // Two daemons, two state directories: t.testdir() is one directory per test.
  const base = t.testdir({ a: {}, b: {} });
  const first = spawnDaemon(['--config', writeConfig(join(base, 'a'))]);
  t.teardown(() => first.child.kill('SIGKILL'));
  const ready = await first.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'));
  const port = Number(/:(\d+)$/.exec(String(ready.api))![1]);
  const second = spawnDaemon([
    '--config',
    writeConfig(join(base, 'b'), (o) => {
      o.daemon.api.port = port;
    }),
  ]);
  t.same(await second.exited, { code: 1, signal: null });
  t.same(
    second.logs.map((l) => l.msg).filter((m) => /^(started|closed) |^start failed/.test(String(m))),
    [
      'started notifier',
      'started store',
      'started sip',
      'started mcus',
      'started cascade',
      'started live',
      'started chair-record',
      'started chair',
      'started session',
      'closed session',
      'closed chair',
      'closed chair-record',
      'closed live',
      'closed cascade',
      'closed mcus',
      'closed sip',
      'closed store',
      'closed notifier',
      'start failed',
    ],
  );
  first.child.kill('SIGTERM');
  t.same(await first.exited, { code: 0, signal: null });
});

t.test(
  'a SIGTERM during the start is not lost: the daemon finishes starting, then stops cleanly with exit 0',
  async (t) => {
    const dir = t.testdir();
    const d = spawnDaemon(['--config', writeConfig(dir)]);
    t.teardown(() => d.child.kill('SIGKILL'));
    // The first part is up, the rest is still starting.
    await d.waitForLog((l) => l.msg === 'started notifier');
    d.child.kill('SIGTERM');
    t.same(await d.exited, { code: 0, signal: null }, 'exit 0, not killed by the signal');
    const msgs = d.logs.map((l) => l.msg);
    t.ok(msgs.includes('closed store'), 'the store was closed');
    t.equal(msgs.at(-1), 'stopped');
  },
);
