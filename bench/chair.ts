/**
 * `npm run bench -- chair [--config FILE] [--commands N] [--concurrency N] [--loss P] [--delay MS]
 * [--national N] [--only sequential] [--cpu-prof FILE] [--count]`: the chair hot path against the demo network
 * (docs/chair.md, "The benchmark"). `--only sequential` runs the one-at-a-time phase alone (no loss, no
 * concurrent phase: for profiling; its last line then lacks the other phases' keys); `--cpu-prof` writes a
 * V8 CPU profile (.cpuprofile, for Chrome DevTools) of the one-at-a-time phase only, not of the dial;
 * `--count` tallies, per command of that phase, the SIP messages in and out by kind (with their body bytes)
 * and the store's calls, less the background counted while idle (details line: `counts_per_cmd_sequential`;
 * the tallying costs CPU, so a counted run's CPU figure is not one to compare).
 *
 * The simulator runs as its own process, on a loopback /24 of this run's own; the daemon runs in this
 * process (startDaemon: drivers, store, cascade manager, chair engine), so its CPU is this process's.
 * Every simulated MCU gets a one-way delay of `--delay` ms (5) each way and keeps its default processing
 * delays (an INFO takes 20 to 79 ms, drawn per MCU).
 *
 * 1. The national session (every endpoint, or `--national N` of them beside every province's room) dialled
 *    by the cascade manager; `--commands` (1,000) commands to random endpoints at depth 1 and 2, one at a
 *    time; then the same again with `--loss` (5%) message loss on every MCU.
 * 2. A fresh network with `--concurrency` (50) sessions at once: national sessions (one province each,
 *    chaired from a central room) and provincial ones (rooted at a province's MCU, chaired from its
 *    province room); the same number of commands, `--concurrency` in flight, one per session.
 *
 * A command's floor is the largest round trip plus processing delay among the MCUs on its path: what a
 * command costs that switches every MCU at once, in one round trip each. CPU: this process's user+system
 * time less the background's (health checks, supervision, the call quality reports): one at a time, in blocks of
 * 20 commands with 1 s of idle between them, each less the median gap's idle rate, the median block's (`BLOCK`, `_blocks.ts`);
 * with 50 in flight, the phase's CPU less the idle rate (the median second of the 10 s of idle measured just
 * before) over its time, per command;
 * `cpu_ms_per_cmd` is the larger of the two phases'. Each phase starts 64*T1 + 1 s after its dial (`settle`),
 * once the dial's own transactions have ended.
 *
 * stdout's last line carries the issue's keys only; how they were obtained (CPU per phase, gross and net, the
 * cascade manager's reconcile passes per command, the concurrent phase's median and rate, failures, sizes,
 * what the one-at-a-time phase's datagrams cost alone (`bareReplay`), the phase's wake-ups and page faults per
 * command, what the same commands cost with no delays to sleep through (`warmPass`), and what this machine
 * charges any process for a sleep (`_wake-probe.ts`)) goes to stderr as
 * `bench chair details: {...}`.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { destination, pino } from 'pino';
import type { ChairResult } from '../src/chair/index.js';
import { isCascadedError, seededRandom } from '../src/core/index.js';
import type { Plan } from '../src/planner/index.js';
import { DEFAULT_TIMERS, SWEEP_MS } from '../src/sip/index.js';
import { cpuMs, inBlocks, quantile, round } from './_blocks.js';
import { type DemoWorld, demoWorld } from './_demo-world.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));
const log = (msg: string) => process.stderr.write(`bench chair [${(performance.now() / 1000).toFixed(1)} s]: ${msg}\n`);

async function poll<T>(
  what: () => string,
  probe: () => T | undefined | false,
  timeoutMs: number,
  every = 500,
): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last = performance.now();
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    if (performance.now() - last > 15_000) {
      log(`still waiting for ${what()}`);
      last = performance.now();
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Admitted and dialled: every link up and every dialable endpoint connected in its room. */
async function dialled(w: DemoWorld, id: string, timeoutMs: number): Promise<Plan> {
  const held = w.daemon.cascade.session(id)!;
  const plan = held.plan;
  const links = plan.mcus.length - 1;
  const t0 = performance.now();
  await poll(
    () => `${id}: ${links} links up`,
    () => w.daemon.cascade.progress(id)[0]?.counts.up === links,
    timeoutMs,
  );
  const want = plan.endpoints.filter((e) => plan.assignments[e] !== undefined).length;
  let seen = 0;
  await poll(
    () => `${id}: ${want} endpoints in their rooms (${seen} so far)`,
    () => {
      seen = 0;
      for (const m of plan.mcus) {
        const c = w.daemon.mcus.drivers.get(m.id)?.conferences.get(held.head.rooms[m.id]!);
        if (c === undefined) continue;
        for (const e of c.roster.values()) if (e.kind === 'endpoint' && e.status === 'connected') seen++;
      }
      return seen >= want;
    },
    timeoutMs,
    1_000,
  );
  log(`${id}: ${links} links and ${want} endpoints up in ${Math.round((performance.now() - t0) / 1000)} s`);
  // Then every endpoint's screen set to the session's view (docs/cascade.md, "What everyone sees"): the
  // commands are measured on a settled session, not beside 11,000 screens being set.
  const t1 = performance.now();
  await poll(
    () => `${id}: every endpoint shown the session's view`,
    () => w.daemon.cascade.progress(id)[0]?.viewsApplied === true,
    timeoutMs,
    1_000,
  );
  log(`${id}: every endpoint shown the session's view in ${Math.round((performance.now() - t1) / 1000)} s`);
  return plan;
}

