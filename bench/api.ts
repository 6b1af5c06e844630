/**
 * `npm run bench -- api [--config FILE] [--seconds N] [--connections N]`: the
 * REST API against the demo network (the simulator as a child process, the
 * daemon in this process, drivers connected to every simulated MCU), with
 * autocannon: `GET /v1/sessions` (authenticated, read from the store), its
 * floor `GET /healthz` through the same server without authentication or the
 * store, and the `/metrics` scrape (over HTTPS, and the registry's render
 * alone). The chair route needs issue 11: its figures are null, with why.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { pino } from 'pino';
import { issueToken } from '../src/api/index.js';
import { type Config, loadConfigFile } from '../src/config/index.js';
import { startDaemon } from '../src/daemon.js';
import { spawnSimulator } from '../src/sim/index.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));
const round = (x: number) => Math.round(x * 100) / 100;

// Prometheus keeps its scrape connection open: so does this, so a scrape is not a TLS handshake.
const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });

function get(url: string, token?: string): Promise<{ status: number; ms: number; bytes: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { agent: keepAlive, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
      (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, bytes }));
      },
    );
    req.on('error', reject);
    req.end();
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

const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const file = opt('--config') ?? DEFAULT_CONFIG;
  const seconds = Number(opt('--seconds') ?? 10);
  const connections = Number(opt('--connections') ?? 10);
  const loaded = await loadConfigFile(file);
  const dir = mkdtempSync(join(tmpdir(), 'cascaded-bench-api-'));
  // The demo's own daemon settings, except where state lives and the ports: nothing collides with a running demo.
  const config: Config = {
    ...loaded,
    daemon: {
      ...loaded.daemon,
      logLevel: 'warn',
      stateDir: dir,
      store: { ...loaded.daemon.store, path: join(dir, 'cascaded.db') },
      api: { ...loaded.daemon.api, host: '127.0.0.1', port: 0, rateLimit: { max: 1_000_000, windowMs: 60_000 } },
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
    },
  };
  const logger = pino({ level: 'warn' });
  const sim = await spawnSimulator({ configFile: file, controlPort: 0, logLevel: 'warn', logger });
  try {
    const daemon = await startDaemon({ config, logger, version: 'bench' });
    try {
      const first = await daemon.mcus.firstAttempts;
      const issued = issueToken({ name: 'bench', role: 'admin' });
      await daemon.store.createToken(issued.record);
      // A realistic list: a year of a province's sessions (Ninh Bình ran 35).
      for (let i = 0; i < 50; i++) {
        await daemon.store.createSession({
          id: `s${i}`,
          kind: i % 3 === 0 ? 'adhoc' : 'planned',
          title: `Phiên họp ${i}`,
          state: 'planned',
          startsAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString(),
        });
      }
      const base = daemon.apiUrl;
      // Warm-up: JIT, TLS session, prepared statements.
      await load(`${base}/v1/sessions`, issued.token, 2, connections);
      const floor = await load(`${base}/healthz`, undefined, seconds, connections);
      const sessions = await load(`${base}/v1/sessions`, issued.token, seconds, connections);

      // /metrics over HTTPS, one scrape at a time as Prometheus does.
      const scrapes: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 30; i++) {
        const r = await get(`${base}/metrics`);
        if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
        scrapes.push(r.ms);
        bytes = r.bytes;
      }
      return {
        get_rps: sessions.rps,
        get_p99_ms: sessions.p99,
        get_non2xx: sessions.non2xx,
        get_floor_rps: floor.rps,
        get_floor_p99_ms: floor.p99,
        get_ratio: round(sessions.rps / floor.rps),
        chair_rps: null,
        chair_p99_ms: null,
        chair_overhead_p99_ms: null,
        chair_note:
          'not measurable yet: POST /v1/sessions/:id/chair answers 501 until the chair module (issue 11) lands',
        metrics_scrape_ms: round(quantile(scrapes, 0.5)),
        metrics_scrape_max_ms: round(Math.max(...scrapes)),
        metrics_bytes: bytes,
        mcus_up: first.up,
        mcus: config.inventory.mcus.length,
        endpoints: config.inventory.endpoints.length,
        seconds,
        connections,
      };
    } finally {
      keepAlive.destroy();
      await daemon.close();
    }
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
