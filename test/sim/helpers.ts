import { readFileSync } from 'node:fs';

/** Small helpers of the simulator tests: waiting for a condition instead of sleeping. */

/** Poll `probe` until it returns a value other than undefined/false, or fail after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  everyMs = 10,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Is a process with this pid alive (running, not a zombie waiting to be reaped)? */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * A loopback address of its own (127.100-199.x.y) for an MCU that another process must find at a fixed
 * address: unlike a port probed free on 127.0.0.1, nobody else's ephemeral port can take it meanwhile.
 */
export function randomLoopback(): string {
  const r = (n: number) => Math.floor(Math.random() * n);
  return `127.${100 + r(100)}.${r(256)}.${1 + r(254)}`;
}
