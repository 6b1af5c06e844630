/**
 * `cascaded session ...` and `cascaded cascade status`: sessions created,
 * listed, shown and ended against the store while the daemon runs (it
 * notices within a second and reconciles), and the cascade's progress as the
 * daemon last recorded it. Exit codes: 0 done; 1 refused or failed (no
 * capacity, no room, unknown session); 2 bad usage or invalid input.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import {
  admitSession,
  CascadeError,
  cascadeStatus,
  endSession,
  SESSION_VIEWS,
  type SessionRequest,
  type SessionStatus,
  type SessionView,
} from '../cascade/index.js';
import { type Config, ConfigError } from '../config/index.js';
import { isCascadedError } from '../core/index.js';
import type { Plan } from '../planner/index.js';
import { openSqliteStore, type Store } from '../store/index.js';
import { DEFAULT_CONFIG, loadCommandConfig } from './config-file.js';

const SESSION_HELP = `cascaded session: create, list, show and end sessions (the running daemon dials them)

Usage:
  cascaded session create [--root MCU] (--endpoints IDS | --session FILE | --all)
                          [--chair ID] [--main IDS] [--title TEXT] [--id ID] [--kind adhoc|planned]
                          [--chair-layout full|pip] [--mute-previous] [--view chair|speaker] [--json]
  cascaded session list [--all] [--json]
  cascaded session show ID [--json]
  cascaded session end ID [--json]

Options:
  -c, --config FILE     config and inventory (YAML); the store is its daemon.store.path.
                        Default: config/demo.yaml.
      --root MCU        the session's root MCU, where the chair sits (default: the master).
  -e, --endpoints IDS   comma-separated endpoint ids.
  -s, --session FILE    YAML or JSON: { endpoints: [...], chair: ID, root: MCU, title: ..., mains: [...],
                        chairLayout: full|pip, mutePrevious: true|false, view: chair|speaker }.
  -a, --all             every endpoint of the inventory.
      --chair ID        the chair endpoint (placed on the root).
      --main IDS        endpoints to show full-screen up their MCU's cascade link, instead of
                        the MCU's endpoint of the highest level (docs/cascade.md).
      --chair-layout L  the chair's screen with an endpoint brought to it: full (the endpoint
                        full-screen) or pip (the endpoint large, the chair small); default
                        daemon.chair.layout (docs/chair.md).
      --mute-previous   mute the previous speaker when another is brought to the chair.
      --view V          what every endpoint but the chair sees: chair (the chair full-screen,
                        the default) or speaker (the endpoint brought to the chair large, the
                        chair small; the chair alone until one is) (docs/cascade.md).
      --title TEXT      a title for people.
      --id ID           the session id (default: s-DATE-TIME-RANDOM).
      --kind KIND       adhoc (default) or planned.
      --all (list)      also sessions that ended.
      --json            machine-readable output (errors as {code, message, details}).
  -h, --help            this text.

A session is admitted only if its plan fits in the capacity the live sessions leave:
otherwise PLAN_ERR_INFEASIBLE, whose reasons name the sessions holding it.
Exit codes: 0 done; 1 refused or failed; 2 bad usage or invalid input.
`;

const STATUS_HELP = `cascaded cascade status: the cascade of live sessions, as the daemon last saw it

Usage:
  cascaded cascade status [ID] [--links] [--json] [--watch]

Options:
  -c, --config FILE   config and inventory (YAML). Default: config/demo.yaml.
      --links         list every link (failing and dialing links are always listed).
      --json          one JSON object per session (with --watch, one line per change).
  -w, --watch         print again whenever something changes, until interrupted.
      --interval MS   how often --watch looks (default 1000).
  -h, --help          this text.

Counts: planned (waiting: parent link not up yet, room opening, MCU down), dialing,
up (verified from both MCUs), failed (last attempt failed; retried with backoff).
Exit codes: 0 shown; 1 unknown session; 2 bad usage.
`;

class UsageError extends Error {}

/**
 * Resolves once everything written so far to stdout and stderr is out: a
 * pipe is written asynchronously, and an exit right after a large write
 * (the JSON of a national session) would cut it short. Writes on one stream
 * complete in order, so an empty write's callback comes after them all.
 */
async function flushed(): Promise<void> {
  await Promise.all([
    new Promise<void>((r) => process.stdout.write('', () => r())),
    new Promise<void>((r) => process.stderr.write('', () => r())),
  ]);
}

