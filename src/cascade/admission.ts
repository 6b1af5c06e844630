/**
 * Admission and re-planning of sessions against the capacity the other live
 * sessions hold (docs/cascade.md, "Sessions"). Run by the daemon and by the
 * `cascaded session` commands alike, against the shared store: each plans
 * against a generation of the store and writes only if nothing changed
 * meanwhile, else plans again (optimistic concurrency), so two admissions
 * can never both take the same ports.
 */
import { isCascadedError, randomHex } from '../core/index.js';
import { conferenceKey, conferenceUris, type Inventory } from '../inventory/index.js';
import {
  type InfeasibilityReason,
  type Plan,
  PlanError,
  plan,
  replan,
  type Session,
  type SessionChange,
} from '../planner/index.js';
import type { CascadeHead, CascadeRecord, CascadeUsage, Store } from '../store/index.js';
import { SESSION_VIEWS, type SessionView } from './desired.js';
import { CascadeError } from './errors.js';

export interface SessionRequest {
  /** Default: `s-` and the UTC date and time, plus a random suffix. */
  readonly id?: string;
  readonly title?: string;
  readonly kind?: 'planned' | 'adhoc';
  /** The root MCU (default: the inventory's master). */
  readonly root?: string;
  /** Endpoint ids, or every endpoint of the inventory. */
  readonly endpoints: readonly string[] | 'all';
  readonly chair?: string;
  /** Endpoints to show up their MCU's link instead of the one chosen by level (docs/cascade.md, "Layouts"). */
  readonly mains?: readonly string[];
  /** The chair's screen with an endpoint brought to it: full screen or pip (docs/chair.md; default: daemon.chair). */
  readonly chairLayout?: 'full' | 'pip';
  /** Mute the previous speaker when another is brought to the chair (default: daemon.chair). */
  readonly mutePrevious?: boolean;
  /** What every endpoint but the chair sees (docs/cascade.md, "What everyone sees"; default `chair`). */
  readonly view?: SessionView;
}

/** What the store keeps as a cascade's `request`. */
export interface StoredRequest {
  readonly endpoints: readonly string[];
  readonly chair?: string;
  readonly mains: readonly string[];
  readonly chairLayout?: 'full' | 'pip';
  readonly mutePrevious?: boolean;
  readonly view?: SessionView;
}

export interface AdmitOptions {
  /** The planner's time budget, ms (default: the planner's). */
  readonly budgetMs?: number;
  /** Attempts when other writers keep changing the store (default 5). */
  readonly attempts?: number;
  readonly now?: () => Date;
}

const DEFAULT_ATTEMPTS = 5;
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Sessions holding capacity on an MCU, for the reasons of a refusal. */
export interface Holder {
  readonly session: string;
  readonly title: string;
  readonly ports: number;
  readonly cascadePorts: number;
}

function invalid(message: string, path: string, extra: Record<string, unknown> = {}): CascadeError {
  return new CascadeError('CASCADE_ERR_INVALID_SESSION', message, { details: { path, ...extra } });
}

