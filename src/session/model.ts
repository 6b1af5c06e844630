/**
 * The session model (docs/session.md): a request validated and resolved
 * against the inventory (selectors to endpoint ids, the units to notify), and
 * the check that it fits beside the sessions it overlaps in time.
 */
import { SESSION_VIEWS, type SessionView, usageOf } from '../cascade/index.js';
import { randomHex } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import { type InfeasibilityReason, type Plan, PlanError, plan } from '../planner/index.js';
import type { CascadeUsage, LifecycleSessionRecord, Store } from '../store/index.js';
import { SessionError } from './errors.js';
import { type SessionKind, type TimelineSettings, timelineOf } from './timeline.js';

/** "Every commune endpoint of province X": any of level, province, MCU; all given must match. */
export interface EndpointSelector {
  readonly level?: string;
  readonly province?: string;
  readonly mcu?: string;
}

/** An endpoint id, or a selector. */
export type EndpointSpec = string | EndpointSelector;

/** One item of the session's script: who speaks, in order. */
export interface ScriptItem {
  readonly endpoint: string;
  readonly topic?: string;
}

export interface LifecycleRequest {
  /** Default: `s-` and the start's UTC date and time, plus a random suffix. */
  readonly id?: string;
  readonly kind: SessionKind;
  readonly title: string;
  /** Who asked for the session (the Government Office, a ministry, a province). */
  readonly requester: string;
  /** The root MCU, where the chair sits (default: the master, a national session). */
  readonly root?: string;
  readonly chair: string;
  /** ISO 8601. */
  readonly startsAt: string;
  readonly endsAt: string;
  /** Planned sessions only. */
  readonly rehearsalAt?: string;
  /** When the request arrived (default: now): the 15-minute rule counts from it. */
  readonly requestedAt?: string;
  readonly endpoints: readonly EndpointSpec[];
  readonly script?: readonly ScriptItem[];
  /** Endpoints shown full-screen up their MCU's link (docs/cascade.md). */
  readonly mains?: readonly string[];
  /** What every endpoint but the chair sees (docs/cascade.md, "What everyone sees"; default `chair`). */
  readonly view?: SessionView;
}

/** What may change; `null` removes the rehearsal. */
export type LifecycleChange = Partial<Omit<LifecycleRequest, 'id' | 'kind' | 'requestedAt' | 'rehearsalAt'>> & {
  readonly rehearsalAt?: string | null;
};

/** A request checked and resolved. */
export interface Resolved {
  readonly request: LifecycleRequest;
  readonly root: string;
  readonly national: boolean;
  readonly endpoints: readonly string[];
  readonly requestedAt: number;
  readonly startsAt: number;
  readonly endsAt: number;
  readonly rehearsalAt?: number;
}

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function invalid(message: string, path: string, extra: Record<string, unknown> = {}): SessionError {
  return new SessionError('SESSION_ERR_INVALID', message, { details: { path, ...extra } });
}

function time(text: unknown, path: string): number {
  const t = typeof text === 'string' ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(t)) throw invalid(`${path.slice(1)}: an ISO 8601 date and time`, path);
  return t;
}

/** Endpoint ids of a spec list, in order of first mention, without duplicates. */
export function resolveEndpoints(inventory: Inventory, specs: readonly EndpointSpec[]): string[] {
  const known = new Set(inventory.endpoints.map((e) => e.id));
  const out = new Set<string>();
  specs.forEach((s, i) => {
    if (typeof s === 'string') {
      if (!known.has(s)) throw invalid(`unknown endpoint "${s}"`, `/endpoints/${i}`);
      out.add(s);
      return;
    }
    if (typeof s !== 'object' || s === null || (s.level ?? s.province ?? s.mcu) === undefined)
      throw invalid('a selector names a level, a province or an MCU', `/endpoints/${i}`);
    if (s.level !== undefined && !inventory.levels.some((l) => l.id === s.level))
      throw invalid(`unknown level "${s.level}"`, `/endpoints/${i}/level`);
    if (s.province !== undefined && !inventory.provinces.some((p) => p.id === s.province))
      throw invalid(`unknown province "${s.province}"`, `/endpoints/${i}/province`);
    if (s.mcu !== undefined && !inventory.mcus.some((m) => m.id === s.mcu))
      throw invalid(`unknown MCU "${s.mcu}"`, `/endpoints/${i}/mcu`);
    let n = 0;
    for (const e of inventory.endpoints) {
      if (s.level !== undefined && e.level !== s.level) continue;
      if (s.province !== undefined && e.province !== s.province) continue;
      if (s.mcu !== undefined && !e.mcus.includes(s.mcu)) continue;
      out.add(e.id);
      n++;
    }
    if (n === 0) throw invalid('the selector matches no endpoint', `/endpoints/${i}`);
  });
  return [...out];
}

