/**
 * The benchmarks' CPU arithmetic, without dependencies: the chair benchmark's helper processes (`_udp-echo.ts`,
 * `_wake-probe.ts`) load it as well as the benchmarks, so that all measure with the same clock, blocks and
 * estimator.
 */

export const quantile = (xs: readonly number[], q: number) =>
  xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

export const round = (x: number) => Math.round(x * 100) / 100;

/**
 * One-at-a-time commands go in blocks of `BLOCK` with `GAP_S` seconds of idle before and after each: a block's net
 * CPU is its CPU less the median gap's idle rate over its wall time, and the phase's figure the median
 * block's per command. The background (74 call quality reports and 27 health checks a second, a minute's
 * quality windows written at once, major collections) costs about as much CPU as the commands and drifts over
 * minutes: one idle window before a 40 s phase put the same code at -0.8 and 3.6 ms a command in two runs
 * (session 11). Gaps spread all through the phase take a slow drift into their median; the medians leave out a
 * block or a gap that met a burst. Short blocks, many of them (50 in 1,000 commands): with six blocks of 100 the
 * median moved from 0.8 to 2.9 ms between runs, since two bursts in six blocks move a median (session 13,
 * docs/chair.md).
 */
export const BLOCK = 20;
export const GAP_S = 1;

/**
 * What a span of this process costs: CPU ms (user + system), wake-ups (voluntary context switches: each a
 * sleep in `epoll_wait` ended by a datagram or a timer) and minor page faults.
 */
interface Usage {
  cpu: number;
  wakeups: number;
  faults: number;
}

function usage(): Usage {
  const r = process.resourceUsage();
  return {
    cpu: (r.userCPUTime + r.systemCPUTime) / 1000,
    wakeups: r.voluntaryContextSwitches,
    faults: r.minorPageFault,
  };
}

/** CPU ms of this process (user + system). */
export const cpuMs = () => usage().cpu;

const since = (u0: Usage): Usage => {
  const u = usage();
  return { cpu: u.cpu - u0.cpu, wakeups: u.wakeups - u0.wakeups, faults: u.faults - u0.faults };
};

/** This process's usage over `seconds` of idle, per ms. */
async function idleRates(seconds: number): Promise<Usage> {
  const u0 = usage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const d = since(u0);
  const ms = performance.now() - t0;
  return { cpu: d.cpu / ms, wakeups: d.wakeups / ms, faults: d.faults / ms };
}

/**
 * `n` calls of `one`, one at a time, in blocks of `BLOCK` with `GAP_S` of idle before and after each; CPU per call:
 * the median block's, less the median gap's idle rate over the block's wall time (`BLOCK`), with the quartiles,
 * every block's, and the gross figure (no idle taken out). The wake-ups and minor page faults per call are taken
 * the same way (the median block's, less the median gap's rate): what the machine charges one call at a time
 * grows with how often the process sleeps and wakes (docs/chair.md, "Session 15").
 */
export async function inBlocks(n: number, one: (i: number) => Promise<void>, progress?: (done: number) => void) {
  const idles = [await idleRates(GAP_S)];
  const spans: (Usage & { wall: number; n: number })[] = [];
  let cpu = 0;
  for (let b = 0; b < n; b += BLOCK) {
    const end = Math.min(n, b + BLOCK);
    const u0 = usage();
    const w0 = performance.now();
    for (let i = b; i < end; i++) await one(i);
    const span = { ...since(u0), wall: performance.now() - w0, n: end - b };
    spans.push(span);
    cpu += span.cpu;
    idles.push(await idleRates(GAP_S));
    progress?.(end);
  }
  // The idle rate is the median gap's: a burst in one gap (a major collection, a minute's quality windows)
  // would otherwise be taken from the two blocks beside it.
  const net = (k: keyof Usage) => {
    const idle = quantile(
      idles.map((x) => x[k]),
      0.5,
    );
    return spans.map((x) => (x[k] - idle * x.wall) / x.n);
  };
  const blocks = net('cpu');
  return {
    perCmd: quantile(blocks, 0.5),
    blocks: blocks.map(round),
    quartiles: [round(quantile(blocks, 0.25)), round(quantile(blocks, 0.75))],
    gross: cpu / n,
    wakeups: quantile(net('wakeups'), 0.5),
    faults: quantile(net('faults'), 0.5),
  };
}