/**
 * How long the dial's last transactions linger (Timers J and L, 64*T1) and are swept after: the idle rate is
 * measured past them. Measured in their decay it counted the sweeps of the dial's 11,000 screens as idle
 * work, and the commands' net CPU came out smaller than it is.
 */
const SETTLE_MS = 64 * DEFAULT_TIMERS.t1 + SWEEP_MS;

/** Seconds of idle measured before a phase (its median second is the idle rate). */
const IDLE_S = 10;

async function settle(): Promise<void> {
  log(`settling: ${SETTLE_MS / 1000} s for the dial's transactions to end`);
  await new Promise((r) => setTimeout(r, SETTLE_MS));
}

interface Sample {
  readonly ms: number;
  readonly floor: number;
  /** The command's MCUs, from the endpoint's to the root. */
  readonly path: readonly string[];
}

/** An MCU's floor: a round trip (2 x its one-way delay) plus its processing delay plus its INFO delay. */
function floorMs(w: DemoWorld, mcu: string): number {
  const m = w.mcus.get(mcu);
  return m === undefined ? 0 : 2 * m.impairment.delayMs + m.processingDelayMs + m.infoDelayMs;
}

function floorOf(w: DemoWorld, r: ChairResult): number {
  return Math.max(...r.path.map((m) => floorMs(w, m)));
}

/**
 * This process's CPU rate when no command runs (health checks and supervision), ms per ms: the median second.
 * The median leaves out the rare bursts of the background (a major GC, the live record's minute of quality
 * windows written: 0.1 to 0.3 s each) that a 5 s idle window caught or missed by chance, which moved the net
 * figure by several ms a command between runs (once below zero).
 */
async function idleRate(seconds: number): Promise<number> {
  const rates: number[] = [];
  let c = cpuMs();
  let t = performance.now();
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1_000));
    const c1 = cpuMs();
    const t1 = performance.now();
    rates.push((c1 - c) / (t1 - t));
    c = c1;
    t = t1;
  }
  return quantile(rates, 0.5);
}

/**
 * Net CPU per command of a phase with many in flight: its CPU less the idle rate over its time. Not its median
 * second: the phase lasts two seconds (500 commands a second), so that median was of two samples, both taken at
 * full rate, and read about half as much again as the phase's own total (1.25 ms a command against 0.88 gross,
 * session 13).
 */
