/**
 * A rotated MCU password reaches the wire after SIGHUP, checked by a peer we did not write: SIPp plays the
 * master MCU and verifies the digest (verifyauth) against the old password, the daemon comes up; that SIPp
 * goes away (the master is down), the secret file is rewritten and the daemon gets SIGHUP; a second SIPp on
 * the same address accepts only the new password, and the daemon's reconnection must come up against it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { freePort, have, SCENARIOS, sipp, tempDir, waitBound } from './sip-peers.js';

t.setTimeout(120_000);

const OLD = 'mcu-secret'; // what test/interop/sipp/mcu-auth-uas.xml checks
const NEW = 'mcu-secret-rotated';

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the secret rotation witness is skipped');
} else {
  t.test('SIGHUP: the daemon answers the next challenge with the rotated password', async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    // The same MCU after its password changed: the scenario with the new password in its verifyauth actions.
    const scenario = readFileSync(join(SCENARIOS, 'mcu-auth-uas.xml'), 'utf8');
    const rotated = join(tmp.dir, 'mcu-auth-uas-rotated.xml');
    writeFileSync(rotated, scenario.replaceAll(`password="${OLD}"`, `password="${NEW}"`));
    t.not(readFileSync(rotated, 'utf8'), scenario, 'the second SIPp checks another password');

    const port = await freePort();
    // Over TCP: the first SIPp's end closes its connection, so no retransmission of the old dialog's BYE or
    // un-SUBSCRIBE (UDP, RFC 3261 17.1.2.2) reaches the second SIPp as a call of its own.
    const peerArgs = (file: string) => [
      '-sf',
      file,
      '-i',
      '127.0.0.1',
      '-p',
      `${port}`,
      '-t',
      't1',
      '-m',
      '2',
      '-timeout',
      '60s',
    ];
    const first = sipp(tmp.dir, peerArgs(join(SCENARIOS, 'mcu-auth-uas.xml')), 70_000);
    t.teardown(() => first.stop());
    t.ok(await waitBound(port, 'tcp'), 'the first SIPp listens');
    const sims = await Promise.all(
      ['nb', 'qb-vnpt-1'].map((id) => createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20 })),
    );
    t.teardown(() => Promise.all(sims.map((s) => s.close())));

    const dir = t.testdir({ 'master.secret': `${OLD}\n` });
    const o = baseConfig();
    o.daemon = {
      logLevel: 'debug',
      stateDir: join(dir, 'state'),
      api: { host: '127.0.0.1', port: 0 },
      sip: {
        listen: [
          { transport: 'udp', host: '127.0.0.1', port: 0 },
          { transport: 'tcp', host: '127.0.0.1', port: 0 },
        ],
      },
      // Noticed down within a few seconds of the first SIPp going away.
      mcu: { healthIntervalMs: 500, healthFailures: 1, requestTimeoutMs: 1_000 },
    };
    o.mcus[0].sip = [`sip:conf@127.0.0.1:${port};transport=tcp`];
    o.mcus[0].auth = { username: 'cascaded', passwordFile: join(dir, 'master.secret') };
    o.mcus[1].sip = [sims[0]!.uri];
    o.mcus[2].sip = [sims[1]!.uri];
    const file = join(dir, 'cascaded.yaml');
    writeFileSync(file, toYaml(o));

    const d = spawnDaemon(['--config', file]);
    t.teardown(() => d.child.kill('SIGKILL'));
    const masterLog = (msg: string) => (l: Record<string, unknown>) => l.mcu === 'master' && l.msg === msg;
    const connected = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('MCUs connected'));
    t.match(connected, { msg: 'MCUs connected: 3 of 3 up', up: 3 }, 'up with the old password');

    first.stop();
    await first.done;
    await d.waitForLog(masterLog('MCU down'), 30_000);
    writeFileSync(join(dir, 'master.secret'), `${NEW}\n`);
    d.child.kill('SIGHUP');
    const reread = await d.waitForLog((l) => l.msg === 'MCU secrets read again');
    t.match(reread, { mcus: ['master'] });
    const upsBefore = d.logs.filter(masterLog('MCU up')).length;

    const second = sipp(tmp.dir, peerArgs(rotated), 70_000);
    t.teardown(() => second.stop());
    await d.waitForLog(() => d.logs.filter(masterLog('MCU up')).length > upsBefore, 60_000);
    d.child.kill('SIGTERM');
    t.same(await d.exited, { code: 0, signal: null });

    const r = await second.done;
    t.same([r.successful, r.failed], [2, 0], `SIPp accepted the rotated digests (${r.stderr.slice(0, 500)})`);
    t.equal(r.code, 0);
    t.notMatch(JSON.stringify(d.logs), NEW, 'the new secret is in no log line (debug level)');
  });
}
