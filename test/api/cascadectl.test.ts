/**
 * cascadectl, the real CLI process, against the real daemon (spawned, HTTPS
 * with its generated certificate, simulated MCUs over SIP).
 */
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { call } from './harness.js';

const run = promisify(execFile);

t.test('cascadectl against the running daemon', async (t) => {
  const dir = t.testdir();
  const sims = await Promise.all(
    ['master', 'nb', 'qb-vnpt-1'].map((id) => createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20 })),
  );
  t.teardown(() => Promise.all(sims.map((s) => s.close())));
  const o = baseConfig();
  o.daemon = {
    logLevel: 'info',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0 },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
    mcu: { healthIntervalMs: 500, healthFailures: 1, requestTimeoutMs: 300 },
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
  await d.waitForLog((l) => l.msg === 'MCUs connected: 3 of 3 up');
  const ca = join(dir, 'state', 'tls', 'api.crt');

  const mint = async (...args: string[]) => {
    const r = await run(process.execPath, ['dist/src/cli/cascaded.js', 'token', 'create', '--config', file, ...args]);
    return r.stdout.trim();
  };
  const admin = await mint('--role', 'admin', '--name', 'ops-admin');
  const viewer = await mint('--role', 'viewer');

  const ctl = async (args: string[], env: Record<string, string> = {}) => {
    try {
      const r = await run(process.execPath, ['dist/src/cli/cascadectl.js', ...args], {
        env: { PATH: process.env.PATH, HOME: dir, ...env },
        timeout: 30_000,
      });
      return { code: 0, out: r.stdout, err: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout, err: e.stderr };
    }
  };
  const base = ['--url', url, '--ca', ca];

  const status = await ctl([...base, '--token', admin, 'status']);
  t.equal(status.code, 0, status.err);
  t.match(status.out, /MCUs: 3 of 3 up; endpoints: 6\nyou: ops-admin \(admin, /);

  // URL and token from the environment, the certificate from a config file.
  writeFileSync(join(dir, 'ctl.yaml'), `ca: ${ca}\n`);
  const mcus = await ctl(['mcus'], {
    CASCADECTL_URL: url,
    CASCADECTL_TOKEN: viewer,
    CASCADECTL_CONFIG: join(dir, 'ctl.yaml'),
  });
  t.equal(mcus.code, 0, mcus.err);
  t.match(mcus.out, /^MCU\s+ROLE\s+OPERATOR\s+PROVINCE\s+HEALTH/);
  t.match(mcus.out, /\nmaster\s+master\s+cuc\s+-\s+up/);
  const asJson = JSON.parse((await ctl([...base, '--token', viewer, '--json', 'mcus'])).out) as { id: string }[];
  t.same(
    asJson.map((m) => m.id),
    ['master', 'nb', 'qb-vnpt-1'],
  );

  const plan = await ctl([...base, '--token', viewer, 'plan', '--endpoints', 'nb-h1,qb-x1', '--chair', 'chair']);
  t.equal(plan.code, 0, plan.err);
  t.match(plan.out, /endpoints, depth 1, \d+ cascade links/);
  t.match(plan.out, /\nnb\s+master\s+1\s/);
  const infeasible = await ctl([...base, '--token', viewer, 'plan', '--endpoints', 'nb-h1', '--unavailable', 'nb']);
  t.equal(infeasible.code, 1);
  t.match(infeasible.err, /PLAN_ERR_INFEASIBLE \(HTTP 422\)/);

  const created = await call(url, readFileSync(ca, 'utf8'), 'POST', '/v1/sessions', {
    token: admin,
    body: { id: 'nat-1', title: 'Họp', endpoints: ['nb-h1', 'qb-x1'], chair: 'chair' },
  });
  t.equal(created.status, 201, JSON.stringify(created.body));
  const sessions = await ctl([...base, '--token', viewer, 'sessions']);
  t.match(sessions, { code: 0, out: /^SESSION\s+KIND\s+STATE\s+STARTS\s+TITLE\nnat-1\s+adhoc\s+live\s/ });
  const cascade = await ctl([...base, '--token', admin, 'cascade', 'nat-1']);
  t.equal(cascade.code, 0, cascade.err);
  t.match(cascade.out, /^session nat-1 \(live\), root master, plan v1: /);
  t.match(cascade.out, /\nCHILD\s+PARENT\s+STATE\s+SINCE\s+ATTEMPTS\s+DETAIL\n(nb|qb-vnpt-1)\s+master\s/);
  const onlyStatus = await ctl([...base, '--token', viewer, '--json', 'cascade', 'nat-1', '--status']);
  t.match(JSON.parse(onlyStatus.out), { sessionId: 'nat-1', links: Array });

  // Clear messages on 401 and 403.
  const noToken = await ctl([...base, 'status']);
  t.equal(noToken.code, 3);
  t.match(noToken.err, /not authenticated \(API_ERR_UNAUTHENTICATED: missing\): no token given/);
  const badToken = await ctl([...base, '--token', `${viewer.slice(0, -4)}AAAA`, 'status']);
  t.match(badToken, { code: 3, err: /does not know this token/ });
  const forbidden = await ctl([...base, '--token', viewer, 'chair', 's1', 'nb-h1']);
  t.match(forbidden, { code: 3, err: /not allowed \(API_ERR_FORBIDDEN\)/ });
  const unknown = await ctl([...base, '--token', admin, 'chair', 's1', 'nb-h1']);
  t.match(unknown, { code: 1, err: /CHAIR_ERR_NO_SESSION \(HTTP 404\): no live session s1/ });

  const audit = await ctl([...base, '--token', admin, 'audit', '--action', 'chair.switch']);
  t.equal(audit.code, 0, audit.err);
  t.match(audit.out, /chair\.switch\s+s1\s+CHAIR_ERR_NO_SESSION/);
  t.match(audit.out, /chair\.switch\s+s1\s+API_ERR_FORBIDDEN/);

  // A certificate it cannot verify: a clear message with the fingerprint to pin; the pin works.
  const fp = new X509Certificate(readFileSync(ca)).fingerprint256;
  const unverified = await ctl(['--url', url, '--token', viewer, 'status']);
  t.equal(unverified.code, 1);
  t.match(unverified.err, /cannot verify the daemon's certificate/);
  t.ok(unverified.err.includes(`--pin-sha256 ${fp}`), 'shows the fingerprint to pin');
  t.equal((await ctl(['--url', url, '--token', viewer, '--pin-sha256', fp, 'status'])).code, 0);
  const wrongPin = await ctl(['--url', url, '--token', viewer, '--pin-sha256', fp.replace(/^../, '00'), 'status']);
  t.match(wrongPin, { code: 1, err: /is not the pinned/ });
  t.match(await ctl(['--url', 'http://127.0.0.1:1', 'status']), { code: 2, err: /https/ });
  t.match(await ctl([...base, 'frobnicate']), { code: 2, err: /unknown command/ });

  // watch follows /v1/events: an MCU going down arrives as a line.
  const watcher = spawn(
    process.execPath,
    ['dist/src/cli/cascadectl.js', ...base, '--token', viewer, 'watch', '--types', 'mcu', '--count', '1'],
    {
      env: { PATH: process.env.PATH, HOME: dir },
    },
  );
  t.teardown(() => watcher.kill('SIGKILL'));
  let watched = '';
  watcher.stdout.setEncoding('utf8').on('data', (s: string) => {
    watched += s;
  });
  const exited = new Promise<number | null>((resolve) => watcher.once('exit', resolve));
  // The stream is open once the daemon served it: wait for that, then take an MCU away.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const s = await ctl([...base, '--token', admin, '--json', 'audit', '--limit', '1']);
    if (s.code === 0 || Date.now() > deadline) break;
  }
  await new Promise((r) => setTimeout(r, 300));
  await sims[2]!.close();
  t.equal(await exited, 0);
  t.match(watched, /mcu\s+qb-vnpt-1 DOWN \(/);
});
