/**
 * Call quality reports (RFC 6035) against an MCU we did not write: SIPp
 * (test/interop/sipp/mcu-quality-uas.xml) plays an MCU that answers the
 * driver's vq-rtcpxr SUBSCRIBE and sends the RFC's own example report
 * (section 4.7.3, message F13) in a NOTIFY. The driver must subscribe to the
 * package with the body type it reads, take the report off the wire and read
 * the RFC's figures from it, and end the subscription when it closes.
 */
import { join } from 'node:path';
import t from 'tap';
import { createSipMsmlDriver, type QualityReport } from '../../src/mcu/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { freePort, have, SCENARIOS, sipp, tempDir, udpPortBound } from './sip-peers.js';

t.setTimeout(90_000);

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the quality report interop test is skipped');
} else {
  t.test("driver against a SIPp MCU sending RFC 6035's example report", async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const port = await freePort();
    const peer = sipp(
      tmp.dir,
      ['-sf', join(SCENARIOS, 'mcu-quality-uas.xml'), '-i', '127.0.0.1', '-p', `${port}`, '-m', '3', '-timeout', '30s'],
      40_000,
    );
    t.teardown(() => peer.stop());
    await udpPortBound(port);

    const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    t.teardown(() => ua.close());
    // No health OPTIONS during the test: one would be out of the script while SIPp waits for a NOTIFY's 200.
    const d = createSipMsmlDriver({
      ua,
      mcu: { id: 'sipp', uri: `sip:conf@127.0.0.1:${port}` },
      healthIntervalMs: 60_000,
      requestTimeoutMs: 3_000,
      qualityReports: true,
    });
    t.teardown(() => d.close());
    const got = new Promise<QualityReport>((resolve) => d.conference(d.uri).once('quality', resolve));
    await d.connect();
    const q = await got;
    t.match(q, {
      conference: d.uri,
      entity: 'sip:bill@example.net',
      callId: '6dg37f1890463',
      type: 'session',
      callTerm: true,
    });
    const figures = { lossPercent: 5, discardPercent: 2, roundTripMs: 200, oneWayMs: 200, jitterMs: 2, codec: 'G729' };
    t.match(q.local, figures);
    t.match(q.remote, figures);
    t.equal(d.capabilities.qualityReports, 'available');
    await d.close();

    const result = await peer.done;
    t.equal(result.code, 0, `sipp exit status 0 (${result.stderr.slice(0, 500)})`);
    t.equal(result.successful, 3, 'the control dialog and both subscriptions completed as scripted');
    t.equal(result.failed, 0);
  });
}
