/**
 * The post-session quality report (Decision 1594 II.1.7): built from what the
 * store recorded (the session and its timeline, acknowledgements, checks, the
 * cascade's plan and link events, the chair commands the daemon recorded).
 * Pure: records in, a report out; CSV here, HTML in report-html.ts.
 */
import type { Inventory } from '../inventory/index.js';
import type { Plan } from '../planner/index.js';
import type {
  CascadeRecord,
  EventRecord,
  LifecycleAckRecord,
  LifecycleCheckRecord,
  LifecycleDeadlineRecord,
  LifecycleSessionRecord,
  LifecycleStepRecord,
} from '../store/index.js';
import { type CheckSummary, csvLine, summarize } from './checks.js';
import type { FigureWindow, QualityWindow } from './live.js';
import type { LifecycleRequest } from './model.js';
import { unitsOf } from './model.js';
import { timelineOf } from './timeline.js';

/** Decision 1594 II.1.6: an endpoint asked for by the chair is on the main screen within 30 seconds. */
export const CHAIR_RULE_MS = 30_000;

export interface ReportInput {
  readonly id: string;
  readonly inventory: Inventory;
  /** Undefined for a session admitted directly (no timeline). */
  readonly session?: LifecycleSessionRecord;
  readonly steps: readonly LifecycleStepRecord[];
  readonly deadlines: readonly LifecycleDeadlineRecord[];
  readonly acks: readonly LifecycleAckRecord[];
  readonly checks: readonly LifecycleCheckRecord[];
  readonly cascade?: CascadeRecord;
  /** The session's events (subject = its id), oldest first. */
  readonly events: readonly EventRecord[];
  /** ISO 8601. */
  readonly generatedAt: string;
}

export interface ChairCommandRow {
  readonly at: string;
  readonly requestId: string;
  readonly endpoint: string | null;
  readonly name: string | null;
  readonly outcome: string;
  readonly ms: number;
  readonly withinRule: boolean;
}

/** A figure over the session: the mean of the reports and the worst one (highest; lowest for bitrate). */
export interface Figure {
  readonly mean: number;
  readonly worst: number;
}

/** Quality figures the MCUs reported for a call (RFC 6035), over the session; null where none gave it. */
export interface QualityFigures {
  readonly reports: number;
  readonly lossPercent: Figure | null;
  readonly jitterMs: Figure | null;
  readonly roundTripMs: Figure | null;
  readonly bitrateKbps: Figure | null;
}

export interface LinkRow {
  readonly child: string;
  readonly parent: string;
  /** Times it went down (was up, then not) during the session. */
  readonly drops: number;
  readonly failures: number;
  readonly events: readonly { readonly at: string; readonly state: string; readonly detail?: string }[];
  /** As its two MCUs reported it (both ends' reports together); null when none did. */
  readonly quality: QualityFigures | null;
}

export interface EndpointRow {
  readonly endpoint: string;
  readonly name: string;
  readonly level: string;
  readonly province: string | null;
  readonly provinceName: string | null;
  readonly mcu: string | null;
  readonly depth: number | null;
  readonly verdict: 'ok' | 'failing' | 'untested';
  /** As the daemon last saw it (null: never checked). */
  readonly connected: boolean | null;
  /** Cascade links on its path to the root that dropped during the session. */
  readonly drops: number;
  /** Its own call in its room: times it came up, times it went away while the session was live, and how long it was away (ms). */
  readonly calls: { readonly connections: number; readonly drops: number; readonly disconnectedMs: number };
  readonly chairCommands: number;
  /** As its MCU reported its call; null when it did not. */
  readonly quality: QualityFigures | null;
}

/** The quality figures of a province's endpoints (central endpoints: `central`). */
export interface ProvinceQuality extends QualityFigures {
  readonly province: string;
  readonly name: string;
  /** Its endpoints with figures. */
  readonly endpoints: number;
}

