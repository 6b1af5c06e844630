/**
 * `npm run bench -- api [--config FILE] [--seconds N] [--connections N] [--chair-rate N] [--chair-sessions N]
 * [--daemon-cpu-prof DIR] [--daemon-heap-prof DIR]`:
 * the REST API of the daemon as it runs in production, in a process of its
 * own (`cascaded --with-sim`: the simulator of the demo network as its
 * child), driven from this process with autocannon:
 * - `GET /v1/sessions` (authenticated, read from the store) and its floor
 *   `GET /healthz` (same server, no authentication, no store);
 * - `POST /v1/sessions/:id/chair` at a fixed rate on live sessions admitted
 *   through the API and dialled for the run, each answer's time set against
 *   the chair engine's own time for that command (the `ms` of its result,
 *   the figure of its `finished` event);
 * - the `/metrics` scrape, one at a time over a kept-alive connection.
 * `--daemon-cpu-prof DIR`: the daemon writes a V8 CPU profile of its whole run into DIR when it stops
 * (node --cpu-prof), to find what holds its event loop while the commands run; `--daemon-heap-prof DIR`
 * a sampling heap profile of what it still holds at the end (node --heap-prof).
 * See docs/api.md, "Benchmark".
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { issueToken } from '../src/api/index.js';
import { loadConfigFile } from '../src/config/index.js';
import type { Inventory } from '../src/inventory/index.js';
import { openSqliteStore } from '../src/store/index.js';
import { quantile } from './_blocks.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEFAULT_CONFIG = join(ROOT, 'config/demo.yaml');
const CASCADED = join(ROOT, 'dist/src/cli/cascaded.js');
const round = (x: number) => Math.round(x * 100) / 100;
/** How long every chair path may take to come up after the sessions are admitted. */
const PATHS_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Prometheus keeps its scrape connection open: so does this, so a scrape is not a TLS handshake.
const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });

interface Answer {
  readonly status: number;
  readonly ms: number;
  readonly bytes: number;
  readonly body: string;
}

