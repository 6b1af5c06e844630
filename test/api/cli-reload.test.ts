/**
 * SIGHUP reloads the API certificate of the running daemon (the real
 * process): new connections get the renewed one; a broken file keeps the
 * old one and the daemon serving.
 */
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { certFor, runningDaemon } from './cli-daemon.js';
import { call } from './harness.js';

const served = (url: string) => {
  const u = new URL(url);
  return new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
};

// Child processes (the daemon, each CLI run) take seconds each on a loaded machine: a bound, not a wait.
t.setTimeout(240_000);

t.test('SIGHUP: the renewed certificate for new connections; a broken one keeps the old', async (t) => {
  const { file, url, cert, d } = await runningDaemon(t);
  const dir = join(file, '..');
  t.equal(await served(url), new X509Certificate(cert).fingerprint256);

  const second = await certFor('second');
  writeFileSync(join(dir, 'api.crt'), second.cert);
  writeFileSync(join(dir, 'api.key'), second.private);
  d.child.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'API certificate reloaded', 60_000);
  t.equal(await served(url), new X509Certificate(second.cert).fingerprint256);

  writeFileSync(join(dir, 'api.key'), 'garbage');
  d.child.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'API certificate reload failed; the old one stays', 60_000);
  t.equal((await call(url, second.cert, 'GET', '/healthz')).status, 200, 'still serving');
  t.equal(await served(url), new X509Certificate(second.cert).fingerprint256);

  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'stops cleanly after both reloads');
});
