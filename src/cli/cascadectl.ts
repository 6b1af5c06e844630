#!/usr/bin/env node
/**
 * `cascadectl`: the technicians' thin client of the REST API. Human-readable
 * tables by default, `--json` for scripts. URL, token and trust come from
 * flags, then the environment, then a config file.
 * Exit codes: 0 done; 1 the daemon answered an error or could not be reached;
 * 2 bad usage; 3 not authenticated or not allowed (401, 403).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { exitOnClosedPipe } from './exit.js';
import { SCHEDULE_HELP, type ScheduleValues, scheduleCommand } from './schedule.js';

const HELP = `cascadectl: command the cascaded daemon over its REST API

Usage:
  cascadectl [options] status                       daemon, MCUs up, who you are
  cascadectl [options] mcus [--province P] [--operator O] [--down]
  cascadectl [options] mcu ID                       one MCU with its conference
  cascadectl [options] sessions [--state S]
  cascadectl [options] plan (--all | --endpoints A,B,...) [--chair E] [--unavailable M1,M2]
  cascadectl [options] cascade SESSION [--status]   dial the session's cascade now (--status: only
                                                    show it), with every link's state
  cascadectl [options] chair SESSION ENDPOINT [--preview]
                                                    bring ENDPOINT to the chair: its path,
                                                    every step and its timing (--preview: the
                                                    steps, nothing sent)
  cascadectl [options] chair SESSION --default      the chair's screen back to the default layout
  cascadectl [options] audit [--actor A] [--action X] [--target T] [--limit N]
  cascadectl [options] watch [--types mcu,link,chair,capabilities] [--count N]
                                                    follow /v1/events until Ctrl-C
${SCHEDULE_HELP}
Options:
  -u, --url URL        the daemon (default https://127.0.0.1:8443)
  -t, --token TOKEN    bearer token (cascaded token create)
      --token-file F   read the token from a file
      --ca FILE        trust this certificate (the demo's: var/tls/api.crt)
      --pin-sha256 FP  accept exactly the certificate with this SHA-256
                       fingerprint (AA:BB:...; shown when it cannot be verified)
      --json           JSON output
  -h, --help           this text

Environment: CASCADECTL_URL, CASCADECTL_TOKEN, CASCADECTL_CA, CASCADECTL_PIN_SHA256,
CASCADECTL_CONFIG (default ~/.config/cascadectl.yaml: url, token or tokenFile, ca, pinSha256).
Flags win over the environment, the environment over the file.

Exit codes: 0 done; 1 an error from the daemon or the network; 2 bad usage;
3 not authenticated (401) or not allowed (403).
`;

class UsageError extends Error {}
class ExitError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

interface Connection {
  readonly url: URL;
  readonly token?: string;
  readonly ca?: string;
  readonly pin?: string;
}

interface Reply {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the API, shaped by its OpenAPI document
  readonly body: any;
}

const OPTIONS = {
  url: { type: 'string', short: 'u' },
  token: { type: 'string', short: 't' },
  'token-file': { type: 'string' },
  ca: { type: 'string' },
  'pin-sha256': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  province: { type: 'string' },
  operator: { type: 'string' },
  down: { type: 'boolean' },
  state: { type: 'string' },
  all: { type: 'boolean' },
  endpoints: { type: 'string' },
  chair: { type: 'string' },
  unavailable: { type: 'string' },
  preview: { type: 'boolean' },
  default: { type: 'boolean' },
  status: { type: 'boolean' },
  actor: { type: 'string' },
  action: { type: 'string' },
  target: { type: 'string' },
  limit: { type: 'string' },
  types: { type: 'string' },
  count: { type: 'string' },
  id: { type: 'string' },
  kind: { type: 'string' },
  title: { type: 'string' },
  requester: { type: 'string' },
  root: { type: 'string' },
  start: { type: 'string' },
  end: { type: 'string' },
  rehearsal: { type: 'string' },
  select: { type: 'string', multiple: true },
  script: { type: 'string' },
  file: { type: 'string' },
  connected: { type: 'string' },
  audio: { type: 'string' },
  video: { type: 'string' },
  notes: { type: 'string' },
  csv: { type: 'boolean' },
  auto: { type: 'boolean' },
  format: { type: 'string' },
  view: { type: 'string' },
  out: { type: 'string' },
} as const;

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

function fileSettings(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const explicit = env.CASCADECTL_CONFIG;
  const path = explicit ?? join(homedir(), '.config', 'cascadectl.yaml');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (explicit !== undefined) throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`);
    return {};
  }
  const raw = parseYaml(text) as unknown;
  if (typeof raw !== 'object' || raw === null) throw new UsageError(`${path}: expected url, token, ca, pinSha256`);
  const o = raw as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  return { url: str('url'), token: str('token'), tokenFile: str('tokenFile'), ca: str('ca'), pin: str('pinSha256') };
}

function connection(v: Values, env: NodeJS.ProcessEnv): Connection {
  const f = fileSettings(env);
  const urlText = v.url ?? env.CASCADECTL_URL ?? f.url ?? 'https://127.0.0.1:8443';
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new UsageError(`--url "${urlText}" is not a URL`);
  }
  if (url.protocol !== 'https:') throw new UsageError('--url must be https:// (the API is served over TLS)');
  const tokenFile = v['token-file'] ?? f.tokenFile;
  let token = v.token ?? env.CASCADECTL_TOKEN ?? f.token;
  if (token === undefined && tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read --token-file ${tokenFile}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  const caFile = v.ca ?? env.CASCADECTL_CA ?? f.ca;
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --ca ${caFile}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  const pin = (v['pin-sha256'] ?? env.CASCADECTL_PIN_SHA256 ?? f.pin)?.toUpperCase();
  if (pin !== undefined && !/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(pin)) {
    throw new UsageError('--pin-sha256 must be 32 hex pairs separated by colons (AA:BB:...)');
  }
  return {
    url,
    ...(token === undefined ? {} : { token }),
    ...(ca === undefined ? {} : { ca }),
    ...(pin === undefined ? {} : { pin }),
  };
}

const TIMEOUT_MS = 40_000; // above the daemon's own 35-s request deadline

/**
 * A TLS connection to the daemon, verified before any byte of the request
 * (and so the token) is sent: against --ca or the system's CAs, or, with
 * --pin-sha256, by the certificate's fingerprint alone.
 */
