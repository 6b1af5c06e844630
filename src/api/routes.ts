/**
 * The route table: every /v1 route with its schemas, permission, scope
 * resolver and audit action. The server registers exactly these, and the
 * generated tests (test/api/routes.test.ts) walk this table, so a new route
 * cannot skip authentication, authorisation, validation or audit tests.
 */
import { cascadeStatus, SESSION_VIEWS, type SessionView } from '../cascade/index.js';
import type { Endpoint, Inventory, Mcu } from '../inventory/index.js';
import { LAYOUT_NAMES, type McuDriver } from '../mcu/index.js';
import { type Plan, plan } from '../planner/index.js';
import { summaryCsv } from '../session/index.js';
import type { ApiContext } from './context.js';
import { ApiError } from './errors.js';
import { RawReply } from './raw.js';
import type { Permission, Principal, ResourceScope } from './rbac.js';
import {
  commonErrors,
  conference,
  id,
  idParams,
  mcu as mcuSchema,
  opaque,
  page,
  pageQuery,
  sessionId,
  sessionParams,
} from './schemas.js';

export interface RouteRequest {
  readonly params: Record<string, string>;
  readonly query: Record<string, unknown>;
  readonly body: unknown;
  readonly principal: Principal;
  /** Request id (also in the audit row and the `X-Request-Id` response header). */
  readonly id: string;
}

export interface RouteSpec {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly url: string;
  readonly summary: string;
  readonly tag: string;
  readonly permission: Permission;
  /** Audited under this action and rate-limited per token. Every route that changes state has one. */
  readonly audit?: string;
  readonly schema: {
    readonly params?: object;
    readonly querystring?: object;
    readonly body?: object;
    readonly response: Readonly<Record<number, object>>;
  };
  /** Status of a success. */
  readonly okStatus?: number;
  /** The target's operators and provinces; required for `command` and `chair` (checked when the server starts). */
  readonly scope?: (
    req: RouteRequest,
    ctx: ApiContext,
  ) => Promise<ResourceScope | undefined> | ResourceScope | undefined;
  /** What the audit row names as the target. */
  readonly target?: (req: RouteRequest) => string | undefined;
  /** False: answer 501 API_ERR_NOT_IMPLEMENTED (the module is not in this build). */
  readonly available?: (ctx: ApiContext) => boolean;
  readonly handler: (req: RouteRequest, ctx: ApiContext) => Promise<unknown>;
  /** Server-sent events: the server streams instead of calling `handler`'s result a body. */
  readonly stream?: true;
}

// ---------------------------------------------------------------------------
// Inventory indexes, built once per inventory (it is frozen).

interface InventoryIndex {
  readonly mcus: readonly Mcu[];
  readonly endpoints: readonly Endpoint[];
  readonly mcuById: ReadonlyMap<string, Mcu>;
  readonly endpointById: ReadonlyMap<string, Endpoint>;
  readonly operatorProvince: ReadonlyMap<string, string | undefined>;
  readonly master: Mcu | undefined;
}
const indexes = new WeakMap<Inventory, InventoryIndex>();
export function indexInventory(inv: Inventory): InventoryIndex {
  let ix = indexes.get(inv);
  if (ix === undefined) {
    const byId = <T extends { id: string }>(xs: readonly T[]) => [...xs].sort((a, b) => (a.id < b.id ? -1 : 1));
    ix = {
      mcus: byId(inv.mcus),
      endpoints: byId(inv.endpoints),
      mcuById: new Map(inv.mcus.map((m) => [m.id, m])),
      endpointById: new Map(inv.endpoints.map((e) => [e.id, e])),
      operatorProvince: new Map(inv.operators.map((o) => [o.id, o.province])),
      master: inv.mcus.find((m) => m.role === 'master'),
    };
    indexes.set(inv, ix);
  }
  return ix;
}

const compact = (xs: readonly (string | undefined)[]): string[] => [
  ...new Set(xs.filter((x): x is string => x !== undefined)),
];

export function mcuScope(inv: Inventory, m: Mcu): ResourceScope {
  const ix = indexInventory(inv);
  return {
    operators: [m.operator],
    provinces: compact([m.province, ix.operatorProvince.get(m.operator)]),
    national: m.role === 'master',
  };
}

/** A session belongs to its root MCU's operator and province; rooted on the master, it is national. */
export function sessionScope(inv: Inventory, root: string | undefined): ResourceScope | undefined {
  const ix = indexInventory(inv);
  const m = root === undefined ? ix.master : ix.mcuById.get(root);
  return m === undefined ? undefined : mcuScope(inv, m);
}

// ---------------------------------------------------------------------------
// Pagination over sorted ids: the cursor is the last id of the previous page.

