import type { Server as HttpsServer } from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import { isCascadedError, onceClose, randomToken, TypedEmitter } from '../core/index.js';
import type { ApiRole } from '../store/index.js';
import type { ApiContext, ApiServerEvents } from './context.js';
import { ApiError, type ApiErrorCode } from './errors.js';
import { createEventHub, EVENT_TYPES } from './events.js';
import { RawReply } from './raw.js';
import { authorize, type Permission, type Principal, parseScope, type Scope } from './rbac.js';
import { ROUTES, type RouteRequest, type RouteSpec } from './routes.js';
import { SHARED_SCHEMAS } from './schemas.js';
import { checkToken, parseToken } from './tokens.js';

/** One condition of /readyz: the store is open, SIP is bound, the master MCU answers. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<ReadinessResult> | ReadinessResult;
}
export interface ReadinessResult {
  readonly ok: boolean;
  readonly detail?: string;
}

/** A client certificate (mTLS) mapped to a role, by its SHA-256 fingerprint. */
export interface CertificateIdentity {
  readonly name: string;
  /** As Node prints it: uppercase hex pairs separated by colons. */
  readonly fingerprint256: string;
  readonly role: ApiRole;
  readonly scope?: string;
}

export interface ApiServerOptions {
  readonly host: string;
  readonly port: number;
  /** Absent only with `plainHttp`. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Serve plain HTTP: refused unless the host is a loopback address. */
  readonly plainHttp?: boolean;
  /** Ask for client certificates signed by `ca`; those listed become principals (bearer tokens still work). */
  readonly clientCertificates?: { readonly ca: string; readonly identities: readonly CertificateIdentity[] };
  readonly logger: Logger;
  readonly readiness: readonly ReadinessCheck[];
  /** Bound on a readiness check, so /readyz answers even when a dependency hangs. */
  readonly checkTimeoutMs?: number;
  readonly context: ApiContext;
  readonly bodyLimitBytes?: number;
  /** Deadline of one request (handler), and of receiving it. */
  readonly requestTimeoutMs?: number;
  /** Per token, on mutating routes and plans. */
  readonly rateLimit?: { readonly max: number; readonly windowMs: number };
  readonly maxEventClients?: number;
  /** Require a token for /metrics too (Prometheus: `authorization: {credentials_file: ...}`). */
  readonly metricsAuth?: boolean;
}

export interface ApiServer {
  /** e.g. https://127.0.0.1:8443 (with the real port when configured as 0). */
  readonly url: string;
  readonly port: number;
  /** Finished requests, for metrics. */
  readonly events: TypedEmitter<ApiServerEvents>;
  /** Serve a new certificate to new connections (SIGHUP); existing connections keep theirs. */
  reloadTls(tls: { readonly cert: string; readonly key: string }): void;
  /** Stop accepting, end event streams, finish in-flight requests, release the port. Idempotent. */
  close(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** The error code of the answer, for the audit row. */
    errorCode: string | null;
  }
  interface FastifyContextConfig {
    spec?: RouteSpec;
    auth?: Permission;
  }
}