const netPerCommand = (phase: { wall: number; cpu: number }, idle: number, commands: number) =>
  (phase.cpu - idle * phase.wall) / commands;

/** Calls and body bytes by kind, counted since the start (`--count`). */
type Tally = Map<string, { n: number; bytes: number }>;

const bump = (t: Tally, key: string, bytes: number) => {
  const c = t.get(key);
  if (c === undefined) t.set(key, { n: 1, bytes });
  else {
    c.n++;
    c.bytes += bytes;
  }
};

/** What a SIP message is, for the tally: a request by method (INFO by body type, NOTIFY and SUBSCRIBE by event), an answer by status and method. */
function sipKind(startLine: string, header: (name: string) => string | undefined): string {
  if (startLine.startsWith('SIP/2.0 ')) {
    const method = header('cseq')?.trim().split(/\s+/)[1] ?? '?';
    return `${startLine.slice(8, 11)} ${method}`;
  }
  const method = startLine.slice(0, startLine.indexOf(' '));
  if (method === 'INFO') return `INFO ${header('content-type')?.split(';')[0]?.trim() ?? ''}`;
  if (method === 'NOTIFY' || method === 'SUBSCRIBE') return `${method} ${header('event')?.split(';')[0]?.trim() ?? ''}`;
  return method;
}

const COMPACT: Record<string, string> = { c: 'content-type', o: 'event' };

/** The head of a serialized SIP message: its start line, a header lookup, its body's length. */
function readHead(buf: Buffer): { start: string; header: (name: string) => string | undefined; body: number } {
  const end = buf.indexOf('\r\n\r\n');
  const lines = buf.toString('latin1', 0, end < 0 ? buf.length : end).split('\r\n');
  const fields = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i < 0) continue;
    const name = l.slice(0, i).trim().toLowerCase();
    fields.set(COMPACT[name] ?? name, l.slice(i + 1));
  }
  return { start: lines[0] ?? '', header: (n) => fields.get(n), body: end < 0 ? 0 : buf.length - end - 4 };
}

/**
 * `--count`: every SIP message the daemon sends and receives (by kind, with body bytes) and every call on
 * its store, tallied by wrapping the user agent's send and receive and the store's methods (this process
 * only: the simulator runs in its own). Costs CPU: not for the figures of a measured run.
 */
function instrument(w: DemoWorld): Tally {
  const tally: Tally = new Map();
  const ua = w.daemon.ua as unknown as {
    transport: { send: (buf: Buffer, ...rest: unknown[]) => unknown };
    txm: {
      receive: (inb: {
        message: {
          kind: string;
          method?: string;
          status?: number;
          body: Buffer;
          headers: { get(n: string): string | undefined };
        };
      }) => void;
    };
  };
  const send = ua.transport.send.bind(ua.transport);
  ua.transport.send = (buf, ...rest) => {
    const h = readHead(buf);
    bump(tally, `sip out ${sipKind(h.start, h.header)}`, h.body);
    return send(buf, ...rest);
  };
  const receive = ua.txm.receive.bind(ua.txm);
  ua.txm.receive = (inb) => {
    const m = inb.message;
    const start = m.kind === 'request' ? `${m.method} x` : `SIP/2.0 ${m.status}`;
    bump(tally, `sip in ${sipKind(start, (n) => m.headers.get(n))}`, m.body.length);
    receive(inb);
  };
  const store = w.daemon.store as unknown as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(store))) {
    const f = store[name];
    if (name === 'constructor' || typeof f !== 'function') continue;
    store[name] = (...args: unknown[]) => {
      bump(tally, `store ${name}${name === 'appendEvent' ? ` ${(args[0] as { type: string }).type}` : ''}`, 0);
      return (f as (...a: unknown[]) => unknown).apply(store, args);
    };
  }
  return tally;
}

const copyTally = (t: Tally): Tally => new Map([...t].map(([k, v]) => [k, { ...v }]));

