import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { isCascadedError, onceClose } from '../core/index.js';
import { ApiError } from './errors.js';

/** One condition of /readyz: the store is open, SIP is bound, the master MCU answers. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<ReadinessResult> | ReadinessResult;
}
export interface ReadinessResult {
  readonly ok: boolean;
  readonly detail?: string;
}

export interface ApiServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: string; readonly key: string };
  readonly logger: Logger;
  readonly readiness: readonly ReadinessCheck[];
  /** Bound on a readiness check, so /readyz answers even when a dependency hangs. */
  readonly checkTimeoutMs?: number;
}

export interface ApiServer {
  /** e.g. https://127.0.0.1:8443 (with the real port when configured as 0). */
  readonly url: string;
  readonly port: number;
  /** Stop accepting, finish in-flight requests, release the port. Idempotent. */
  close(): Promise<void>;
}

/** Build the Fastify app and listen. Resolves once the port is bound. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const app = buildApp(options);
  await app.listen({ host: options.host, port: options.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return { url: `https://${host}:${port}`, port, close: onceClose(() => app.close()) };
}

function buildApp(options: ApiServerOptions) {
  const started = Date.now();
  const timeout = options.checkTimeoutMs ?? 2_000;
  const app = Fastify({
    https: { cert: options.tls.cert, key: options.tls.key },
    loggerInstance: options.logger.child({ module: 'api' }),
    // Per-request lines would flood the journal at national scale; the audit log records what matters.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // Design section 4: every error body is { code, message, details }.
  app.setErrorHandler((err, req, reply) => {
    if (isCascadedError(err)) {
      void reply.status(err.status).send(err.toJSON());
      return;
    }
    const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation !== undefined) {
      void reply.status(400).send(new ApiError('API_ERR_VALIDATION', e.message, { details: e.validation }).toJSON());
      return;
    }
    if (e.statusCode !== undefined && e.statusCode < 500) {
      // Fastify's own client errors (malformed JSON, body too large, bad content type).
      void reply.status(e.statusCode).send({ code: e.code ?? 'API_ERR_VALIDATION', message: e.message });
      return;
    }
    req.log.error({ err }, 'unhandled error');
    void reply.status(500).send({ code: 'ERR_INTERNAL', message: 'internal error; see the daemon log' });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new ApiError('API_ERR_NOT_FOUND', `no route ${req.method} ${req.url}`).toJSON());
  });

  app.get('/healthz', async () => ({ status: 'ok', uptimeSeconds: Math.round((Date.now() - started) / 1000) }));

  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(
      options.readiness.map(async (c) => {
        const r = await withTimeout(c, timeout);
        return { name: c.name, ...r };
      }),
    );
    const ready = results.every((r) => r.ok);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: results });
  });
  return app;
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
