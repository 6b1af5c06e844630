/**
 * `npm run bench -- cascade [--config FILE] [--delay MS] [--drops N] [--loss P] [--endpoints mains|all]
 * [--seed N] [--only loss|dial] [--cpu-prof FILE] [--sim-cpu-prof DIR]`: the cascade manager against the demo
 * network (docs/cascade.md, "The benchmark"). `--only loss` runs phase 3 alone, with the same drops as in a
 * whole run of that seed; `--only dial` the national dial alone (no drops, no loss phase: for profiling; its
 * last line then lacks the other phases' keys). `--cpu-prof` writes a V8 CPU profile (.cpuprofile) of this
 * process (the daemon) over the national dial's window only, admission to every link up; `--sim-cpu-prof`
 * one of each simulator process's whole life into DIR (node's `--cpu-prof`).
 *
 * The simulator runs as its own process, on a loopback /24 of this run's own; the daemon runs in this
 * process (startDaemon: drivers, store, cascade manager), so its CPU is this process's. Every simulated MCU
 * gets a one-way delay of `--delay` ms (10) on everything it sends and receives, and keeps its default
 * processing delays.
 *
 * 1. The national session (the demo's, as `npm start` admits it: every endpoint, rooted at the master) is
 *    admitted; from its being stored (the manager's `admitted` session event: the dial starts then, inside
 *    `admit`), the time until every link of its plan is verified up (both rooms' rosters, or both
 *    drivers' dialog state: the manager's `up`), checked afterwards on the simulator's control interface.
 * 2. `--drops` (10) links dropped at random (seeded), one after another, by either end (a BYE from the
 *    simulated MCU): from the drop to its detection (the manager's link leaves `up`) and to healed (the link
 *    up again and both its pictures, up and down, applied again on the new call), checked on the simulator.
 * 3. The same on a fresh network with `--loss` (5%) message loss on every MCU, both directions.
 *
 * `--endpoints mains` (the default) dials each MCU's main endpoint only (the picture up its link needs it):
 * what is measured is the links. `all` dials the national session's 11,000 endpoints too (minutes).
 *
 * The floor is the critical path of link setups: links are dialled parents first, so the deepest chain of
 * the plan, each link one round trip between its two MCUs (the INVITE and its 200: each message crosses
 * both MCUs' emulated delay) plus both MCUs' processing delay.
 *
 * `lost`: links of the plan not connected at both MCUs on one call (the simulator's view) at the end of a
 * phase, plus drops not healed within 30 s, plus drops whose `cascade.link.down` event is missing from the
 * store.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { LayoutEvent, LinkEvent, SessionEvent } from '../src/cascade/index.js';
import { seededRandom } from '../src/core/index.js';
import type { Daemon } from '../src/daemon.js';
import type { Plan } from '../src/planner/index.js';
import { quantile } from './_blocks.js';
import { type DemoWorld, demoWorld } from './_demo-world.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));
const round = (x: number) => Math.round(x * 10) / 10;
const log = (msg: string) => process.stderr.write(`bench cascade: ${msg}\n`);
const key = (uri: string) => uri.replace(/;.*$/, '');
const HEAL_BOUND_MS = 30_000;

interface SimConf {
  uri: string;
  participants: { entity: string; kind: string; status: string; callId?: string }[];
  outputs: Record<string, { layout: string; regions: (string | null)[] }>;
}

async function poll<T>(what: string, probe: () => T | undefined | false, timeoutMs: number, every = 5): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * Resolves at the link event that makes every link of the session up, with the time of that event
 * (performance.now()): taken in the listener, since the pass that emits it goes on to start what waited for the
 * links (a national session's endpoint dials: about 10 ms) before a promise's continuation runs.
 */