function validate(inventory: Inventory, r: SessionRequest): { session: Session; root: string; stored: StoredRequest } {
  const mcus = new Set(inventory.mcus.map((m) => m.id));
  const endpoints = new Set(inventory.endpoints.map((e) => e.id));
  if (r.id !== undefined && !SESSION_ID.test(r.id))
    throw invalid(`session id "${r.id}": letters, digits, '.', '_' and '-', at most 64`, '/id');
  const root = r.root ?? inventory.mcus.find((m) => m.role === 'master')?.id;
  if (root === undefined || !mcus.has(root)) throw invalid(`unknown root MCU "${String(r.root)}"`, '/root');
  const list = r.endpoints === 'all' ? inventory.endpoints.map((e) => e.id) : r.endpoints;
  if (!Array.isArray(list) || list.length === 0) throw invalid('a session needs at least one endpoint', '/endpoints');
  list.forEach((e, i) => {
    if (typeof e !== 'string' || !endpoints.has(e)) throw invalid(`unknown endpoint "${String(e)}"`, `/endpoints/${i}`);
  });
  if (r.chair !== undefined && !endpoints.has(r.chair)) throw invalid(`unknown chair "${r.chair}"`, '/chair');
  (r.mains ?? []).forEach((e, i) => {
    if (!list.includes(e) && e !== r.chair) throw invalid(`main endpoint "${e}" is not in the session`, `/mains/${i}`);
  });
  if (r.chairLayout !== undefined && r.chairLayout !== 'full' && r.chairLayout !== 'pip')
    throw invalid(`chairLayout "${String(r.chairLayout)}": full or pip`, '/chairLayout');
  if (r.mutePrevious !== undefined && typeof r.mutePrevious !== 'boolean')
    throw invalid('mutePrevious must be true or false', '/mutePrevious');
  if (r.view !== undefined && !SESSION_VIEWS.includes(r.view))
    throw invalid(`view "${String(r.view)}": ${SESSION_VIEWS.join(' or ')}`, '/view');
  const stored: StoredRequest = {
    endpoints: [...list],
    ...(r.chair === undefined ? {} : { chair: r.chair }),
    mains: [...(r.mains ?? [])],
    ...(r.chairLayout === undefined ? {} : { chairLayout: r.chairLayout }),
    ...(r.mutePrevious === undefined ? {} : { mutePrevious: r.mutePrevious }),
    ...(r.view === undefined ? {} : { view: r.view }),
  };
  const session: Session = { endpoints: list, root, ...(r.chair === undefined ? {} : { chair: r.chair }) };
  return { session, root, stored };
}

/** Ports and cascade ports the plan uses on each MCU. */
export function usageOf(p: Plan): CascadeUsage {
  const out: Record<string, { ports: number; cascadePorts: number }> = {};
  for (const m of p.mcus) out[m.id] = { ports: m.ports.used, cascadePorts: m.cascadePorts.used };
  return out;
}

/** What the given sessions hold, per MCU (the planner's `reserved`). */
export function heldBy(heads: readonly CascadeHead[]): Record<string, { ports: number; cascadePorts: number }> {
  const out: Record<string, { ports: number; cascadePorts: number }> = {};
  for (const h of heads)
    for (const [m, u] of Object.entries(h.usage)) {
      const o = out[m] ?? { ports: 0, cascadePorts: 0 };
      out[m] = { ports: o.ports + u.ports, cascadePorts: o.cascadePorts + u.cascadePorts };
    }
  return out;
}

function holdersOf(heads: readonly CascadeHead[], mcu: string): Holder[] {
  return heads
    .filter((h) => h.usage[mcu] !== undefined)
    .map((h) => ({ session: h.sessionId, title: h.title, ...h.usage[mcu]! }));
}

/** The MCUs a refusal reason names (where capacity ran short). */
function reasonMcus(r: InfeasibilityReason): readonly string[] {
  if ('mcus' in r) return r.mcus;
  return 'mcu' in r ? [r.mcu] : [];
}

/**
 * PLAN_ERR_INFEASIBLE with each reason naming the live sessions that hold
 * capacity on its MCUs (`heldBy`), and the message saying so.
 */
function refusal(err: PlanError, heads: readonly CascadeHead[]): PlanError {
  const reasons = ((err.details as { reasons?: InfeasibilityReason[] } | undefined)?.reasons ?? []).map((r) => {
    const held = reasonMcus(r).flatMap((m) => holdersOf(heads, m).map((h) => ({ mcu: m, ...h })));
    return held.length === 0 ? r : { ...r, heldBy: held };
  });
  const sessions = [...new Set(reasons.flatMap((r) => ('heldBy' in r ? r.heldBy.map((h) => h.session) : [])))];
  const message =
    sessions.length === 0
      ? err.message
      : `${err.message}; capacity held by live session${sessions.length === 1 ? '' : 's'} ${sessions.join(', ')}`;
  return new PlanError('PLAN_ERR_INFEASIBLE', message, {
    cause: err,
    details: { ...(err.details as object), reasons, heldBy: sessions },
  });
}