export interface SessionReport {
  readonly report: 'cascaded-session-report';
  readonly generatedAt: string;
  readonly session: {
    readonly id: string;
    readonly title: string;
    readonly kind: string;
    readonly level: 'national' | 'provincial';
    readonly requester: string | null;
    readonly root: string;
    readonly chair: string | null;
    readonly status: string;
    readonly requestedAt: string | null;
    readonly startsAt: string | null;
    readonly endsAt: string | null;
    readonly rehearsalAt: string | null;
    readonly endpoints: number;
  };
  readonly timeline: {
    readonly steps: readonly LifecycleStepRecord[];
    readonly deadlines: readonly (LifecycleDeadlineRecord & { readonly rule: string })[];
    readonly met: number;
    readonly missed: number;
    readonly pending: number;
  };
  readonly units: readonly {
    readonly unit: string;
    readonly name: string;
    readonly ack: string | null;
    readonly withinRule: boolean | null;
  }[];
  readonly checks: Omit<CheckSummary, 'endpoints'>;
  readonly endpoints: readonly EndpointRow[];
  readonly links: readonly LinkRow[];
  readonly drops: number;
  readonly chair: {
    readonly ruleMs: number;
    readonly commands: readonly ChairCommandRow[];
    readonly ok: number;
    readonly failed: number;
    readonly overRule: number;
    readonly maxMs: number | null;
    readonly medianMs: number | null;
  };
  /** Endpoint calls that dropped (their own calls, not the links above them). */
  readonly callDrops: number;
  /**
   * Packet loss, jitter, round-trip delay and bitrate as the MCUs reported
   * them (RFC 6035): over every endpoint call, per province; null when no MCU
   * of the session reported any.
   */
  readonly quality: {
    readonly reports: number;
    readonly endpoints: QualityFigures;
    readonly links: QualityFigures | null;
    readonly provinces: readonly ProvinceQuality[];
  } | null;
}

interface ChairEventData {
  requestId?: string;
  endpoint?: string | null;
  outcome?: string;
  ms?: number;
}

interface LinkEventData {
  child?: string;
  parent?: string;
  detail?: string;
}

/** Windows of `session.quality` events added up. */
class QualityAcc {
  reports = 0;
  readonly #f = new Map<string, { n: number; sum: number; worst: number; lower: boolean }>();

  add(w: QualityWindow | QualityAcc): void {
    if (w instanceof QualityAcc) {
      this.reports += w.reports;
      for (const [k, f] of w.#f) this.#addFigure(k, f, f.lower);
      return;
    }
    this.reports += typeof w.reports === 'number' ? w.reports : 0;
    for (const k of ['lossPercent', 'jitterMs', 'roundTripMs', 'bitrateKbps'] as const) {
      const f = w[k];
      if (f !== undefined) this.#addFigure(k, f, k === 'bitrateKbps');
    }
  }

  #addFigure(k: string, f: FigureWindow, lower: boolean): void {
    if (!(f.n > 0) || !Number.isFinite(f.sum) || !Number.isFinite(f.worst)) return;
    const a = this.#f.get(k);
    if (a === undefined) this.#f.set(k, { n: f.n, sum: f.sum, worst: f.worst, lower });
    else {
      a.n += f.n;
      a.sum += f.sum;
      a.worst = lower ? Math.min(a.worst, f.worst) : Math.max(a.worst, f.worst);
    }
  }

  figures(): QualityFigures {
    const fig = (k: string): Figure | null => {
      const a = this.#f.get(k);
      return a === undefined ? null : { mean: Math.round((a.sum / a.n) * 10) / 10, worst: a.worst };
    };
    return {
      reports: this.reports,
      lossPercent: fig('lossPercent'),
      jitterMs: fig('jitterMs'),
      roundTripMs: fig('roundTripMs'),
      bitrateKbps: fig('bitrateKbps'),
    };
  }
}

