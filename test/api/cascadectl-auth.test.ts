/**
 * cascadectl against the real daemon when something is refused: clear
 * messages on 401 and 403 and a chair command for an unknown session (the
 * daemon's chair engine: CHAIR_ERR_NO_SESSION, audited), a certificate it
 * cannot verify (with the fingerprint to pin, and the pin), usage errors;
 * `watch` following /v1/events while an MCU goes down.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { ctlRunner, runningDaemon } from './cli-daemon.js';

// Child processes (the daemon, each CLI run) take seconds each on a loaded machine: a bound, not a wait.
t.setTimeout(240_000);

t.test('cascadectl: refusals, certificates, watch', async (t) => {
  const { url, cert, certFile, dir, file, sims } = await runningDaemon(t, {
    generatedCertificate: true,
    mcu: { healthIntervalMs: 500, healthFailures: 1, requestTimeoutMs: 300 },
  });
  const { ctl, mint } = ctlRunner(dir, file);
  const [admin, viewer] = await Promise.all([mint('--role', 'admin'), mint('--role', 'viewer')]);
  const base = ['--url', url, '--ca', certFile];
  const fp = new X509Certificate(cert).fingerprint256;

  const [noToken, badToken, forbidden, unknown, unverified, pinned, wrongPin, plainUrl, usage] = await Promise.all([
    ctl([...base, 'status']),
    ctl([...base, '--token', `${viewer.slice(0, -4)}AAAA`, 'status']),
    ctl([...base, '--token', viewer, 'chair', 's1', 'nb-h1']),
    ctl([...base, '--token', admin, 'chair', 's1', 'nb-h1']),
    ctl(['--url', url, '--token', viewer, 'status']),
    ctl(['--url', url, '--token', viewer, '--pin-sha256', fp, 'status']),
    ctl([
      '--url',
      url,
      '--token',
      viewer,
      '--pin-sha256',
      `${fp.startsWith('00') ? 'FF' : '00'}${fp.slice(2)}`,
      'status',
    ]),
    ctl(['--url', 'http://127.0.0.1:1', 'status']),
    ctl([...base, 'frobnicate']),
  ]);
  t.equal(noToken.code, 3);
  t.match(noToken.err, /not authenticated \(API_ERR_UNAUTHENTICATED: missing\): no token given/);
  t.match(badToken, { code: 3, err: /does not know this token/ });
  t.match(forbidden, { code: 3, err: /not allowed \(API_ERR_FORBIDDEN\)/ });
  t.match(unknown, { code: 1, err: /CHAIR_ERR_NO_SESSION \(HTTP 404\): no live session s1/ });
  t.equal(unverified.code, 1);
  t.match(unverified.err, /cannot verify the daemon's certificate/);
  t.ok(unverified.err.includes(`--pin-sha256 ${fp}`), 'shows the fingerprint to pin');
  t.equal(pinned.code, 0, pinned.err);
  t.match(wrongPin, { code: 1, err: /is not the pinned/ });
  t.match(plainUrl, { code: 2, err: /https/ });
  t.match(usage, { code: 2, err: /unknown command/ });

  const audit = await ctl([...base, '--token', admin, 'audit', '--action', 'chair.switch']);
  t.equal(audit.code, 0, audit.err);
  t.match(audit.out, /chair\.switch\s+s1\s+CHAIR_ERR_NO_SESSION/);
  t.match(audit.out, /chair\.switch\s+s1\s+API_ERR_FORBIDDEN/);

  // watch follows /v1/events: once it says the stream is open, an MCU going down arrives as a line.
  const watcher = spawn(
    process.execPath,
    ['dist/src/cli/cascadectl.js', ...base, '--token', viewer, 'watch', '--types', 'mcu', '--count', '1'],
    { env: { PATH: process.env.PATH, HOME: dir } },
  );
  t.teardown(() => watcher.kill('SIGKILL'));
  let watched = '';
  watcher.stdout.setEncoding('utf8').on('data', (s: string) => {
    watched += s;
  });
  const exited = new Promise<number | null>((resolve) => watcher.once('exit', resolve));
  const following = new Promise<string>((resolve) => {
    let err = '';
    watcher.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      if (err.includes('cascadectl: following ')) resolve(err);
    });
  });
  t.match(await Promise.race([following, exited.then((c) => `exited ${c}`)]), /following https:.*\/v1\/events \(mcu\)/);
  await sims[2]!.close();
  t.equal(await exited, 0);
  t.match(watched, /mcu\s+qb-vnpt-1 DOWN \(/);
});
