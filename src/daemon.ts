/**
 * The composition root: the only module that knows every part. Parts start in
 * dependency order and close in reverse (style.md): the API stops accepting
 * first, the store closes last, the logger is flushed by the caller.
 */

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { createSystemdNotifier, type SystemdNotifier } from '../native/index.js';
import { type ApiEvents, loadOrCreateCertificate, startApiServer } from './api/index.js';
import { type CascadeManager, startCascadeManager } from './cascade/index.js';
import { type ChairEngine, ChairError, cascadeSource, createChairEngine } from './chair/index.js';
import type { Config } from './config/index.js';
import { onceClose, realClock, TypedEmitter } from './core/index.js';
import { type McuPool, type SecretsReload, startMcuPool } from './mcu/index.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { createLiveRecorder, type SessionLifecycle, startSessionLifecycle } from './session/index.js';
import { createUserAgent, type ListenOptions, type UserAgent } from './sip/index.js';
import { createEventWriter, openSqliteStore, type Store } from './store/index.js';

export interface DaemonOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Defaults to a notifier on the process environment (a no-op outside systemd). */
  readonly notifier?: SystemdNotifier;
  /** Shown by /v1/status and the OpenAPI document. */
  readonly version?: string;
  /**
   * When no session is live, admit one with every endpoint, rooted at the master, chaired by the first
   * endpoint of the top level on the master (`npm start`: the demo national session).
   */
  readonly demoSession?: boolean;
}

export interface Daemon {
  readonly apiUrl: string;
  readonly store: Store;
  /** The SIP user agent every MCU driver shares (its stats and transactions: what the benchmarks count). */
  readonly ua: UserAgent;
  /** One MCU driver per inventory MCU, supervised (health, reconnection). */
  readonly mcus: McuPool;
  /** Read the API certificate again and serve it to new connections (SIGHUP); the old one stays on failure. */
  reloadTls(): Promise<void>;
  /** Read the MCUs' secrets again (SIGHUP: rotated password files); a secret that cannot be read keeps the old one. */
  reloadSecrets(): SecretsReload;
  /** Dials, verifies, heals and tears down the cascade of every live session (docs/cascade.md). */
  readonly cascade: CascadeManager;
  /** Brings endpoints to the chair of live sessions (docs/chair.md). */
  readonly chair: ChairEngine;
  /** Scheduled sessions and their timeline of Decision 1594 (docs/session.md). */
  readonly sessions: SessionLifecycle;
  /** Close every part in reverse start order. Idempotent. */
  close(): Promise<void>;
}

/** How often the running daemon walks the audit hash chain (ms). */
const AUDIT_VERIFY_MS = 300_000;
/**
 * The store's WAL is checkpointed by a worker thread this often (docs/store.md, "Checkpoints"): about
 * 1,400 pages a second under 200 chair commands/s, near SQLite's own threshold of 1,000 pages.
 */
const CHECKPOINT_EVERY_MS = 1_000;

