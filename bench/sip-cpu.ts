/**
 * `npm run bench -- sip-cpu [transactions=4000] [rounds=3] [--cpu-prof FILE]`: the SIP stack's own CPU
 * per transaction (issues 10, 11, 12), in this process, over real loopback sockets (docs/sip.md, "The
 * benchmark").
 *
 * Two of our user agents: a driver (the daemon's side) with INVITE dialogs and conference subscriptions
 * to an MCU user agent. Each leg runs `transactions` transactions of one kind: an in-dialog INFO with an
 * MSML body (~400 bytes) from the driver, answered 200 by the MCU; or a NOTIFY with a conference-info
 * partial state (~700 bytes) from the MCU, answered 200 by the driver (the two directions of a chair
 * command). Over UDP and over TCP, one at a time and `INFLIGHT` (50) in flight spread over `DIALOGS`
 * dialogs (the MCUs a command touches). The figure is this process's CPU time (user + system,
 * process.cpuUsage) per transaction: both ends' work, the kernel's loopback send and receive included.
 *
 * Both user agents log through pino at `info` into /dev/null, as the daemon does, and the driver counts
 * its `transaction` records (the daemon's metrics listen to them). Each leg runs once unmeasured first
 * (the JIT compiles the path once per process); then `rounds` rounds of every leg in an order rotated per
 * round, medians per leg. `--cpu-prof FILE` writes a V8 CPU profile of the measured rounds.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { destination, pino } from 'pino';
import type { Dialog, ServerSubscription, TransportName, UserAgent } from '../src/sip/index.js';
import { createUserAgent } from '../src/sip/index.js';

const INFLIGHT = 50;
const DIALOGS = 10;
const LEG_DEADLINE_MS = 120_000; // a leg never hangs longer than this
const log = (msg: string) => process.stderr.write(`bench sip-cpu: ${msg}\n`);

const SDP = 'v=0\r\no=cascaded 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';
const MSML = `<?xml version="1.0" encoding="UTF-8"?>
<msml version="1.1">
  <videolayout id="main" type="text/msml-basic-layout">
    <root size="CIF"/>
    <region id="1" left="0" top="0" relativesize="1"/>
  </videolayout>
  <join id1="conf:national-session-0001" id2="conn:endpoint-hanoi-ba-dinh-0042">
    <stream media="video" dir="to-id1" display="1"/>
    <stream media="audio" dir="to-id1"/>
  </join>
</msml>
`;
const CONFERENCE = (version: number) => `<?xml version="1.0" encoding="UTF-8"?>
<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:national-session-0001@mcu" state="partial" version="${version}">
  <users state="partial">
    <user entity="sip:endpoint-hanoi-ba-dinh-0042@mcu" state="partial">
      <display-text>UBND phuong Ba Dinh</display-text>
      <endpoint entity="sip:endpoint-hanoi-ba-dinh-0042@10.1.1.42" state="partial">
        <status>connected</status>
        <media id="2">
          <type>video</type>
          <status>sendrecv</status>
        </media>
        <media id="1">
          <type>audio</type>
          <status>sendrecv</status>
        </media>
      </endpoint>
    </user>
  </users>
</conference-info>
`;

interface Pair {
  transport: TransportName;
  driver: UserAgent;
  mcu: UserAgent;
  dialogs: Dialog[];
  notifiers: ServerSubscription[];
  records: number;
}

async function pair(transport: TransportName): Promise<Pair> {
  const logger = pino({ level: 'info' }, destination('/dev/null'));
  const listen = [{ transport, host: '127.0.0.1', port: 0 }];
  const mcu = await createUserAgent({ listen, user: 'mcu', logger });
  const driver = await createUserAgent({ listen, user: 'cascaded', logger });
  const notifiers: ServerSubscription[] = [];
  mcu.on('invite', (inv) => {
    inv
      .accept({ contentType: 'application/sdp', body: SDP })
      .then((d) => d.on('request', (req) => req.respond(200)))
      .catch((err) => log(`accept failed: ${String(err)}`));
  });
  mcu.on('subscribe', (s) => {
    s.accept({ contentType: 'application/conference-info+xml', body: CONFERENCE(1) })
      .then((n) => notifiers.push(n))
      .catch((err) => log(`subscribe accept failed: ${String(err)}`));
  });
  const p: Pair = { transport, driver, mcu, dialogs: [], notifiers, records: 0 };
  driver.on('transaction', () => p.records++);
  const target = `sip:mcu@127.0.0.1:${mcu.listening[0]!.port};transport=${transport}`;
  for (let i = 0; i < DIALOGS; i++) {
    p.dialogs.push(await driver.invite(target, { contentType: 'application/sdp', body: SDP }));
    const sub = await driver.subscribe(target, { event: 'conference' });
    sub.on('notify', () => {});
  }
  const end = performance.now() + 10_000;
  while (notifiers.length < DIALOGS) {
    if (performance.now() > end) throw new Error('the MCU side never got its subscriptions');
    await new Promise((r) => setImmediate(r));
  }
  return p;
}

type Kind = 'info' | 'notify';

/** `n` transactions of one kind, `inflight` at a time; CPU microseconds per transaction. */
async function leg(p: Pair, kind: Kind, n: number, inflight: number): Promise<number> {
  let version = 2;
  let next = 0;
  let failed = 0;
  const one = (i: number): Promise<unknown> =>
    kind === 'info'
      ? p.dialogs[i % DIALOGS]!.request('INFO', { contentType: 'application/msml+xml', body: MSML })
      : p.notifiers[i % DIALOGS]!.notify({
          contentType: 'application/conference-info+xml',
          body: CONFERENCE(version++),
        });
  const records0 = p.records;
  const cpu0 = process.cpuUsage();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(
      Array.from({ length: inflight }, async (_, lane) => {
        while (next < n) {
          next++;
          try {
            await one(lane);
          } catch (err) {
            if (++failed <= 3) log(`${kind} over ${p.transport} failed: ${String(err)}`);
          }
        }
      }),
    ),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${kind} over ${p.transport} took over ${LEG_DEADLINE_MS} ms`)),
        LEG_DEADLINE_MS,
      );
    }),
  ]);
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpu0);
  if (failed > 0) throw new Error(`${failed} of ${n} ${kind} transactions over ${p.transport} failed`);
  // A NOTIFY's record is the MCU's; the driver records the INFOs it sent and the NOTIFYs it answered.
  if (p.records - records0 !== n) throw new Error(`expected ${n} transaction records, got ${p.records - records0}`);
  return (cpu.user + cpu.system) / n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const profAt = args.indexOf('--cpu-prof');
  const prof = profAt >= 0 ? args[profAt + 1] : undefined;
  const positional = args.filter((_, i) => profAt < 0 || (i !== profAt && i !== profAt + 1));
  const n = Number(positional[0] ?? 4_000);
  const rounds = Number(positional[1] ?? 3);
  const load0 = loadavg()[0]!;
  const pairs = { udp: await pair('udp'), tcp: await pair('tcp') };
  const legs: Array<{ name: string; run: (count: number) => Promise<number> }> = [];
  for (const t of ['udp', 'tcp'] as const)
    for (const kind of ['info', 'notify'] as const)
      for (const inflight of [1, INFLIGHT])
        legs.push({ name: `${t}_${kind}_${inflight}`, run: (count) => leg(pairs[t], kind, count, inflight) });
  try {
    for (const l of legs) await l.run(Math.min(1_000, n));
    const inspector = prof === undefined ? undefined : new Session();
    if (inspector !== undefined) {
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.start');
    }
    const per = new Map<string, number[]>(legs.map((l) => [l.name, []]));
    for (let r = 0; r < rounds; r++)
      for (let i = 0; i < legs.length; i++) {
        const l = legs[(r + i) % legs.length]!;
        per.get(l.name)!.push(await l.run(n));
      }
    if (inspector !== undefined && prof !== undefined) {
      const { profile } = await inspector.post('Profiler.stop');
      writeFileSync(prof, JSON.stringify(profile));
      inspector.disconnect();
      log(`CPU profile written to ${prof}`);
    }
    const us: Record<string, number> = {};
    for (const [name, xs] of per) us[name] = Math.round(median(xs) * 10) / 10;
    const all = [...per.values()].map(median);
    return {
      transactions: n,
      rounds,
      inflight: INFLIGHT,
      dialogs: DIALOGS,
      cpu_us_per_transaction: us,
      cpu_us_per_transaction_mean: Math.round((all.reduce((a, b) => a + b, 0) / all.length) * 10) / 10,
      rss_mb: Math.round(process.memoryUsage().rss / 1_048_576),
      load_before: Math.round(load0 * 100) / 100,
      load_after: Math.round(loadavg()[0]! * 100) / 100,
    };
  } finally {
    await Promise.all([
      pairs.udp.driver.close(),
      pairs.udp.mcu.close(),
      pairs.tcp.driver.close(),
      pairs.tcp.mcu.close(),
    ]);
  }
}