function pageOf<T extends { id: string }>(sorted: readonly T[], query: Record<string, unknown>) {
  const limit = query.limit as number;
  const cursor = query.cursor as string | undefined;
  let lo = 0;
  if (cursor !== undefined) {
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]!.id <= cursor) lo = mid + 1;
      else hi = mid;
    }
  }
  const items = sorted.slice(lo, lo + limit);
  return { items, next: lo + limit < sorted.length ? items.at(-1)!.id : null };
}

// ---------------------------------------------------------------------------
// Views

const NO_DRIVER = { up: false, reason: 'no driver', since: 0 };
const iso = (ms: number) => new Date(ms).toISOString();

function mcuView(m: Mcu, d: McuDriver | undefined) {
  const h = d?.health ?? NO_DRIVER;
  return {
    id: m.id,
    name: m.name,
    operator: m.operator,
    role: m.role,
    driver: m.driver,
    vendor: m.vendor,
    ...(m.province === undefined ? {} : { province: m.province }),
    capacity: m.capacity,
    parents: m.parents,
    sip: m.sip,
    health: { up: h.up, reason: h.reason, since: iso(h.since) },
    capabilities: d?.capabilities ?? {
      conferenceEvents: 'unknown',
      refer: m.control?.refer ?? 'out-of-dialog',
      lacks: [],
    },
  };
}

function conferenceView(d: McuDriver) {
  const roster = [...d.roster.values()];
  const connected = roster.filter((r) => r.status === 'connected');
  return {
    uri: d.uri,
    participants: connected.length,
    links: connected.filter((r) => r.kind === 'link').length,
    roster: roster.map((r) => ({
      entity: r.entity,
      kind: r.kind,
      status: r.status,
      audioMuted: r.audioMuted,
      ...(r.displayText === undefined ? {} : { displayText: r.displayText }),
    })),
  };
}

function mcuOf(ctx: ApiContext, mcuId: string): Mcu {
  const m = indexInventory(ctx.inventory).mcuById.get(mcuId);
  if (m === undefined) throw new ApiError('API_ERR_NOT_FOUND', `no MCU "${mcuId}"`);
  return m;
}

function driverOf(ctx: ApiContext, mcuId: string): McuDriver {
  mcuOf(ctx, mcuId);
  const d = ctx.drivers.get(mcuId);
  if (d === undefined) throw new ApiError('API_ERR_CONFLICT', `MCU "${mcuId}" has no driver`);
  return d;
}

const scopeOfMcuParam = (req: RouteRequest, ctx: ApiContext) => {
  const m = indexInventory(ctx.inventory).mcuById.get(req.params.id!);
  return m === undefined ? undefined : mcuScope(ctx.inventory, m);
};

/**
 * A session's scope is its root MCU's; a session the store does not know is treated as national (fail
 * closed). A live session's root comes from the cascade manager's memory: the chair route runs this on every
 * command, and the store's record carries the whole plan (over a megabyte for a national session).
 */
async function scopeOfSessionParam(req: RouteRequest, ctx: ApiContext): Promise<ResourceScope | undefined> {
  const id = req.params.id!;
  const root = ctx.cascade?.session(id)?.head.root ?? (await ctx.store.getCascade(id))?.root;
  return sessionScope(ctx.inventory, root);
}

function cascadeOr501(ctx: ApiContext) {
  if (ctx.cascade === undefined) throw new ApiError('API_ERR_NOT_IMPLEMENTED', 'no cascade manager in this build');
  return ctx.cascade;
}

function sessionsOr501(ctx: ApiContext) {
  if (ctx.sessions === undefined) throw new ApiError('API_ERR_NOT_IMPLEMENTED', 'no session lifecycle in this build');
  return ctx.sessions;
}

/** A scheduled session's scope is its root MCU's (before and after its cascade is dialled); unknown: national. */
async function scopeOfScheduled(req: RouteRequest, ctx: ApiContext): Promise<ResourceScope | undefined> {
  const id = req.params.id!;
  const root = (await ctx.store.lifecycle.get(id))?.root ?? (await ctx.store.getCascade(id))?.root;
  return sessionScope(ctx.inventory, root);
}

function chairOr501(ctx: ApiContext) {
  if (ctx.chair === undefined) throw new ApiError('API_ERR_NOT_IMPLEMENTED', 'no chair engine in this build');
  return ctx.chair;
}

type SessionsApi = NonNullable<ApiContext['sessions']>;

// ---------------------------------------------------------------------------

const ok = (schema: object) => ({ 200: schema, ...commonErrors });
/** A chair command's answers: its result, or a conflict (superseded), an MCU's refusal, the deadline. */
const chairCommandResponses = {
  200: opaque,
  409: { $ref: 'Error#' },
  502: { $ref: 'Error#' },
  504: { $ref: 'Error#' },
  ...commonErrors,
};
const object = (properties: Record<string, object>, required: string[] = Object.keys(properties)) => ({
  type: 'object',
  additionalProperties: false,
  required,
  properties,
});
const commandOk = object({ ok: { const: true }, mcu: { type: 'string' }, ms: { type: 'number' } });
const entity = { type: 'string', minLength: 1, maxLength: 512, description: 'A participant URI of the roster.' };