interface Common {
  config?: string;
  json?: boolean;
  help?: boolean;
}

async function openStore(configFile: string | undefined): Promise<{ config: Config; store: Store }> {
  const config = await loadCommandConfig(configFile ?? DEFAULT_CONFIG);
  const store = await openSqliteStore({ path: config.daemon.store.path, synchronous: config.daemon.store.synchronous });
  return { config, store };
}

function fail(err: unknown, json: boolean, prefix: string): number {
  if (err instanceof UsageError) {
    process.stderr.write(`${prefix}: ${err.message}\n`);
    return 2;
  }
  if (!isCascadedError(err)) throw err;
  if (json) process.stdout.write(`${JSON.stringify(err.toJSON(), null, 2)}\n`);
  else {
    process.stderr.write(`${prefix}: ${err.code}: ${err.message}\n`);
    const reasons = (err.details as { reasons?: { message: string; heldBy?: { session: string }[] }[] } | undefined)
      ?.reasons;
    for (const r of reasons ?? []) {
      const held =
        r.heldBy === undefined ? '' : ` (held by ${[...new Set(r.heldBy.map((h) => h.session))].join(', ')})`;
      process.stderr.write(`  - ${r.message}${held}\n`);
    }
  }
  // An unreadable config file is a failure (1), a bad one a usage error (2), as for the daemon.
  const usage =
    (err instanceof ConfigError && err.code !== 'CFG_ERR_READ') ||
    err.code === 'CASCADE_ERR_INVALID_SESSION' ||
    err.code === 'PLAN_ERR_INVALID_SESSION';
  return usage ? 2 : 1;
}

const list = (s: string | undefined) =>
  (s ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);

async function readSessionFile(file: string): Promise<Partial<SessionRequest>> {
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  const obj = Array.isArray(raw) ? { endpoints: raw } : raw;
  if (typeof obj !== 'object' || obj === null) throw new UsageError(`${file}: expected { endpoints: [...], ... }`);
  const { endpoints, chair, root, title, mains, chairLayout, mutePrevious, view, ...rest } = obj as Record<
    string,
    unknown
  >;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw new UsageError(`${file}: unknown key${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`);
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (!strings(endpoints)) throw new UsageError(`${file}: endpoints must be a list of endpoint ids`);
  if (mains !== undefined && !strings(mains)) throw new UsageError(`${file}: mains must be a list of endpoint ids`);
  for (const [k, v] of Object.entries({ chair, root, title }))
    if (v !== undefined && typeof v !== 'string') throw new UsageError(`${file}: ${k} must be a string`);
  if (chairLayout !== undefined && chairLayout !== 'full' && chairLayout !== 'pip')
    throw new UsageError(`${file}: chairLayout must be full or pip`);
  if (mutePrevious !== undefined && typeof mutePrevious !== 'boolean')
    throw new UsageError(`${file}: mutePrevious must be true or false`);
  if (view !== undefined && !isSessionView(view)) throw new UsageError(`${file}: view must be chair or speaker`);
  return {
    endpoints: endpoints as string[],
    ...(chair === undefined ? {} : { chair: chair as string }),
    ...(root === undefined ? {} : { root: root as string }),
    ...(title === undefined ? {} : { title: title as string }),
    ...(mains === undefined ? {} : { mains: mains as string[] }),
    ...(chairLayout === undefined ? {} : { chairLayout }),
    ...(mutePrevious === undefined ? {} : { mutePrevious }),
    ...(view === undefined ? {} : { view }),
  };
}

function isSessionView(v: unknown): v is SessionView {
  return (SESSION_VIEWS as readonly unknown[]).includes(v);
}

export async function runSession(argv: string[]): Promise<number> {
  const code = await session(argv);
  await flushed();
  return code;
}

export async function runCascade(argv: string[]): Promise<number> {
  const code = await cascade(argv);
  await flushed();
  return code;
}

