/**
 * The Prometheus registry and every `cascaded_` metric. Metrics are fed from
 * typed events (drivers, the SIP user agent, the API, the chair) and from
 * state read at scrape time; nothing in the control path calls in here, and a
 * listener here that throws is caught by the emitter (safeEmit).
 * Names carry their unit (`_seconds`, `_total`), labels stay bounded (MCU and
 * province ids, methods, status classes, route patterns; never raw URLs).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { QualityEvent } from '../cascade/index.js';
import type { TypedEmitter } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import type { McuDriverEvents } from '../mcu/index.js';
import type { SessionRecord, Store } from '../store/index.js';

/** What the metrics read from a driver: its identity, health, capabilities and conferences' rosters, plus its events. */
export interface MeteredDriver extends Pick<TypedEmitter<McuDriverEvents>, 'on'> {
  readonly mcuId: string;
  readonly health: { readonly up: boolean };
  readonly capabilities: { readonly conferenceEvents: string };
  /** Its lobby and the sessions' rooms: an endpoint dialled into a room leaves the lobby. */
  readonly conferences: ReadonlyMap<
    string,
    { readonly roster: ReadonlyMap<string, { readonly kind: string; readonly status: string }> }
  >;
}

export interface TransactionEvent {
  readonly role: 'uac' | 'uas';
  readonly method: string;
  readonly status: number;
  readonly durationMs: number;
}

export interface ApiRequestEvent {
  readonly method: string;
  readonly route: string;
  readonly status: number;
  readonly durationMs: number;
}

/** A cascade link of a session changed state (the cascade manager's `link` event). */
export interface CascadeLinkEvent {
  readonly session: string;
  readonly child: string;
  readonly parent: string;
  readonly state: string;
}

export interface ChairEvent {
  readonly outcome: string;
  readonly ms: number;
}

/** A deadline of a scheduled session changed (the session lifecycle's `deadline` event). */
export interface SessionDeadlineEvent {
  readonly session: string;
  readonly deadline: string;
  readonly state: 'at-risk' | 'met' | 'missed';
}

/** A step of a scheduled session ran (the session lifecycle's `step` event). */
export interface SessionStepEvent {
  readonly step: string;
  readonly state: string;
  readonly late: boolean;
}

/**
 * What the metrics read of a call quality report of a session's call (the cascade manager's `quality` event):
 * who reported it (`mcu`, one end of the call), whose call it is (an endpoint's, or a cascade link of the plan)
 * and the two directions' figures.
 */
export type MeteredQuality = Pick<QualityEvent, 'session' | 'mcu' | 'endpoint' | 'link'> & {
  readonly report: Pick<QualityEvent['report'], 'local' | 'remote'>;
};

/** A session of the cascade manager changed (its `session` event); an ended session's link series go. */
export interface CascadeSessionEvent {
  readonly session: string;
  readonly kind: string;
}

export interface MetricsOptions {
  readonly inventory: Inventory;
  readonly store?: Store;
  /** The chair SLO: a switch slower than this counts as a violation (default 30 s, Decision 1594 II.1.6). */
  readonly chairSloSeconds?: number;
  /** Session states that count as ready (the session module names them). */
  readonly readyStates?: readonly string[];
}