function secureSocket(c: Connection): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const port = Number(c.url.port || 443);
    const host = c.url.hostname.replace(/^\[|\]$/g, '');
    const s = tlsConnect({
      host,
      port,
      ...(host.match(/^[\d.]+$|:/) ? {} : { servername: host }),
      ...(c.ca === undefined ? {} : { ca: c.ca }),
      rejectUnauthorized: c.pin === undefined,
      timeout: TIMEOUT_MS,
    });
    s.once('secureConnect', () => {
      if (c.pin !== undefined && s.getPeerCertificate().fingerprint256 !== c.pin) {
        const got = s.getPeerCertificate().fingerprint256;
        s.destroy();
        reject(new ExitError(`the daemon's certificate ${got} is not the pinned ${c.pin}: refusing to talk to it`, 1));
        return;
      }
      resolve(s);
    });
    s.once('timeout', () => s.destroy(new Error(`no TLS handshake within ${TIMEOUT_MS} ms`)));
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(err.code ?? '')) {
        fingerprintOf(host, port).then(
          (fp) =>
            reject(
              new ExitError(
                `cannot verify the daemon's certificate (${err.code}).\n` +
                  `  Trust it with --ca FILE (the demo's is var/tls/api.crt), or pin it after checking it on the\n` +
                  `  daemon's machine (openssl x509 -noout -fingerprint -sha256 -in var/tls/api.crt):\n` +
                  `  --pin-sha256 ${fp ?? '<fingerprint>'}`,
                1,
              ),
            ),
          () => reject(new ExitError(`cannot verify the daemon's certificate (${err.code})`, 1)),
        );
        return;
      }
      reject(new ExitError(`cannot reach ${c.url.origin}: ${err.code ?? err.message}`, 1));
    });
  });
}

