/**
 * A real API server for tests: HTTPS on an ephemeral loopback port, a real
 * SQLite store, and real sip-msml drivers connected over SIP to simulated
 * MCUs for the small inventory of test/config/fixtures.ts. Tokens of every
 * role and scope are created in the store, as `cascaded token create` does.
 */
import { readFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  type ApiContext,
  type ApiEvents,
  type ApiServer,
  type ApiServerOptions,
  issueToken,
  loadOrCreateCertificate,
  parseScope,
  startApiServer,
} from '../../src/api/index.js';
import { type CascadeManager, startCascadeManager } from '../../src/cascade/index.js';
import { parseConfig } from '../../src/config/index.js';
import { realClock, TypedEmitter } from '../../src/core/index.js';
import { type McuPool, startMcuPool } from '../../src/mcu/index.js';
import { createMetrics, type Metrics } from '../../src/metrics/index.js';
import { createSimMcu, type SimMcu } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { type ApiRole, openSqliteStore, type Store } from '../../src/store/index.js';
import { baseConfig, type Mutable, toYaml } from '../config/fixtures.js';

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test bodies are matched structurally
  readonly body: any;
}

export interface CallOptions {
  readonly token?: string;
  readonly body?: unknown;
  /** Raw body bytes (sent as is, with `contentType`). */
  readonly raw?: string | Buffer;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}

export interface Harness {
  readonly url: string;
  readonly ca: string;
  readonly dir: string;
  readonly store: Store;
  readonly server: ApiServer;
  readonly events: TypedEmitter<ApiEvents>;
  readonly sims: ReadonlyMap<string, SimMcu>;
  readonly pool: McuPool;
  readonly metrics: Metrics;
  /** The cascade manager, when asked for (`withCascade`). */
  readonly cascade?: CascadeManager;
  readonly tokens: Readonly<Record<TokenName, string>>;
  call(method: string, path: string, opts?: CallOptions): Promise<Reply>;
  /** A fresh token (e.g. for a rate-limit test that must not share a budget). */
  token(role: ApiRole, scope?: string, expiresAt?: number): Promise<string>;
}

export type TokenName =
  | 'admin'
  | 'viewer'
  | 'opNinhBinh'
  | 'opQuangBinh'
  | 'opCentral'
  | 'opVnpt'
  | 'expired'
  | 'revoked';

export async function startHarness(
  t: { testdir(): string; teardown(fn: () => unknown): void },
  overrides: Partial<Omit<ApiServerOptions, 'context'>> & {
    readonly context?: Partial<ApiContext>;
    /** Run the real cascade manager (sessions are admitted and dialed over SIP). */
    readonly withCascade?: boolean;
  } = {},
  mutate: (o: Mutable) => void = () => {},
): Promise<Harness> {
  const dir = t.testdir();
  const sims = new Map<string, SimMcu>();
  for (const id of ['master', 'nb', 'qb-vnpt-1']) {
    sims.set(id, await createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20, infoDelayMs: 0 }));
  }
  t.teardown(() => Promise.all([...sims.values()].map((s) => s.close())));
  const o = baseConfig();
  o.daemon = { stateDir: join(dir, 'state') };
  o.mcus.forEach((m: Mutable) => {
    m.sip = [sims.get(m.id)!.uri];
  });
  mutate(o);
  const config = parseConfig(toYaml(o), { cwd: dir });
  const logger = pino({ level: 'silent' });
  const store = await openSqliteStore({ path: join(dir, 'state', 'cascaded.db') });
  t.teardown(() => store.close());
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], logger });
  t.teardown(() => ua.close());
  const pool = await startMcuPool({ ua, mcus: config.inventory.mcus, logger, driver: { healthIntervalMs: 500 } });
  t.teardown(() => pool.close());
  await pool.firstAttempts;
  const tls = await loadOrCreateCertificate(undefined, join(dir, 'state'), ['127.0.0.1']);
  let cascade: CascadeManager | undefined;
  if (overrides.withCascade === true) {
    const manager = await startCascadeManager({
      store,
      inventory: config.inventory,
      mcus: pool,
      settings: config.daemon.cascade,
      logger,
    });
    t.teardown(() => manager.close());
    cascade = manager;
  }
  const events = new TypedEmitter<ApiEvents>();
  const metrics = createMetrics({ inventory: config.inventory, store });
  metrics.watchDrivers(pool.drivers.values());
  metrics.watchTransactions(ua);
  metrics.watchChair(events);
  if (cascade !== undefined) metrics.watchCascade(cascade);
  const context: ApiContext = {
    metrics,
    inventory: config.inventory,
    store,
    drivers: pool.drivers,
    events,
    clock: realClock,
    startedAt: Date.now(),
    version: 'test',
    ...(cascade === undefined ? {} : { cascade }),
    ...overrides.context,
  };
  const { context: _context, withCascade: _withCascade, ...serverOverrides } = overrides;
  const server = await startApiServer({
    host: '127.0.0.1',
    port: 0,
    tls,
    logger,
    readiness: [],
    bodyLimitBytes: 16 * 1024,
    ...serverOverrides,
    context,
  });
  t.teardown(() => server.close());
  metrics.watchApi(server.events);

  const token = async (role: ApiRole, scope?: string, expiresAt?: number) => {
    const s = scope === undefined ? undefined : parseScope(scope);
    const issued = issueToken({
      name: `${role}${scope ? `-${scope}` : ''}`,
      role,
      ...(s === undefined ? {} : { scope: s }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
    });
    await store.createToken(issued.record);
    return issued.token;
  };
  const revoked = await token('admin');
  await store.revokeToken(revoked.split('.')[1]!);
  const tokens: Record<TokenName, string> = {
    admin: await token('admin'),
    viewer: await token('viewer'),
    opNinhBinh: await token('operator', 'province:ninh-binh'),
    opQuangBinh: await token('operator', 'province:quang-binh'),
    opCentral: await token('operator', 'operator:cuc'),
    opVnpt: await token('operator', 'operator:vnpt'),
    expired: await token('admin', undefined, Date.now() - 1000),
    revoked,
  };
  const ca = readFileSync(join(dir, 'state', 'tls', 'api.crt'), 'utf8');
  return {
    url: server.url,
    ca,
    dir,
    store,
    server,
    events,
    sims,
    pool,
    metrics,
    ...(cascade === undefined ? {} : { cascade }),
    tokens,
    token,
    call: (method, path, opts = {}) => call(server.url, ca, method, path, opts),
  };
}

export function call(base: string, ca: string, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  const body =
    opts.raw !== undefined ? opts.raw : opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const ro: RequestOptions = { method, headers, ca, timeout: 15_000 };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, base), ro, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 15 s`)));
    req.on('error', reject);
    req.end(body);
  });
}