async function session(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(SESSION_HELP);
    return verb === undefined ? 2 : 0;
  }
  let values: Common & {
    root?: string;
    endpoints?: string;
    session?: string;
    all?: boolean;
    chair?: string;
    main?: string;
    title?: string;
    id?: string;
    kind?: string;
    'chair-layout'?: string;
    'mute-previous'?: boolean;
    view?: string;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: {
        config: { type: 'string', short: 'c' },
        root: { type: 'string' },
        endpoints: { type: 'string', short: 'e' },
        session: { type: 'string', short: 's' },
        all: { type: 'boolean', short: 'a' },
        chair: { type: 'string' },
        main: { type: 'string' },
        title: { type: 'string' },
        id: { type: 'string' },
        kind: { type: 'string' },
        'chair-layout': { type: 'string' },
        'mute-previous': { type: 'boolean' },
        view: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    process.stderr.write(`cascaded session: ${(err as Error).message}\nTry 'cascaded session --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(SESSION_HELP);
    return 0;
  }
  const json = values.json === true;
  const prefix = `cascaded session ${verb}`;
  let store: Store | undefined;
  try {
    switch (verb) {
      case 'create': {
        if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}`);
        const sources = [values.endpoints !== undefined, values.session !== undefined, values.all === true];
        if (sources.filter(Boolean).length !== 1)
          throw new UsageError('give exactly one of --endpoints IDS, --session FILE and --all');
        if (values.kind !== undefined && values.kind !== 'adhoc' && values.kind !== 'planned')
          throw new UsageError('--kind must be adhoc or planned');
        const chairLayout = values['chair-layout'];
        if (chairLayout !== undefined && chairLayout !== 'full' && chairLayout !== 'pip')
          throw new UsageError('--chair-layout must be full or pip');
        const view = values.view;
        if (view !== undefined && !isSessionView(view)) throw new UsageError('--view must be chair or speaker');
        const file = values.session === undefined ? {} : await readSessionFile(values.session);
        const opened = await openStore(values.config);
        store = opened.store;
        const request: SessionRequest = {
          endpoints: values.all ? 'all' : (file.endpoints ?? list(values.endpoints)),
          ...((values.root ?? file.root) ? { root: (values.root ?? file.root)! } : {}),
          ...((values.chair ?? file.chair) ? { chair: (values.chair ?? file.chair)! } : {}),
          ...((values.title ?? file.title) ? { title: (values.title ?? file.title)! } : {}),
          ...(values.main !== undefined || file.mains !== undefined
            ? { mains: values.main ? list(values.main) : file.mains! }
            : {}),
          ...(values.id === undefined ? {} : { id: values.id }),
          ...(values.kind === undefined ? {} : { kind: values.kind as 'adhoc' | 'planned' }),
          ...((chairLayout ?? file.chairLayout) ? { chairLayout: (chairLayout ?? file.chairLayout)! } : {}),
          ...((values['mute-previous'] ?? file.mutePrevious) !== undefined
            ? { mutePrevious: (values['mute-previous'] ?? file.mutePrevious)! }
            : {}),
          ...((view ?? file.view) ? { view: (view ?? file.view)! } : {}),
        };
        const record = await admitSession(store, opened.config.inventory, request);
        const p = record.plan as Plan;
        const summary = {
          endpoints: p.endpoints.length,
          mcus: p.mcus.length,
          links: Object.keys(p.links).length,
          maxDepth: p.objective.maxDepth,
        };
        const { plan: _plan, ...head } = record;
        if (json) process.stdout.write(`${JSON.stringify({ ...head, summary }, null, 2)}\n`);
        else
          process.stdout.write(
            `session ${record.sessionId} admitted: "${record.title}", root ${record.root}, ${summary.endpoints} endpoints on ${summary.mcus} MCUs, ` +
              `${summary.links} cascade links (max depth ${summary.maxDepth})\n` +
              `the daemon dials it; follow it with: cascaded cascade status ${record.sessionId}\n`,
          );
        return 0;
      }
      case 'list': {
        if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}`);
        store = (await openStore(values.config)).store;
        const heads = await store.listCascades(values.all ? { states: ['live', 'ending', 'ended'] } : {});
        if (json) process.stdout.write(`${JSON.stringify(heads, null, 2)}\n`);
        else if (heads.length === 0) process.stdout.write('no sessions\n');
        else
          for (const h of heads)
            process.stdout.write(
              `${h.sessionId}  ${h.state.padEnd(6)}  root ${h.root}  ${Object.keys(h.rooms).length} rooms  "${h.title}"\n`,
            );
        return 0;
      }
      case 'show':
      case 'end': {
        if (positionals.length !== 1) throw new UsageError(`give one session id`);
        const id = positionals[0]!;
        store = (await openStore(values.config)).store;
        if (verb === 'end') {
          const head = await endSession(store, id);
          if (json) process.stdout.write(`${JSON.stringify(head, null, 2)}\n`);
          else
            process.stdout.write(
              `session ${id}: ${head.state === 'ending' ? 'ending: the daemon tears its cascade down' : head.state}\n`,
            );
          return 0;
        }
        const c = await store.getCascade(id);
        if (c === undefined) throw new CascadeError('CASCADE_ERR_NOT_FOUND', `no session ${id}`);
        const events = await store.listEvents({ subject: id, limit: 1_000 });
        if (json) process.stdout.write(`${JSON.stringify({ ...c, events }, null, 2)}\n`);
        else {
          const p = c.plan as Plan;
          process.stdout.write(
            `session ${c.sessionId} "${c.title}" (${c.state}), root ${c.root}, plan v${c.planVersion}: ` +
              `${p.endpoints.length} endpoints, ${Object.keys(p.links).length} links, max depth ${p.objective.maxDepth}\n` +
              `selection: ${c.selection ?? '(none)'}\nrooms:\n` +
              Object.entries(c.rooms)
                .map(([m, uri]) => `  ${m}  ${uri}\n`)
                .join('') +
              `events (${events.length}):\n` +
              events.map((e) => `  ${e.at}  ${e.type}  ${JSON.stringify(e.data)}\n`).join(''),
          );
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${verb}" (create, list, show, end)`);
    }
  } catch (err) {
    return fail(err, json, prefix);
  } finally {
    await store?.close();
  }
}