/** The fingerprint the daemon presents, to show (never to trust) when it cannot be verified. */
function fingerprintOf(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false, timeout: 5_000 }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.once('error', () => resolve(undefined));
    s.once('timeout', () => {
      s.destroy();
      resolve(undefined);
    });
  });
}

async function open(c: Connection, method: string, path: string, body?: unknown): Promise<IncomingMessage> {
  const socket = await secureSocket(c);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    // HTTP over the socket verified above (node:https would open and verify a connection of its own).
    const req = httpRequest(
      {
        host: c.url.hostname,
        port: c.url.port,
        path,
        method,
        createConnection: () => socket,
        headers: {
          accept: 'application/json',
          ...(c.token === undefined ? {} : { authorization: `Bearer ${c.token}` }),
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': String(payload.length) }),
        },
      },
      resolve,
    );
    req.once('error', (err) => reject(new ExitError(`${method} ${path}: ${err.message}`, 1)));
    req.end(payload);
  });
}

async function call(c: Connection, method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await open(c, method, path, body);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = { code: 'NOT_JSON', message: text.slice(0, 200) };
  }
  const reply = { status: res.statusCode ?? 0, body: parsed };
  if (reply.status >= 400) throw apiFailure(reply, c);
  return reply;
}

/** A GET answered with text rather than JSON (CSV, HTML); errors are JSON as everywhere. */
async function text(c: Connection, path: string): Promise<string> {
  const res = await open(c, 'GET', path);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  const status = res.statusCode ?? 0;
  if (status >= 400) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = { code: 'NOT_JSON', message: body.slice(0, 200) };
    }
    throw apiFailure({ status, body: parsed }, c);
  }
  return body;
}

function apiFailure(r: Reply, c: Connection): ExitError {
  const code = String(r.body?.code ?? `HTTP_${r.status}`);
  const message = String(r.body?.message ?? '');
  if (r.status === 401) {
    const reason = r.body?.details?.reason;
    const hint =
      c.token === undefined
        ? 'no token given: pass --token, CASCADECTL_TOKEN or a config file (tokens: cascaded token create)'
        : reason === 'expired'
          ? 'the token expired: ask an admin for a new one (cascaded token create)'
          : reason === 'revoked'
            ? 'the token was revoked'
            : 'the daemon does not know this token';
    return new ExitError(`not authenticated (${code}${reason ? `: ${reason}` : ''}): ${hint}`, 3);
  }
  if (r.status === 403) return new ExitError(`not allowed (${code}): ${message}`, 3);
  const details = r.body?.details;
  const lines = Array.isArray(details)
    ? details.map((d: { path?: string; message?: string }) => `\n  ${d.path ?? ''}: ${d.message ?? ''}`).join('')
    : Array.isArray(details?.reasons)
      ? details.reasons.map((d: { message?: string }) => `\n  ${d.message ?? ''}`).join('')
      : '';
  return new ExitError(`${code} (HTTP ${r.status}): ${message}${lines}`, 1);
}

// ---------------------------------------------------------------------------

