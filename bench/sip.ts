/**
 * `npm run bench -- sip [calls] [concurrency] [rounds]`: INVITE/200/ACK/BYE
 * cycles on loopback UDP against SIPp (issue 8). Three legs, each `calls`
 * calls with `concurrency` in flight: our UAC calling a SIPp UAS, a SIPp UAC
 * calling our UAS, and the floor, a SIPp UAC calling a SIPp UAS with the same
 * scenarios. Target: each direction at least 0.8 of the floor, 0 failed.
 *
 * One clock, one window, completed calls only (docs/sip.md, "The benchmark"):
 * every leg is timed by the SIPp it contains, from its own log of per-call
 * timestamps (-trace_logs): the window runs from the first INVITE to the last
 * BYE answered, and the rate counts the calls SIPp reports successful. Our UAC
 * is compared with the floor as seen by the floor's SIPp UAS, our UAS with
 * the floor as seen by its SIPp UAC: each ratio compares two legs measured by
 * the same program in the same role. Nothing measured elsewhere enters the
 * output. Each round runs the three legs (in an order rotated per round, so
 * drift in the machine's load does not favour one); the figures are medians
 * over the rounds, and each ratio is the median of per-round ratios.
 *
 * Every SIPp gets a 4 MiB socket buffer (Linux caps it at net.core.rmem_max):
 * with its default 64 KiB, a SIPp descheduled for a few ms on a loaded machine
 * overflows and drops datagrams (about 100 fit, and 50 calls can each have an
 * ACK and a BYE in flight), and the strict UAS scenario then fails a call on a
 * BYE whose ACK was dropped (docs/sip.md). UDP receive-buffer drops on the
 * machine and SIPp's retransmissions are reported, so residual loss stays visible.
 */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createUserAgent } from '../src/sip/index.js';

const TARGET_RATIO = 0.8; // each direction against the SIPp-to-SIPp floor (issue 8)
const SIPP_DEADLINE_MS = 60_000; // a SIPp run never hangs longer than this
const SIPP_BUFFER = 4 * 1_048_576; // bytes of socket buffer per SIPp (see above)

const scenarios = fileURLToPath(new URL('../../bench/sipp/', import.meta.url));
const SDP = 'v=0\r\no=cascaded 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** What one SIPp saw of a leg, on its own clock. */
interface Observed {
  code: number | null;
  successful: number;
  failed: number;
  retransmissions: number;
  /** Seconds from the first INVITE to the last BYE answered (its log's S and E lines). */
  seconds: number;
  /** Completed calls per second over that window. */
  rate: number;
  /** CPU seconds (user + system) the SIPp process used. */
  cpu: number;
}

/** Datagrams the kernel dropped for full receive buffers, machine-wide (Linux; 0 elsewhere). */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const head = lines[0]!.split(/\s+/);
    return Number(lines[1]!.split(/\s+/)[head.indexOf('RcvbufErrors')] ?? 0);
  } catch {
    return 0;
  }
}

/** The window of a SIPp log: `S`/`E` lines ending with [timestamp]'s epoch seconds (microsecond resolution). */
function logWindow(file: string): number {
  if (!existsSync(file)) return 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const epoch = Number(line.slice(line.lastIndexOf('\t') + 1));
    if (!Number.isFinite(epoch) || epoch === 0) continue;
    if (line.startsWith('S ')) first = Math.min(first, epoch);
    else if (line.startsWith('E ')) last = Math.max(last, epoch);
  }
  return last > first ? last - first : 0;
}