/** Validate and resolve a request against the inventory. */
export function resolveRequest(inventory: Inventory, r: LifecycleRequest, now: number): Resolved {
  if (r.id !== undefined && !SESSION_ID.test(r.id))
    throw invalid(`session id "${r.id}": letters, digits, '.', '_' and '-', at most 64`, '/id');
  if (r.kind !== 'planned' && r.kind !== 'adhoc') throw invalid('kind: planned or adhoc', '/kind');
  if (typeof r.title !== 'string' || r.title.trim() === '') throw invalid('a session needs a title', '/title');
  if (typeof r.requester !== 'string' || r.requester.trim() === '')
    throw invalid('a session needs its requester', '/requester');
  const master = inventory.mcus.find((m) => m.role === 'master')?.id;
  const root = r.root ?? master;
  if (root === undefined || !inventory.mcus.some((m) => m.id === root))
    throw invalid(`unknown root MCU "${String(r.root)}"`, '/root');
  const endpointIds = new Set(inventory.endpoints.map((e) => e.id));
  if (!endpointIds.has(r.chair)) throw invalid(`unknown chair "${String(r.chair)}"`, '/chair');
  if (!Array.isArray(r.endpoints) || r.endpoints.length === 0)
    throw invalid('a session needs at least one endpoint or selector', '/endpoints');
  const endpoints = resolveEndpoints(inventory, r.endpoints);
  if (!endpoints.includes(r.chair)) endpoints.unshift(r.chair);
  const inSession = new Set(endpoints);
  (r.script ?? []).forEach((s, i) => {
    if (!inSession.has(s.endpoint))
      throw invalid(`script speaker "${s.endpoint}" is not in the session`, `/script/${i}/endpoint`);
  });
  (r.mains ?? []).forEach((e, i) => {
    if (!inSession.has(e)) throw invalid(`main endpoint "${e}" is not in the session`, `/mains/${i}`);
  });
  if (r.view !== undefined && !SESSION_VIEWS.includes(r.view))
    throw invalid(`view "${String(r.view)}": ${SESSION_VIEWS.join(' or ')}`, '/view');
  const requestedAt = r.requestedAt === undefined ? now : time(r.requestedAt, '/requestedAt');
  const startsAt = time(r.startsAt, '/startsAt');
  const endsAt = time(r.endsAt, '/endsAt');
  if (endsAt <= startsAt) throw invalid('the session ends after it starts', '/endsAt');
  if (requestedAt > startsAt) throw invalid('the request came after the start', '/requestedAt');
  let rehearsalAt: number | undefined;
  if (r.rehearsalAt !== undefined) {
    if (r.kind === 'adhoc') throw invalid('an ad-hoc session has no rehearsal (Decision 1594 II.2)', '/rehearsalAt');
    rehearsalAt = time(r.rehearsalAt, '/rehearsalAt');
    if (rehearsalAt >= startsAt) throw invalid('the rehearsal comes before the session', '/rehearsalAt');
  }
  return {
    request: r,
    root,
    national: root === master,
    endpoints,
    requestedAt,
    startsAt,
    endsAt,
    ...(rehearsalAt === undefined ? {} : { rehearsalAt }),
  };
}

export function defaultSessionId(startsAt: number): string {
  const stamp = new Date(startsAt).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);
  return `s-${stamp}-${randomHex(2)}`;
}

/**
 * The units notified of a session and acknowledging it (the 15-minute rule): the provinces of its
 * endpoints and the operators serving via-operator endpoints. Central endpoints belong to Cục BĐTW,
 * which sends the notification.
 */
export function unitsOf(inventory: Inventory, endpoints: readonly string[]): string[] {
  const byId = new Map(inventory.endpoints.map((e) => [e.id, e]));
  const units = new Set<string>();
  for (const id of endpoints) {
    const e = byId.get(id);
    if (e?.province !== undefined) units.add(e.province);
    if (e?.connection === 'via-operator' && e.operator !== undefined) units.add(e.operator);
  }
  return [...units].sort();
}

/** The time a session holds its capacity: from its dial to its tear-down. */
export function windowOf(
  s: Pick<Resolved, 'requestedAt' | 'startsAt' | 'endsAt' | 'rehearsalAt'> & { kind: SessionKind },
  settings: TimelineSettings,
): [number, number] {
  const steps = timelineOf(s, settings).steps;
  return [steps.find((x) => x.name === 'dial')!.at, steps.find((x) => x.name === 'teardown')!.at];
}

export function recordWindow(r: LifecycleSessionRecord, settings: TimelineSettings): [number, number] {
  return windowOf(
    {
      kind: r.kind,
      requestedAt: Date.parse(r.requestedAt),
      startsAt: Date.parse(r.startsAt),
      endsAt: Date.parse(r.endsAt),
      ...(r.rehearsalAt === null ? {} : { rehearsalAt: Date.parse(r.rehearsalAt) }),
    },
    settings,
  );
}