function allLinksUp(cascade: Daemon['cascade'], id: string, total: number, timeoutMs: number): Promise<number> {
  const up = () => cascade.progress(id)[0]?.counts.up === total;
  if (up()) return Promise.resolve(performance.now());
  return new Promise<number>((resolve, reject) => {
    const on = (e: LinkEvent) => {
      if (e.session !== id || e.state !== 'up' || !up()) return;
      clearTimeout(timer);
      cascade.off('link', on);
      resolve(performance.now());
    };
    const timer = setTimeout(() => {
      cascade.off('link', on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${total} links up`));
    }, timeoutMs);
    cascade.on('link', on);
  });
}

/** The critical path of link setups: the deepest chain, each link one MCU-to-MCU round trip plus processing. */
function floorOf(w: DemoWorld, plan: Plan): number {
  const memo = new Map<string, number>();
  const linkCost = (child: string, parent: string) => {
    const c = w.mcus.get(child)!;
    const p = w.mcus.get(parent)!;
    // The INVITE and its 200 each leave one MCU and reach the other: both MCUs' one-way delay, each way.
    return 2 * (c.impairment.delayMs + p.impairment.delayMs) + c.processingDelayMs + p.processingDelayMs;
  };
  const chain = (m: string): number => {
    const known = memo.get(m);
    if (known !== undefined) return known;
    const parent = plan.links[m];
    const v = parent === undefined ? 0 : chain(parent) + linkCost(m, parent);
    memo.set(m, v);
    return v;
  };
  return Math.max(0, ...Object.keys(plan.links).map(chain));
}

/** What the simulator says of every link of the plan: connected in both rooms on one call? */
async function linksOnSim(w: DemoWorld, plan: Plan, rooms: Readonly<Record<string, string>>) {
  const confs = new Map<string, SimConf>();
  await Promise.all(
    Object.keys(rooms).map(async (m) => {
      const list = (await w.control('GET', `/v1/mcus/${m}/conferences`)) as SimConf[];
      const c = list.find((x) => x.uri === key(rooms[m]!));
      if (c !== undefined) confs.set(m, c);
    }),
  );
  const down: string[] = [];
  for (const [child, parent] of Object.entries(plan.links)) {
    const a = confs.get(parent)?.participants.find((p) => p.entity === key(rooms[child]!));
    const b = confs.get(child)?.participants.find((p) => p.entity === key(rooms[parent]!));
    const ok =
      a?.status === 'connected' &&
      b?.status === 'connected' &&
      (a.callId === undefined || b.callId === undefined || a.callId === b.callId);
    if (!ok) down.push(child);
  }
  return { down, confs };
}

interface PhaseResult {
  links: number;
  dialMs: number;
  /** CPU of the daemon (this process) from admitted to every link up; the admission's own. */
  cpuMs: number;
  admitCpuMs: number;
  /** The simulator's CPU from admission to every link up. */
  simCpuMs: number;
  floorMs: number;
  depth: number;
  picturesMs: number;
  detect: number[];
  heal: number[];
  lost: number;
  notes: string[];
}

/** The simulator process's CPU (user + system) so far, ms, from /proc (Linux; NaN elsewhere). */
function simCpuMs(w: DemoWorld): number {
  try {
    // Fields after the command name's closing parenthesis; utime and stime are the 14th and 15th, in clock ticks.
    const stat = readFileSync(`/proc/${w.sim.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Starts a V8 CPU profile of this process; the returned function stops it and writes it to `file`. */
async function startProfile(file: string): Promise<() => Promise<void>> {
  const inspector = new Session();
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.start');
  return async () => {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    inspector.disconnect();
    log(`CPU profile written to ${file}`);
  };
}

async function phase(
  w: DemoWorld,
  name: string,
  drops: number,
  random: () => number,
  prof?: string,
): Promise<PhaseResult> {
  const cascade = w.daemon.cascade;
  const inv = w.inventory;
  const master = inv.mcus.find((m) => m.role === 'master')!.id;
  const top = inv.levels[0]!.id;
  const chair = inv.endpoints.find((e) => e.level === top && e.mcus.includes(master))!.id;
  const id = `bench-${name}`;
  const links: LinkEvent[] = [];
  const layouts: LayoutEvent[] = [];
  const onLink = (e: LinkEvent) => {
    if (e.session === id) links.push(e);
  };
  const onLayout = (e: LayoutEvent) => {
    if (e.session === id) layouts.push(e);
  };
  cascade.on('link', onLink);
  cascade.on('layout', onLayout);
  const notes: string[] = [];
  try {
    // The demo national session, as `npm start` admits it.
    const stopProfile = prof === undefined ? undefined : await startProfile(prof);
    let admitCpuMs = Number.NaN;
    const a0 = performance.now();
    const cpu0 = process.cpuUsage();
    const sim0 = simCpuMs(w);
    // The dial starts when the session is stored, inside `admit` (its first pass runs before `admit` returns).
    let stored: { at: number; cpu: NodeJS.CpuUsage } | undefined;
    const onSession = (e: SessionEvent) => {
      if (e.session === id && e.kind === 'admitted') stored = { at: e.at, cpu: process.cpuUsage(cpu0) };
    };
    cascade.on('session', onSession);
    await cascade.admit({ id, title: `bench ${name}`, endpoints: 'all', chair });
    cascade.off('session', onSession);
    if (stored === undefined) throw new Error(`${name}: no 'admitted' event for ${id}`);
    const t0 = stored.at;
    admitCpuMs = (stored.cpu.user + stored.cpu.system) / 1000;
    const held = cascade.session(id)!;
    const plan = held.plan;
    const rooms = held.head.rooms;
    const total = Object.keys(plan.links).length;
    log(`${name}: admitted in ${Math.round(t0 - a0)} ms (planned and stored): ${total} links`);
    let lost = 0;
    let dialMs = Number.NaN;
    let cpuMs = Number.NaN;
    let simMs = Number.NaN;
    try {
      // Woken by the manager's link events, not by polling: a poll every few ms would take the daemon's own
      // event loop from the dial it measures.
      dialMs = (await allLinksUp(cascade, id, total, 120_000)) - t0;
      const cpu = process.cpuUsage(cpu0);
      cpuMs = (cpu.user + cpu.system) / 1000 - admitCpuMs;
      simMs = simCpuMs(w) - sim0;
      log(
        `${name}: CPU of this process (the daemon): admission ${Math.round(admitCpuMs)} ms, then ${Math.round(cpuMs)} ms until every link was up; the simulator's from admission: ${Math.round(simMs)} ms`,
      );
    } catch (err) {
      notes.push(String(err));
    } finally {
      await stopProfile?.();
    }
    const depthOf = (m: string): number => (plan.links[m] === undefined ? 0 : 1 + depthOf(plan.links[m]!));
    const floorMs = floorOf(w, plan);
    const firstAt = (state: string, depth: number) =>
      links.filter((e) => e.state === state && depthOf(e.child) === depth).map((e) => Math.round(e.at - t0));
    const depth = Math.max(0, ...Object.keys(plan.links).map(depthOf));
    for (let dp = 1; dp <= depth; dp++) {
      const dialing = firstAt('dialing', dp);
      const up = firstAt('up', dp);
      log(
        `${name}: depth ${dp}: dialing from ${Math.min(...dialing)} to ${Math.max(...dialing)} ms, up from ${Math.min(...up)} (p50 ${quantile(up, 0.5)}) to ${Math.max(...up)} ms`,
      );
    }
    // Per link: its first dial to its first up, and how often it was dialled (a redial means a failure).
    const perLink = new Map<string, { dial?: number; up?: number; dials: number; failed: number }>();
    for (const e of links) {
      const l = perLink.get(e.child) ?? { dials: 0, failed: 0 };
      if (e.state === 'dialing') {
        l.dials++;
        l.dial ??= e.at - t0;
      } else if (e.state === 'up') l.up ??= e.at - t0;
      else if (e.state === 'failed') l.failed++;
      perLink.set(e.child, l);
    }
    const spans = [...perLink.values()].filter((l) => l.dial !== undefined && l.up !== undefined);
    const took = spans.map((l) => l.up! - l.dial!);
    const slowest = [...perLink.entries()]
      .filter(([, l]) => l.dial !== undefined && l.up !== undefined)
      .sort((a, b) => b[1].up! - b[1].dial! - (a[1].up! - a[1].dial!))
      .slice(0, 3)
      .map(([c, l]) => `${c} ${Math.round(l.dial!)}->${Math.round(l.up!)}`);
    log(
      `${name}: a link's first dial to up: p50 ${Math.round(quantile(took, 0.5))} ms, max ${Math.round(Math.max(...took))} ms (slowest: ${slowest.join(', ')}); links dialled more than once: ${[...perLink.values()].filter((l) => l.dials > 1).length}, failures ${[...perLink.values()].reduce((a, l) => a + l.failed, 0)}`,
    );
    log(`${name}: every link verified up in ${Math.round(dialMs)} ms (floor ${floorMs} ms, plan depth ${depth})`);
    // Every uplink picture applied. An MCU sends up its main endpoint, else what its first child sends: one with neither has no picture to send.
    const dialable = new Set(inv.endpoints.filter((e) => e.sip !== undefined).map((e) => e.id));
    const hasSource = new Set<string>(Object.values(plan.links));
    for (const [e, m] of Object.entries(plan.assignments)) if (dialable.has(e)) hasSource.add(m);
    const uplinks = new Set(Object.keys(plan.links).filter((m) => hasSource.has(m)));
    let picturesMs = Number.NaN;
    try {
      await poll(
        `${name}: every uplink picture`,
        () => {
          const done = new Set(layouts.filter((l) => l.why === 'uplink').map((l) => l.mcu));
          for (const c of uplinks) if (!done.has(c)) return false;
          return true;
        },
        60_000,
      );
      picturesMs = performance.now() - t0;
    } catch (err) {
      notes.push(String(err));
      const done = new Set(layouts.filter((l) => l.why === 'uplink').map((l) => l.mcu));
      for (const c of uplinks) {
        if (done.has(c)) continue;
        const conf = w.daemon.mcus.drivers.get(c)?.conferences.get(key(rooms[c]!));
        const roster =
          conf === undefined ? [] : [...conf.roster.values()].map((e) => `${e.entity}:${e.kind}:${e.status}`);
        notes.push(`${name}: ${c} has no uplink picture: room ${conf?.state}, roster ${roster.join(' ')}`);
      }
    }
    const after = await linksOnSim(w, plan, rooms);
    if (after.down.length > 0) notes.push(`${name}: not up on the simulator after the dial: ${after.down.join(', ')}`);
    lost += after.down.length;

    // ---- drops, one after another, each healed before the next --------------------------------------
    const detect: number[] = [];
    const heal: number[] = [];
    const pairs = Object.entries(plan.links).filter(([c]) => uplinks.has(c));
    for (let i = 0; i < drops; i++) {
      const [child, parent] = pairs[Math.floor(random() * pairs.length)]!;
      const byParent = random() < 0.5;
      const mark = links.length;
      const markLayouts = layouts.length;
      const d0 = performance.now();
      if (byParent)
        await w.control('POST', `/v1/mcus/${parent}/drop-link`, {
          target: key(rooms[child]!),
          conference: key(rooms[parent]!),
        });
      else
        await w.control('POST', `/v1/mcus/${child}/drop-link`, {
          target: key(rooms[parent]!),
          conference: key(rooms[child]!),
        });
      try {
        const gone = await poll(
          `${name}: drop ${i + 1} (${child} -> ${parent}) detected`,
          () => links.slice(mark).find((e) => e.child === child && e.previous === 'up' && e.state !== 'up'),
          HEAL_BOUND_MS,
          1,
        );
        detect.push(gone.at - d0);
        const upAgain = await poll(
          `${name}: drop ${i + 1} (${child} -> ${parent}) up again`,
          () => links.slice(mark).find((e) => e.child === child && e.state === 'up'),
          HEAL_BOUND_MS,
          1,
        );
        // Both pictures over the new call: the child's up the link, the parent's down it.
        const pictures = await poll(
          `${name}: drop ${i + 1} (${child} -> ${parent}) pictures`,
          () => {
            // A picture may go out as soon as the new call is in the MCU's roster, before the other end confirms it.
            const since = layouts.slice(markLayouts).filter((l) => l.at >= gone.at);
            const up = since.find(
              (l) => l.why === 'uplink' && l.mcu === child && key(l.output) === key(rooms[parent]!),
            );
            const down = since.find(
              (l) => l.why === 'downlink' && l.mcu === parent && key(l.output) === key(rooms[child]!),
            );
            return up !== undefined && down !== undefined ? Math.max(upAgain.at, up.at, down.at) : undefined;
          },
          HEAL_BOUND_MS,
          1,
        );
        heal.push(pictures - d0);
        log(
          `${name}: drop ${i + 1}: ${child} -> ${parent} by the ${byParent ? 'parent' : 'child'}: detected in ${Math.round(gone.at - d0)} ms, healed in ${Math.round(pictures - d0)} ms`,
        );
      } catch (err) {
        log(String(err));
        notes.push(String(err));
        lost++;
      }
    }
    // Witnesses: the simulator's view of every link, its pictures up the dropped links, the store's events.
    const end = await linksOnSim(w, plan, rooms);
    if (end.down.length > 0) notes.push(`${name}: not up on the simulator at the end: ${end.down.join(', ')}`);
    lost += end.down.length;
    for (const [child, parent] of pairs) {
      if (!uplinks.has(child)) continue;
      const out = end.confs.get(child)?.outputs[key(rooms[parent]!)];
      if (out?.layout !== 'single' || out.regions[0] === null || out.regions[0] === undefined) {
        notes.push(`${name}: no picture up ${child} -> ${parent} on the simulator`);
        lost++;
      }
    }
    const downEvents = await w.daemon.store.listEvents({ subject: id, type: 'cascade.link.down', limit: 10_000 });
    if (downEvents.length < heal.length) {
      notes.push(`${name}: ${heal.length} drops healed, ${downEvents.length} cascade.link.down events stored`);
      lost += heal.length - downEvents.length;
    }
    await cascade.end(id);
    return {
      links: total,
      dialMs,
      cpuMs,
      admitCpuMs,
      simCpuMs: simMs,
      floorMs,
      depth,
      picturesMs,
      detect,
      heal,
      lost,
      notes,
    };
  } finally {
    cascade.off('link', onLink);
    cascade.off('layout', onLayout);
  }
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const file = opt('--config') ?? DEFAULT_CONFIG;
  const delayMs = Number(opt('--delay') ?? 10);
  const drops = Number(opt('--drops') ?? 10);
  const loss = Number(opt('--loss') ?? 0.05);
  const endpoints = opt('--endpoints') ?? 'mains';
  const random = seededRandom(Number(opt('--seed') ?? 1594));
  const only = opt('--only');
  if (only !== undefined && only !== 'loss' && only !== 'dial')
    throw new Error(`--only: 'loss', 'dial' or nothing, not ${only}`);
  const prof = opt('--cpu-prof');
  const simProf = opt('--sim-cpu-prof');
  const dir = mkdtempSync(join(tmpdir(), 'cascaded-bench-cascade-'));
  const logger = pino({ level: 'warn' });
  const world = (lossRate: number) =>
    demoWorld({
      file,
      dir,
      delayMs,
      loss: lossRate,
      logger,
      log,
      cascade: { dialEndpoints: endpoints === 'all' },
      ...(simProf === undefined ? {} : { simExecArgv: ['--cpu-prof', '--cpu-prof-dir', simProf] }),
    });
  try {
    if (only === 'loss') {
      // Phase 2 draws two numbers per drop: the same drops follow as in a whole run.
      for (let i = 0; i < 2 * drops; i++) random();
      const w = await world(loss);
      let lossy: PhaseResult;
      try {
        lossy = await phase(w, 'loss', drops, random);
      } finally {
        await w.close();
      }
      for (const n of lossy.notes) log(n);
      return {
        only: 'loss',
        links: lossy.links,
        loss5_dial_all_ms: round(lossy.dialMs),
        loss5_heal_ms_p50: round(quantile(lossy.heal, 0.5)),
        loss5_heal_ms_max: round(Math.max(...lossy.heal)),
        loss,
        lost: lossy.lost,
      };
    }
    let w = await world(0);
    let clean: PhaseResult;
    try {
      clean = await phase(w, 'national', only === 'dial' ? 0 : drops, random, prof);
    } finally {
      await w.close();
    }
    const cpu = {
      admit_cpu_ms: Math.round(clean.admitCpuMs),
      dial_cpu_ms: Math.round(clean.cpuMs),
      dial_sim_cpu_ms: Math.round(clean.simCpuMs),
      load_average: Math.round(loadavg()[0]! * 10) / 10,
    };
    const dial = {
      links: clean.links,
      dial_all_ms: round(clean.dialMs),
      dial_floor_ms: round(clean.floorMs),
      ratio: Math.round((clean.dialMs / clean.floorMs) * 100) / 100,
    };
    if (only === 'dial') {
      for (const n of clean.notes) log(n);
      log(`details ${JSON.stringify({ plan_depth: clean.depth, ...cpu, one_way_delay_ms: delayMs, endpoints })}`);
      return { ...dial, lost: clean.lost };
    }
    w = await world(loss);
    let lossy: PhaseResult;
    try {
      lossy = await phase(w, 'loss', drops, random);
    } finally {
      await w.close();
    }
    for (const n of [...clean.notes, ...lossy.notes]) log(n);
    log(
      `details ${JSON.stringify({
        plan_depth: clean.depth,
        ...cpu,
        pictures_ms: Math.round(clean.picturesMs),
        detect_ms: clean.detect.map(Math.round),
        heal_ms: clean.heal.map(Math.round),
        detect_ms_max: round(Math.max(...clean.detect)),
        loss5_floor_ms: lossy.floorMs,
        loss5_pictures_ms: Math.round(lossy.picturesMs),
        loss5_detect_ms: lossy.detect.map(Math.round),
        loss5_heal_ms: lossy.heal.map(Math.round),
        loss5_lost: lossy.lost,
        one_way_delay_ms: delayMs,
        loss,
        endpoints,
      })}`,
    );
    return {
      ...dial,
      detect_ms_p50: round(quantile(clean.detect, 0.5)),
      heal_ms_p50: round(quantile(clean.heal, 0.5)),
      heal_ms_max: round(Math.max(...clean.heal)),
      loss5_dial_all_ms: round(lossy.dialMs),
      lost: clean.lost + lossy.lost,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
