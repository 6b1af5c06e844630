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

export interface LinkRow {
  readonly child: string;
  readonly parent: string;
  /** Times it went down (was up, then not) during the session. */
  readonly drops: number;
  readonly failures: number;
  readonly events: readonly { readonly at: string; readonly state: string; readonly detail?: string }[];
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
  readonly chairCommands: number;
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
  /** Packet loss, jitter and bitrate as the MCUs report them: not collected yet (docs/session.md). */
  readonly quality: null;
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
      chairCommands: perEndpointCommands.get(c.endpoint) ?? 0,
    };
  });

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
    links: [...links.values()].sort((a, b) => (a.child < b.child ? -1 : 1)),
    drops: [...links.values()].reduce((n, l) => n + l.drops, 0),
    chair: {
      ruleMs: CHAIR_RULE_MS,
      commands,
      ok: okMs.length,
      failed: commands.length - okMs.length,
      overRule: commands.filter((c) => !c.withinRule).length,
      maxMs: okMs.length === 0 ? null : Math.max(...okMs),
      medianMs: median(okMs),
    },
    quality: null,
  };
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
    ]);
  out += '\r\n';
  out += csvLine(['link_child', 'link_parent', 'drops', 'failures']);
  for (const l of rep.links) out += csvLine([l.child, l.parent, l.drops, l.failures]);
  out += '\r\n';
  out += csvLine(['chair_at', 'endpoint', 'name', 'outcome', 'ms', 'within_30s']);
  for (const c of rep.chair.commands)
    out += csvLine([c.at, c.endpoint, c.name, c.outcome, c.ms, c.withinRule ? 'yes' : 'no']);
  return out;
}