/** Statuses of a session that holds (or will hold) capacity. */
export const ACTIVE = ['scheduled', 'dialing', 'ready', 'live'] as const;

interface Holder {
  readonly session: string;
  readonly title: string;
  readonly usage: CascadeUsage;
  readonly endpoints: readonly string[];
}

/**
 * Plan the session within what the sessions overlapping its window hold: scheduled sessions by their
 * windows, sessions admitted directly (no expected end) until they end. Refusals: PLAN_ERR_INFEASIBLE
 * with the planner's reasons, each naming the sessions holding capacity on its MCUs;
 * SESSION_ERR_ENDPOINT_BUSY for endpoints in an overlapping session.
 */
export async function fitSession(
  store: Store,
  inventory: Inventory,
  id: string,
  r: Resolved,
  settings: TimelineSettings & { readonly planBudgetMs?: number },
): Promise<{ plan: Plan; usage: CascadeUsage }> {
  const [from, to] = windowOf({ ...r, kind: r.request.kind }, settings);
  const scheduled = await store.lifecycle.list({ statuses: ACTIVE });
  const scheduledIds = new Set((await store.lifecycle.list()).map((s) => s.id));
  const holders: Holder[] = [];
  for (const s of scheduled) {
    if (s.id === id) continue;
    const [a, b] = recordWindow(s, settings);
    if (a < to && from < b) holders.push({ session: s.id, title: s.title, usage: s.usage, endpoints: s.endpoints });
  }
  for (const h of await store.listCascades()) {
    if (scheduledIds.has(h.sessionId)) continue;
    const c = await store.getCascade(h.sessionId);
    holders.push({
      session: h.sessionId,
      title: h.title,
      usage: h.usage,
      endpoints: (c?.plan as Plan | undefined)?.endpoints ?? [],
    });
  }
  const wanted = new Set(r.endpoints);
  const busy = holders.flatMap((h) =>
    h.endpoints.filter((e) => wanted.has(e)).map((e) => ({ endpoint: e, session: h.session })),
  );
  if (busy.length > 0) {
    const sessions = [...new Set(busy.map((b) => b.session))];
    throw new SessionError(
      'SESSION_ERR_ENDPOINT_BUSY',
      `${busy.length} endpoint${busy.length === 1 ? '' : 's'} already in overlapping session${sessions.length === 1 ? '' : 's'} ${sessions.join(', ')} (${busy
        .slice(0, 5)
        .map((b) => b.endpoint)
        .join(', ')}${busy.length > 5 ? ', ...' : ''})`,
      { details: { sessions, endpoints: busy.slice(0, 100), count: busy.length } },
    );
  }
  const reserved: Record<string, { ports: number; cascadePorts: number }> = {};
  for (const h of holders)
    for (const [m, u] of Object.entries(h.usage)) {
      const o = reserved[m] ?? { ports: 0, cascadePorts: 0 };
      reserved[m] = { ports: o.ports + u.ports, cascadePorts: o.cascadePorts + u.cascadePorts };
    }
  let p: Plan;
  try {
    p = plan(
      inventory,
      { endpoints: r.endpoints, root: r.root, chair: r.request.chair },
      { reserved, ...(settings.planBudgetMs === undefined ? {} : { budgetMs: settings.planBudgetMs }) },
    );
  } catch (err) {
    if (err instanceof PlanError && err.code === 'PLAN_ERR_INFEASIBLE') throw refusal(err, holders);
    throw err;
  }
  return { plan: p, usage: usageOf(p) };
}

function reasonMcus(r: InfeasibilityReason): readonly string[] {
  if ('mcus' in r) return r.mcus;
  return 'mcu' in r ? [r.mcu] : [];
}

function refusal(err: PlanError, holders: readonly Holder[]): PlanError {
  const reasons = ((err.details as { reasons?: InfeasibilityReason[] } | undefined)?.reasons ?? []).map((r) => {
    const held = reasonMcus(r).flatMap((m) =>
      holders
        .filter((h) => h.usage[m] !== undefined)
        .map((h) => ({ mcu: m, session: h.session, title: h.title, ...h.usage[m]! })),
    );
    return held.length === 0 ? r : { ...r, heldBy: held };
  });
  const sessions = [...new Set(reasons.flatMap((r) => ('heldBy' in r ? r.heldBy.map((h) => h.session) : [])))];
  const message =
    sessions.length === 0
      ? err.message
      : `${err.message}; capacity held by overlapping session${sessions.length === 1 ? '' : 's'} ${sessions.join(', ')}`;
  return new PlanError('PLAN_ERR_INFEASIBLE', message, {
    cause: err,
    details: { ...(err.details as object), reasons, heldBy: sessions },
  });
}