function call(url: string, token?: string, post?: unknown): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent: keepAlive,
        method: post === undefined ? 'GET' : 'POST',
        timeout: 60_000,
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(post === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - t0,
            bytes: body.length,
            body: body.toString(),
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 60 s`)));
    req.on('error', reject);
    req.end(post === undefined ? undefined : JSON.stringify(post));
  });
}

async function load(url: string, token: string | undefined, seconds: number, connections: number) {
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  return { rps: round(r.requests.average), p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

/** prom-client's event-loop monitor: a timer of this period (its default `eventLoopMonitoringPrecision`). */
const LAG_PERIOD_MS = 10;

/** A sample's value in a Prometheus text page (NaN when absent). */
function series(text: string, name: string): number {
  const at = text.indexOf(`\n${name} `);
  return at < 0 ? Number.NaN : Number(text.slice(at + name.length + 2, text.indexOf('\n', at + 1)));
}

/** CPU time (user + system, ms) of a process's children (the simulator of `cascaded --with-sim`), from /proc. */
function childrenCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const tick = 10; // USER_HZ is 100 on Linux: a clock tick of /proc/PID/stat is 10 ms
    let ms = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
        // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
        const f = readFileSync(`/proc/${c}/stat`, 'utf8').split(') ')[1]!.split(' ');
        ms += (Number(f[11]) + Number(f[12])) * tick;
      }
    }
    return ms;
  } catch {
    return Number.NaN;
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * The config for the run: state in `dir`, the API on `port` without a practical rate limit, SIP on a free
 * port. The demo binds its MCUs on 127.0.1.N:5060, as the national tests do: the run moves them to a /24
 * of its own (and names the demo's secret file by its absolute path), so it can run beside them.
 */
function benchConfig(source: string, dir: string, port: number): string {
  const base = `127.${10 + Math.floor(Math.random() * 80)}.${Math.floor(Math.random() * 256)}.`;
  const text = readFileSync(source, 'utf8')
    .replaceAll('127.0.1.', base)
    .replaceAll('passwordFile: config/', `passwordFile: ${join(ROOT, 'config')}/`)
    .replace(/^daemon:\n/m, `daemon:\n  stateDir: ${JSON.stringify(join(dir, 'state'))}\n`)
    .replace(
      /api: \{ host: 127\.0\.0\.1, port: \d+ \}/,
      `api: { host: 127.0.0.1, port: ${port}, rateLimit: { max: 1000000, windowMs: 60000 } }`,
    )
    .replace(/\{ transport: udp, host: 127\.0\.0\.1, port: 5060 \}/, '{ transport: udp, host: 127.0.0.1, port: 0 }');
  const file = join(dir, 'bench.yaml');
  writeFileSync(file, text);
  return file;
}

interface ChairSessionSpec {
  readonly id: string;
  readonly chair: string;
  readonly endpoints: readonly string[];
}

/**
 * National sessions at the master, each with a chair of its own among the central endpoints and a share of
 * the provinces (per province: its people's committee, two districts and two communes, so paths run one to
 * three MCUs up to the master). One connection per session: a chair gets one command at a time. A newer
 * command for the same chair supersedes the one in flight (docs/chair.md), the engine's rule for one
 * screen, not a cost of the API.
 */
function chairSessions(inv: Inventory, count: number): ChairSessionSpec[] {
  const master = inv.mcus.find((m) => m.role === 'master')!.id;
  const chairs = inv.endpoints.filter((e) => e.level === inv.levels[0]!.id && e.mcus.includes(master));
  const n = Math.min(count, chairs.length, inv.provinces.length);
  const out = Array.from({ length: n }, (_, i) => ({
    id: `bench-chair-${i}`,
    chair: chairs[i]!.id,
    endpoints: [chairs[i]!.id] as string[],
  }));
  inv.provinces.forEach((p, i) => {
    const direct = inv.endpoints.filter((e) => e.province === p.id && e.connection === 'direct');
    const pick = (level: string, k: number) => direct.filter((e) => e.level === level).slice(0, k);
    const ids = [...pick('province', 1), ...pick('district', 2), ...pick('commune', 2)].map((e) => e.id);
    out[i % n]!.endpoints.push(...ids);
  });
  return out;
}

/** Wait until `check` answers nothing pending (polled), or fail naming what is. */
async function until(what: string, boundMs: number, check: () => Promise<string[]>): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const pending = await check();
    if (pending.length === 0) return;
    if (Date.now() - t0 > boundMs)
      throw new Error(`${what}: not within ${boundMs} ms: ${pending.slice(0, 10).join(', ')} (${pending.length})`);
    await sleep(500);
  }
}

/**
 * `POST .../chair` at `rate` requests/s over one connection per session, each command with a fresh request
 * id. Per answer: the time autocannon measured and the engine's `ms` from the body.
 */
async function chairLoad(
  base: string,
  token: string,
  specs: readonly ChairSessionSpec[],
  rate: number,
  seconds: number,
) {
  let client = 0;
  let seq = 0;
  const route: number[] = [];
  const engine: number[] = [];
  const overhead: number[] = [];
  /** Request id -> the engine's ms, to pair with the daemon's own time for the request (its audit row). */
  const engineById = new Map<string, number>();
  const codes = new Map<string, number>();
  let lastBody = '';
  const r = await autocannon({
    url: base,
    connections: specs.length,
    overallRate: rate,
    duration: seconds,
    // autocannon's correction adds made-up samples 1 ms apart below each slow one (its expected interval is
    // ceil(1 / per-connection rate) ms): the answers' own times are what is compared here.
    ignoreCoordinatedOmission: true,
    setupClient: (c) => {
      const s = specs[client++ % specs.length]!;
      const targets = s.endpoints.filter((e) => e !== s.chair);
      let next = 0;
      c.setRequests([
        {
          method: 'POST',
          path: `/v1/sessions/${s.id}/chair`,
          setupRequest: (req) => ({
            ...req,
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              'x-request-id': `bench-${seq++}`,
            },
            body: JSON.stringify({ endpoint: targets[next++ % targets.length] }),
          }),
          // Called just before the client's own 'response' event (same tick), which carries the time.
          onResponse: (_status, body) => {
            lastBody = body;
          },
        },
      ]);
      c.on('response', (status: number, _bytes: number, ms: number) => {
        if (status !== 200) {
          const code = (JSON.parse(lastBody) as { code?: string }).code ?? `HTTP_${status}`;
          codes.set(code, (codes.get(code) ?? 0) + 1);
          return;
        }
        const { ms: e, requestId } = JSON.parse(lastBody) as { ms: number; requestId: string };
        engineById.set(requestId, e);
        route.push(ms);
        engine.push(e);
        overhead.push(ms - e);
      });
    },
  });
  return {
    rps: round(r.requests.average),
    ok: route.length,
    failed: Object.fromEntries(codes),
    errors: r.errors + r.timeouts,
    routeP50: quantile(route, 0.5),
    routeP99: quantile(route, 0.99),
    engineP50: quantile(engine, 0.5),
    engineP99: quantile(engine, 0.99),
    overheadP50: quantile(overhead, 0.5),
    overheadP99: quantile(overhead, 0.99),
    engineById,
  };
}

/**
 * The daemon's own time for each command (the audit row's durationMs: from the request's arrival to its
 * answer, before TLS and the network) less the engine's: what the route adds inside the daemon.
 */
async function serverOverhead(base: string, token: string, engineById: ReadonlyMap<string, number>) {
  const out: number[] = [];
  let cursor: string | null = null;
  do {
    const q = `action=chair.switch&outcome=ok&limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`;
    const r = await call(`${base}/v1/audit?${q}`, token);
    const page = JSON.parse(r.body) as {
      items: { requestId: string | null; durationMs: number | null }[];
      next: string | null;
    };
    for (const a of page.items) {
      const e = a.requestId === null ? undefined : engineById.get(a.requestId);
      if (e !== undefined && a.durationMs !== null) out.push(a.durationMs - e);
    }
    cursor = page.next;
  } while (cursor !== null);
  return { n: out.length, p50: quantile(out, 0.5), p99: quantile(out, 0.99) };
}

function startDaemonProcess(
  file: string,
  profDir?: string,
  heapProfDir?: string,
): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [
      ...(profDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`]),
      ...(heapProfDir === undefined ? [] : ['--heap-prof', `--heap-prof-dir=${heapProfDir}`]),
      CASCADED,
      '--config',
      file,
      '--with-sim',
      '--sim-control-port',
      '0',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, exited };
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const seconds = Number(opt('--seconds') ?? 10);
  const connections = Number(opt('--connections') ?? 10);
  const chairRate = Number(opt('--chair-rate') ?? 200);
  const chairCount = Number(opt('--chair-sessions') ?? 16);
  const dir = mkdtempSync(join(tmpdir(), 'cascaded-bench-api-'));
  const port = await freePort();
  const file = benchConfig(resolve(opt('--config') ?? DEFAULT_CONFIG), dir, port);
  const config = await loadConfigFile(file);
  const base = `https://127.0.0.1:${port}`;
  const daemon = startDaemonProcess(file, opt('--daemon-cpu-prof'), opt('--daemon-heap-prof'));
  let exitCode: number | null | undefined;
  void daemon.exited.then((c) => {
    exitCode = c;
  });
  try {
    // The token and the listed sessions go in through the store while the daemon runs, as `cascaded token
    // create` does; a year of a province's sessions (Ninh Bình ran 35).
    const issued = issueToken({ name: 'bench', role: 'admin' });
    await until('the daemon', 180_000, async () => {
      if (exitCode !== undefined) throw new Error(`the daemon exited (${exitCode})`);
      return call(`${base}/healthz`).then(
        (r) => (r.status === 200 ? [] : [`healthz ${r.status}`]),
        (err: Error) => [err.message],
      );
    });
    const store = await openSqliteStore({ path: config.daemon.store.path });
    try {
      await store.createToken(issued.record);
      for (let i = 0; i < 50; i++) {
        await store.createSession({
          id: `s${i}`,
          kind: i % 3 === 0 ? 'adhoc' : 'planned',
          title: `Phiên họp ${i}`,
          state: 'planned',
          startsAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString(),
        });
      }
    } finally {
      await store.close();
    }
    const token = issued.token;
    let mcusUp = 0;
    await until('every MCU up', 180_000, async () => {
      const r = await call(`${base}/v1/mcus?limit=1000`, token);
      const items = (JSON.parse(r.body) as { items: { id: string; health: { up: boolean } }[] }).items;
      mcusUp = items.filter((m) => m.health.up).length;
      return items.filter((m) => !m.health.up).map((m) => m.id);
    });

    // Warm-up: JIT, TLS sessions, prepared statements.
    await load(`${base}/v1/sessions`, token, 2, connections);
    const floor = await load(`${base}/healthz`, undefined, seconds, connections);
    const sessions = await load(`${base}/v1/sessions`, token, seconds, connections);

    // The chair: sessions admitted through the API, dialled by the daemon, every endpoint's path up.
    const specs = chairSessions(config.inventory, chairCount);
    const tDial = performance.now();
    for (const s of specs) {
      const r = await call(`${base}/v1/sessions`, token, {
        id: s.id,
        title: `Bench chair ${s.id}`,
        endpoints: s.endpoints,
        chair: s.chair,
      });
      if (r.status !== 201) throw new Error(`admitting ${s.id}: ${r.status} ${r.body}`);
    }
    // Paths come up within seconds; an endpoint still not connected after PATHS_MS is left out of the
    // commands (counted in chair_unready) when they are few, so one stuck dial does not void the run.
    const unready = new Set<string>();
    const pathsDown = async () => {
      unready.clear();
      for (const s of specs) {
        for (const e of s.endpoints) {
          const r = await call(`${base}/v1/sessions/${s.id}/chair/preview`, token, { endpoint: e });
          const p = JSON.parse(r.body) as { ok?: boolean; code?: string };
          if (r.status !== 200 || p.ok !== true) unready.add(`${s.id}/${e}: ${p.code ?? r.status}`);
        }
      }
      return [...unready];
    };
    const total = specs.reduce((a, s) => a + s.endpoints.length, 0);
    try {
      await until('every chair path up', PATHS_MS, pathsDown);
    } catch (err) {
      if (unready.size > total * 0.02) throw err;
      process.stderr.write(`bench api: left out, not connected: ${[...unready].join(', ')}\n`);
    }
    const commanded = specs.map((s) => ({
      ...s,
      endpoints: s.endpoints.filter((e) => ![...unready].some((u) => u.startsWith(`${s.id}/${e}:`))),
    }));
    const dialMs = performance.now() - tDial;
    for (const s of commanded) {
      const r = await call(`${base}/v1/sessions/${s.id}/chair`, token, { endpoint: s.endpoints.at(-1) });
      if (r.status !== 200) throw new Error(`chair warm-up on ${s.id}: ${r.status} ${r.body}`);
    }
    // prom-client's event-loop delay histogram is reset by each scrape: one now, one after the load, reads
    // how long the daemon's loop was busy with other work while the commands ran (time the route waits).
    // The same two scrapes give the daemon's CPU and garbage collection over the load; the simulator's CPU
    // comes from /proc (Linux), since both share the machine's cores with the daemon.
    const before = (await call(`${base}/metrics`)).body;
    const simBefore = childrenCpuMs(daemon.child.pid);
    const chair = await chairLoad(base, token, commanded, chairRate, seconds);
    const lagText = (await call(`${base}/metrics`)).body;
    const simCpuMs = childrenCpuMs(daemon.child.pid) - simBefore;
    // prom-client records the interval between the ticks of a 10 ms timer (its default precision), not the
    // delay past it: an idle loop reads 10 ms. The delay a request meets is the figure less the period.
    const lag = (q: string) => series(lagText, `nodejs_eventloop_lag_${q}_seconds`) * 1000 - LAG_PERIOD_MS;
    // A GC kind's series appears at its first collection: absent before the load counts as none.
    const used = (name: string) => (series(lagText, name) || 0) - (series(before, name) || 0);
    const gc = (kind: string) => ({
      n: used(`nodejs_gc_duration_seconds_count{kind="${kind}"}`),
      ms: used(`nodejs_gc_duration_seconds_sum{kind="${kind}"}`) * 1000,
      over10ms:
        used(`nodejs_gc_duration_seconds_count{kind="${kind}"}`) -
        used(`nodejs_gc_duration_seconds_bucket{le="0.01",kind="${kind}"}`),
    });
    const major = gc('major');
    const minor = gc('minor');
    const inDaemon = await serverOverhead(base, token, chair.engineById);

    // /metrics over HTTPS, one scrape at a time as Prometheus does, with the chair sessions live.
    const scrapes: number[] = [];
    let bytes = 0;
    let text = '';
    for (let i = 0; i < 30; i++) {
      const r = await call(`${base}/metrics`);
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      scrapes.push(r.ms);
      bytes = r.bytes;
      text = r.body;
    }
    // What the scrape walked: every endpoint the MCUs list as connected (lobbies and rooms).
    const connected = [...text.matchAll(/^cascaded_endpoints_connected\{[^}]*\} (\d+)$/gm)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
    // Every figure on a line of its own; the last line (bench/run.ts) carries the issue's keys only.
    const detail = {
      get_non2xx: sessions.non2xx,
      get_floor_rps: floor.rps,
      get_floor_p99_ms: floor.p99,
      get_ratio: round(sessions.rps / floor.rps),
      chair_rate: chairRate,
      chair_sessions: specs.length,
      chair_endpoints: total,
      chair_unready: unready.size,
      chair_dial_s: round(dialMs / 1000),
      chair_ok: chair.ok,
      chair_failed: chair.failed,
      chair_errors: chair.errors,
      chair_p50_ms: round(chair.routeP50),
      chair_engine_p50_ms: round(chair.engineP50),
      chair_engine_p99_ms: round(chair.engineP99),
      chair_overhead_p50_ms: round(chair.overheadP50),
      chair_overhead_matched_p99_ms: round(chair.overheadP99),
      chair_overhead_in_daemon_n: inDaemon.n,
      chair_overhead_in_daemon_p50_ms: round(inDaemon.p50),
      chair_overhead_in_daemon_p99_ms: round(inDaemon.p99),
      chair_loop_delay_p50_ms: round(lag('p50')),
      chair_loop_delay_p99_ms: round(lag('p99')),
      chair_daemon_cpu_ms_per_command: round((used('process_cpu_seconds_total') * 1000) / chair.ok),
      chair_sim_cpu_ms_per_command: round(simCpuMs / chair.ok),
      chair_gc_major: major.n,
      chair_gc_major_ms: round(major.ms),
      chair_gc_major_over_10ms: major.over10ms,
      chair_gc_minor: minor.n,
      chair_gc_minor_ms: round(minor.ms),
      chair_checkpoints: used('cascaded_store_wal_checkpoint_seconds_count{thread="worker"}'),
      chair_checkpoints_finished_on_loop: used('cascaded_store_wal_checkpoint_seconds_count{thread="daemon"}'),
      chair_checkpoint_loop_ms: round(used('cascaded_store_wal_checkpoint_seconds_sum{thread="daemon"}') * 1000),
      heap_used_mb: round(series(lagText, 'nodejs_heap_size_used_bytes') / 2 ** 20),
      metrics_scrape_max_ms: round(Math.max(...scrapes)),
      metrics_bytes: bytes,
      metrics_endpoints_connected: connected,
      mcus_up: mcusUp,
      mcus: config.inventory.mcus.length,
      endpoints: config.inventory.endpoints.length,
      seconds,
      connections,
    };
    process.stdout.write(`${JSON.stringify({ bench: 'api-detail', ...detail })}\n`);
    return {
      get_rps: sessions.rps,
      get_p99_ms: sessions.p99,
      chair_rps: chair.rps,
      chair_p99_ms: round(chair.routeP99),
      chair_overhead_p99_ms: round(chair.routeP99 - chair.engineP99),
      metrics_scrape_ms: round(quantile(scrapes, 0.5)),
    };
  } finally {
    keepAlive.destroy();
    daemon.child.kill('SIGTERM');
    const stopped = await Promise.race([daemon.exited.then(() => true), sleep(60_000).then(() => false)]);
    if (!stopped) daemon.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