function runSipp(args: string[], dir: string): Promise<Observed> {
  const id = Math.random().toString(36).slice(2);
  const stf = join(dir, `stat-${id}.csv`);
  const log = join(dir, `log-${id}.log`);
  // Through sh, whose `times` reports the CPU its child used (POSIX; no /usr/bin/time needed).
  const child = spawn(
    'sh',
    [
      '-c',
      'sipp "$@"; code=$?; times >&2; exit $code',
      'sipp',
      ...args,
      '-nostdin',
      '-buff_size',
      `${SIPP_BUFFER}`,
      '-trace_stat',
      '-stf',
      stf,
      '-fd',
      '1',
      '-trace_logs',
      '-log_file',
      log,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SIPP_DEADLINE_MS);
  return new Promise<Observed>((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      const r: Observed = { code, successful: 0, failed: 0, retransmissions: 0, seconds: 0, rate: 0, cpu: 0 };
      // The last line of `times`: the children's user and system time, as "0m1.234s 0m0.567s".
      const t = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr);
      if (t !== null) r.cpu = 60 * Number(t[1]) + Number(t[2]) + 60 * Number(t[3]) + Number(t[4]);
      stderr = stderr.slice(0, t?.index ?? stderr.length);
      try {
        const lines = readFileSync(stf, 'utf8').trim().split('\n');
        const head = lines[0]!.split(';');
        const last = lines[lines.length - 1]!.split(';');
        const col = (name: string) => Number(last[head.indexOf(name)] ?? 0);
        r.failed = col('FailedCall(C)');
        r.successful = col('SuccessfulCall(C)');
        r.retransmissions = col('Retransmissions(C)');
      } catch {
        // no statistics: the exit code below tells why
      }
      r.seconds = logWindow(log);
      r.rate = r.seconds > 0 ? r.successful / r.seconds : 0;
      if (code !== 0) process.stderr.write(`sipp exited ${code}: ${stderr.slice(-2000)}\n`);
      resolve(r);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Leg {
  observed: Observed;
  /** CPU seconds our process used during the leg (0 for the floor). */
  ours: number;
  /** Calls not completed on both sides (failed, or never finished). */
  failed: number;
  udpDrops: number;
}

interface Setup {
  calls: number;
  concurrency: number;
  dir: string;
}

function sippUas(s: Setup, port: number): Promise<Observed> {
  return runSipp(['-sf', join(scenarios, 'uas.xml'), '-i', '127.0.0.1', '-p', `${port}`, '-m', `${s.calls}`], s.dir);
}

async function sippUac(s: Setup, target: number): Promise<Observed> {
  // A closed loop like our UAC's: at most `concurrency` calls in flight, a new one as soon as one ends.
  return runSipp(
    [
      ...['-sf', join(scenarios, 'uac.xml'), '-i', '127.0.0.1', '-p', `${await freeUdpPort()}`],
      ...[
        '-s',
        'mcu',
        `127.0.0.1:${target}`,
        '-m',
        `${s.calls}`,
        '-l',
        `${s.concurrency}`,
        '-r',
        '100000',
        '-rp',
        '1000',
      ],
    ],
    s.dir,
  );
}

/** Our UAC calls a SIPp UAS; the SIPp UAS times the leg. */
async function uacLeg(s: Setup): Promise<Leg> {
  const drops0 = udpRcvbufErrors();
  const port = await freeUdpPort();
  const uas = sippUas(s, port);
  await sleep(300); // SIPp binds its socket
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'bench' });
  const cpu0 = process.cpuUsage();
  let ours = 0;
  let started = 0;
  const uri = `sip:mcu@127.0.0.1:${port}`;
  await Promise.all(
    Array.from({ length: s.concurrency }, async () => {
      while (started < s.calls) {
        started++;
        try {
          const d = await ua.invite(uri, { body: SDP });
          await d.bye();
        } catch (err) {
          ours++;
          if (ours <= 3) process.stderr.write(`uac call failed: ${String(err)}\n`);
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const observed = await uas;
  await ua.close();
  return {
    observed,
    ours: (cpu.user + cpu.system) / 1e6,
    failed: s.calls - Math.min(s.calls - ours, observed.successful),
    udpDrops: udpRcvbufErrors() - drops0,
  };
}

/** A SIPp UAC calls our UAS; the SIPp UAC times the leg. */
async function uasLeg(s: Setup): Promise<Leg> {
  const drops0 = udpRcvbufErrors();
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'mcu' });
  let ours = 0;
  ua.on('invite', (inv) => {
    inv.accept({ body: SDP }).catch(() => {
      ours++;
    });
  });
  const cpu0 = process.cpuUsage();
  const observed = await sippUac(s, ua.listening[0]!.port);
  const cpu = process.cpuUsage(cpu0);
  await ua.close();
  return {
    observed,
    ours: (cpu.user + cpu.system) / 1e6,
    failed: s.calls - Math.min(s.calls - ours, observed.successful),
    udpDrops: udpRcvbufErrors() - drops0,
  };
}

/** A SIPp UAC calls a SIPp UAS: both time the leg, each as it saw it. */
async function floorLeg(s: Setup): Promise<{ uasView: Leg; uacView: Leg }> {
  const drops0 = udpRcvbufErrors();
  const port = await freeUdpPort();
  const uas = sippUas(s, port);
  await sleep(300);
  const uac = await sippUac(s, port);
  const observed = await uas;
  const udpDrops = udpRcvbufErrors() - drops0;
  const failed = s.calls - Math.min(uac.successful, observed.successful);
  return { uasView: { observed, ours: 0, failed, udpDrops }, uacView: { observed: uac, ours: 0, failed, udpDrops } };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const calls = Number(args[0] ?? 5_000);
  const concurrency = Number(args[1] ?? 50);
  const rounds = Number(args[2] ?? 5);
  if (spawnSync('sipp', ['-v']).error !== undefined)
    throw new Error('sipp is not installed (Debian package sip-tester)');
  const dir = mkdtempSync(join(tmpdir(), 'sip-bench-'));
  const load0 = loadavg()[0]!;
  try {
    // Warm-up, not measured: the JIT compiles the hot path once per process (a daemon pays it once at start).
    const warm = { calls: Math.min(1_000, calls), concurrency, dir };
    await uacLeg(warm);
    await uasLeg(warm);

    const s = { calls, concurrency, dir };
    const uac: Leg[] = [];
    const uas: Leg[] = [];
    const floorUas: Leg[] = [];
    const floorUac: Leg[] = [];
    const legs = [
      async () => uac.push(await uacLeg(s)),
      async () => uas.push(await uasLeg(s)),
      async () => {
        const f = await floorLeg(s);
        floorUas.push(f.uasView);
        floorUac.push(f.uacView);
      },
    ];
    for (let r = 0; r < rounds; r++) for (let i = 0; i < legs.length; i++) await legs[(r + i) % legs.length]!();

    const rate = (l: Leg[]) => Math.round(median(l.map((x) => x.observed.rate)));
    const ratio = (ours: Leg[], floor: Leg[]) =>
      ours.map((o, i) => (floor[i]!.observed.rate > 0 ? r2(o.observed.rate / floor[i]!.observed.rate) : 0));
    const uacRatios = ratio(uac, floorUas);
    const uasRatios = ratio(uas, floorUac);
    const sum = (l: Leg[], f: (x: Leg) => number) => l.reduce((n, x) => n + f(x), 0);
    const perK = (seconds: number[]) => Math.round((median(seconds) * 1e6) / calls);
    const failedUac = sum(uac, (x) => x.failed);
    const failedUas = sum(uas, (x) => x.failed);
    return {
      calls,
      concurrency,
      rounds,
      clock: 'sipp-log',
      uac_calls_per_s: rate(uac),
      uas_calls_per_s: rate(uas),
      floor_calls_per_s_uas_view: rate(floorUas),
      floor_calls_per_s_uac_view: rate(floorUac),
      uac_ratio_to_floor: median(uacRatios),
      uas_ratio_to_floor: median(uasRatios),
      uac_ratios: uacRatios,
      uas_ratios: uasRatios,
      target_ratio: TARGET_RATIO,
      failed: failedUac + failedUas,
      failed_uac: failedUac,
      failed_uas: failedUas,
      failed_floor: sum(floorUas, (x) => x.failed),
      // Machine-wide receive-buffer drops during each kind of leg, and what SIPp had to retransmit.
      udp_drops_uac: sum(uac, (x) => x.udpDrops),
      udp_drops_uas: sum(uas, (x) => x.udpDrops),
      udp_drops_floor: sum(floorUas, (x) => x.udpDrops),
      sipp_retransmissions_uac: sum(uac, (x) => x.observed.retransmissions),
      sipp_retransmissions_uas: sum(uas, (x) => x.observed.retransmissions),
      // Where the time goes: CPU ms per 1,000 calls of our process and of the SIPp facing it, medians.
      cpu_ms_per_1000_calls: {
        ours_uac: perK(uac.map((x) => x.ours)),
        sipp_uas_facing_ours: perK(uac.map((x) => x.observed.cpu)),
        ours_uas: perK(uas.map((x) => x.ours)),
        sipp_uac_facing_ours: perK(uas.map((x) => x.observed.cpu)),
        floor_sipp_uas: perK(floorUas.map((x) => x.observed.cpu)),
        floor_sipp_uac: perK(floorUac.map((x) => x.observed.cpu)),
      },
      rss_mb: Math.round(process.memoryUsage().rss / 1_048_576),
      load_before: r2(load0),
      load_after: r2(loadavg()[0]!),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