/** Per command: what the phase counted less the idle rate over its duration, and the idle rate per second. */
function perCommand(before: Tally, start: Tally, end: Tally, idleMs: number, phaseMs: number, commands: number) {
  const out: Record<string, { net: number; gross: number; bytes: number; idle_per_s: number }> = {};
  const zero = { n: 0, bytes: 0 };
  for (const key of [...end.keys()].sort()) {
    const b = before.get(key) ?? zero;
    const s = start.get(key) ?? zero;
    const e = end.get(key)!;
    const idle = (s.n - b.n) / idleMs;
    const n = e.n - s.n;
    if (n === 0 && s.n === b.n) continue;
    out[key] = {
      net: round((n - idle * phaseMs) / commands),
      gross: round(n / commands),
      bytes: n === 0 ? 0 : Math.round((e.bytes - s.bytes) / n),
      idle_per_s: round(idle * 1000),
    };
  }
  return out;
}

/** A V8 CPU profile of `run` written to `file` (the profiler's own cost lands in the phase's CPU figure). */
async function profiled<T>(file: string | undefined, run: () => Promise<T>): Promise<T> {
  if (file === undefined) return run();
  const inspector = new Session();
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    inspector.disconnect();
    log(`CPU profile written to ${file}`);
  }
}

async function sequential(
  w: DemoWorld,
  session: string,
  targets: readonly string[],
  what: string,
  prof?: string,
  tally?: Tally,
) {
  const samples: Sample[] = [];
  const failures: string[] = [];
  const before = tally === undefined ? undefined : copyTally(tally);
  const i0 = performance.now();
  return profiled(prof, async () => {
    const start = tally === undefined ? undefined : copyTally(tally);
    const t0 = performance.now();
    const p0 = w.daemon.cascade.passes;
    const cpu = await inBlocks(
      targets.length,
      async (i) => {
        const e = targets[i]!;
        try {
          const r = await w.daemon.chair.bringToChair(session, e);
          samples.push({ ms: r.ms, floor: floorOf(w, r), path: r.path });
        } catch (err) {
          failures.push(isCascadedError(err) ? `${e}: ${err.code} ${err.message}` : `${e}: ${String(err)}`);
        }
      },
      (done) => {
        if (done % 100 === 0 || done === targets.length) log(`${what}: ${done} of ${targets.length}`);
      },
    );
    return {
      samples,
      failures,
      cpuPerCmd: cpu.perCmd,
      cpuBlocks: cpu.blocks,
      cpuQuartiles: cpu.quartiles,
      grossPerCmd: cpu.gross,
      wakeupsPerCmd: cpu.wakeups,
      faultsPerCmd: cpu.faults,
      passesPerCmd: (w.daemon.cascade.passes - p0) / targets.length,
      // The tally counts the gaps too: the background is taken out over the whole phase.
      counts:
        tally === undefined
          ? undefined
          : perCommand(before!, start!, tally, t0 - i0, performance.now() - t0, targets.length),
    };
  });
}

/** What a one-at-a-time phase measured (`sequential`). */
type Phase = Awaited<ReturnType<typeof sequential>>;

/** Commands of the warm pass (`warmPass`): 20 blocks. */
const WARM_COMMANDS = 400;

/**
 * The same commands with every MCU's delays at zero (one-way, processing, INFO), still one at a time in the
 * phase's blocks: each command's answers come within a millisecond, so the daemon does not sleep between a
 * command's sends and its answers, nor between one command and the next. What this costs a command is the
 * daemon's own work on warm caches; the phase's figure less it is what this machine charges for the sleeps
 * (docs/chair.md, "Session 15"). The delays are put back as they were.
 */
async function warmPass(w: DemoWorld, session: string, targets: readonly string[]) {
  const set = async (zero: boolean) => {
    for (const m of w.mcus.values())
      await w.control('POST', `/v1/mcus/${m.id}/impairment`, {
        delayMs: zero ? 0 : m.impairment.delayMs,
        processingDelayMs: zero ? 0 : m.processingDelayMs,
        infoDelayMs: zero ? 0 : m.infoDelayMs,
      });
  };
  await set(true);
  try {
    return await sequential(w, session, targets, 'warm pass');
  } finally {
    await set(false);
  }
}

