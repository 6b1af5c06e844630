/**
 * What this machine charges a process for having slept, with none of our code: the same work run back to back
 * and run right after a sleep as long as a chair command's round trip. Two kinds of work: a walk over 20,000
 * small objects (about 2 MB), and a UDP round trip between two sockets of this process (a 900-byte datagram
 * answered with 360 bytes: Node's and the kernel's share of a SIP transaction). Run as a process of its own
 * (`node _wake-probe.js`), so that nothing else runs beside it; prints one JSON line: the medians in ms
 * (docs/chair.md, "Session 15").
 *
 * On this project's VMs the walk after a sleep took about four times as long and the round trip about ten
 * times: the process's memory has left the CPU's caches meanwhile, and the CPU time of refilling them is
 * charged to the process. A pure arithmetic loop, which touches no memory, is not slowed, so this is not the
 * clock rate.
 */
import { createSocket } from 'node:dgram';
import { cpuMs, quantile } from './_blocks.js';

const OBJECTS = 20_000;
const ROUNDS = 150;
const SLEEP_MS = 65;

const table = new Map<string, { a: number; b: string }>();
for (let i = 0; i < OBJECTS; i++) table.set(`k${i}`, { a: i, b: `v${i}` });

function walk(): number {
  let s = 0;
  for (const v of table.values()) s += v.a + v.b.length;
  return s;
}

/** CPU ms of one call of `work` (the medians of `ROUNDS`), each after `sleepMs` asleep (0: right after the last). */
async function timed(work: () => Promise<unknown>, sleepMs: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await new Promise((r) => (sleepMs > 0 ? setTimeout(r, sleepMs) : setImmediate(r)));
    const c0 = cpuMs();
    await work();
    ms.push(cpuMs() - c0);
  }
  return quantile(ms, 0.5);
}

const client = createSocket('udp4');
const server = createSocket('udp4');
await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
const REQUEST = Buffer.alloc(900, 0x61);
const ANSWER = Buffer.alloc(360, 0x62);
server.on('message', (_, from) => server.send(ANSWER, from.port, from.address));
let answered: () => void = () => {};
client.on('message', () => answered());
const roundTrip = () =>
  new Promise<void>((resolve) => {
    answered = resolve;
    client.send(REQUEST, server.address().port, '127.0.0.1');
  });

let sink = 0;
const walked = async () => {
  sink += walk();
};
for (let i = 0; i < 300; i++) {
  await walked();
  await roundTrip();
}
const r = (x: number) => Math.round(x * 1000) / 1000;
const out = {
  sleep_ms: SLEEP_MS,
  walk_ms: r(await timed(walked, 0)),
  walk_after_sleep_ms: r(await timed(walked, SLEEP_MS)),
  udp_round_trip_ms: r(await timed(roundTrip, 0)),
  udp_round_trip_after_sleep_ms: r(await timed(roundTrip, SLEEP_MS)),
};
client.close();
server.close();
if (sink < 0) throw new Error('unreachable: keeps the walk from being optimized away');
process.stdout.write(`${JSON.stringify(out)}\n`);
