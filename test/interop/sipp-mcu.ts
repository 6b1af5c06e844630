/**
 * SIPp playing an MCU on a UDP port of its own, and a sip-msml driver pointed at it through a user agent of
 * its own: what the driver's SIPp interop tests share. Everything is torn down with the test.
 */
import { join } from 'node:path';
import { createSipMsmlDriver, type SipMsmlDriver, type SipMsmlDriverOptions } from '../../src/mcu/index.js';
import { createUserAgent, type UserAgent } from '../../src/sip/index.js';
import { freePort, type Peer, SCENARIOS, sipp, tempDir, udpPortBound } from './sip-peers.js';

type Tap = { teardown(fn: () => unknown): void };

export interface SippMcu {
  readonly peer: Peer;
  /** The test's temporary directory (SIPp's logs go there). */
  readonly dir: string;
  /** SIPp's UDP port. */
  readonly port: number;
  /** The driver's user agent (to count its transactions). */
  readonly ua: UserAgent;
  readonly driver: SipMsmlDriver;
}

export async function sippMcu(
  t: Tap,
  o: {
    /** A file of test/interop/sipp. */
    readonly scenario: string;
    /** SIPp's UDP port, when the test needs it before SIPp starts (a capture on it); default a free one. */
    readonly port?: number;
    /** SIPp's -m: the calls it takes before it exits. */
    readonly calls: number;
    /** More SIPp arguments; `dir` is the temporary directory. */
    readonly args?: (dir: string) => string[];
    /** Driver settings over the defaults: no health OPTIONS during a test (out of any script), 3 s requests. */
    readonly driver?: Partial<Omit<SipMsmlDriverOptions, 'ua' | 'mcu'>>;
  },
): Promise<SippMcu> {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const port = o.port ?? (await freePort());
  const peer = sipp(
    tmp.dir,
    [
      ...['-sf', join(SCENARIOS, o.scenario), '-i', '127.0.0.1', '-p', `${port}`, '-m', `${o.calls}`],
      ...['-timeout', '30s', ...(o.args?.(tmp.dir) ?? [])],
    ],
    40_000,
  );
  t.teardown(() => peer.stop());
  await udpPortBound(port);
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
  t.teardown(() => ua.close());
  const driver = createSipMsmlDriver({
    ua,
    mcu: { id: 'sipp', uri: `sip:conf@127.0.0.1:${port}` },
    healthIntervalMs: 60_000,
    requestTimeoutMs: 3_000,
    ...o.driver,
  });
  t.teardown(() => driver.close());
  return { peer, dir: tmp.dir, port, ua, driver };
}