function renderStatus(s: SessionStatus, all: boolean): string {
  const c = s.counts;
  const lines = [
    `${s.sessionId} "${s.title}" ${s.state}, root ${s.root}: ${s.links.length} links: ${c.up} up, ${c.dialing} dialing, ${c.failed} failed, ${c.planned} planned`,
  ];
  for (const l of s.links) {
    if (!all && l.state === 'up') continue;
    if (!all && l.state === 'planned' && l.detail === null) continue;
    const tries = l.attempts > 0 ? ` (${l.attempts} failed)` : '';
    lines.push(
      `  ${l.child} -> ${l.parent}  ${l.state}${tries}  since ${l.since}${l.detail === null ? '' : `  ${l.detail}`}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function cascade(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb !== 'status') {
    const help = verb === '--help' || verb === '-h' || verb === 'help';
    (help ? process.stdout : process.stderr).write(
      help ? STATUS_HELP : `cascaded cascade: unknown command "${verb ?? ''}" (status)\n\n${STATUS_HELP}`,
    );
    return help ? 0 : 2;
  }
  let values: Common & { links?: boolean; watch?: boolean; interval?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: {
        config: { type: 'string', short: 'c' },
        links: { type: 'boolean' },
        json: { type: 'boolean' },
        watch: { type: 'boolean', short: 'w' },
        interval: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    process.stderr.write(`cascaded cascade status: ${(err as Error).message}\nTry 'cascaded cascade status --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const json = values.json === true;
  const interval = values.interval === undefined ? 1_000 : Number(values.interval);
  let store: Store | undefined;
  try {
    if (positionals.length > 1) throw new UsageError('give at most one session id');
    if (!Number.isInteger(interval) || interval < 100) throw new UsageError('--interval must be at least 100 ms');
    store = (await openStore(values.config)).store;
    const id = positionals[0];
    const render = (all: SessionStatus[]) =>
      json
        ? all.map((s) => JSON.stringify(s)).join('\n') + (all.length > 0 ? '\n' : '')
        : all.length === 0
          ? 'no live sessions\n'
          : all.map((s) => renderStatus(s, values.links === true)).join('');
    const first = await cascadeStatus(store, id);
    if (!values.watch) {
      process.stdout.write(json && id === undefined ? `${JSON.stringify(first, null, 2)}\n` : render(first));
      return 0;
    }
    let last = render(first);
    process.stdout.write(last);
    const st = store;
    await new Promise<void>((resolve) => {
      const tick = async () => {
        const now = render(await cascadeStatus(st, id));
        if (now !== last) process.stdout.write(now);
        last = now;
      };
      const timer = setInterval(() => {
        tick().catch(() => {});
      }, interval);
      const stop = () => {
        clearInterval(timer);
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  } catch (err) {
    return fail(err, json, 'cascaded cascade status');
  } finally {
    await store?.close();
  }
}