interface Part {
  readonly name: string;
  close(): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, logger } = options;
  const log = logger.child({ module: 'daemon' });
  const notifier = options.notifier ?? createSystemdNotifier({ logger });
  const parts: Part[] = [];
  // Built after the store, which reports its checkpoints from the start.
  let checkpointMetrics: Metrics | undefined;

  const start = async <T extends { close(): Promise<void> }>(name: string, make: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const part = await make();
    parts.push({ name, close: () => part.close() });
    log.info({ part: name, ms: Math.round(performance.now() - t0) }, `started ${name}`);
    return part;
  };

  const closeAll = async () => {
    for (const part of parts.toReversed()) {
      const t0 = performance.now();
      try {
        await part.close();
        log.info({ part: part.name, ms: Math.round(performance.now() - t0) }, `closed ${part.name}`);
      } catch (err) {
        // Keep closing the rest: one stuck part must not leave the store open.
        log.error({ part: part.name, err }, `failed to close ${part.name}`);
      }
    }
  };

  try {
    await start('notifier', async () => notifier);
    const store = await start('store', () =>
      openSqliteStore({
        path: config.daemon.store.path,
        synchronous: config.daemon.store.synchronous,
        backgroundCheckpoint: {
          everyMs: CHECKPOINT_EVERY_MS,
          onCheckpoint: (r) => checkpointMetrics?.storeCheckpoint(r),
        },
        logger: log,
      }),
    );
    const snapshot = await store.saveInventorySnapshot(config.inventory, config.source);
    const inv = config.inventory;
    log.info(
      {
        snapshot: snapshot.id,
        changed: snapshot.created,
        levels: inv.levels.length,
        mcus: inv.mcus.length,
        endpoints: inv.endpoints.length,
      },
      'inventory loaded',
    );

    const sipListen = withStreamTransport(config.daemon.sip.listen);
    if (sipListen.length > config.daemon.sip.listen.length)
      log.info(
        { added: sipListen.at(-1) },
        'SIP: also listening on TCP at the UDP address, for conference subscriptions larger than a datagram',
      );
    const ua = await start('sip', () =>
      createUserAgent({
        listen: sipListen,
        ...config.daemon.sip.limits,
        logger,
        user: 'cascaded',
        userAgent: 'cascaded',
      }),
    );
    // Control dialogs are kept alive with session timers (design section 2, RFC 4028): daemon.mcu.sessionExpires,
    // or an MCU's control.sessionExpires, asked for on each control INVITE.
    const mcus = await start('mcus', () => startMcuPool({ ua, mcus: inv.mcus, logger, driver: config.daemon.mcu }));
    const master = inv.mcus.find((m) => m.role === 'master');
    // The events table keeps each MCU's up/down history for the session report.
    // Attached before the first connection attempts settle, so none is missed.
    let stopping = false;
    // What /v1/events streams: the drivers' changes, as plain data.
    const apiEvents = new TypedEmitter<ApiEvents>();
    // Metrics subscribe to the same events (and read state at scrape time): never in the control path.
    const metrics = createMetrics({ inventory: inv, store });
    checkpointMetrics = metrics;
    metrics.watchDrivers(mcus.drivers.values());
    metrics.watchTransactions(ua);
    metrics.watchChair(apiEvents);
    apiEvents.onListenerError((err, event) => log.warn({ err, event }, 'an event listener failed'));
    for (const d of mcus.drivers.values()) {
      d.on('health', (h) => apiEvents.safeEmit('mcu', { mcu: d.mcuId, up: h.up, reason: h.reason }));
      d.on('capabilities', (c) =>
        apiEvents.safeEmit('capabilities', { mcu: d.mcuId, conferenceEvents: c.conferenceEvents }),
      );
      d.on('link', (l) =>
        apiEvents.safeEmit('link', {
          mcu: d.mcuId,
          target: l.target,
          state: l.state,
          ...(l.reason === undefined ? {} : { reason: l.reason }),
        }),
      );
      d.on('health', (h) => {
        if (stopping) return;
        store
          .appendEvent({ type: h.up ? 'mcu.up' : 'mcu.down', subject: d.mcuId, data: { reason: h.reason } })
          .catch((err: unknown) => log.warn({ err, mcu: d.mcuId }, 'could not record an MCU health event'));
      });
    }

    // The cascade of every live session: read from the store, reconciled against the MCUs' full state, so
    // a restart finds the links the MCUs kept (they run MCU to MCU) and dials only what is missing.
    const cascade = await start('cascade', () =>
      startCascadeManager({
        store,
        inventory: inv,
        mcus,
        settings: config.daemon.cascade,
        chairLayout: config.daemon.chair.layout,
        logger,
      }),
    );
    metrics.watchCascade(cascade);
    metrics.watchQuality(cascade);
    // The sessions' live record: endpoint calls coming and going, and the MCUs' call quality reports (rolled up).
    // A part of its own: it closes (writing what is pending) before the cascade manager and the store.
    const live = await start('live', async () => createLiveRecorder({ store, clock: realClock, logger }));
    cascade.on('participant', (p) => {
      if (!stopping) live.participant(p);
    });
    cascade.on('quality', (q) => {
      if (!stopping) live.quality(q);
    });
    cascade.on('link', (l) =>
      apiEvents.safeEmit('link', {
        mcu: l.child,
        target: l.parent,
        state: l.state,
        session: l.session,
        ...(l.detail === undefined ? {} : { reason: l.detail }),
      }),
    );
    if (options.demoSession === true) await admitDemoSession(cascade, store, config, log);
    // The chair's commands to the session's events, several to a transaction (a second at most behind: one
    // commit per command was a tenth of its CPU, issue 11). It closes after the chair, writing what is pending.
    const chairRecord = await start('chair-record', async () => createEventWriter({ store, clock: realClock, logger }));
    // The chair hot path, over the sessions the cascade manager holds. It closes before the cascade manager:
    // commands in flight end (CHAIR_ERR_CLOSED) before the manager stops.
    const chair = await start('chair', async () =>
      createChairEngine({
        source: cascadeSource({ cascade, drivers: mcus.drivers, inventory: inv, settings: config.daemon.chair }),
        deadlineMs: config.daemon.chair.deadlineMs,
        logger,
      }),
    );
    // Every command, its outcome and per-step timings: to /v1/events and the metrics (apiEvents), and to the
    // session's events in the store, for the session report.
    chair.on('finished', (f) => {
      apiEvents.safeEmit('chair', { session: f.session, endpoint: f.endpoint ?? '', outcome: f.outcome, ms: f.ms });
      if (stopping) return;
      chairRecord.append({
        type: 'chair.command',
        subject: f.session,
        data: {
          requestId: f.requestId,
          endpoint: f.endpoint,
          ...(f.actor === undefined ? {} : { actor: f.actor }),
          outcome: f.outcome,
          ms: f.ms,
          steps: f.steps,
        },
      });
    });

    // The session lifecycle drives the cascade manager (dial, tear-down) and the chair (the script's next
    // speaker): it starts after both and closes before them, so no step runs against a closed part.
    const sessions = await start('session', () =>
      startSessionLifecycle({
        store,
        inventory: inv,
        cascade,
        chair,
        clock: realClock,
        logger,
        settings: config.daemon.session,
      }),
    );
    metrics.watchSessions(sessions);

    const apiCfg = config.daemon.api;
    const loadTls = () => loadOrCreateCertificate(apiCfg.tls, config.daemon.stateDir, [apiCfg.host]);
    const tls = apiCfg.plainHttp ? undefined : await loadTls();
    const clientCa =
      apiCfg.clientCertificates === undefined ? undefined : await readFile(apiCfg.clientCertificates.ca, 'utf8');
    const api = await start('api', () =>
      startApiServer({
        host: apiCfg.host,
        port: apiCfg.port,
        ...(tls === undefined ? { plainHttp: true } : { tls }),
        ...(apiCfg.clientCertificates === undefined || clientCa === undefined
          ? {}
          : { clientCertificates: { ca: clientCa, identities: apiCfg.clientCertificates.identities } }),
        bodyLimitBytes: apiCfg.bodyLimitBytes,
        requestTimeoutMs: apiCfg.requestTimeoutMs,
        rateLimit: apiCfg.rateLimit,
        maxEventClients: apiCfg.maxEventClients,
        metricsAuth: apiCfg.metricsAuth,
        context: {
          inventory: inv,
          store,
          drivers: mcus.drivers,
          events: apiEvents,
          clock: realClock,
          startedAt: Date.now(),
          version: options.version ?? '0.0.0',
          metrics,
          cascade,
          sessions,
          reports: sessions,
          chair: {
            bringToChair: (id, endpoint, opts) => chair.bringToChair(id, endpoint, opts),
            returnToDefault: (id, opts) => chair.returnToDefault(id, opts),
            preview: (id, endpoint) => {
              const p = chair.preview(id, endpoint);
              // What would happen is the answer, a broken path included; an unknown session or endpoint is not.
              if (!p.ok && (p.code === 'CHAIR_ERR_NO_SESSION' || p.code === 'CHAIR_ERR_NOT_IN_SESSION'))
                throw new ChairError(p.code, p.message, { details: p.details });
              return p;
            },
          },
        },
        logger,
        readiness: [
          {
            name: 'store',
            check: async () => ({ ok: (await store.schemaVersion()) > 0 }),
          },
          {
            name: 'sip',
            check: () => ({
              ok: ua.listening.length > 0,
              detail: ua.listening.map((l) => `${l.transport}:${l.host}:${l.port}`).join(' '),
            }),
          },
          {
            name: 'master-mcu',
            check: () => {
              const d = master === undefined ? undefined : mcus.drivers.get(master.id);
              if (d === undefined) return { ok: false, detail: 'no master MCU with a sip-msml driver' };
              return { ok: d.health.up, detail: `${d.mcuId}: ${d.health.reason}` };
            },
          },
        ],
      }),
    );

    metrics.watchApi(api.events);
    // The audit chain is walked at start and then every AUDIT_VERIFY_MS; a break shows as
    // cascaded_audit_chain_ok 0 (alert AuditChainBroken) and in the log.
    let auditTimer: NodeJS.Timeout | undefined;
    const verifyAudit = async () => {
      try {
        const r = await store.verifyAudit();
        metrics.setAuditChain(r);
        if (!r.ok) log.error({ broken: r.broken, checked: r.checked }, 'audit chain broken');
      } catch (err) {
        if (!stopping) log.warn({ err }, 'could not verify the audit chain');
      }
      if (!stopping) auditTimer = setTimeout(() => void verifyAudit(), AUDIT_VERIFY_MS).unref();
    };
    await verifyAudit();

    const status = `ready: ${inv.mcus.length} MCUs, ${inv.endpoints.length} endpoints; API ${api.url}`;
    notifier.ready(status);
    log.info({ api: api.url, selfSignedCertificate: tls?.selfSigned ?? false, plainHttp: tls === undefined }, status);
    // `systemctl status` shows MCU health once every driver has made its first attempt, then on every change.
    const mcuStatus = () => {
      if (!stopping) notifier.status(`${status}; MCUs up: ${mcus.upCount()} of ${mcus.drivers.size}`);
    };
    mcus.firstAttempts.then(mcuStatus, () => {});
    for (const d of mcus.drivers.values()) d.on('health', () => mcus.firstAttempts.then(mcuStatus, () => {}));

    return {
      apiUrl: api.url,
      store,
      ua,
      mcus,
      async reloadTls() {
        if (tls === undefined) return;
        const fresh = await loadTls();
        api.reloadTls(fresh);
        log.info({ selfSigned: fresh.selfSigned }, 'API certificate reloaded');
      },
      reloadSecrets() {
        const r = mcus.reloadSecrets();
        for (const f of r.failed) log.error(f, 'MCU secret reload failed; the old credentials stay');
        if (r.reloaded.length > 0) log.info({ mcus: r.reloaded }, 'MCU secrets read again');
        return r;
      },
      cascade,
      chair,
      sessions,
      close: onceClose(async () => {
        stopping = true;
        clearTimeout(auditTimer);
        notifier.stopping('stopping');
        log.info('stopping');
        await closeAll();
      }),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The demo national session (`npm start`): every endpoint, rooted at the master, unless a session is live. */
async function admitDemoSession(cascade: CascadeManager, store: Store, config: Config, log: Logger): Promise<void> {
  const live = await store.listCascades();
  if (live.length > 0) {
    log.info({ sessions: live.map((s) => s.sessionId) }, 'demo session: a session is live already, none created');
    return;
  }
  const inv = config.inventory;
  const master = inv.mcus.find((m) => m.role === 'master')?.id;
  const top = inv.levels[0]?.id;
  const chair = inv.endpoints.find((e) => e.level === top && master !== undefined && e.mcus.includes(master))?.id;
  try {
    const head = await cascade.admit({
      title: 'Demo national session',
      endpoints: 'all',
      ...(chair === undefined ? {} : { chair }),
    });
    log.info({ session: head.sessionId, chair }, `demo session ${head.sessionId} created: dialing its cascade`);
  } catch (err) {
    log.error({ err }, 'demo session could not be created');
  }
}

/**
 * The listen addresses, plus TCP on the first UDP address when no stream
 * transport is configured: a national MCU's full conference state (hundreds
 * of participants, RFC 4575) does not fit in one UDP datagram.
 */
function withStreamTransport(listen: readonly ListenOptions[]): ListenOptions[] {
  const out = [...listen];
  const udp = listen.find((l) => l.transport === 'udp');
  if (udp !== undefined && !listen.some((l) => l.transport !== 'udp')) out.push({ ...udp, transport: 'tcp' });
  return out;
}