/** Commands of the bare replay (`bareReplay`): 20 blocks, as many commands as the bare process runs in about 30 s. */
const BARE_COMMANDS = 400;
/** About the sizes of a command's datagrams (`--count`, session 6): an MSML switch INFO, its keyframe INFO. */
const SWITCH_BYTES = 900;
const KEYFRAME_BYTES = 650;

/**
 * What the phase's datagrams alone cost, one command at a time, with no SIP and no logic (`_udp-echo.ts`): a
 * bare peer process answers each after the floor of the MCU it stands for, and a bare sender process sends per
 * command a switch and a keyframe request (two datagrams of about their size) to every MCU of its path and to
 * the previous path's own MCU (its uplink back to its main endpoint), as the daemon does, in the phase's
 * blocks. The sender does nothing else, so its CPU needs no background taken out: the share of the phase's
 * figure this machine charges for the I/O pattern the contract fixes (docs/chair.md, "Session 14").
 */
async function bareReplay(w: DemoWorld, samples: readonly Sample[]): Promise<{ perCmd: number; quartiles: number[] }> {
  const script = fileURLToPath(new URL('./_udp-echo.js', import.meta.url));
  const commands = samples.slice(0, BARE_COMMANDS).map((s, i) => {
    const previous = samples[i - 1]?.path[0];
    const mcus = previous === undefined || s.path.includes(previous) ? s.path : [...s.path, previous];
    return mcus.flatMap((m) => [
      [SWITCH_BYTES, floorMs(w, m)],
      [KEYFRAME_BYTES, floorMs(w, m)],
    ]);
  });
  const peer = spawn(process.execPath, [script, 'peer'], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const port = await firstLine(peer);
    const sender = spawn(process.execPath, [script, 'replay', port], { stdio: ['pipe', 'pipe', 'inherit'] });
    sender.stdin.end(JSON.stringify(commands));
    return JSON.parse(await firstLine(sender)) as { perCmd: number; quartiles: number[] };
  } finally {
    peer.stdin.end();
  }
}

/**
 * What the sleeps cost, for the details line: the phase's wake-ups and page faults, the warm pass, and what
 * the machine charges a process with none of our code (`wakeProbe`).
 */
function sleepDetails(seq: Phase, warm: Phase, probe: Record<string, number>) {
  return {
    wakeups_per_cmd_sequential: round(seq.wakeupsPerCmd),
    page_faults_per_cmd_sequential: round(seq.faultsPerCmd),
    cpu_ms_per_cmd_warm_sequential: round(warm.cpuPerCmd),
    cpu_ms_per_cmd_warm_quartiles_sequential: warm.cpuQuartiles,
    wakeups_per_cmd_warm_sequential: round(warm.wakeupsPerCmd),
    warm_failed: warm.failures.slice(0, 5),
    machine_wake_probe: probe,
  };
}

/** `_wake-probe.ts` in a process of its own: what this machine charges for a sleep (a walk of memory, a UDP round trip). */
async function wakeProbe(): Promise<Record<string, number>> {
  const script = fileURLToPath(new URL('./_wake-probe.js', import.meta.url));
  const probe = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    return JSON.parse(await firstLine(probe)) as Record<string, number>;
  } finally {
    probe.stdin.end();
  }
}

/** A child's first line on stdout; rejects if it exits first. */
function firstLine(child: ChildProcessByStdio<Writable, Readable, null>): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const exited = (code: number | null) => reject(new Error(`${child.spawnfile} exited (${code}) before answering`));
    child.once('error', reject);
    child.once('exit', exited);
    child.stdout.on('data', (d: Buffer) => {
      text += String(d);
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      child.off('exit', exited);
      resolve(text.slice(0, nl));
    });
  });
}