/** A free room on each MCU of the plan that `keep` does not already give a room. */
function allocateRooms(
  inventory: Inventory,
  p: Plan,
  heads: readonly CascadeHead[],
  keep: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const held = new Map<string, string>();
  for (const h of heads) for (const uri of Object.values(h.rooms)) held.set(conferenceKey(uri), h.sessionId);
  const byId = new Map(inventory.mcus.map((m) => [m.id, m]));
  const rooms: Record<string, string> = {};
  for (const u of p.mcus) {
    if (keep[u.id] !== undefined) continue;
    const mcu = byId.get(u.id)!;
    const free = conferenceUris(mcu).find((uri) => !held.has(conferenceKey(uri)));
    if (free === undefined) {
      const holders = [...new Set(heads.filter((h) => h.rooms[u.id] !== undefined).map((h) => h.sessionId))];
      throw new CascadeError(
        'CASCADE_ERR_NO_ROOM',
        `MCU ${u.id} has no free conference room: all ${conferenceUris(mcu).length} are held by live sessions ${holders.join(', ')}`,
        { details: { mcu: u.id, heldBy: holders } },
      );
    }
    rooms[u.id] = free;
  }
  return rooms;
}

/** An endpoint (a room) takes part in one live session at a time: CASCADE_ERR_ENDPOINT_BUSY otherwise. */
async function refuseBusyEndpoints(store: Store, p: Plan, heads: readonly CascadeHead[]): Promise<void> {
  const wanted = new Set(p.endpoints);
  const busy: { endpoint: string; session: string }[] = [];
  for (const h of heads) {
    const other = (await store.getCascade(h.sessionId))?.plan as Plan | undefined;
    for (const e of other?.endpoints ?? []) if (wanted.has(e)) busy.push({ endpoint: e, session: h.sessionId });
  }
  if (busy.length === 0) return;
  const sessions = [...new Set(busy.map((b) => b.session))];
  throw new CascadeError(
    'CASCADE_ERR_ENDPOINT_BUSY',
    `${busy.length} endpoint${busy.length === 1 ? '' : 's'} already in live session${sessions.length === 1 ? '' : 's'} ${sessions.join(', ')} (${busy
      .slice(0, 5)
      .map((b) => b.endpoint)
      .join(', ')}${busy.length > 5 ? ', ...' : ''})`,
    { details: { sessions, endpoints: busy.slice(0, 100), count: busy.length } },
  );
}

function generationLost(err: unknown): boolean {
  if (!isCascadedError(err, 'STORE_ERR_CONFLICT')) return false;
  const d = err.details as { current?: number; mcu?: string } | undefined;
  return d?.current !== undefined || d?.mcu !== undefined;
}

function defaultId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `s-${stamp}-${randomHex(2)}`;
}

/**
 * Admit a session: plan it within what the live sessions leave, give it a
 * room on every MCU of its plan, and record it `live` (the daemon dials it).
 * PLAN_ERR_INFEASIBLE names the sessions holding the capacity;
 * CASCADE_ERR_NO_ROOM an MCU whose rooms are all taken.
 */
export async function admitSession(
  store: Store,
  inventory: Inventory,
  request: SessionRequest,
  options: AdmitOptions = {},
): Promise<CascadeRecord> {
  const { session, root, stored } = validate(inventory, request);
  const id = request.id ?? defaultId(options.now?.() ?? new Date());
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    const generation = await store.cascadeGeneration();
    const heads = await store.listCascades();
    let p: Plan;
    try {
      p = plan(inventory, session, {
        reserved: heldBy(heads),
        ...(options.budgetMs === undefined ? {} : { budgetMs: options.budgetMs }),
      });
    } catch (err) {
      if (err instanceof PlanError && err.code === 'PLAN_ERR_INFEASIBLE') throw refusal(err, heads);
      throw err;
    }
    await refuseBusyEndpoints(store, p, heads);
    const rooms = allocateRooms(inventory, p, heads);
    try {
      return await store.createCascade(
        {
          session: { id, kind: request.kind ?? 'adhoc', title: request.title ?? `Session ${id}` },
          root,
          request: stored,
          plan: p,
          usage: usageOf(p),
          rooms,
        },
        generation,
      );
    } catch (err) {
      if (!generationLost(err)) throw err;
      if (attempt >= attempts)
        throw new CascadeError('CASCADE_ERR_BUSY', `sessions kept changing: ${attempts} attempts to admit ${id} lost`, {
          cause: err,
        });
    }
  }
}

