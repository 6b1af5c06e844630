/**
 * The simulator's control interface: small JSON over HTTP, bound to loopback
 * only (it can break every simulated MCU). Faults, impairments and restarts
 * in; rosters, outputs and "what does endpoint E see and hear" out.
 *
 *   GET  /v1/mcus                       every MCU: conferences, profile, delays, counters, faults, impairment, wire figures
 *   GET  /v1/mcus/:id                   the same for one MCU, with participants and outputs per conference
 *   GET  /v1/mcus/:id/conferences       its conferences (lobby and rooms in use), participants and outputs
 *   POST /v1/mcus/:id/faults            {"silent"?: bool, "infoStatus"?: 300..699 | null}
 *   POST /v1/mcus/:id/impairment        {"delayMs"?, "jitterMs"?, "loss"?, "processingDelayMs"?, "infoDelayMs"?}
 *   POST /v1/mcus/:id/tcp               {"stallMs"?: 0..600000, "reset"?: true}
 *   POST /v1/mcus/:id/restart           {"downMs"?: number}
 *   POST /v1/mcus/:id/drop-link         {"target": MCU id or conference URI, "conference"?: room name or URI}
 *   POST /v1/mcus/:id/drop-call         {"endpoint": endpoint id or URI, "conference"?: room name or URI}
 *   GET  /v1/endpoints/:id/view         what the endpoint sees and hears
 */
import http from 'node:http';
import { isIP } from 'node:net';
import { isCascadedError, onceClose } from '../core/index.js';
import { SimError } from './errors.js';
import type { SimNetwork } from './network.js';
import type { SimConference, SimMcu } from './sim-mcu.js';

export interface SimControlServer {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY = 16_384; // bytes: control requests are tiny
const MAX_DOWN_MS = 600_000; // ms: the HTTP request waits for the MCU to come back

function summary(m: SimMcu) {
  let links = 0;
  let participants = 0;
  let inUse = 0;
  for (const c of m.conferences.values()) {
    participants += c.participants.size;
    for (const p of c.participants.values()) if (p.kind === 'link') links++;
    if (c.participants.size > 0 || c.controlDialogs > 0) inUse++;
  }
  return {
    id: m.id,
    uri: m.uri,
    participants,
    links,
    /** Conferences with a participant or a control dialog, the lobby included. */
    conferences: inUse,
    controlDialogs: m.controlDialogs,
    profile: m.profile,
    infoDelayMs: m.infoDelayMs,
    processingDelayMs: m.processingDelayMs,
    counters: m.counters,
    faults: m.faults,
    impairment: m.impairment,
    tcpStallLeftMs: m.tcpStalledUntil === 0 ? 0 : Math.max(0, Math.round(m.tcpStalledUntil - performance.now())),
    wire: m.wire,
  };
}

function conference(m: SimMcu, c: SimConference) {
  return {
    uri: c.uri,
    room: c.room,
    lobby: c.uri === m.uri,
    controlDialogs: c.controlDialogs,
    subscribers: c.subscribers,
    participants: [...c.participants.values()].map((p) => ({
      entity: p.entity,
      kind: p.kind,
      status: p.status,
      audioMuted: p.audioMuted,
      ...(p.displayText === undefined ? {} : { displayText: p.displayText }),
    })),
    outputs: Object.fromEntries(c.outputs),
  };
}

/** Conferences that are in use (a participant or a control dialog), the lobby always. */
function conferences(m: SimMcu) {
  return [...m.conferences.values()]
    .filter((c) => c.uri === m.uri || c.participants.size > 0 || c.controlDialogs > 0)
    .map((c) => conference(m, c));
}

function detail(m: SimMcu) {
  const list = conferences(m);
  return {
    ...summary(m),
    participants: list.flatMap((c) => c.participants.map((p) => ({ ...p, conference: c.uri }))),
    outputs: Object.fromEntries(m.outputs),
    conferences: list,
  };
}

const num = (v: unknown, what: string): number | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new SimError('SIM_ERR_INVALID_ARGUMENT', `${what} must be a number`);
  return v;
};

