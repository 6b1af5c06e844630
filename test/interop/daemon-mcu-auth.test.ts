/**
 * The daemon against an MCU that challenges: SIPp plays the master MCU and
 * answers 401 MD5 to the control INVITE and the SUBSCRIBE, checking the
 * digest with its own code; the daemon reads the master's secret as a
 * systemd credential ($CREDENTIALS_DIRECTORY, LoadCredential=) and must come
 * up, without the secret in its logs or in the store's inventory snapshot.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { freePort, have, SCENARIOS, sipp, tempDir, udpPortBound } from './sip-peers.js';

t.setTimeout(120_000);

const SECRET = 'mcu-secret'; // what test/interop/sipp/mcu-auth-uas.xml checks

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the challenged daemon test is skipped');
} else {
  t.test('the daemon comes up against a master MCU that challenges, with a LoadCredential= secret', async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const port = await freePort();
    const peer = sipp(
      tmp.dir,
      ['-sf', join(SCENARIOS, 'mcu-auth-uas.xml'), '-i', '127.0.0.1', '-p', `${port}`, '-m', '2', '-timeout', '60s'],
      70_000,
    );
    t.teardown(() => peer.stop());
    await udpPortBound(port);
    const sims = await Promise.all(
      ['nb', 'qb-vnpt-1'].map((id) => createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20 })),
    );
    t.teardown(() => Promise.all(sims.map((s) => s.close())));

    const dir = t.testdir({ credentials: { 'master-mcu': `${SECRET}\n` } });
    const o = baseConfig();
    o.daemon = {
      logLevel: 'debug',
      stateDir: join(dir, 'state'),
      api: { host: '127.0.0.1', port: 0 },
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
    };
    o.mcus[0].sip = [`sip:conf@127.0.0.1:${port}`];
    o.mcus[0].auth = { username: 'cascaded', credential: 'master-mcu' };
    o.mcus[1].sip = [sims[0]!.uri];
    o.mcus[2].sip = [sims[1]!.uri];
    const file = join(dir, 'cascaded.yaml');
    writeFileSync(file, toYaml(o));

    const d = spawnDaemon(['--config', file], { CREDENTIALS_DIRECTORY: join(dir, 'credentials') });
    t.teardown(() => d.child.kill('SIGKILL'));
    const connected = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('MCUs connected'));
    t.match(connected, { msg: 'MCUs connected: 3 of 3 up', up: 3, down: 0 });
    d.child.kill('SIGTERM');
    t.same(await d.exited, { code: 0, signal: null });

    const r = await peer.done;
    t.equal(r.code, 0, `sipp exit status 0 (${r.stderr.slice(0, 500)})`);
    t.same([r.successful, r.failed], [2, 0], 'SIPp accepted the digests of the INVITE and the SUBSCRIBE');

    t.notMatch(JSON.stringify(d.logs), SECRET, 'the secret is in no log line (debug level)');
    const db = new Database(join(dir, 'state', 'cascaded.db'), { readonly: true });
    const snapshots = JSON.stringify(db.prepare('SELECT * FROM inventory_snapshots').all());
    db.close();
    t.match(snapshots, 'master-mcu', 'the snapshot records where the secret lives');
    t.notMatch(snapshots, SECRET, 'but not the secret');
    t.notMatch(readFileSync(file, 'utf8'), SECRET);
  });
}
