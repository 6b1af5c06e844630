/**
 * The sip-msml driver against an MCU we did not write: SIPp (Debian package
 * sip-tester) plays a minimal standards MCU (test/interop/sipp/mcu-msml-uas.xml),
 * so the driver is shown not to depend on our simulator's quirks. When tshark
 * can capture on loopback, the session is captured and must decode as SIP
 * with no malformed packet.
 */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { join } from 'node:path';
import t from 'tap';
import { createSipMsmlDriver } from '../../src/mcu/index.js';
import { createSimMcu } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { answered, freePort, have, tempDir } from './sip-peers.js';
import { sippMcu } from './sipp-mcu.js';

t.setTimeout(90_000);

interface Capture {
  /** Each packet as tshark decodes it live: frame number, CSeq method, status code (tab-separated). */
  readonly lines: string[];
  /** Wait until a decoded packet line matches (bounded). */
  waitFor(re: RegExp, what: string): Promise<void>;
  /** End the capture; the file is complete when this resolves. */
  stop(): Promise<void>;
}

/**
 * tshark writing `file` and printing each packet as it decodes it (-P), so
 * the test waits for packets instead of for time: the capture is known to
 * run once a probe datagram to the first port shows up, and complete once
 * the last expected message does.
 */
async function startCapture(file: string, ports: number[]): Promise<Capture | undefined> {
  const filter = ports.map((p) => `udp port ${p}`).join(' or ');
  const fields = ['-T', 'fields', '-e', 'frame.number', '-e', 'sip.CSeq.method', '-e', 'sip.Status-Code'];
  const child = spawn('tshark', ['-i', 'lo', '-f', filter, '-a', 'duration:60', '-P', '-l', ...fields, '-w', file], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const lines: string[] = [];
  let pending = '';
  child.stdout?.on('data', (c: Buffer) => {
    pending += c.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    lines.push(...parts);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const waitFor = async (re: RegExp, what: string, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!lines.some((l) => re.test(l))) {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`capture: no ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const probe = dgram.createSocket('udp4');
  try {
    const end = Date.now() + 15_000;
    while (lines.length === 0) {
      if (child.exitCode !== null || Date.now() > end) {
        child.kill('SIGKILL');
        return undefined;
      }
      probe.send('capture probe', ports[0]!, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    probe.close();
  }
  return {
    lines,
    waitFor,
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8', timeout: 30_000 });
  return r.stdout ?? '';
}

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the driver-vs-SIPp interop test is skipped');
} else {
  t.test('driver against a SIPp MCU: control INVITE, roster, MSML INFOs, keyframe, OPTIONS, close', async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const port = await freePort();
    const pcap = join(tmp.dir, 'driver.pcapng');
    const capture = have('tshark', '-v') ? await startCapture(pcap, [port]) : undefined;
    if (capture === undefined) t.comment('tshark missing or cannot capture on lo (needs root): capture check skipped');

    // Health OPTIONS every 100 ms: the scenario answers them (three are waited for below).
    const {
      peer,
      ua,
      driver: d,
    } = await sippMcu(t, {
      scenario: 'mcu-msml-uas.xml',
      calls: 2,
      port,
      driver: { healthIntervalMs: 100 },
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
    await answered(ua, 'OPTIONS', 3);
    t.equal(d.health.up, true, 'OPTIONS answered');
    await d.close();

    const result = await peer.done;
    t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
    t.equal(result.successful, 2, 'the control call and the subscription both completed');
    t.equal(result.failed, 0);

    if (capture !== undefined) {
      await capture.waitFor(/\tBYE\t200$/, 'answer to the BYE');
      await capture.stop();
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
      const capture = await startCapture(pcap, [p1, p2, p3]);
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
      await answered(ua, 'OPTIONS', 2);
      await d.close();
      await capture.waitFor(/\tBYE\t200$/, 'answer to the BYE');
      await capture.stop();
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