async function mcuCommand(ctx: ApiContext, mcuId: string, run: (d: McuDriver) => Promise<void>) {
  const d = driverOf(ctx, mcuId);
  const t0 = ctx.clock.now();
  await run(d);
  return { ok: true as const, mcu: mcuId, ms: Math.round((ctx.clock.now() - t0) * 10) / 10 };
}

/** An endpoint belongs to its province and the operators of its candidate MCUs; unknown: national (fail closed). */
function endpointScope(inv: Inventory, endpointId: string): ResourceScope | undefined {
  const ix = indexInventory(inv);
  const e = ix.endpointById.get(endpointId);
  if (e === undefined) return sessionScope(inv, undefined);
  const operators = e.mcus.map((m) => ix.mcuById.get(m)?.operator);
  return { operators: compact([e.operator, ...operators]), provinces: compact([e.province]), national: false };
}

const endpointSpec = {
  oneOf: [
    id,
    {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { level: id, province: id, mcu: id },
      description: 'Every endpoint matching all given keys, e.g. { level: commune, province: ninh-binh }.',
    },
  ],
};
/** What every endpoint but the chair sees (docs/cascade.md, "What everyone sees"). */
const sessionView = {
  enum: [...SESSION_VIEWS],
  description:
    'What every endpoint but the chair sees: chair (the chair full-screen, the default) or speaker (the endpoint brought to the chair large, the chair small).',
};
const scheduleFields = {
  title: { type: 'string', minLength: 1, maxLength: 200 },
  requester: { type: 'string', minLength: 1, maxLength: 200, description: 'Who asked for the session.' },
  root: { ...id, description: 'Root MCU, where the chair sits (default: the master, a national session).' },
  chair: id,
  startsAt: { type: 'string', format: 'date-time' },
  endsAt: { type: 'string', format: 'date-time' },
  endpoints: { type: 'array', minItems: 1, maxItems: 20_000, items: endpointSpec },
  script: {
    type: 'array',
    maxItems: 1_000,
    items: object({ endpoint: id, topic: { type: 'string', maxLength: 200 } }, ['endpoint']),
  },
  mains: { type: 'array', maxItems: 10_000, items: id },
  view: sessionView,
};