function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((x) => (x === null || x === undefined ? '-' : String(x))));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...cells.map(line)].join('\n')}\n`;
}

const q = (params: Record<string, string | number | boolean | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) s.set(k, String(v));
  const text = s.toString();
  return text === '' ? '' : `?${text}`;
};

/** Every page of a list, following `next`. */
async function all(c: Connection, path: string, params: Record<string, string | number | boolean | undefined>) {
  // biome-ignore lint/suspicious/noExplicitAny: API items
  const items: any[] = [];
  let cursor: string | undefined;
  for (;;) {
    const r = await call(c, 'GET', `${path}${q({ ...params, limit: 1000, cursor })}`);
    items.push(...r.body.items);
    if (r.body.next === null) return items;
    cursor = r.body.next;
  }
}

const list = (text: string | undefined) =>
  text
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

async function run(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true }) as {
      values: Values;
      positionals: string[];
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [command, ...args] = positionals;
  if (values.help || command === undefined) {
    out(HELP);
    return values.help ? 0 : 2;
  }
  const c = connection(values, env);
  const json = values.json === true;
  const emit = (data: unknown, human: () => string) => out(json ? `${JSON.stringify(data)}\n` : human());
  const need = (n: number, usage: string) => {
    if (args.length !== n) throw new UsageError(`usage: cascadectl ${usage}`);
  };

  switch (command) {
    case 'status': {
      need(0, 'status');
      const s = (await call(c, 'GET', '/v1/status')).body;
      emit(
        s,
        () =>
          `cascaded ${s.version}, up ${s.uptimeSeconds} s\n` +
          `MCUs: ${s.mcus.up} of ${s.mcus.total} up; endpoints: ${s.endpoints}\n` +
          `you: ${s.caller.name} (${s.caller.role}${s.caller.scope ? ` ${s.caller.scope}` : ''}, ${s.caller.id})\n`,
      );
      return 0;
    }
    case 'mcus': {
      need(0, 'mcus [--province P] [--operator O] [--down]');
      const items = await all(c, '/v1/mcus', {
        province: values.province,
        operator: values.operator,
        up: values.down ? false : undefined,
      });
      emit(items, () =>
        table(
          ['MCU', 'ROLE', 'OPERATOR', 'PROVINCE', 'HEALTH', 'SINCE', 'EVENTS', 'PORTS'],
          items.map((m) => [
            m.id,
            m.role,
            m.operator,
            m.province,
            m.health.up ? 'up' : `DOWN (${m.health.reason})`,
            m.health.since,
            m.capabilities.conferenceEvents,
            m.capacity.ports,
          ]),
        ),
      );
      return 0;
    }
    case 'mcu': {
      need(1, 'mcu ID');
      const m = (await call(c, 'GET', `/v1/mcus/${encodeURIComponent(args[0]!)}`)).body;
      emit(m, () => {
        const head = `${m.id} (${m.name}): ${m.role}, ${m.operator}, ${m.health.up ? 'up' : `DOWN: ${m.health.reason}`}\n`;
        const confs = (m.conferences as { uri: string; participants: number; links: number; roster: unknown[] }[])
          .map((x) => `  ${x.uri}: ${x.participants} connected (${x.links} links)\n`)
          .join('');
        return head + confs;
      });
      return 0;
    }
    case 'sessions': {
      need(0, 'sessions [--state S]');
      const r = (await call(c, 'GET', `/v1/sessions${q({ state: values.state, limit: 1000 })}`)).body;
      emit(r.items, () =>
        table(
          ['SESSION', 'KIND', 'STATE', 'STARTS', 'TITLE'],
          r.items.map((s: Record<string, string>) => [s.id, s.kind, s.state, s.startsAt, s.title]),
        ),
      );
      return 0;
    }
    case 'plan': {
      need(0, 'plan (--all | --endpoints A,B) [--chair E] [--unavailable M1,M2]');
      if ((values.all === true) === (values.endpoints !== undefined)) {
        throw new UsageError('plan takes either --all or --endpoints A,B,...');
      }
      const body = {
        ...(values.all ? { all: true } : { endpoints: list(values.endpoints) }),
        ...(values.chair === undefined ? {} : { chair: values.chair }),
        ...(values.unavailable === undefined ? {} : { unavailableMcus: list(values.unavailable) }),
      };
      const p = (await call(c, 'POST', '/v1/plans', body)).body;
      emit(p, () => {
        const o = p.objective;
        const head = `${p.endpoints.length} endpoints, depth ${o.maxDepth}, ${o.links} cascade links, fullest ${o.maxUtilisation.mcu} ${o.maxUtilisation.used}/${o.maxUtilisation.ports}\n`;
        return (
          head +
          table(
            ['MCU', 'PARENT', 'DEPTH', 'ENDPOINTS', 'PORTS'],
            (p.mcus as Record<string, never>[]).map((m: Record<string, never>) => [
              m.id,
              m.parent,
              m.depth,
              (m.endpoints as string[]).length,
              `${(m.ports as { used: number }).used}/${(m.ports as { capacity: number }).capacity}`,
            ]),
          )
        );
      });
      return 0;
    }
    case 'cascade': {
      need(1, 'cascade SESSION [--status]');
      const path = `/v1/sessions/${encodeURIComponent(args[0]!)}/cascade`;
      const r = (values.status ? await call(c, 'GET', path) : await call(c, 'POST', path, {})).body;
      emit(r, () => {
        const counts = Object.entries(r.counts as Record<string, number>)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ');
        return (
          `session ${r.sessionId} (${r.state}), root ${r.root}, plan v${r.planVersion}: ${counts}\n` +
          table(
            ['CHILD', 'PARENT', 'STATE', 'SINCE', 'ATTEMPTS', 'DETAIL'],
            (r.links as Record<string, string | number | null>[]).map((l) => [
              l.child,
              l.parent,
              l.state,
              l.since,
              l.attempts,
              l.detail,
            ]),
          )
        );
      });
      return 0;
    }
    case 'chair': {
      need(values.default ? 1 : 2, 'chair SESSION (ENDPOINT [--preview] | --default)');
      const at = `/v1/sessions/${encodeURIComponent(args[0]!)}/chair`;
      const r = values.default
        ? (await call(c, 'DELETE', at)).body
        : (await call(c, 'POST', `${at}${values.preview ? '/preview' : ''}`, { endpoint: args[1] })).body;
      emit(r, () => humanChair(r as ChairAnswer, values.preview === true));
      return 0;
    }
    case 'audit': {
      need(0, 'audit [--actor A] [--action X] [--target T] [--limit N]');
      const limit = values.limit === undefined ? 20 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be 1..1000');
      const r = (
        await call(
          c,
          'GET',
          `/v1/audit${q({ actor: values.actor, action: values.action, target: values.target, limit, order: 'desc' })}`,
        )
      ).body;
      emit(r.items, () =>
        table(
          ['ID', 'AT', 'ACTOR', 'ROLE', 'ACTION', 'TARGET', 'OUTCOME', 'MS'],
          r.items.map((a: Record<string, string | number | null>) => [
            a.id,
            a.at,
            a.actor,
            a.role,
            a.action,
            a.target,
            a.outcome,
            a.durationMs,
          ]),
        ),
      );
      return 0;
    }
    case 'watch': {
      need(0, 'watch [--types T1,T2] [--count N]');
      const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
      if (!(count >= 1)) throw new UsageError('--count must be a positive number');
      return watch(c, values.types, count, json, out);
    }
    default: {
      const done = await scheduleCommand(command, args, values as ScheduleValues, {
        call: (method, path, body) => call(c, method, path, body),
        text: (path) => text(c, path),
        out,
        emit,
        table,
        usage: (m) => new UsageError(m),
      });
      if (done !== undefined) return done;
      throw new UsageError(`unknown command "${command}" (cascadectl --help)`);
    }
  }
}

/** Follow /v1/events: one line per event until `count` events or the stream ends. */
async function watch(
  c: Connection,
  types: string | undefined,
  count: number,
  json: boolean,
  out: (s: string) => void,
): Promise<number> {
  const res = await open(c, 'GET', `/v1/events${q({ types })}`);
  if ((res.statusCode ?? 0) >= 400) {
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = undefined;
    }
    throw apiFailure({ status: res.statusCode ?? 0, body }, c);
  }
  // On stderr, so the events on stdout stay one per line for scripts.
  process.stderr.write(
    `cascadectl: following ${new URL('/v1/events', c.url).href}${types === undefined ? '' : ` (${types})`}\n`,
  );
  let seen = 0;
  let buffer = '';
  res.setEncoding('utf8');
  for await (const chunk of res) {
    buffer += chunk as string;
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      let event: string | undefined;
      let data: string | undefined;
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data = line.slice(6);
      }
      if (event === undefined || data === undefined) continue;
      const at = new Date().toISOString();
      if (json) out(`${JSON.stringify({ at, event, data: JSON.parse(data) })}\n`);
      else out(`${at}  ${event.padEnd(12)} ${humanEvent(event, JSON.parse(data))}\n`);
      if (++seen >= count) {
        res.destroy();
        return 0;
      }
    }
  }
  return 0;
}

interface ChairAnswer {
  readonly ok?: boolean;
  readonly code?: string;
  readonly message?: string;
  readonly session: string;
  readonly endpoint: string | null;
  readonly shown?: string | null;
  readonly path: readonly string[];
  readonly ms?: number;
  readonly healed?: readonly Record<string, string>[];
  readonly steps: readonly {
    readonly id: string;
    readonly mcu: string;
    readonly output?: string;
    readonly sources?: readonly string[];
    readonly source?: string;
    readonly attempts?: number;
    readonly doneMs?: number;
    readonly keyframeMs?: number;
  }[];
}

/** A chair command's answer for a technician: what went where, and when each MCU confirmed it. */
function humanChair(r: ChairAnswer, preview: boolean): string {
  if (r.ok === false) return `${r.code}: ${r.message}\n`;
  const what = r.endpoint === null ? "the default layout on the chair's screen" : `${r.endpoint} to the chair`;
  const shown =
    r.shown !== undefined && r.shown !== null && r.shown !== r.endpoint ? ` (shown through ${r.shown})` : '';
  const head = preview
    ? `would bring ${what}${shown} of ${r.session} over ${r.path.join(' -> ')}`
    : `${what}${shown} of ${r.session} in ${r.ms} ms over ${r.path.join(' -> ')}`;
  const healed = (r.healed ?? []).map((h) => `healed: ${h.mcu ?? `${h.child} -> ${h.parent}`}\n`).join('');
  const rows = r.steps.map((st) => [
    st.id.split(':')[0],
    st.mcu,
    st.output ?? st.source ?? '',
    (st.sources ?? []).join(' '),
    ...(preview ? [] : [st.attempts, st.doneMs, st.keyframeMs]),
  ]);
  const cols = ['STEP', 'MCU', 'OUTPUT', 'SHOWS', ...(preview ? [] : ['ATTEMPTS', 'DONE MS', 'KEYFRAME MS'])];
  return `${head}\n${healed}${table(cols, rows)}`;
}

function humanEvent(event: string, d: Record<string, unknown>): string {
  switch (event) {
    case 'mcu':
      return `${d.mcu} ${d.up ? 'up' : 'DOWN'} (${d.reason})`;
    case 'link':
      return `${d.mcu} -> ${d.target}: ${d.state}${d.reason ? ` (${d.reason})` : ''}`;
    case 'chair':
      return `${d.session}: ${d.endpoint} ${d.outcome} in ${d.ms} ms`;
    default:
      return JSON.stringify(d);
  }
}

exitOnClosedPipe();
run(process.argv.slice(2), process.env, (s) => process.stdout.write(s)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`cascadectl: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof ExitError) {
      process.stderr.write(`cascadectl: ${err.message}\n`);
      process.exitCode = err.code;
    } else {
      process.stderr.write(`cascadectl: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