const LOOPBACK_NAMES = new Set(['localhost', 'ip6-localhost']);
/** 127.0.0.0/8 and ::1: the only places plain HTTP may listen. */
export function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host)) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1';
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Build the Fastify app and listen. Resolves once the port is bound. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  if (options.plainHttp === true && !isLoopback(options.host)) {
    throw new ApiError('API_ERR_TLS', `plain HTTP is only served on loopback, not on ${options.host}`);
  }
  if (options.plainHttp !== true && options.tls === undefined) {
    throw new ApiError('API_ERR_TLS', 'HTTPS needs a certificate and key');
  }
  const events = new TypedEmitter<ApiServerEvents>();
  const { app, closeStreams } = await buildApp(options, events);
  await app.listen({ host: options.host, port: options.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const scheme = options.plainHttp === true ? 'http' : 'https';
  return {
    url: `${scheme}://${host}:${port}`,
    port,
    events,
    reloadTls(tls) {
      if (options.plainHttp === true) return;
      (app.server as HttpsServer).setSecureContext({
        cert: tls.cert,
        key: tls.key,
        ...(options.clientCertificates === undefined ? {} : { ca: options.clientCertificates.ca }),
      });
    },
    close: onceClose(async () => {
      closeStreams();
      await app.close();
    }),
  };
}

async function buildApp(options: ApiServerOptions, events: TypedEmitter<ApiServerEvents>) {
  const ctx = options.context;
  const started = Date.now();
  const timeout = options.checkTimeoutMs ?? 2_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 35_000;
  const rate = options.rateLimit ?? { max: 1_200, windowMs: 60_000 };
  const maxEventClients = options.maxEventClients ?? 100;
  const log = options.logger.child({ module: 'api' });
  const centralOperators = new Set(ctx.inventory.operators.filter((o) => o.kind === 'central').map((o) => o.id));
  const certIdentities = new Map(
    (options.clientCertificates?.identities ?? []).map((i) => [i.fingerprint256.toUpperCase(), i]),
  );

  const app = Fastify({
    ...(options.plainHttp === true
      ? {}
      : {
          https: {
            cert: options.tls!.cert,
            key: options.tls!.key,
            ...(options.clientCertificates === undefined
              ? {}
              : { ca: options.clientCertificates.ca, requestCert: true, rejectUnauthorized: false }),
          },
        }),
    loggerInstance: log,
    // Per-request lines would flood the journal at national scale; the audit log records what matters.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 1024 * 1024,
    // Node's bound on receiving a whole request (slow clients); the handler has its own deadline below.
    requestTimeout: requestTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomToken(12);
    },
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('errorCode', null);
  for (const s of SHARED_SCHEMAS) app.addSchema(s);

  // Design section 4: every error body is { code, message, details }.
  app.setErrorHandler((err, req, reply) => {
    const body = errorBody(err);
    req.errorCode = body.code;
    if (body.status >= 500 && body.code === 'ERR_INTERNAL') req.log.error({ err }, 'unhandled error');
    if (body.status === 401) void reply.header('www-authenticate', 'Bearer realm="cascaded"');
    void reply.status(body.status).send(body.json);
  });
  app.setNotFoundHandler((req, reply) => {
    req.errorCode = 'API_ERR_NOT_FOUND';
    void reply.status(404).send(new ApiError('API_ERR_NOT_FOUND', `no route ${req.method} ${req.url}`).toJSON());
  });

  await app.register(helmet, {
    // HSTS only means something over HTTPS; swagger-ui's page needs its own inline styles.
    hsts: options.plainHttp !== true,
    contentSecurityPolicy: {
      directives: { 'img-src': ["'self'", 'data:'], 'style-src': ["'self'", "'unsafe-inline'"] },
    },
  });
  await app.register(rateLimit, {
    global: false,
    keyGenerator: (req) => req.principal?.id ?? req.ip,
    errorResponseBuilder: (_req, c) =>
      new ApiError(
        'API_ERR_RATE_LIMITED',
        `more than ${c.max} requests in ${Math.round(c.ttl / 1000)} s; retry after ${c.after}`,
        {
          details: { max: c.max, retryAfter: c.after },
        },
      ),
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'cascaded REST API',
        version: ctx.version,
        description:
          'MCU cascade control (design section 4). Every /v1 call needs `Authorization: Bearer <token>` (cascaded token create) or a mapped client certificate. Errors are {code, message, details}; codes in docs/errors.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => (json.$id as string) ?? `def-${i}` },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  // Authentication for every /v1 call (and /metrics when configured), then the role check.
  app.addHook('onRequest', async (req) => {
    const cfg = req.routeOptions.config;
    const permission = cfg.spec?.permission ?? cfg.auth;
    if (permission === undefined && !req.url.startsWith('/v1/')) return;
    req.principal = await authenticate(req);
    if (permission === undefined) return;
    const d = authorize(req.principal, permission);
    if (!d.allow) throw new ApiError(d.code, d.reason, { details: { role: req.principal.role, permission } });
  });

  async function authenticate(req: FastifyRequest): Promise<Principal> {
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer ([^\s]+)$/i.exec(h);
      const parsed = m === null ? undefined : parseToken(m[1]!);
      if (parsed === undefined)
        throw unauthenticated('malformed', 'expected "Authorization: Bearer cdt.<id>.<secret>"');
      const check = checkToken(await ctx.store.getToken(parsed.id), parsed.secret, ctx.clock.wallNow());
      if (!check.ok) throw unauthenticated(check.reason, `token ${check.reason}`);
      return principalOf(parsed.id, check.record.name, check.record.role, check.scope, 'token');
    }
    const sock = req.raw.socket as Partial<TLSSocket>;
    if (certIdentities.size > 0 && sock.authorized === true && sock.getPeerCertificate !== undefined) {
      const fp = sock.getPeerCertificate().fingerprint256;
      const ident = fp === undefined ? undefined : certIdentities.get(fp);
      if (ident === undefined) throw unauthenticated('certificate-unmapped', 'client certificate maps to no identity');
      const scope = ident.scope === undefined ? undefined : parseScope(ident.scope);
      return principalOf(
        `cert:${fp.replace(/:/g, '').slice(0, 16).toLowerCase()}`,
        ident.name,
        ident.role,
        scope,
        'certificate',
      );
    }
    throw unauthenticated('missing', 'no bearer token');
  }

  const principalOf = (id: string, name: string, role: ApiRole, scope: Scope | undefined, via: Principal['via']) =>
    ({
      id,
      name,
      role,
      ...(scope === undefined ? {} : { scope }),
      central: scope?.kind === 'operator' && centralOperators.has(scope.id),
      via,
    }) satisfies Principal;

  // The audit row is written before the answer leaves, so a client that saw the answer finds the row.
  app.addHook('onSend', async (req, reply, payload) => {
    const spec = req.routeOptions.config.spec;
    if (spec?.audit === undefined || req.principal === null || reply.statusCode === 429) return payload;
    const p = req.principal;
    const rr = routeRequest(req);
    try {
      await ctx.store.appendAudit({
        actor: p.id,
        role: p.scope === undefined ? p.role : `${p.role}:${p.scope.kind}:${p.scope.id}`,
        action: spec.audit,
        ...optional('target', safeTarget(spec, rr)),
        outcome: reply.statusCode < 400 ? 'ok' : (req.errorCode ?? `HTTP_${reply.statusCode}`),
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
        requestId: req.id,
        source: req.ip,
        details: { name: p.name, status: reply.statusCode, via: p.via },
      });
    } catch (err) {
      // An unaudited command must not pass silently: the answer becomes an error.
      req.log.error({ err, action: spec.audit }, 'could not write the audit row');
      reply.code(503);
      return JSON.stringify(new ApiError('API_ERR_UNAVAILABLE', 'the audit trail could not be written').toJSON());
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    if (events.listenerCount('request') === 0) return;
    events.safeEmit('request', {
      method: req.method,
      route: req.routeOptions.url ?? 'unmatched',
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
    });
  });
  app.addHook('onSend', async (req, reply, payload) => {
    void reply.header('x-request-id', req.id);
    return payload;
  });

  const hub = createEventHub(ctx.events, ctx.clock);

  for (const spec of ROUTES) {
    if ((spec.permission === 'command' || spec.permission === 'chair') && spec.scope === undefined) {
      throw new Error(`route ${spec.method} ${spec.url}: a ${spec.permission} route needs a scope resolver`);
    }
    const limited = spec.audit !== undefined || spec.permission === 'plan';
    app.route({
      method: spec.method,
      url: spec.url,
      schema: { summary: spec.summary, tags: [spec.tag], ...spec.schema },
      config: {
        spec,
        rateLimit: limited ? { max: rate.max, timeWindow: rate.windowMs } : undefined,
      },
      preHandler: async (req) => {
        if (spec.scope === undefined) return;
        const resource = await spec.scope(routeRequest(req), ctx);
        if (resource === undefined) return;
        const d = authorize(req.principal!, spec.permission, resource);
        if (!d.allow) throw new ApiError(d.code, d.reason, { details: { scope: resource } });
      },
      handler: async (req, reply) => {
        if (spec.available !== undefined && !spec.available(ctx)) {
          throw new ApiError('API_ERR_NOT_IMPLEMENTED', `${spec.method} ${spec.url} is not in this build yet`);
        }
        if (spec.stream === true) return streamEvents(req, reply);
        const result = await withDeadline(spec.handler(routeRequest(req), ctx), requestTimeoutMs);
        if (result instanceof RawReply) {
          if (result.filename !== undefined)
            void reply.header('content-disposition', `inline; filename="${result.filename.replace(/[^\w.-]/g, '_')}"`);
          return reply
            .code(spec.okStatus ?? 200)
            .type(result.contentType)
            .send(result.body);
        }
        return reply.code(spec.okStatus ?? 200).send(result);
      },
    });
  }

  function streamEvents(req: FastifyRequest, reply: FastifyReply) {
    if (hub.clients >= maxEventClients) {
      throw new ApiError('API_ERR_UNAVAILABLE', `already ${hub.clients} event streams (daemon.api.maxEventClients)`);
    }
    const q = req.query as { types?: string };
    const wanted = q.types === undefined ? EVENT_TYPES : q.types.split(',').filter((t) => t !== '');
    const unknown = wanted.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
    if (unknown.length > 0) {
      throw new ApiError('API_ERR_VALIDATION', `unknown event types ${unknown.join(', ')}`, {
        details: [{ path: '/querystring/types', message: `must list of ${EVENT_TYPES.join(', ')}` }],
      });
    }
    const last = Number(req.headers['last-event-id']);
    reply.hijack();
    reply.raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      'x-request-id': req.id,
    });
    hub.attach(reply.raw, new Set(wanted), Number.isInteger(last) && last >= 0 ? last : undefined);
  }

  app.get('/healthz', { schema: { hide: true } }, async () => ({
    status: 'ok',
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
  }));

  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    const results = await Promise.all(
      options.readiness.map(async (c) => {
        const r = await withTimeout(c, timeout);
        return { name: c.name, ...r };
      }),
    );
    const ready = results.every((r) => r.ok);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: results });
  });

  app.get(
    '/metrics',
    { schema: { hide: true }, config: options.metricsAuth === true ? { auth: 'read' } : {} },
    async (_req, reply) => {
      if (ctx.metrics === undefined) throw new ApiError('API_ERR_NOT_IMPLEMENTED', 'no metrics registry');
      const text = await ctx.metrics.render();
      return reply.type(ctx.metrics.contentType).send(text);
    },
  );

  return { app, closeStreams: () => hub.close() };
}

