/**
 * The benchmarks' CPU arithmetic, without dependencies: the bare replay's sender process (`_udp-echo.ts`) loads
 * it as well as the chair benchmark, so that both measure with the same blocks and the same estimator.
 */

export const quantile = (xs: readonly number[], q: number) =>
  xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

export const round = (x: number) => Math.round(x * 100) / 100;

/** CPU ms of this process (user + system). */
export const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

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

/** CPU ms of this process over `seconds` of idle, per ms. */
export async function idleWindow(seconds: number): Promise<number> {
  const c0 = cpuMs();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return (cpuMs() - c0) / (performance.now() - t0);
}

/**
 * `n` calls of `one`, one at a time, in blocks of `BLOCK` with `GAP_S` of idle before and after each; CPU per call:
 * the median block's, less the median gap's idle rate over the block's wall time (`BLOCK`), with the quartiles,
 * every block's, and the gross figure (no idle taken out).
 */
export async function inBlocks(n: number, one: (i: number) => Promise<void>, progress?: (done: number) => void) {
  const idles = [await idleWindow(GAP_S)];
  const spans: { cpu: number; wall: number; n: number }[] = [];
  let cpu = 0;
  for (let b = 0; b < n; b += BLOCK) {
    const end = Math.min(n, b + BLOCK);
    const c0 = cpuMs();
    const w0 = performance.now();
    for (let i = b; i < end; i++) await one(i);
    const span = { cpu: cpuMs() - c0, wall: performance.now() - w0, n: end - b };
    spans.push(span);
    cpu += span.cpu;
    idles.push(await idleWindow(GAP_S));
    progress?.(end);
  }
  // The idle rate is the median gap's: a burst in one gap (a major collection, a minute's quality windows)
  // would otherwise be taken from the two blocks beside it.
  const idle = quantile(idles, 0.5);
  const blocks = spans.map((x) => (x.cpu - idle * x.wall) / x.n);
  return {
    perCmd: quantile(blocks, 0.5),
    blocks: blocks.map(round),
    quartiles: [round(quantile(blocks, 0.25)), round(quantile(blocks, 0.75))],
    gross: cpu / n,
  };
}
