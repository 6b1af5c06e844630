/**
 * The session lifecycle end to end: the simulator in its own process (the
 * network of fixtures.ts on loopback addresses of its own), the daemon's
 * parts here as the daemon starts them (drivers, store, cascade manager,
 * chair engine, session lifecycle on a FakeClock, metrics, the HTTPS API),
 * and the real cascadectl process against that API.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import {
  type ApiServer,
  issueToken,
  loadOrCreateCertificate,
  parseScope,
  startApiServer,
} from '../../src/api/index.js';
import { type ChairEngine, cascadeSource, createChairEngine } from '../../src/chair/index.js';
import { parseConfig } from '../../src/config/index.js';
import { FakeClock, realClock, TypedEmitter } from '../../src/core/index.js';
import type { Inventory } from '../../src/inventory/index.js';
import { createMetrics, type Metrics } from '../../src/metrics/index.js';
import { createLiveRecorder, type SessionLifecycle, startSessionLifecycle } from '../../src/session/index.js';
import { type SimulatorProcess, spawnSimulator } from '../../src/sim/index.js';
import type { ApiRole } from '../../src/store/index.js';
import { loopbackBase, type Parts, startParts } from '../cascade/helpers.js';
import { BASE, sessionNetwork } from './fixtures.js';

const run = promisify(execFile);

export interface SessionWorld {
  readonly dir: string;
  readonly inventory: Inventory;
  readonly sim: SimulatorProcess;
  readonly parts: Parts;
  readonly chair: ChairEngine;
  readonly clock: FakeClock;
  readonly metrics: Metrics;
  readonly server: ApiServer;
  readonly url: string;
  readonly caFile: string;
  lifecycle: SessionLifecycle;
  /** Close the lifecycle (the daemon going down) and start a new one on the same store. */
  restart(): Promise<void>;
  /** Stop the lifecycle only (the daemon down); `restart` brings it back. */
  stop(): Promise<void>;
  token(role: ApiRole, scope?: string): Promise<string>;
  /** Run cascadectl with `token`; its exit code and output. */
  ctl(token: string, args: readonly string[]): Promise<{ code: number; out: string; err: string }>;
  /** What an endpoint sees, by inventory ids, as the simulator's display model says. */
  view(endpoint: string): Promise<{ seesIds: string[]; hearsIds: string[] }>;
  close(): Promise<void>;
}

export async function sessionWorld(dir: string): Promise<SessionWorld> {
  const cfg = sessionNetwork(loopbackBase());
  const file = join(dir, 'network.yaml');
  writeFileSync(file, JSON.stringify(cfg, null, 1));
  const config = parseConfig(JSON.stringify(cfg), { cwd: dir });
  const inventory = config.inventory;
  const sim = await spawnSimulator({ configFile: file, logLevel: process.env.SESSION_TEST_LOG ?? 'warn' });
  let parts: Parts;
  try {
    parts = await startParts(inventory, dir, {}, { qualityReports: true });
  } catch (err) {
    await sim.close();
    throw err;
  }
  const logger = pino({ level: process.env.SESSION_TEST_LOG ?? 'silent' });
  const chair = createChairEngine({
    source: cascadeSource({
      cascade: parts.manager,
      drivers: parts.pool.drivers,
      inventory,
      settings: config.daemon.chair,
    }),
    deadlineMs: 30_000,
  });
  // As the daemon does: every chair command to the session's events, for the report.
  chair.on('finished', (f) => {
    void parts.store
      .appendEvent({
        type: 'chair.command',
        subject: f.session,
        data: { requestId: f.requestId, endpoint: f.endpoint, outcome: f.outcome, ms: f.ms, steps: f.steps },
      })
      .catch(() => undefined);
  });
  // As the daemon does: endpoint calls and quality reports to the sessions' live record (windows every 200 ms).
  const live = createLiveRecorder({ store: parts.store, clock: realClock, flushMs: 200 });
  parts.manager.on('participant', (p) => live.participant(p));
  parts.manager.on('quality', (q) => live.quality(q));
  const clock = new FakeClock(BASE);
  const metrics = createMetrics({ inventory, store: parts.store });
  metrics.watchCascade(parts.manager);
  metrics.watchQuality(parts.manager);
  const startLifecycle = async () => {
    const lc = await startSessionLifecycle({
      store: parts.store,
      inventory,
      cascade: parts.manager,
      chair,
      clock,
      logger,
    });
    metrics.watchSessions(lc);
    return lc;
  };
  const w = { lifecycle: await startLifecycle() } as { lifecycle: SessionLifecycle };
  let down = false;
  const tls = await loadOrCreateCertificate(undefined, join(dir, 'state'), ['127.0.0.1']);
  const server = await startApiServer({
    host: '127.0.0.1',
    port: 0,
    tls,
    logger,
    readiness: [],
    context: {
      inventory,
      store: parts.store,
      drivers: parts.pool.drivers,
      events: new TypedEmitter(),
      clock: realClock,
      startedAt: Date.now(),
      version: 'test',
      metrics,
      cascade: parts.manager,
      chair,
      reports: {
        report: (id) => w.lifecycle.report(id),
        reportCsv: (id) => w.lifecycle.reportCsv(id),
        reportHtml: (id) => w.lifecycle.reportHtml(id),
      },
      // Through the holder: a restart replaces the lifecycle behind the same API.
      sessions: {
        create: (...a) => w.lifecycle.create(...a),
        change: (...a) => w.lifecycle.change(...a),
        cancel: (...a) => w.lifecycle.cancel(...a),
        get: (...a) => w.lifecycle.get(...a),
        list: (...a) => w.lifecycle.list(...a),
        acknowledge: (...a) => w.lifecycle.acknowledge(...a),
        next: (...a) => w.lifecycle.next(...a),
        recordCheck: (...a) => w.lifecycle.recordCheck(...a),
        autoCheck: (...a) => w.lifecycle.autoCheck(...a),
        checks: (...a) => w.lifecycle.checks(...a),
      },
    },
  });
  const caFile = join(dir, 'state', 'tls', 'api.crt');
  return Object.assign(w, {
    dir,
    inventory,
    sim,
    parts,
    chair,
    clock,
    metrics,
    server,
    url: server.url,
    caFile,
    async stop() {
      await w.lifecycle.close();
      down = true;
    },
    async restart() {
      if (!down) await w.lifecycle.close();
      w.lifecycle = await startLifecycle();
      down = false;
    },
    async token(role: ApiRole, scope?: string) {
      const s = scope === undefined ? undefined : parseScope(scope);
      const issued = issueToken({ name: `${role}${scope ?? ''}`, role, ...(s === undefined ? {} : { scope: s }) });
      await parts.store.createToken(issued.record);
      return issued.token;
    },
    async ctl(token: string, args: readonly string[]) {
      try {
        const r = await run(process.execPath, ['dist/src/cli/cascadectl.js', ...args], {
          env: {
            PATH: process.env.PATH,
            HOME: dir,
            CASCADECTL_URL: server.url,
            CASCADECTL_TOKEN: token,
            CASCADECTL_CA: caFile,
          },
          timeout: 30_000,
        });
        return { code: 0, out: r.stdout, err: r.stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, out: e.stdout, err: e.stderr };
      }
    },
    async view(endpoint: string) {
      const res = await fetch(`${sim.control}/v1/endpoints/${encodeURIComponent(endpoint)}/view`);
      return (await res.json()) as { seesIds: string[]; hearsIds: string[] };
    },
    async close() {
      await server.close();
      await w.lifecycle.close();
      await chair.close();
      await live.close();
      await parts.close();
      await sim.close();
    },
  }) as SessionWorld;
}