export interface Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  render(): Promise<string>;
  watchDrivers(drivers: Iterable<MeteredDriver>): void;
  watchTransactions(source: Pick<TypedEmitter<{ transaction: [TransactionEvent] }>, 'on'>): void;
  watchApi(source: Pick<TypedEmitter<{ request: [ApiRequestEvent] }>, 'on'>): void;
  watchChair(source: Pick<TypedEmitter<{ chair: [ChairEvent] }>, 'on'>): void;
  /** Links of sessions' cascades (the cascade manager): counted with the drivers' own links. */
  watchCascade(source: Pick<TypedEmitter<{ link: [CascadeLinkEvent] }>, 'on'>): void;
  /**
   * Call quality reports of sessions' calls (the cascade manager's `quality` events): per cascade link the
   * last figures (the worse end), per MCU a histogram of its endpoints' calls. A link's series go when it is
   * no longer up (`watchCascade`'s link events) or its session ends.
   */
  watchQuality(source: Pick<TypedEmitter<{ quality: [MeteredQuality]; session: [CascadeSessionEvent] }>, 'on'>): void;
  /** Deadlines and steps of scheduled sessions (the session lifecycle, docs/session.md). */
  watchSessions(source: Pick<TypedEmitter<{ deadline: [SessionDeadlineEvent]; step: [SessionStepEvent] }>, 'on'>): void;
  /** The last audit chain verification (the daemon runs it periodically). */
  setAuditChain(result: { readonly ok: boolean; readonly checked: number }): void;
  /**
   * A WAL checkpoint of the store: the worker thread's (`ms`) and, when the WAL had to be finished on the
   * daemon's own thread, that part (`finishedMs`: the time the event loop was held).
   */
  storeCheckpoint(r: { readonly ms: number; readonly finishedMs?: number }): void;
}

const statusClass = (s: number) => `${Math.floor(s / 100)}xx`;

/**
 * A report's figure: the worse of its two directions (the stream the MCU received, the one the participant
 * received as it told the MCU), as the session report takes it (docs/session.md): a call is as good as its
 * worse half.
 */
function worse(report: MeteredQuality['report'], k: 'lossPercent' | 'jitterMs'): number | undefined {
  const a = report.local?.[k];
  const b = report.remote?.[k];
  const ok = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);
  if (!ok(a)) return ok(b) ? b : undefined;
  return ok(b) ? Math.max(a, b) : a;
}

/** The last figures one end of a cascade link reported about it. */
interface LinkEnd {
  loss?: number;
  jitter?: number;
}

/** A session's cascade link (by its child MCU) and the last report of each end (by reporting MCU). */
interface LinkQuality {
  readonly session: string;
  readonly child: string;
  parent: string;
  readonly ends: Map<string, LinkEnd>;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const inv = options.inventory;
  const slo = options.chairSloSeconds ?? 30;
  const readyStates = new Set(options.readyStates ?? ['ready', 'live']);
  const drivers: MeteredDriver[] = [];
  const mcuInfo = new Map(inv.mcus.map((m) => [m.id, m]));
  const endpointBySip = new Map<string, { level: string; province: string }>();
  for (const e of inv.endpoints) {
    if (e.sip !== undefined) endpointBySip.set(e.sip, { level: e.level, province: e.province ?? 'none' });
  }

  new Gauge({
    name: 'cascaded_mcu_up',
    help: 'Whether the MCU answers its health checks (1) or not (0).',
    labelNames: ['mcu', 'role', 'operator'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of drivers) {
        const m = mcuInfo.get(d.mcuId);
        this.set({ mcu: d.mcuId, role: m?.role ?? 'unknown', operator: m?.operator ?? 'unknown' }, d.health.up ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'cascaded_mcu_conference_events',
    help: 'Whether the MCU offers the conference event package (RFC 4575): 1 available, 0 missing, -1 not known yet.',
    labelNames: ['mcu'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of drivers) {
        const c = d.capabilities.conferenceEvents;
        this.set({ mcu: d.mcuId }, c === 'available' ? 1 : c === 'missing' ? 0 : -1);
      }
    },
  });

  // Cascade links: the last state of each, as the cascade manager (by session and child MCU) or a
  // driver (by MCU and target) reported it. `up` and `connected` both mean the link carries media.
  const links = new Map<string, string>();
  new Gauge({
    name: 'cascaded_cascade_links',
    help: 'Cascade links by their last reported state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of ['planned', 'dialing', 'up', 'failed']) this.set({ state: s }, 0);
      for (const s of links.values()) this.inc({ state: s });
    },
  });
  const linkDown = new Gauge({
    name: 'cascaded_cascade_link_down_since_seconds',
    help: 'Unix time since which a cascade link that was connected is not connected (absent while connected).',
    labelNames: ['mcu', 'target'],
    registers: [registry],
  });
  const isUp = (state: string | undefined) => state === 'up' || state === 'connected';
  const linkChanged = (key: string, mcu: string, target: string, reported: string) => {
    const state = reported === 'connected' ? 'up' : reported;
    const before = links.get(key);
    links.set(key, state);
    if (state === 'dialing' && before !== undefined && before !== 'planned' && before !== 'dialing') {
      redials.inc({ mcu });
    }
    if (isUp(state)) linkDown.remove({ mcu, target });
    else if (isUp(before)) linkDown.set({ mcu, target }, Date.now() / 1000);
    // A link no longer up is no call: its last quality figures describe a call that is gone.
    if (!isUp(state)) linkQuality.delete(key);
  };
  const redials = new Counter({
    name: 'cascaded_cascade_redials_total',
    help: 'Cascade links dialed again after they had been connected or had failed.',
    labelNames: ['mcu'],
    registers: [registry],
  });