function routeRequest(req: FastifyRequest): RouteRequest {
  return {
    params: (req.params ?? {}) as Record<string, string>,
    query: (req.query ?? {}) as Record<string, unknown>,
    body: req.body,
    principal: req.principal!,
    id: req.id,
  };
}

function safeTarget(spec: RouteSpec, req: RouteRequest): string | undefined {
  try {
    return spec.target?.(req);
  } catch {
    // A body that failed validation may lack the field the target names.
    return undefined;
  }
}

const optional = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));

function unauthenticated(reason: string, message: string) {
  return new ApiError('API_ERR_UNAUTHENTICATED', message, { details: { reason } });
}

const FASTIFY_CODES: Readonly<Record<string, ApiErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'API_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'API_ERR_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'API_ERR_BAD_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'API_ERR_BAD_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'API_ERR_BAD_JSON',
};

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Map anything thrown to a status and the error body; never a stack trace. */
function errorBody(err: unknown): { status: number; code: string; json: object } {
  if (isCascadedError(err)) return { status: err.status, code: err.code, json: err.toJSON() };
  const e = err as {
    validation?: AjvIssue[];
    validationContext?: string;
    statusCode?: number;
    code?: string;
    message: string;
  };
  if (Array.isArray(e.validation)) {
    const where = e.validationContext ?? 'body';
    const violations = e.validation.map((v) => {
      const extra =
        v.keyword === 'additionalProperties'
          ? `/${String(v.params.additionalProperty)}`
          : v.keyword === 'required'
            ? `/${String(v.params.missingProperty)}`
            : '';
      const message =
        v.keyword === 'additionalProperties'
          ? 'unknown property'
          : v.keyword === 'required'
            ? 'is required'
            : v.message;
      return { path: `/${where}${v.instancePath}${extra}`, message: message ?? v.keyword };
    });
    const first = violations[0]!;
    const n = violations.length;
    const e2 = new ApiError(
      'API_ERR_VALIDATION',
      `${first.path}: ${first.message}${n > 1 ? ` (and ${n - 1} more)` : ''}`,
      {
        details: violations,
      },
    );
    return { status: 400, code: e2.code, json: e2.toJSON() };
  }
  const mapped = e.code === undefined ? undefined : FASTIFY_CODES[e.code];
  if (mapped !== undefined) {
    const e2 = new ApiError(mapped, e.message);
    return { status: e2.status, code: mapped, json: e2.toJSON() };
  }
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    const e2 = new ApiError('API_ERR_VALIDATION', e.message);
    return { status: e.statusCode, code: e2.code, json: e2.toJSON() };
  }
  return {
    status: 500,
    code: 'ERR_INTERNAL',
    json: { code: 'ERR_INTERNAL', message: 'internal error; see the daemon log' },
  };
}

async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new ApiError('API_ERR_TIMEOUT', `no answer within ${ms} ms (daemon.api.requestTimeoutMs)`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function withTimeout(c: ReadinessCheck, ms: number): Promise<ReadinessResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(() => c.check()),
      new Promise<ReadinessResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${ms} ms` }), ms);
      }),
    ]);
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
