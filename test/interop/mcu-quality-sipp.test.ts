/**
 * Call quality reports (RFC 6035) against an MCU we did not write: SIPp
 * (test/interop/sipp/mcu-quality-uas.xml) plays an MCU that answers the
 * driver's vq-rtcpxr SUBSCRIBE and sends the RFC's own example report
 * (section 4.7.3, message F13) in a NOTIFY. The driver must subscribe to the
 * package with the body type it reads, take the report off the wire and read
 * the RFC's figures from it, and end the subscription when it closes.
 */
import t from 'tap';
import type { QualityReport } from '../../src/mcu/index.js';
import { have } from './sip-peers.js';
import { sippMcu } from './sipp-mcu.js';

t.setTimeout(90_000);

if (!have('sipp')) {
  t.comment('sipp is not installed (Debian package sip-tester): the quality report interop test is skipped');
} else {
  t.test("driver against a SIPp MCU sending RFC 6035's example report", async (t) => {
    // The helper's driver sends no health OPTIONS: one would be out of the script while SIPp waits for a NOTIFY's 200.
    const { peer, driver: d } = await sippMcu(t, {
      scenario: 'mcu-quality-uas.xml',
      calls: 3,
      driver: { qualityReports: true },
    });
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
