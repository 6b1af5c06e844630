/**
 * The sip-msml driver against an MCU we did not write: SIPp (Debian package
 * sip-tester) plays a minimal standards MCU (test/interop/sipp/mcu-msml-uas.xml),
 * so the driver is shown not to depend on our simulator's quirks. When tshark
 * can capture on loopback, the session is captured and must decode as SIP
 * with no malformed packet.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { createSipMsmlDriver } from '../../src/mcu/index.js';
import { createSimMcu } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { freePort, have, SCENARIOS, sipp, tempDir } from './sip-peers.js';

t.setTimeout(90_000);

function startCapture(file: string, port: number, more: number[] = []): Promise<ChildProcess | undefined> {
  const filter = ['udp port', port, ...more.map((p) => `or udp port ${p}`)].join(' ');
  const child = spawn('tshark', ['-i', 'lo', '-f', filter, '-a', 'duration:40', '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve) => {
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(undefined);
    }, 10_000);
    child.stderr?.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('Capturing on')) {
        clearTimeout(timer);
        // tshark says so a moment before the capture filter is really in place.
        setTimeout(() => resolve(child), 500);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8', timeout: 30_000 });
  return r.stdout ?? '';
}

if (!have('sipp')) {
  t.plan(0, 'sipp is not installed (Debian package sip-tester): skipping the driver-vs-SIPp interop test');
} else {
  t.test('driver against a SIPp MCU: control INVITE, roster, MSML INFOs, keyframe, OPTIONS, close', async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const port = await freePort();
    const pcap = join(tmp.dir, 'driver.pcapng');
    const capture = have('tshark', '-v') ? await startCapture(pcap, port) : undefined;
    if (capture === undefined) t.comment('tshark missing or cannot capture on lo (needs root): capture check skipped');

    const peer = sipp(
      tmp.dir,
      ['-sf', join(SCENARIOS, 'mcu-msml-uas.xml'), '-i', '127.0.0.1', '-p', `${port}`, '-m', '2', '-timeout', '30s'],
      40_000,
    );
    t.teardown(() => peer.stop());
    await new Promise((r) => setTimeout(r, 500)); // SIPp binds its socket

    const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    t.teardown(() => ua.close());
    const d = createSipMsmlDriver({
      ua,
      mcu: { id: 'sipp', uri: `sip:conf@127.0.0.1:${port}` },
      healthIntervalMs: 100,
      requestTimeoutMs: 3_000,
    });
    await d.connect();
    t.equal(d.health.up, true);
    t.match(
      [...d.roster.values()],
      [{ entity: 'sip:room1@endpoints.invalid', kind: 'endpoint', displayText: 'Room 1' }],
    );
    await d.setLayout('sip:room1@endpoints.invalid', '1+5');
    await d.showSource('sip:room1@endpoints.invalid', 1, 'sip:room1@endpoints.invalid');
    await d.mute('sip:room1@endpoints.invalid');
    await d.unmute('sip:room1@endpoints.invalid');
    await d.requestKeyframe('sip:room1@endpoints.invalid');
    await new Promise((r) => setTimeout(r, 350)); // a few health OPTIONS in the dialog
    t.equal(d.health.up, true, 'OPTIONS answered');
    await d.close();

    const result = await peer.done;
    t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
    t.equal(result.successful, 2, 'the control call and the subscription both completed');
    t.equal(result.failed, 0);

    if (capture !== undefined) {
      await new Promise((r) => setTimeout(r, 300));
      const exited = new Promise((r) => capture.once('exit', r));
      capture.kill('SIGINT');
      await exited;
      t.equal(tshark(['-r', pcap, '-Y', '_ws.malformed']).trim(), '', 'no malformed packet');
      const lines = tshark(['-r', pcap, '-Y', 'sip', '-T', 'fields', '-e', 'sip.Method', '-e', 'sip.Status-Code'])
        .trim()
        .split('\n');
      const methods = new Set(lines.map((l) => l.split('\t')[0]).filter((m) => m !== ''));
      for (const m of ['INVITE', 'ACK', 'INFO', 'OPTIONS', 'SUBSCRIBE', 'NOTIFY', 'BYE'])
        t.ok(methods.has(m), `${m} decoded as SIP`);
      t.ok(lines.length >= 20, `${lines.length} SIP messages decoded`);
    }
  });
}

if (!have('tshark', '-v')) {
  t.comment('tshark is not installed: the capture of a driver session with simulated MCUs is skipped');
} else {
  t.test(
    'tshark: a driver session with two simulated MCUs (REFER, sipfrag, conference-info) decodes cleanly',
    async (t) => {
      const tmp = tempDir();
      t.teardown(() => tmp.remove());
      const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
      const pcap = join(tmp.dir, 'sim.pcapng');
      const capture = await startCapture(pcap, p1, [p2, p3]);
      if (capture === undefined) {
        t.comment('tshark cannot capture on lo (needs root): skipped');
        return;
      }
      const parent = await createSimMcu({ id: 'parent', uri: `sip:conf@127.0.0.1:${p1}`, ports: 10, tcp: false });
      const child = await createSimMcu({
        id: 'child',
        uri: `sip:conf@127.0.0.1:${p2}`,
        ports: 10,
        tcp: false,
        isFocus: (e) => e === parent.uri,
      });
      t.teardown(() => Promise.all([parent.close(), child.close()]));
      parent.join('sip:chair@endpoints.invalid');
      const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: p3 }] });
      t.teardown(() => ua.close());
      const d = createSipMsmlDriver({ ua, mcu: { id: 'parent', uri: parent.uri }, healthIntervalMs: 100 });
      await d.connect();
      await d.dialLink(child.uri);
      await d.setLayout('sip:chair@endpoints.invalid', '1+1');
      await d.showSource('sip:chair@endpoints.invalid', 2, child.uri);
      await d.requestKeyframe('sip:chair@endpoints.invalid');
      await d.hangUpLink(child.uri);
      await new Promise((r) => setTimeout(r, 250)); // a couple of health OPTIONS
      await d.close();
      await new Promise((r) => setTimeout(r, 300));
      const exited = new Promise((r) => capture.once('exit', r));
      capture.kill('SIGINT');
      await exited;
      t.equal(tshark(['-r', pcap, '-Y', '_ws.malformed']).trim(), '', 'no malformed packet');
      const fields = tshark(['-r', pcap, '-Y', 'sip', '-T', 'fields', '-e', 'sip.Method', '-e', 'sip.Event'])
        .trim()
        .split('\n')
        .map((l) => l.split('\t'));
      const methods = new Set(fields.map(([m]) => m));
      for (const m of ['INVITE', 'ACK', 'REFER', 'NOTIFY', 'SUBSCRIBE', 'INFO', 'OPTIONS', 'BYE'])
        t.ok(methods.has(m), `${m} decoded as SIP`);
      const events = new Set(fields.filter(([m]) => m === 'NOTIFY').map(([, e]) => e?.replace(/;.*/, '')));
      t.same([...events].sort(), ['conference', 'refer'], 'conference-info and sipfrag NOTIFYs');
    },
  );
}