/** Random endpoints of a session at the given depths (seeded, replayable). */
function pick(plan: Plan, depths: readonly number[], n: number, random: () => number): string[] {
  const pool = plan.endpoints.filter((e) => e !== plan.chair && depths.includes(plan.depths[e] ?? -1));
  if (pool.length === 0) return [];
  return Array.from({ length: n }, () => pool[Math.floor(random() * pool.length)]!);
}

function summary(samples: readonly Sample[]) {
  const ratios = samples.map((s) => s.ms / s.floor);
  return {
    p50: round(
      quantile(
        samples.map((s) => s.ms),
        0.5,
      ),
    ),
    p99: round(
      quantile(
        samples.map((s) => s.ms),
        0.99,
      ),
    ),
    floorP50: round(
      quantile(
        samples.map((s) => s.floor),
        0.5,
      ),
    ),
    ratioP50: round(quantile(ratios, 0.5)),
    ratioP99: round(quantile(ratios, 0.99)),
  };
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const file = opt('--config') ?? DEFAULT_CONFIG;
  const commands = Number(opt('--commands') ?? 1_000);
  const concurrency = Number(opt('--concurrency') ?? 50);
  const loss = Number(opt('--loss') ?? 0.05);
  const delayMs = Number(opt('--delay') ?? 5);
  const nationalLimit = opt('--national') === undefined ? undefined : Number(opt('--national'));
  const only = opt('--only');
  if (only !== undefined && only !== 'sequential') throw new Error(`--only: 'sequential' expected, not ${only}`);
  const prof = opt('--cpu-prof');
  const count = args.includes('--count');
  const random = seededRandom(1594);
  const dir = mkdtempSync(join(tmpdir(), 'cascaded-bench-chair-'));
  // Logs to stderr: stdout's last line is the result.
  const logger = pino({ level: 'warn' }, destination(2));
  const world = () => demoWorld({ file, dir, delayMs, logger, log });
  try {
    // ---- 1. the national session: one command at a time, then with loss ------------------------------------
    let w = await world();
    let national: Record<string, unknown>;
    try {
      const inv = w.inventory;
      const master = inv.mcus.find((m) => m.role === 'master')!.id;
      const chair = inv.endpoints.find((e) => e.mcus.length === 1 && e.mcus[0] === master)!.id;
      const every = inv.endpoints.map((e) => e.id);
      const provinceRooms = inv.endpoints.filter((e) => e.level === 'province').map((e) => e.id);
      const endpoints =
        nationalLimit === undefined
          ? every
          : [
              ...new Set([
                chair,
                ...provinceRooms,
                ...every.filter((_, i) => i % Math.ceil(every.length / nationalLimit) === 0),
              ]),
            ];
      await w.daemon.cascade.admit({ id: 'bench-national', title: 'bench national', endpoints, chair });
      const plan = await dialled(w, 'bench-national', 1_800_000);
      await settle();
      const targets = pick(plan, [1, 2], commands, random);
      log(`one at a time: ${targets.length} commands`);
      const tally = count ? instrument(w) : undefined;
      const seq = await sequential(w, 'bench-national', targets, 'one at a time', prof, tally);
      const s = summary(seq.samples);
      log('the same datagrams alone (bare replay)');
      const bare = await bareReplay(w, seq.samples);
      log('the same commands with no delays (warm pass)');
      const warm = await warmPass(w, 'bench-national', targets.slice(0, WARM_COMMANDS));
      const probe = await wakeProbe();
      if (only === 'sequential') {
        const details = {
          cpu_ms_per_cmd_gross_sequential: round(seq.grossPerCmd),
          bare_udp_ms_per_cmd_sequential: round(bare.perCmd),
          bare_udp_quartiles_sequential: bare.quartiles,
          ...sleepDetails(seq, warm, probe),
          cpu_ms_per_cmd_quartiles_sequential: seq.cpuQuartiles,
          cpu_ms_per_cmd_blocks_sequential: seq.cpuBlocks,
          passes_per_cmd_sequential: round(seq.passesPerCmd),
          ...(seq.counts === undefined ? {} : { counts_per_cmd_sequential: seq.counts }),
          failed: seq.failures.slice(0, 5),
          commands: targets.length,
          national_endpoints: endpoints.length,
        };
        process.stderr.write(`bench chair details: ${JSON.stringify(details)}\n`);
        return {
          p50_ms: s.p50,
          p99_ms: s.p99,
          floor_p50_ms: s.floorP50,
          ratio_p50: s.ratioP50,
          ratio_p99: s.ratioP99,
          cpu_ms_per_cmd: round(seq.cpuPerCmd),
        };
      }
      log(`with ${loss * 100}% loss`);
      for (const m of inv.mcus) await w.control('POST', `/v1/mcus/${m.id}/impairment`, { loss });
      const lossy = await sequential(w, 'bench-national', pick(plan, [1, 2], commands, random), 'with loss');
      const l = summary(lossy.samples);
      national = {
        p50_ms: s.p50,
        p99_ms: s.p99,
        floor_p50_ms: s.floorP50,
        ratio_p50: s.ratioP50,
        ratio_p99: s.ratioP99,
        cpu_seq: seq.cpuPerCmd,
        cpu_seq_gross: seq.grossPerCmd,
        cpu_seq_blocks: seq.cpuBlocks,
        cpu_seq_quartiles: seq.cpuQuartiles,
        bare_seq: bare.perCmd,
        bare_seq_quartiles: bare.quartiles,
        sleeps: sleepDetails(seq, warm, probe),
        passes_seq: seq.passesPerCmd,
        counts_seq: seq.counts,
        failed: seq.failures,
        loss5_success: lossy.samples.length / commands,
        loss5_p99_ms: l.p99,
        loss5_failed: lossy.failures,
        national_endpoints: endpoints.length,
        depth2: targets.filter((e) => plan.depths[e] === 2).length,
      };
    } finally {
      await w.close();
    }

    // ---- 2. many sessions, commands in flight across them --------------------------------------------------
    w = await world();
    try {
      const inv = w.inventory;
      const master = inv.mcus.find((m) => m.role === 'master')!.id;
      const centrals = inv.endpoints.filter((e) => e.mcus.length === 1 && e.mcus[0] === master).map((e) => e.id);
      const provinces = inv.provinces.map((p) => p.id);
      const rooms = (p: string) => inv.endpoints.filter((e) => e.province === p && e.level === 'province');
      const ofProvince = (p: string, n: number) =>
        inv.endpoints.filter((e) => e.province === p && e.level !== 'province').slice(0, n);
      const sessions: { id: string; plan?: Plan }[] = [];
      // National sessions, one province each (its MCU at depth 1, a second MCU or an operator's beyond).
      const nationals = Math.min(centrals.length, Math.ceil(concurrency / 2), provinces.length);
      for (let i = 0; i < nationals; i++) {
        const p = provinces[i]!;
        const id = `nat-${i}`;
        await w.daemon.cascade.admit({
          id,
          title: id,
          chair: centrals[i]!,
          endpoints: [centrals[i]!, ...rooms(p).map((e) => e.id), ...ofProvince(p, 30).map((e) => e.id)],
        });
        sessions.push({ id });
      }
      // Provincial sessions: rooted at a province's MCU, chaired from its province room.
      for (let i = nationals; sessions.length < concurrency && i < provinces.length; i++) {
        const p = provinces[i]!;
        const room = rooms(p)[0];
        const root = inv.mcus.find((m) => m.province === p && m.parents.includes(master))?.id;
        if (room === undefined || root === undefined) continue;
        const direct = ofProvince(p, 60).filter((e) => e.connection !== 'relay' && e.connection !== 'via-operator');
        const id = `prov-${p}`;
        try {
          await w.daemon.cascade.admit({
            id,
            title: id,
            root,
            chair: room.id,
            endpoints: [room.id, ...direct.map((e) => e.id)],
          });
          sessions.push({ id });
        } catch (err) {
          log(`provincial session rooted at ${root} refused: ${isCascadedError(err) ? err.message : String(err)}`);
          break;
        }
      }
      for (const s of sessions) s.plan = await dialled(w, s.id, 900_000);
      await settle();
      const perSession = Math.ceil(commands / sessions.length);
      const work = sessions.map((s) => {
        const deep = pick(s.plan!, [1, 2], perSession, random);
        return { id: s.id, targets: deep.length > 0 ? deep : pick(s.plan!, [0], perSession, random) };
      });
      const samples: Sample[] = [];
      const failures: string[] = [];
      const idle = await idleRate(IDLE_S);
      const phaseCpu0 = cpuMs();
      const phaseT0 = performance.now();
      const p0 = w.daemon.cascade.passes;
      let issued = 0;
      await Promise.all(
        work.map(async ({ id, targets }) => {
          for (const e of targets) {
            if (issued >= commands) return;
            issued++;
            try {
              const r = await w.daemon.chair.bringToChair(id, e);
              samples.push({ ms: r.ms, floor: floorOf(w, r), path: r.path });
            } catch (err) {
              failures.push(isCascadedError(err) ? `${id} ${e}: ${err.code}` : `${id} ${e}: ${String(err)}`);
            }
          }
        }),
      );
      const phase = { cpu: cpuMs() - phaseCpu0, wall: performance.now() - phaseT0 };
      const c = summary(samples);
      const cpuConcurrent = netPerCommand(phase, idle, issued);
      const details = {
        cpu_ms_per_cmd_sequential: round(national.cpu_seq as number),
        cpu_ms_per_cmd_concurrent: round(cpuConcurrent),
        cpu_ms_per_cmd_gross_sequential: round(national.cpu_seq_gross as number),
        cpu_ms_per_cmd_quartiles_sequential: national.cpu_seq_quartiles,
        cpu_ms_per_cmd_blocks_sequential: national.cpu_seq_blocks,
        bare_udp_ms_per_cmd_sequential: round(national.bare_seq as number),
        bare_udp_quartiles_sequential: national.bare_seq_quartiles,
        ...(national.sleeps as Record<string, unknown>),
        cpu_ms_per_cmd_gross_concurrent: round(phase.cpu / issued),
        passes_per_cmd_sequential: round(national.passes_seq as number),
        passes_per_cmd_concurrent: round((w.daemon.cascade.passes - p0) / issued),
        ...(national.counts_seq === undefined ? {} : { counts_per_cmd_sequential: national.counts_seq }),
        concurrent_p50_ms: c.p50,
        concurrent_ratio_p99: c.ratioP99,
        concurrent_sessions: sessions.length,
        concurrent_commands_per_s: round((samples.length / phase.wall) * 1000),
        concurrent_failed: failures.slice(0, 5),
        failed: (national.failed as string[]).slice(0, 5),
        loss5_failed: (national.loss5_failed as string[]).slice(0, 5),
        commands,
        depth2_commands: national.depth2,
        national_endpoints: national.national_endpoints,
        one_way_delay_ms: delayMs,
        loss,
      };
      // How the figures were obtained, beside them: stdout's last line carries the issue's keys only.
      process.stderr.write(`bench chair details: ${JSON.stringify(details)}\n`);
      return {
        p50_ms: national.p50_ms,
        p99_ms: national.p99_ms,
        floor_p50_ms: national.floor_p50_ms,
        ratio_p50: national.ratio_p50,
        ratio_p99: national.ratio_p99,
        cpu_ms_per_cmd: round(Math.max(national.cpu_seq as number, cpuConcurrent)),
        concurrent_p99_ms: c.p99,
        loss5_success: Math.round((national.loss5_success as number) * 10_000) / 10_000,
        loss5_p99_ms: national.loss5_p99_ms,
      };
    } finally {
      await w.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
