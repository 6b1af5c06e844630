/**
 * What this machine charges a process for having slept: the same work (a walk over 20,000 small objects,
 * about 2 MB) run back to back and run right after a sleep as long as a chair command's round trip. Run as a
 * process of its own (`node _wake-probe.js`), so that nothing else runs beside it; prints one JSON line:
 * the medians in ms and their difference (docs/chair.md, "Session 15").
 *
 * On this project's VMs the work after a sleep took about four times as long: the process's memory has left
 * the CPU's caches meanwhile, and the CPU time of refilling them is charged to the process. A pure arithmetic
 * loop, which touches no memory, is not slowed, so this is not the clock rate.
 */
import { quantile } from './_blocks.js';

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

async function timed(sleepMs: number): Promise<number> {
  const ms: number[] = [];
  let sink = 0;
  for (let i = 0; i < ROUNDS; i++) {
    await new Promise((r) => (sleepMs > 0 ? setTimeout(r, sleepMs) : setImmediate(r)));
    const t0 = performance.now();
    sink += walk();
    ms.push(performance.now() - t0);
  }
  if (sink < 0) throw new Error('unreachable: keeps the walk from being optimized away');
  return quantile(ms, 0.5);
}

for (let i = 0; i < 300; i++) walk();
const warm = await timed(0);
const slept = await timed(SLEEP_MS);
const r = (x: number) => Math.round(x * 1000) / 1000;
process.stdout.write(
  `${JSON.stringify({ warm_ms: r(warm), after_sleep_ms: r(slept), charge_ms: r(slept - warm), sleep_ms: SLEEP_MS })}\n`,
);