async function route(net: SimNetwork, method: string, path: string[], body: Record<string, unknown>): Promise<unknown> {
  if (path[0] !== 'v1') throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'unknown path');
  if (path[1] === 'mcus' && path.length === 2 && method === 'GET') return [...net.mcus.values()].map(summary);
  if (path[1] === 'endpoints' && path.length === 4 && path[3] === 'view' && method === 'GET')
    return net.endpointView(decodeURIComponent(path[2]!));
  if (path[1] !== 'mcus' || path[2] === undefined) throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'unknown path');
  const m = net.mcu(decodeURIComponent(path[2]));
  if (path.length === 3 && method === 'GET') return detail(m);
  if (path.length === 4 && path[3] === 'conferences' && method === 'GET') return conferences(m);
  if (method !== 'POST' || path.length !== 4) throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'unknown path');
  switch (path[3]) {
    case 'faults': {
      const f: { silent?: boolean; infoStatus?: number } = {};
      if (body.silent !== undefined) {
        if (typeof body.silent !== 'boolean')
          throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'silent must be a boolean');
        f.silent = body.silent;
      }
      if ('infoStatus' in body)
        f.infoStatus = body.infoStatus === null ? undefined : num(body.infoStatus, 'infoStatus');
      m.setFaults(f);
      return summary(m);
    }
    case 'impairment': {
      const i: { delayMs?: number; jitterMs?: number; loss?: number } = {};
      for (const k of ['delayMs', 'jitterMs', 'loss'] as const) {
        const v = num(body[k], k);
        if (v !== undefined) i[k] = v;
      }
      m.setImpairment(i);
      const p = num(body.processingDelayMs, 'processingDelayMs');
      if (p !== undefined) m.setProcessingDelay(p);
      const info = num(body.infoDelayMs, 'infoDelayMs');
      if (info !== undefined) m.setInfoDelay(info);
      return summary(m);
    }
    case 'tcp': {
      const stallMs = num(body.stallMs, 'stallMs');
      if (body.reset !== undefined && typeof body.reset !== 'boolean')
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'reset must be a boolean');
      if (stallMs !== undefined) m.stallTcp(stallMs);
      const reset = body.reset === true ? m.resetTcp() : 0;
      return { ...summary(m), reset };
    }
    case 'restart': {
      const downMs = num(body.downMs, 'downMs') ?? 0;
      if (downMs < 0 || downMs > MAX_DOWN_MS)
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', `downMs must be within 0..${MAX_DOWN_MS}`);
      await m.restart(downMs);
      return summary(m);
    }
    case 'drop-link': {
      if (typeof body.target !== 'string') throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'target must be a string');
      if (body.conference !== undefined && typeof body.conference !== 'string')
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'conference must be a string');
      const target = net.mcus.get(body.target)?.uri ?? body.target;
      await m.dropLink(target, body.conference);
      return summary(m);
    }
    case 'drop-call': {
      if (typeof body.endpoint !== 'string')
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'endpoint must be a string');
      if (body.conference !== undefined && typeof body.conference !== 'string')
        throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'conference must be a string');
      const uri = body.endpoint.includes(':') ? body.endpoint : net.endpointUri(body.endpoint);
      await m.dropCall(uri, body.conference);
      return summary(m);
    }
    default:
      throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'unknown path');
  }
}

export async function startSimControlServer(net: SimNetwork, host: string, port: number): Promise<SimControlServer> {
  if (isIP(host) === 0 || !(host.startsWith('127.') || host === '::1'))
    throw new SimError('SIM_ERR_INVALID_ARGUMENT', `the control interface listens on loopback only, not ${host}`);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify(payload)}\n`);
      };
      let body: Record<string, unknown> = {};
      try {
        if (size > MAX_BODY) throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'body too large');
        if (chunks.length > 0) {
          const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
            throw new SimError('SIM_ERR_INVALID_ARGUMENT', 'body must be a JSON object');
          body = parsed as Record<string, unknown>;
        }
      } catch (err) {
        reply(400, isCascadedError(err) ? err.toJSON() : { code: 'SIM_ERR_INVALID_ARGUMENT', message: 'invalid JSON' });
        return;
      }
      const path = (req.url ?? '/')
        .split('?')[0]!
        .split('/')
        .filter((s) => s !== '');
      route(net, req.method ?? 'GET', path, body).then(
        (out) => reply(200, out),
        (err: unknown) => {
          if (isCascadedError(err)) reply(err.status, err.toJSON());
          else reply(500, { code: 'ERR_INTERNAL', message: 'internal error' });
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as { port: number };
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`,
    close: onceClose(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    ),
  };
}