  // Call quality (RFC 6035 reports, docs/session.md "Call quality"). Per cascade link: the last figures, kept in
  // a plain map (keyed as the cascade manager's links, by session and child) and set at scrape time, so the
  // ~100 reports a second of a national session cost a map update each. Labels: session, child, parent (one
  // series per link of a live session: about 130 for a national one). Endpoints never get a series of their
  // own (11,400 of them): their reports go into one histogram per reporting MCU.
  const linkQuality = new Map<string, LinkQuality>();
  const linkFigure = (name: string, help: string, k: keyof LinkEnd, scale: number) =>
    new Gauge({
      name,
      help,
      labelNames: ['session', 'child', 'parent'],
      registers: [registry],
      collect() {
        this.reset();
        for (const l of linkQuality.values()) {
          let v: number | undefined;
          for (const end of l.ends.values()) {
            const x = end[k];
            if (x !== undefined && (v === undefined || x > v)) v = x;
          }
          if (v !== undefined) this.set({ session: l.session, child: l.child, parent: l.parent }, v / scale);
        }
      },
    });
  linkFigure(
    'cascaded_link_packet_loss_ratio',
    "Packet loss of a session's cascade link (0-1): the worse end's last RFC 6035 report, the worse direction.",
    'loss',
    100,
  );
  linkFigure(
    'cascaded_link_jitter_seconds',
    "Interarrival jitter of a session's cascade link: the worse end's last RFC 6035 report, the worse direction.",
    'jitter',
    1000,
  );
  // One observation per report, by reporting MCU: the help says which figure, the buckets its range.
  const endpointFigure = (name: string, figure: string, buckets: number[]) =>
    new Histogram({
      name,
      help: `${figure} of sessions' endpoint calls, one observation per RFC 6035 report, by reporting MCU.`,
      labelNames: ['mcu'],
      buckets,
      registers: [registry],
    });
  const endpointLoss = endpointFigure(
    'cascaded_endpoint_packet_loss_ratio',
    'Packet loss (0-1)',
    [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
  );
  const endpointJitter = endpointFigure(
    'cascaded_endpoint_jitter_seconds',
    'Interarrival jitter',
    [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2],
  );
  // The labelled children, made once per MCU: observe() with a label object hashes the labels every time.
  const endpointHistograms = new Map<
    string,
    { loss: { observe(v: number): void }; jitter: { observe(v: number): void } }
  >();
  const qualityReported = (q: MeteredQuality) => {
    const loss = worse(q.report, 'lossPercent');
    const jitter = worse(q.report, 'jitterMs');
    if (q.link !== undefined) {
      const key = `${q.session}\u0000${q.link.child}`;
      let l = linkQuality.get(key);
      if (l === undefined) {
        l = { session: q.session, child: q.link.child, parent: q.link.parent, ends: new Map() };
        linkQuality.set(key, l);
      } else if (l.parent !== q.link.parent) {
        // Re-planned under another parent: a new call, the old ends' figures are not its own.
        l.parent = q.link.parent;
        l.ends.clear();
      }
      const end = l.ends.get(q.mcu) ?? {};
      if (loss !== undefined) end.loss = loss;
      if (jitter !== undefined) end.jitter = jitter;
      l.ends.set(q.mcu, end);
      return;
    }
    if (q.endpoint === undefined) return;
    let h = endpointHistograms.get(q.mcu);
    if (h === undefined) {
      h = { loss: endpointLoss.labels({ mcu: q.mcu }), jitter: endpointJitter.labels({ mcu: q.mcu }) };
      endpointHistograms.set(q.mcu, h);
    }
    if (loss !== undefined) h.loss.observe(loss / 100);
    if (jitter !== undefined) h.jitter.observe(jitter / 1000);
  };

  const chairDuration = new Histogram({
    name: 'cascaded_chair_switch_duration_seconds',
    help: 'Time to bring an endpoint to the chair, from command to the last step confirmed.',
    labelNames: ['outcome'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60],
    registers: [registry],
  });
  const chairSlo = new Counter({
    name: 'cascaded_chair_slo_violations_total',
    help: `Chair switches that failed or took longer than the SLO (${slo} s).`,
    registers: [registry],
  });

  const sipTx = new Counter({
    name: 'cascaded_sip_transactions_total',
    help: 'Finished SIP transactions by method, role and final status class (408 timeouts, 503 transport errors).',
    labelNames: ['method', 'role', 'status_class'],
    registers: [registry],
  });
  const sipTxDuration = new Histogram({
    name: 'cascaded_sip_transaction_duration_seconds',
    help: 'SIP transaction duration, request to final response.',
    labelNames: ['method', 'role'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 32],
    registers: [registry],
  });

  new Gauge({
    name: 'cascaded_endpoints_connected',
    help: 'Endpoints connected to some MCU (its lobby or a session room), by level and province (from the MCU rosters).',
    labelNames: ['level', 'province'],
    registers: [registry],
    collect() {
      this.reset();
      // Counted in plain maps and set once per label pair: the national demo's rosters hold every endpoint
      // (11,400), and a labelled inc per entry (prom-client hashes the labels each time) made the scrape slow.
      const seen = new Set<string>();
      const counts = new Map<string, Map<string, number>>();
      for (const d of drivers) {
        for (const c of d.conferences.values()) {
          for (const [entity, r] of c.roster) {
            if (r.kind !== 'endpoint' || r.status !== 'connected' || seen.has(entity)) continue;
            seen.add(entity);
            const e = endpointBySip.get(entity);
            const level = e?.level ?? 'unknown';
            const province = e?.province ?? 'unknown';
            const byProvince = counts.get(level) ?? new Map<string, number>();
            counts.set(level, byProvince);
            byProvince.set(province, (byProvince.get(province) ?? 0) + 1);
          }
        }
      }
      for (const [level, byProvince] of counts) {
        for (const [province, n] of byProvince) this.set({ level, province }, n);
      }
    },
  });

  const store = options.store;
  // Read once per scrape (in render) and shared by the three session gauges.
  let sessions: readonly SessionRecord[] = [];
  new Gauge({
    name: 'cascaded_sessions',
    help: 'Sessions by phase (state).',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sessions) this.inc({ phase: s.state });
    },
  });
  new Gauge({
    name: 'cascaded_session_start_timestamp_seconds',
    help: 'Official start of each session with a start time (Unix seconds).',
    labelNames: ['session'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sessions) {
        if (s.startsAt !== null) this.set({ session: s.id }, Date.parse(s.startsAt) / 1000);
      }
    },
  });
  new Gauge({
    name: 'cascaded_session_ready',
    help: `Whether a session with a start time is ready (state ${[...readyStates].join(' or ')}) (1) or not (0).`,
    labelNames: ['session'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sessions) {
        if (s.startsAt !== null) this.set({ session: s.id }, readyStates.has(s.state) ? 1 : 0);
      }
    },
  });

  // Decision 1594's deadlines: at risk while not met inside their risk window (the label set goes away once
  // the deadline is met or missed, so the session label stays bounded by the sessions under way).
  const deadlineAtRisk = new Gauge({
    name: 'cascaded_session_deadline_at_risk',
    help: 'A deadline of a scheduled session not met within its risk window (1); absent once met or missed.',
    labelNames: ['session', 'deadline'],
    registers: [registry],
  });
  const deadlines = new Counter({
    name: 'cascaded_session_deadlines_total',
    help: 'Deadlines of scheduled sessions settled, by deadline and outcome (met, missed).',
    labelNames: ['deadline', 'outcome'],
    registers: [registry],
  });
  const steps = new Counter({
    name: 'cascaded_session_steps_total',
    help: 'Steps of scheduled sessions the daemon ran, by step, outcome and whether late (missed while it was down).',
    labelNames: ['step', 'outcome', 'late'],
    registers: [registry],
  });

  const apiRequests = new Counter({
    name: 'cascaded_api_requests_total',
    help: 'API requests by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const apiDuration = new Histogram({
    name: 'cascaded_api_request_duration_seconds',
    help: 'API request duration.',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [registry],
  });

  const auditOk = new Gauge({
    name: 'cascaded_audit_chain_ok',
    help: 'Whether the last walk of the audit hash chain found it intact (1) or broken (0).',
    registers: [registry],
  });
  const auditRows = new Gauge({
    name: 'cascaded_audit_chain_rows',
    help: 'Audit rows verified by the last walk of the chain.',
    registers: [registry],
  });
  const auditVerified = new Gauge({
    name: 'cascaded_audit_chain_verified_timestamp_seconds',
    help: 'When the audit chain was last walked (Unix seconds).',
    registers: [registry],
  });

  const checkpoints = new Histogram({
    name: 'cascaded_store_wal_checkpoint_seconds',
    help: "The store's WAL checkpoints: in the checkpoint worker (thread=worker), and the rest finished on the daemon's event loop (thread=daemon).",
    labelNames: ['thread'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const checkpointWorker = checkpoints.labels({ thread: 'worker' });
  const checkpointDaemon = checkpoints.labels({ thread: 'daemon' });

  return {
    registry,
    contentType: registry.contentType,
    async render() {
      if (store !== undefined) sessions = await store.listSessions({ limit: 10_000 });
      return registry.metrics();
    },
    watchDrivers(list) {
      for (const d of list) {
        drivers.push(d);
        d.on('link', (l) => linkChanged(`${d.mcuId}\u0000${l.target}`, d.mcuId, l.target, l.state));
      }
    },
    watchCascade(source) {
      source.on('link', (l) => linkChanged(`${l.session}\u0000${l.child}`, l.child, l.parent, l.state));
    },
    watchTransactions(source) {
      source.on('transaction', (r) => {
        sipTx.inc({ method: r.method, role: r.role, status_class: statusClass(r.status) });
        sipTxDuration.observe({ method: r.method, role: r.role }, r.durationMs / 1000);
      });
    },
    watchApi(source) {
      source.on('request', (r) => {
        apiRequests.inc({ method: r.method, route: r.route, status: String(r.status) });
        apiDuration.observe({ method: r.method, route: r.route }, r.durationMs / 1000);
      });
    },
    watchChair(source) {
      source.on('chair', (c) => {
        const s = c.ms / 1000;
        chairDuration.observe({ outcome: c.outcome }, s);
        if (c.outcome !== 'ok' || s > slo) chairSlo.inc();
      });
    },
    watchQuality(source) {
      source.on('quality', qualityReported);
      source.on('session', (e) => {
        if (e.kind !== 'ended') return;
        for (const [key, l] of linkQuality) if (l.session === e.session) linkQuality.delete(key);
      });
    },
    watchSessions(source) {
      source.on('deadline', (d) => {
        if (d.state === 'at-risk') {
          deadlineAtRisk.set({ session: d.session, deadline: d.deadline }, 1);
          return;
        }
        deadlineAtRisk.remove({ session: d.session, deadline: d.deadline });
        deadlines.inc({ deadline: d.deadline, outcome: d.state });
      });
      source.on('step', (e) => steps.inc({ step: e.step, outcome: e.state, late: String(e.late) }));
    },
    storeCheckpoint(r) {
      checkpointWorker.observe(r.ms / 1000);
      if (r.finishedMs !== undefined) checkpointDaemon.observe(r.finishedMs / 1000);
    },
    setAuditChain(r) {
      auditOk.set(r.ok ? 1 : 0);
      auditRows.set(r.checked);
      auditVerified.set(Date.now() / 1000);
    },
  };
}