export const ROUTES: readonly RouteSpec[] = [
  {
    method: 'GET',
    url: '/v1/status',
    summary: 'Daemon status: version, uptime, MCUs up, the caller',
    tag: 'status',
    permission: 'read',
    schema: {
      response: ok({
        type: 'object',
        properties: {
          version: { type: 'string' },
          uptimeSeconds: { type: 'integer' },
          mcus: object({ total: { type: 'integer' }, up: { type: 'integer' } }),
          endpoints: { type: 'integer' },
          caller: object(
            { id: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, scope: { type: 'string' } },
            ['id', 'name', 'role'],
          ),
        },
      }),
    },
    handler: async (req, ctx) => {
      const up = [...ctx.drivers.values()].filter((d) => d.health.up).length;
      const p = req.principal;
      return {
        version: ctx.version,
        uptimeSeconds: Math.round((ctx.clock.wallNow() - ctx.startedAt) / 1000),
        mcus: { total: ctx.inventory.mcus.length, up },
        endpoints: ctx.inventory.endpoints.length,
        caller: {
          id: p.id,
          name: p.name,
          role: p.role,
          ...(p.scope === undefined ? {} : { scope: `${p.scope.kind}:${p.scope.id}` }),
        },
      };
    },
  },
  {
    method: 'GET',
    url: '/v1/mcus',
    summary: 'MCUs with health and capabilities',
    tag: 'inventory',
    permission: 'read',
    schema: {
      querystring: object(
        {
          ...pageQuery,
          province: id,
          operator: id,
          role: { enum: ['master', 'slave'] },
          up: { type: 'boolean' },
        },
        [],
      ),
      response: ok(page({ $ref: 'Mcu#' })),
    },
    handler: async (req, ctx) => {
      const q = req.query;
      const all = indexInventory(ctx.inventory).mcus.filter(
        (m) =>
          (q.province === undefined || m.province === q.province) &&
          (q.operator === undefined || m.operator === q.operator) &&
          (q.role === undefined || m.role === q.role) &&
          (q.up === undefined || (ctx.drivers.get(m.id)?.health.up ?? false) === q.up),
      );
      const p = pageOf(all, q);
      return { items: p.items.map((m) => mcuView(m, ctx.drivers.get(m.id))), next: p.next };
    },
  },
  {
    method: 'GET',
    url: '/v1/mcus/:id',
    summary: 'One MCU with health, capabilities and its conferences',
    tag: 'inventory',
    permission: 'read',
    schema: {
      params: idParams,
      response: ok({
        type: 'object',
        properties: {
          ...mcuSchema.properties,
          conferences: { type: 'array', items: conference },
        },
      }),
    },
    handler: async (req, ctx) => {
      const m = mcuOf(ctx, req.params.id!);
      const d = ctx.drivers.get(m.id);
      return { ...mcuView(m, d), conferences: d === undefined ? [] : [conferenceView(d)] };
    },
  },
  {
    method: 'POST',
    url: '/v1/mcus/:id/layout',
    summary: "Set the layout of an output (an endpoint's screen or a cascade link)",
    tag: 'mcu commands',
    permission: 'command',
    audit: 'mcu.layout',
    schema: {
      params: idParams,
      body: object({ output: entity, layout: { enum: [...LAYOUT_NAMES] } }),
      response: ok(commandOk),
    },
    scope: scopeOfMcuParam,
    target: (req) => req.params.id,
    handler: async (req, ctx) => {
      const b = req.body as { output: string; layout: (typeof LAYOUT_NAMES)[number] };
      return mcuCommand(ctx, req.params.id!, (d) => d.setLayout(b.output, b.layout));
    },
  },
  {
    method: 'POST',
    url: '/v1/mcus/:id/show',
    summary: "Put a source's video in a region of an output's layout",
    tag: 'mcu commands',
    permission: 'command',
    audit: 'mcu.show',
    schema: {
      params: idParams,
      body: object({ output: entity, region: { type: 'integer', minimum: 1, maximum: 16 }, source: entity }),
      response: ok(commandOk),
    },
    scope: scopeOfMcuParam,
    target: (req) => req.params.id,
    handler: async (req, ctx) => {
      const b = req.body as { output: string; region: number; source: string };
      return mcuCommand(ctx, req.params.id!, (d) => d.showSource(b.output, b.region, b.source));
    },
  },
  {
    method: 'POST',
    url: '/v1/mcus/:id/audio',
    summary: "Mute or unmute a participant's audio",
    tag: 'mcu commands',
    permission: 'command',
    audit: 'mcu.audio',
    schema: {
      params: idParams,
      body: object({ source: entity, muted: { type: 'boolean' } }),
      response: ok(commandOk),
    },
    scope: scopeOfMcuParam,
    target: (req) => req.params.id,
    handler: async (req, ctx) => {
      const b = req.body as { source: string; muted: boolean };
      return mcuCommand(ctx, req.params.id!, (d) => (b.muted ? d.mute(b.source) : d.unmute(b.source)));
    },
  },
  {
    method: 'POST',
    url: '/v1/mcus/:id/keyframe',
    summary: "Ask an output's encoder for a keyframe (RFC 5168)",
    tag: 'mcu commands',
    permission: 'command',
    audit: 'mcu.keyframe',
    schema: { params: idParams, body: object({ output: entity }), response: ok(commandOk) },
    scope: scopeOfMcuParam,
    target: (req) => req.params.id,
    handler: async (req, ctx) => {
      const b = req.body as { output: string };
      return mcuCommand(ctx, req.params.id!, (d) => d.requestKeyframe(b.output));
    },
  },
  {
    method: 'GET',
    url: '/v1/endpoints',
    summary: 'Endpoints (meeting rooms)',
    tag: 'inventory',
    permission: 'read',
    schema: {
      querystring: object(
        {
          ...pageQuery,
          province: id,
          level: id,
          mcu: id,
          connection: { enum: ['direct', 'via-operator', 'relay'] },
        },
        [],
      ),
      response: ok(page({ $ref: 'Endpoint#' })),
    },
    handler: async (req, ctx) => {
      const q = req.query;
      const all = indexInventory(ctx.inventory).endpoints.filter(
        (e) =>
          (q.province === undefined || e.province === q.province) &&
          (q.level === undefined || e.level === q.level) &&
          (q.mcu === undefined || e.mcus.includes(q.mcu as string)) &&
          (q.connection === undefined || e.connection === q.connection),
      );
      return pageOf(all, q);
    },
  },
  {
    method: 'GET',
    url: '/v1/endpoints/:id',
    summary: 'One endpoint',
    tag: 'inventory',
    permission: 'read',
    schema: { params: idParams, response: ok({ $ref: 'Endpoint#' }) },
    handler: async (req, ctx) => {
      const e = indexInventory(ctx.inventory).endpointById.get(req.params.id!);
      if (e === undefined) throw new ApiError('API_ERR_NOT_FOUND', `no endpoint "${req.params.id}"`);
      return e;
    },
  },
  {
    method: 'POST',
    url: '/v1/plans',
    summary: "Plan a session's cascade (dry run: nothing is dialed)",
    tag: 'plans',
    permission: 'plan',
    schema: {
      body: object(
        {
          endpoints: { type: 'array', minItems: 1, maxItems: 100_000, items: id },
          all: { type: 'boolean', description: 'Every endpoint of the inventory takes part (instead of endpoints).' },
          chair: id,
          root: { ...id, description: 'The root MCU, where the chair sits (default: the master).' },
          unavailableMcus: { type: 'array', maxItems: 10_000, items: id, uniqueItems: true },
          includeDownMcus: {
            type: 'boolean',
            default: false,
            description: 'Plan with MCUs the daemon sees down (default: they are avoided).',
          },
        },
        [],
      ),
      response: { 200: opaque, 422: { $ref: 'Error#' }, ...commonErrors },
    },
    handler: async (req, ctx) => {
      const b = req.body as {
        endpoints?: string[];
        all?: boolean;
        chair?: string;
        root?: string;
        unavailableMcus?: string[];
        includeDownMcus: boolean;
      };
      const down = b.includeDownMcus ? [] : [...ctx.drivers.values()].filter((d) => !d.health.up).map((d) => d.mcuId);
      const unavailable = [...new Set([...(b.unavailableMcus ?? []), ...down])];
      if ((b.endpoints === undefined) === (b.all !== true)) {
        throw new ApiError('API_ERR_VALIDATION', '/body/endpoints: give either endpoints or all: true', {
          details: [{ path: '/body/endpoints', message: 'give either endpoints or all: true' }],
        });
      }
      const endpoints = b.endpoints ?? ctx.inventory.endpoints.map((e) => e.id);
      const session = {
        endpoints,
        ...(b.chair === undefined ? {} : { chair: b.chair }),
        ...(b.root === undefined ? {} : { root: b.root }),
      };
      const result: Plan = plan(ctx.inventory, session, { unavailableMcus: unavailable });
      return result;
    },
  },
  {
    method: 'GET',
    url: '/v1/sessions',
    summary: 'Sessions, newest first',
    tag: 'sessions',
    permission: 'read',
    schema: {
      querystring: object({ limit: pageQuery.limit, state: { type: 'string', maxLength: 64 } }, []),
      response: ok(page({ $ref: 'Session#' })),
    },
    handler: async (req, ctx) => {
      const q = req.query as { limit: number; state?: string };
      const items = await ctx.store.listSessions(q.state === undefined ? { limit: q.limit } : q);
      return { items, next: null };
    },
  },
  {
    method: 'GET',
    url: '/v1/sessions/:id',
    summary: 'One session',
    tag: 'sessions',
    permission: 'read',
    schema: { params: sessionParams, response: ok({ $ref: 'Session#' }) },
    handler: async (req, ctx) => {
      const s = await ctx.store.getSession(req.params.id!);
      if (s === undefined) throw new ApiError('API_ERR_NOT_FOUND', `no session "${req.params.id}"`);
      return s;
    },
  },
  {
    method: 'POST',
    url: '/v1/sessions',
    summary: 'Create a session: admitted within the capacity live sessions leave, then its cascade is dialed',
    tag: 'sessions',
    permission: 'command',
    audit: 'session.create',
    okStatus: 201,
    schema: {
      body: object(
        {
          id: sessionId,
          kind: { enum: ['planned', 'adhoc'], default: 'adhoc' },
          title: { type: 'string', minLength: 1, maxLength: 200 },
          root: { ...id, description: 'Root MCU, where the chair sits (default: the master, a national session).' },
          endpoints: { type: 'array', minItems: 1, maxItems: 100_000, items: id },
          all: { type: 'boolean', description: 'Every endpoint of the inventory (instead of endpoints).' },
          chair: id,
          mains: {
            type: 'array',
            maxItems: 10_000,
            items: id,
            description: "Endpoints shown full-screen up their MCU's link (docs/cascade.md).",
          },
          chairLayout: {
            enum: ['full', 'pip'],
            description: "The chair's screen with an endpoint brought to it (default: daemon.chair.layout).",
          },
          mutePrevious: { type: 'boolean', description: 'Mute the previous speaker (default: daemon.chair).' },
          view: sessionView,
        },
        [],
      ),
      response: { 201: opaque, 409: { $ref: 'Error#' }, 422: { $ref: 'Error#' }, ...commonErrors },
    },
    scope: (req, ctx) => sessionScope(ctx.inventory, (req.body as { root?: string }).root),
    target: (req) => (req.body as { id?: string }).id,
    available: (ctx) => ctx.cascade !== undefined,
    handler: async (req, ctx) => {
      const b = req.body as {
        id?: string;
        kind: 'planned' | 'adhoc';
        title?: string;
        root?: string;
        endpoints?: string[];
        all?: boolean;
        chair?: string;
        mains?: string[];
        chairLayout?: 'full' | 'pip';
        mutePrevious?: boolean;
        view?: SessionView;
      };
      if ((b.endpoints === undefined) === (b.all !== true)) {
        throw new ApiError('API_ERR_VALIDATION', '/body/endpoints: give either endpoints or all: true', {
          details: [{ path: '/body/endpoints', message: 'give either endpoints or all: true' }],
        });
      }
      return cascadeOr501(ctx).admit({
        kind: b.kind,
        endpoints: b.endpoints ?? 'all',
        ...(b.id === undefined ? {} : { id: b.id }),
        ...(b.title === undefined ? {} : { title: b.title }),
        ...(b.root === undefined ? {} : { root: b.root }),
        ...(b.chair === undefined ? {} : { chair: b.chair }),
        ...(b.mains === undefined ? {} : { mains: b.mains }),
        ...(b.chairLayout === undefined ? {} : { chairLayout: b.chairLayout }),
        ...(b.mutePrevious === undefined ? {} : { mutePrevious: b.mutePrevious }),
        ...(b.view === undefined ? {} : { view: b.view }),
      });
    },
  },
  {
    method: 'DELETE',
    url: '/v1/sessions/:id',
    summary: 'End a session: its cascade is torn down',
    tag: 'sessions',
    permission: 'command',
    audit: 'session.end',
    schema: { params: sessionParams, response: { 200: opaque, 409: { $ref: 'Error#' }, ...commonErrors } },
    scope: scopeOfSessionParam,
    target: (req) => req.params.id,
    available: (ctx) => ctx.cascade !== undefined,
    handler: async (req, ctx) => cascadeOr501(ctx).end(req.params.id!),
  },
  {
    method: 'GET',
    url: '/v1/sessions/:id/cascade',
    summary: "The session's cascade: every link of its plan as last observed",
    tag: 'sessions',
    permission: 'read',
    schema: { params: sessionParams, response: ok(opaque) },
    handler: async (req, ctx) => (await cascadeStatus(ctx.store, req.params.id!))[0],
  },
  {
    method: 'POST',
    url: '/v1/sessions/:id/cascade',
    summary: "Dial the session's cascade now (re-read the store and reconcile at once); answers its status",
    tag: 'sessions',
    permission: 'command',
    audit: 'session.cascade',
    schema: {
      params: sessionParams,
      body: object({}, []),
      response: { 200: opaque, 409: { $ref: 'Error#' }, ...commonErrors },
    },
    scope: scopeOfSessionParam,
    target: (req) => req.params.id,
    available: (ctx) => ctx.cascade !== undefined,
    handler: async (req, ctx) => {
      const status = await cascadeStatus(ctx.store, req.params.id!);
      await cascadeOr501(ctx).sync();
      return status[0];
    },
  },
  {
    method: 'POST',
    url: '/v1/sessions/:id/chair',
    summary: 'Bring an endpoint to the chair',
    tag: 'sessions',
    permission: 'chair',
    audit: 'chair.switch',
    schema: {
      params: sessionParams,
      body: object({ endpoint: id }),
      response: chairCommandResponses,
    },
    scope: scopeOfSessionParam,
    target: (req) => req.params.id,
    available: (ctx) => ctx.chair !== undefined,
    handler: async (req, ctx) =>
      chairOr501(ctx).bringToChair(req.params.id!, (req.body as { endpoint: string }).endpoint, {
        requestId: req.id,
        actor: req.principal.id,
      }),
  },
  {
    method: 'DELETE',
    url: '/v1/sessions/:id/chair',
    summary: "Return the chair's screen to the session's default layout",
    tag: 'sessions',
    permission: 'chair',
    audit: 'chair.reset',
    schema: {
      params: sessionParams,
      response: chairCommandResponses,
    },
    scope: scopeOfSessionParam,
    target: (req) => req.params.id,
    available: (ctx) => ctx.chair !== undefined,
    handler: async (req, ctx) =>
      chairOr501(ctx).returnToDefault(req.params.id!, { requestId: req.id, actor: req.principal.id }),
  },
  {
    method: 'POST',
    url: '/v1/sessions/:id/chair/preview',
    summary: 'The path a chair command would take (nothing is switched)',
    tag: 'sessions',
    permission: 'read',
    schema: { params: sessionParams, body: object({ endpoint: id }), response: ok(opaque) },
    available: (ctx) => ctx.chair !== undefined,
    handler: async (req, ctx) => chairOr501(ctx).preview(req.params.id!, (req.body as { endpoint: string }).endpoint),
  },
  {
    method: 'GET',
    url: '/v1/sessions/:id/report',
    summary: "The session's quality report: JSON, CSV, or a self-contained HTML page (docs/session.md)",
    tag: 'sessions',
    permission: 'read',
    schema: {
      params: sessionParams,
      querystring: object({ format: { enum: ['json', 'csv', 'html'], default: 'json' } }, []),
      response: ok(opaque),
    },
    available: (ctx) => ctx.reports !== undefined,
    handler: async (req, ctx) => {
      if (ctx.reports === undefined) throw new ApiError('API_ERR_NOT_IMPLEMENTED', 'no session reports in this build');
      const id = req.params.id!;
      switch ((req.query as { format: string }).format) {
        case 'csv':
          return new RawReply('text/csv; charset=utf-8', await ctx.reports.reportCsv(id), `${id}-report.csv`);
        case 'html':
          return new RawReply('text/html; charset=utf-8', await ctx.reports.reportHtml(id), `${id}-report.html`);
        default:
          return ctx.reports.report(id);
      }
    },
  },
  {
    method: 'GET',
    url: '/v1/schedule',
    summary: 'Scheduled sessions (Decision 1594 lifecycle), latest start first',
    tag: 'schedule',
    permission: 'read',
    schema: {
      querystring: object({ limit: pageQuery.limit, status: { type: 'string', pattern: '^[a-z,]{1,64}$' } }, []),
      response: ok(opaque),
    },
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) => {
      const q = req.query as { limit: number; status?: string };
      const items = await sessionsOr501(ctx).list({
        limit: q.limit,
        ...(q.status === undefined ? {} : { statuses: q.status.split(',') }),
      });
      return { items, next: null };
    },
  },
  {
    method: 'POST',
    url: '/v1/schedule',
    summary: 'Schedule a session: fitted beside the sessions it overlaps, its timeline armed (docs/session.md)',
    tag: 'schedule',
    permission: 'command',
    audit: 'schedule.create',
    okStatus: 201,
    schema: {
      body: object(
        {
          id,
          kind: { enum: ['planned', 'adhoc'] },
          ...scheduleFields,
          rehearsalAt: { type: 'string', format: 'date-time' },
          requestedAt: { type: 'string', format: 'date-time', description: 'When the request arrived (default: now).' },
        },
        ['kind', 'title', 'requester', 'chair', 'startsAt', 'endsAt', 'endpoints'],
      ),
      response: { 201: opaque, 409: { $ref: 'Error#' }, 422: { $ref: 'Error#' }, ...commonErrors },
    },
    scope: (req, ctx) => sessionScope(ctx.inventory, (req.body as { root?: string }).root),
    target: (req) => (req.body as { id?: string }).id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) =>
      sessionsOr501(ctx).create(req.body as Parameters<SessionsApi['create']>[0], req.principal.id),
  },
  {
    method: 'GET',
    url: '/v1/schedule/:id',
    summary: 'A scheduled session: its timeline (steps, deadlines), units and acknowledgements',
    tag: 'schedule',
    permission: 'read',
    schema: { params: idParams, response: ok(opaque) },
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) => sessionsOr501(ctx).get(req.params.id!),
  },
  {
    method: 'POST',
    url: '/v1/schedule/:id',
    summary: 'Change a scheduled session (once dialled: title, end and script only)',
    tag: 'schedule',
    permission: 'command',
    audit: 'schedule.change',
    schema: {
      params: idParams,
      body: object({ ...scheduleFields, rehearsalAt: { type: ['string', 'null'], format: 'date-time' } }, []),
      response: { 200: opaque, 409: { $ref: 'Error#' }, 422: { $ref: 'Error#' }, ...commonErrors },
    },
    scope: scopeOfScheduled,
    target: (req) => req.params.id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) =>
      sessionsOr501(ctx).change(req.params.id!, req.body as Parameters<SessionsApi['change']>[1], req.principal.id),
  },
  {
    method: 'DELETE',
    url: '/v1/schedule/:id',
    summary: 'Cancel a scheduled session (a dialled cascade is torn down)',
    tag: 'schedule',
    permission: 'command',
    audit: 'schedule.cancel',
    schema: { params: idParams, response: { 200: opaque, ...commonErrors } },
    scope: scopeOfScheduled,
    target: (req) => req.params.id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) => sessionsOr501(ctx).cancel(req.params.id!, req.principal.id),
  },
  {
    method: 'POST',
    url: '/v1/schedule/:id/acks',
    summary: "A unit acknowledges the session's notification (the 15-minute rule)",
    tag: 'schedule',
    permission: 'command',
    audit: 'schedule.ack',
    schema: {
      params: idParams,
      body: object({ unit: { ...id, description: 'A province or operator id with endpoints in the session.' } }),
      response: { 200: opaque, ...commonErrors },
    },
    // A unit acknowledges for itself: an operator scoped to a province or an operator acks that unit only.
    scope: (req) => {
      const unit = (req.body as { unit: string }).unit;
      return { operators: [unit], provinces: [unit], national: false };
    },
    target: (req) => req.params.id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) =>
      sessionsOr501(ctx).acknowledge(req.params.id!, (req.body as { unit: string }).unit, req.principal.id),
  },
  {
    method: 'POST',
    url: '/v1/schedule/:id/next',
    summary: "Bring the script's next speaker to the chair",
    tag: 'schedule',
    permission: 'chair',
    audit: 'schedule.next',
    schema: {
      params: idParams,
      body: object({}, []),
      response: chairCommandResponses,
    },
    scope: scopeOfScheduled,
    target: (req) => req.params.id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) =>
      sessionsOr501(ctx).next(req.params.id!, { requestId: req.id, actor: req.principal.id }),
  },
  {
    method: 'POST',
    url: '/v1/schedule/:id/checks',
    summary: "Record a unit's test of an endpoint of the session (connected, audio, video, notes)",
    tag: 'schedule',
    permission: 'command',
    audit: 'schedule.check',
    schema: {
      params: idParams,
      body: object(
        {
          endpoint: id,
          connected: { type: 'boolean' },
          audio: { type: 'boolean' },
          video: { type: 'boolean' },
          notes: { type: 'string', maxLength: 500 },
        },
        ['endpoint'],
      ),
      response: { 200: opaque, 409: { $ref: 'Error#' }, ...commonErrors },
    },
    // A unit records the tests of its own endpoints.
    scope: (req, ctx) => endpointScope(ctx.inventory, (req.body as { endpoint: string }).endpoint),
    target: (req) => req.params.id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) =>
      sessionsOr501(ctx).recordCheck(
        req.params.id!,
        req.body as Parameters<SessionsApi['recordCheck']>[1],
        req.principal.id,
      ),
  },
  {
    method: 'POST',
    url: '/v1/schedule/:id/checks/auto',
    summary: 'The daemon checks every endpoint of a dialled session itself now (in its room, on the cascade)',
    tag: 'schedule',
    permission: 'command',
    audit: 'schedule.autocheck',
    schema: {
      params: idParams,
      body: object({}, []),
      response: { 200: opaque, 409: { $ref: 'Error#' }, ...commonErrors },
    },
    scope: scopeOfScheduled,
    target: (req) => req.params.id,
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) => sessionsOr501(ctx).autoCheck(req.params.id!),
  },
  {
    method: 'GET',
    url: '/v1/schedule/:id/checks',
    summary: 'The per-province summary of endpoint checks, every endpoint, those to test again (format=csv: the CSV)',
    tag: 'schedule',
    permission: 'read',
    schema: {
      params: idParams,
      querystring: object({ format: { enum: ['json', 'csv'], default: 'json' } }, []),
      response: ok(opaque),
    },
    available: (ctx) => ctx.sessions !== undefined,
    handler: async (req, ctx) => {
      const summary = await sessionsOr501(ctx).checks(req.params.id!);
      if ((req.query as { format: string }).format !== 'csv') return summary;
      return new RawReply('text/csv; charset=utf-8', summaryCsv(summary), `${req.params.id}-checks.csv`);
    },
  },
  {
    method: 'GET',
    url: '/v1/audit',
    summary: 'The audit trail (hash-chained), filtered',
    tag: 'audit',
    permission: 'audit',
    schema: {
      querystring: object(
        {
          limit: pageQuery.limit,
          cursor: { type: 'string', pattern: '^[0-9]{1,15}$', description: 'The `next` of the previous page.' },
          order: { enum: ['asc', 'desc'], default: 'desc' },
          actor: { type: 'string', maxLength: 128 },
          action: { type: 'string', maxLength: 64 },
          target: { type: 'string', maxLength: 128 },
          outcome: { type: 'string', maxLength: 64 },
          since: { type: 'string', format: 'date-time' },
          until: { type: 'string', format: 'date-time' },
        },
        [],
      ),
      response: ok(page({ $ref: 'AuditEntry#' })),
    },
    handler: async (req, ctx) => {
      const q = req.query as {
        limit: number;
        cursor?: string;
        order: 'asc' | 'desc';
        actor?: string;
        action?: string;
        target?: string;
        outcome?: string;
        since?: string;
        until?: string;
      };
      const desc = q.order === 'desc';
      const cursor = q.cursor === undefined ? undefined : Number(q.cursor);
      const items = await ctx.store.listAudit({
        ...(q.actor === undefined ? {} : { actor: q.actor }),
        ...(q.action === undefined ? {} : { action: q.action }),
        ...(q.target === undefined ? {} : { target: q.target }),
        ...(q.outcome === undefined ? {} : { outcome: q.outcome }),
        // Stored times are ISO 8601 UTC: compare in that form whatever offset the caller wrote.
        ...(q.since === undefined ? {} : { since: new Date(q.since).toISOString() }),
        ...(q.until === undefined ? {} : { until: new Date(q.until).toISOString() }),
        ...(cursor === undefined ? {} : desc ? { beforeId: cursor } : { afterId: cursor }),
        limit: q.limit,
        newestFirst: desc,
      });
      return { items, next: items.length === q.limit ? String(items.at(-1)!.id) : null };
    },
  },
  {
    method: 'GET',
    url: '/v1/events',
    summary: 'Server-sent events: MCU, link and chair changes (text/event-stream)',
    tag: 'events',
    permission: 'read',
    schema: {
      querystring: object({ types: { type: 'string', pattern: '^[a-z,]{1,64}$' } }, []),
      response: { 200: { type: 'string', description: 'text/event-stream' }, ...commonErrors },
    },
    stream: true,
    handler: async () => undefined,
  },
];