export interface ReplanOutcome {
  readonly record: CascadeRecord;
  readonly plan: Plan;
  readonly previous: Plan;
}

/**
 * Re-plan a live session after a change (an MCU lost): the new plan keeps
 * what it can (planner `replan`), within what the other sessions hold; rooms
 * are added for MCUs the session did not hold yet.
 */
export async function replanSession(
  store: Store,
  inventory: Inventory,
  sessionId: string,
  change: SessionChange,
  options: AdmitOptions = {},
): Promise<ReplanOutcome> {
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    const generation = await store.cascadeGeneration();
    const current = await store.getCascade(sessionId);
    if (current === undefined) throw new CascadeError('CASCADE_ERR_NOT_FOUND', `no session ${sessionId}`);
    if (current.state !== 'live')
      throw new CascadeError('CASCADE_ERR_STATE', `session ${sessionId} is ${current.state}, not live`);
    const heads = (await store.listCascades()).filter((h) => h.sessionId !== sessionId);
    const previous = current.plan as Plan;
    let next: Plan;
    try {
      next = replan(inventory, previous, change, {
        reserved: heldBy(heads),
        ...(options.budgetMs === undefined ? {} : { budgetMs: options.budgetMs }),
      });
    } catch (err) {
      if (err instanceof PlanError && err.code === 'PLAN_ERR_INFEASIBLE') throw refusal(err, heads);
      throw err;
    }
    const addRooms = allocateRooms(inventory, next, heads, current.rooms);
    try {
      const record = await store.replaceCascadePlan(
        sessionId,
        { plan: next, usage: usageOf(next), addRooms },
        generation,
      );
      return { record, plan: next, previous };
    } catch (err) {
      if (!generationLost(err)) throw err;
      if (attempt >= attempts)
        throw new CascadeError(
          'CASCADE_ERR_BUSY',
          `sessions kept changing: ${attempts} attempts to re-plan ${sessionId} lost`,
          { cause: err },
        );
    }
  }
}

/** Ask for a session's end: its cascade is torn down by the daemon. Idempotent. */
export async function endSession(store: Store, sessionId: string): Promise<CascadeHead> {
  const c = await store.getCascade(sessionId);
  if (c === undefined) throw new CascadeError('CASCADE_ERR_NOT_FOUND', `no session ${sessionId}`);
  if (c.state !== 'live') return c;
  return store.setCascadeState(sessionId, 'ending');
}

/** Record the endpoint brought to the chair (or none): the daemon keeps it applied, also after redials. */
export async function selectForChair(
  store: Store,
  inventory: Inventory,
  sessionId: string,
  endpoint: string | null,
): Promise<CascadeHead> {
  const c = await store.getCascade(sessionId);
  if (c === undefined) throw new CascadeError('CASCADE_ERR_NOT_FOUND', `no session ${sessionId}`);
  if (c.state !== 'live') throw new CascadeError('CASCADE_ERR_STATE', `session ${sessionId} is ${c.state}`);
  if (endpoint !== null) {
    if (!inventory.endpoints.some((e) => e.id === endpoint))
      throw invalid(`unknown endpoint "${endpoint}"`, '/selection');
    if (!(c.plan as Plan).endpoints.includes(endpoint))
      throw invalid(`endpoint "${endpoint}" is not in session ${sessionId}`, '/selection');
  }
  await store.setCascadeSelection(sessionId, endpoint);
  const { plan: _, ...head } = c;
  return { ...head, selection: endpoint };
}