const median = (xs: readonly number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function buildReport(r: ReportInput): SessionReport {
  const inv = r.inventory;
  const endpointById = new Map(inv.endpoints.map((e) => [e.id, e]));
  const provinceName = new Map(inv.provinces.map((p) => [p.id, p.name]));
  const master = inv.mcus.find((m) => m.role === 'master')?.id;
  const plan = r.cascade?.plan as Plan | undefined;
  const spec = r.session?.spec as LifecycleRequest | undefined;
  const endpointIds = r.session?.endpoints ?? plan?.endpoints ?? [];
  const root = r.session?.root ?? r.cascade?.root ?? master ?? '';

  // The rule of each deadline from the timeline of the session's times.
  const rules = new Map<string, string>();
  if (r.session !== undefined) {
    const s = r.session;
    for (const d of timelineOf({
      kind: s.kind,
      requestedAt: Date.parse(s.requestedAt),
      startsAt: Date.parse(s.startsAt),
      endsAt: Date.parse(s.endsAt),
    }).deadlines)
      rules.set(d.name, d.rule);
  }

  // Cascade links: every state change the cascade manager recorded; a drop is "down" after "up".
  const links = new Map<
    string,
    { child: string; parent: string; drops: number; failures: number; events: LinkRow['events'][number][] }
  >();
  for (const e of r.events) {
    const m = /^cascade\.link\.(up|down|failed)$/.exec(e.type);
    if (m === null) continue;
    const d = e.data as LinkEventData;
    if (d.child === undefined || d.parent === undefined) continue;
    const l = links.get(d.child) ?? { child: d.child, parent: d.parent, drops: 0, failures: 0, events: [] };
    if (m[1] === 'down') l.drops++;
    if (m[1] === 'failed') l.failures++;
    l.events.push({ at: e.at, state: m[1]!, ...(d.detail === undefined ? {} : { detail: d.detail }) });
    links.set(d.child, l);
  }
  // Drops on an endpoint's path: its MCU's link and every link above it.
  const dropsOfMcu = (mcu: string | undefined): number => {
    let n = 0;
    const seen = new Set<string>();
    for (let m = mcu; m !== undefined && !seen.has(m); m = plan?.links[m]) {
      seen.add(m);
      n += links.get(m)?.drops ?? 0;
    }
    return n;
  };

  const commands: ChairCommandRow[] = r.events
    .filter((e) => e.type === 'chair.command')
    .map((e) => {
      const d = e.data as ChairEventData;
      const ms = typeof d.ms === 'number' ? d.ms : 0;
      const outcome = d.outcome ?? 'unknown';
      const endpoint = d.endpoint ?? null;
      return {
        at: e.at,
        requestId: d.requestId ?? '',
        endpoint,
        name: endpoint === null ? null : (endpointById.get(endpoint)?.name ?? endpoint),
        outcome,
        ms,
        withinRule: outcome === 'ok' && ms <= CHAIR_RULE_MS,
      };
    });
  // The endpoints' own calls: up and down as the cascade manager saw them in their rooms.
  const calls = new Map<string, { connections: number; drops: number; disconnectedMs: number; downAt?: number }>();
  const endedAt = Math.min(
    Date.parse(r.generatedAt),
    r.session?.status === 'ended' || r.session?.status === 'cancelled'
      ? Date.parse(r.session.endsAt)
      : Number.POSITIVE_INFINITY,
  );
  // Quality windows added up per endpoint and per link.
  const epQuality = new Map<string, QualityAcc>();
  const linkQuality = new Map<string, QualityAcc>();
  for (const e of r.events) {
    if (e.type === 'session.endpoint.up' || e.type === 'session.endpoint.down') {
      const id = (e.data as { endpoint?: unknown }).endpoint;
      if (typeof id !== 'string') continue;
      const c = calls.get(id) ?? { connections: 0, drops: 0, disconnectedMs: 0 };
      const at = Date.parse(e.at);
      if (e.type === 'session.endpoint.up') {
        c.connections++;
        if (c.downAt !== undefined) c.disconnectedMs += Math.max(0, at - c.downAt);
        c.downAt = undefined;
      } else if (c.downAt === undefined) {
        c.drops++;
        c.downAt = at;
      }
      calls.set(id, c);
    } else if (e.type === 'session.quality') {
      const w = e.data as QualityWindow;
      const key = typeof w.endpoint === 'string' ? w.endpoint : w.link === undefined ? undefined : w.link.child;
      if (key === undefined) continue;
      const into = typeof w.endpoint === 'string' ? epQuality : linkQuality;
      const acc = into.get(key) ?? new QualityAcc();
      acc.add(w);
      into.set(key, acc);
    }
  }
  const callsOf = (id: string): EndpointRow['calls'] => {
    const c = calls.get(id);
    if (c === undefined) return { connections: 0, drops: 0, disconnectedMs: 0 };
    const open = c.downAt === undefined ? 0 : Math.max(0, endedAt - c.downAt);
    return { connections: c.connections, drops: c.drops, disconnectedMs: c.disconnectedMs + open };
  };

  const perEndpointCommands = new Map<string, number>();
  for (const c of commands)
    if (c.endpoint !== null) perEndpointCommands.set(c.endpoint, (perEndpointCommands.get(c.endpoint) ?? 0) + 1);

  const summary = summarize(inv, r.id, endpointIds, r.checks);
  const endpoints: EndpointRow[] = summary.endpoints.map((c) => {
    const mcu =
      plan?.assignments[c.endpoint] ??
      (plan?.relays[c.endpoint] === undefined ? undefined : plan.assignments[plan.relays[c.endpoint]!]);
    return {
      endpoint: c.endpoint,
      name: c.name,
      level: c.level,
      province: c.province,
      provinceName: c.province === null ? null : (provinceName.get(c.province) ?? c.province),
      mcu: mcu ?? null,
      depth: plan?.depths[c.endpoint] ?? null,
      verdict: c.verdict,
      connected: c.daemon?.connected ?? null,
      drops: dropsOfMcu(mcu),
      calls: callsOf(c.endpoint),
      chairCommands: perEndpointCommands.get(c.endpoint) ?? 0,
      quality: epQuality.get(c.endpoint)?.figures() ?? null,
    };
  });
  const quality = (() => {
    if (epQuality.size === 0 && linkQuality.size === 0) return null;
    const all = new QualityAcc();
    const links = new QualityAcc();
    const byProvince = new Map<string, { acc: QualityAcc; endpoints: number }>();
    for (const e of endpoints) {
      const acc = epQuality.get(e.endpoint);
      if (acc === undefined) continue;
      all.add(acc);
      const k = e.province ?? 'central';
      const p = byProvince.get(k) ?? { acc: new QualityAcc(), endpoints: 0 };
      p.acc.add(acc);
      p.endpoints++;
      byProvince.set(k, p);
    }
    for (const acc of linkQuality.values()) links.add(acc);
    const provinces: ProvinceQuality[] = [...byProvince.entries()]
      .map(([province, p]) => ({
        province,
        name: provinceName.get(province) ?? province,
        endpoints: p.endpoints,
        ...p.acc.figures(),
      }))
      .sort((a, b) =>
        a.province === 'central' ? -1 : b.province === 'central' ? 1 : a.name.localeCompare(b.name, 'vi'),
      );
    return {
      reports: all.reports + links.reports,
      endpoints: all.figures(),
      links: links.reports === 0 ? null : links.figures(),
      provinces,
    };
  })();

  const acks = new Map(r.acks.map((a) => [a.unit, a]));
  const notifyDue = r.deadlines.find((d) => d.name === 'notify')?.dueAt;
  const units = unitsOf(inv, endpointIds).map((unit) => {
    const a = acks.get(unit);
    const name = provinceName.get(unit) ?? inv.operators.find((o) => o.id === unit)?.name ?? unit;
    return {
      unit,
      name,
      ack: a?.at ?? null,
      withinRule: a === undefined || notifyDue === undefined ? null : Date.parse(a.at) <= Date.parse(notifyDue),
    };
  });

  const deadlines = r.deadlines.map((d) => ({ ...d, rule: rules.get(d.name) ?? d.name }));
  const { endpoints: _all, ...checks } = summary;
  const okMs = commands.filter((c) => c.outcome === 'ok').map((c) => c.ms);
  return {
    report: 'cascaded-session-report',
    generatedAt: r.generatedAt,
    session: {
      id: r.id,
      title: r.session?.title ?? r.cascade?.title ?? r.id,
      kind: r.session?.kind ?? 'adhoc',
      level: root === master ? 'national' : 'provincial',
      requester: spec?.requester ?? null,
      root,
      chair: spec?.chair ?? plan?.chair ?? null,
      status: r.session?.status ?? r.cascade?.state ?? 'unknown',
      requestedAt: r.session?.requestedAt ?? null,
      startsAt: r.session?.startsAt ?? null,
      endsAt: r.session?.endsAt ?? null,
      rehearsalAt: r.session?.rehearsalAt ?? null,
      endpoints: endpointIds.length,
    },
    timeline: {
      steps: r.steps,
      deadlines,
      met: deadlines.filter((d) => d.state === 'met').length,
      missed: deadlines.filter((d) => d.state === 'missed').length,
      pending: deadlines.filter((d) => d.state === 'pending').length,
    },
    units,
    checks,
    endpoints,
    links: [...links.values()]
      .map((l) => ({ ...l, quality: linkQuality.get(l.child)?.figures() ?? null }))
      .sort((a, b) => (a.child < b.child ? -1 : 1)),
    drops: [...links.values()].reduce((n, l) => n + l.drops, 0),
    callDrops: endpoints.reduce((n, e) => n + e.calls.drops, 0),
    chair: {
      ruleMs: CHAIR_RULE_MS,
      commands,
      ok: okMs.length,
      failed: commands.length - okMs.length,
      overRule: commands.filter((c) => !c.withinRule).length,
      maxMs: okMs.length === 0 ? null : Math.max(...okMs),
      medianMs: median(okMs),
    },
    quality,
  };
}

const QUALITY_COLUMNS = [
  'quality_reports',
  'loss_pct',
  'loss_pct_worst',
  'jitter_ms',
  'jitter_ms_worst',
  'rtt_ms',
  'rtt_ms_worst',
  'bitrate_kbps',
  'bitrate_kbps_lowest',
];

function qualityCells(q: QualityFigures | null): (number | null)[] {
  if (q === null) return QUALITY_COLUMNS.map(() => null);
  const f = (x: Figure | null) => [x?.mean ?? null, x?.worst ?? null];
  return [q.reports, ...f(q.lossPercent), ...f(q.jitterMs), ...f(q.roundTripMs), ...f(q.bitrateKbps)];
}

/** The report as CSV sections (RFC 4180, UTF-8 with a BOM), separated by blank lines. */
export function reportCsv(rep: SessionReport): string {
  const s = rep.session;
  let out = '\uFEFF';
  out += csvLine([
    'session',
    'title',
    'kind',
    'level',
    'requester',
    'root',
    'chair',
    'status',
    'requested_at',
    'starts_at',
    'ends_at',
    'endpoints',
  ]);
  out += csvLine([
    s.id,
    s.title,
    s.kind,
    s.level,
    s.requester,
    s.root,
    s.chair,
    s.status,
    s.requestedAt,
    s.startsAt,
    s.endsAt,
    s.endpoints,
  ]);
  out += '\r\n';
  out += csvLine(['deadline', 'due', 'state', 'at', 'at_risk_since', 'rule']);
  for (const d of rep.timeline.deadlines) out += csvLine([d.name, d.dueAt, d.state, d.at, d.atRiskAt, d.rule]);
  out += '\r\n';
  out += csvLine(['step', 'due', 'state', 'ran_at', 'late_ms']);
  for (const x of rep.timeline.steps) out += csvLine([x.step, x.dueAt, x.state, x.ranAt, x.lateMs]);
  out += '\r\n';
  out += csvLine(['province', 'name', 'endpoints', 'tested', 'ok', 'failing', 'untested', 'connected']);
  for (const p of rep.checks.provinces)
    out += csvLine([p.province, p.name, p.endpoints, p.tested, p.ok, p.failing, p.untested, p.connected]);
  out += '\r\n';
  out += csvLine([
    'endpoint',
    'name',
    'level',
    'province',
    'mcu',
    'depth',
    'verdict',
    'connected',
    'drops',
    'chair_commands',
    'call_connections',
    'call_drops',
    'disconnected_s',
    ...QUALITY_COLUMNS,
  ]);
  for (const e of rep.endpoints)
    out += csvLine([
      e.endpoint,
      e.name,
      e.level,
      e.province,
      e.mcu,
      e.depth,
      e.verdict,
      e.connected === null ? '' : e.connected ? 'yes' : 'no',
      e.drops,
      e.chairCommands,
      e.calls.connections,
      e.calls.drops,
      Math.round(e.calls.disconnectedMs / 1000),
      ...qualityCells(e.quality),
    ]);
  out += '\r\n';
  out += csvLine(['link_child', 'link_parent', 'drops', 'failures', ...QUALITY_COLUMNS]);
  for (const l of rep.links) out += csvLine([l.child, l.parent, l.drops, l.failures, ...qualityCells(l.quality)]);
  if (rep.quality !== null) {
    out += '\r\n';
    out += csvLine(['quality_province', 'name', 'endpoints', ...QUALITY_COLUMNS]);
    for (const p of rep.quality.provinces) out += csvLine([p.province, p.name, p.endpoints, ...qualityCells(p)]);
  }
  out += '\r\n';
  out += csvLine(['chair_at', 'endpoint', 'name', 'outcome', 'ms', 'within_30s']);
  for (const c of rep.chair.commands)
    out += csvLine([c.at, c.endpoint, c.name, c.outcome, c.ms, c.withinRule ? 'yes' : 'no']);
  return out;
}
