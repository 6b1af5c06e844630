/**
 * cascadectl, the real CLI process, against the real daemon (spawned, HTTPS
 * with its generated certificate, simulated MCUs over SIP): what technicians
 * read (status, MCUs, plans, sessions, cascades, audit) as tables and JSON,
 * with the URL, token and certificate from flags, the environment or a
 * config file. Refusals, certificates and `watch`: cascadectl-auth.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ctlRunner, runningDaemon } from './cli-daemon.js';
import { call } from './harness.js';

// Child processes (the daemon, each CLI run) take seconds each on a loaded machine: a bound, not a wait.
t.setTimeout(240_000);

t.test('cascadectl reads the running daemon', async (t) => {
  const { url, cert, certFile, dir, file } = await runningDaemon(t, { generatedCertificate: true });
  const { ctl, mint } = ctlRunner(dir, file);
  const [admin, viewer] = await Promise.all([mint('--role', 'admin', '--name', 'ops-admin'), mint('--role', 'viewer')]);
  const base = ['--url', url, '--ca', certFile];
  const created = await call(url, cert, 'POST', '/v1/sessions', {
    token: admin,
    body: { id: 'nat-1', title: 'Họp', endpoints: ['nb-h1', 'qb-x1'], chair: 'chair' },
  });
  t.equal(created.status, 201, JSON.stringify(created.body));

  const ctlConfig = join(dir, 'ctl.yaml');
  writeFileSync(ctlConfig, `ca: ${certFile}\n`);
  const [status, mcus, mcusJson, plan, infeasible, sessions, cascade, onlyStatus] = await Promise.all([
    ctl([...base, '--token', admin, 'status']),
    // URL and token from the environment, the certificate from a config file.
    ctl(['mcus'], { CASCADECTL_URL: url, CASCADECTL_TOKEN: viewer, CASCADECTL_CONFIG: ctlConfig }),
    ctl([...base, '--token', viewer, '--json', 'mcus']),
    ctl([...base, '--token', viewer, 'plan', '--endpoints', 'nb-h1,qb-x1', '--chair', 'chair']),
    ctl([...base, '--token', viewer, 'plan', '--endpoints', 'nb-h1', '--unavailable', 'nb']),
    ctl([...base, '--token', viewer, 'sessions']),
    ctl([...base, '--token', admin, 'cascade', 'nat-1']),
    ctl([...base, '--token', viewer, '--json', 'cascade', 'nat-1', '--status']),
  ]);
  t.equal(status.code, 0, status.err);
  t.match(status.out, /MCUs: 3 of 3 up; endpoints: 6\nyou: ops-admin \(admin, /);
  t.equal(mcus.code, 0, mcus.err);
  t.match(mcus.out, /^MCU\s+ROLE\s+OPERATOR\s+PROVINCE\s+HEALTH/);
  t.match(mcus.out, /\nmaster\s+master\s+cuc\s+-\s+up/);
  t.same(
    (JSON.parse(mcusJson.out) as { id: string }[]).map((m) => m.id),
    ['master', 'nb', 'qb-vnpt-1'],
  );
  t.equal(plan.code, 0, plan.err);
  t.match(plan.out, /endpoints, depth 1, \d+ cascade links/);
  t.match(plan.out, /\nnb\s+master\s+1\s/);
  t.equal(infeasible.code, 1);
  t.match(infeasible.err, /PLAN_ERR_INFEASIBLE \(HTTP 422\)/);
  t.match(sessions, { code: 0, out: /^SESSION\s+KIND\s+STATE\s+STARTS\s+TITLE\nnat-1\s+adhoc\s+live\s/ });
  t.equal(cascade.code, 0, cascade.err);
  t.match(cascade.out, /^session nat-1 \(live\), root master, plan v1: /);
  t.match(cascade.out, /\nCHILD\s+PARENT\s+STATE\s+SINCE\s+ATTEMPTS\s+DETAIL\n(nb|qb-vnpt-1)\s+master\s/);
  t.match(JSON.parse(onlyStatus.out), { sessionId: 'nat-1', links: Array });

  const audit = await ctl([...base, '--token', admin, 'audit', '--action', 'session.create']);
  t.equal(audit.code, 0, audit.err);
  t.match(audit.out, /^ID\s+AT\s+ACTOR\s+ROLE\s+ACTION\s+TARGET\s+OUTCOME\s+MS\n/);
  t.match(audit.out, /session\.create\s+nat-1\s+ok/);
});
