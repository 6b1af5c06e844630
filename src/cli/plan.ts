/**
 * `cascaded plan`: plans a session offline and prints the cascade tree with
 * port use, or the plan as JSON. Exit codes: 0 planned (proven optimal or
 * not: the output says which); 1 no plan (infeasible, with the reasons, or no
 * plan found within the budget); 2 bad usage, invalid config or invalid session.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config/index.js';
import type { HeldCapacity, InfeasibilityReason, McuUsage, ObjectiveBound, Plan, Session } from '../planner/index.js';
import { PLAN_BUDGET_MS, PlanError, plan } from '../planner/index.js';
import { DEFAULT_CONFIG, loadCommandConfig } from './config-file.js';

const HELP = `cascaded plan: plan the cascade of a session (offline, no MCU is contacted)

Usage:
  cascaded plan [--config FILE] (--session FILE | --all) [--root MCU] [--chair ID]
                [--unavailable IDS] [--reserved FILE] [--budget MS] [--json]

Options:
  -c, --config FILE       config and inventory (YAML). Default: config/demo.yaml.
  -s, --session FILE      the session, YAML or JSON: { endpoints: [id, ...], chair: id, root: mcu }
                          (chair and root optional; a bare list of ids also works). See docs/planner.md.
  -a, --all               every endpoint of the inventory takes part.
      --root MCU          the session's root MCU (overrides the session file's; default: the master).
      --chair ID          the chair endpoint, placed on the root (overrides the session file's).
      --unavailable IDS   comma-separated MCUs that are down: the plan avoids them.
      --reserved FILE     capacity other live sessions hold, YAML or JSON:
                          { MCU: { ports: N, cascadePorts: N }, ... }; the plan fits in what is left.
      --budget MS         time budget in milliseconds (default ${PLAN_BUDGET_MS}): past it, the best plan
                          found is printed, marked as not proven optimal, with the best lower bound.
      --json              print the plan as JSON (an error as {code, message, details}).
  -h, --help              this text.

Exit codes: 0 planned (the output says whether the plan is proven optimal); 1 no plan
(infeasible: reasons printed; or none found within the budget); 2 bad usage or invalid input.
`;

class UsageError extends Error {}

async function readSession(file: string): Promise<Session> {
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  const obj = Array.isArray(raw) ? { endpoints: raw } : raw;
  if (typeof obj !== 'object' || obj === null)
    throw new UsageError(`${file}: expected { endpoints: [...], chair: ..., root: ... }`);
  const { endpoints, chair, root, ...rest } = obj as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw new UsageError(`${file}: unknown key${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`);
  if (!Array.isArray(endpoints) || !endpoints.every((e) => typeof e === 'string')) {
    throw new UsageError(`${file}: endpoints must be a list of endpoint ids`);
  }
  if (chair !== undefined && typeof chair !== 'string') throw new UsageError(`${file}: chair must be an endpoint id`);
  if (root !== undefined && typeof root !== 'string') throw new UsageError(`${file}: root must be an MCU id`);
  return { endpoints, ...(chair === undefined ? {} : { chair }), ...(root === undefined ? {} : { root }) };
}

async function readReserved(file: string): Promise<Record<string, HeldCapacity>> {
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UsageError(`${file}: expected { MCU: { ports: N, cascadePorts: N }, ... }`);
  }
  const out: Record<string, HeldCapacity> = {};
  for (const [mcu, held] of Object.entries(raw)) {
    const { ports, cascadePorts, ...rest } = (held ?? {}) as Record<string, unknown>;
    const bad = (x: unknown) => x !== undefined && !(typeof x === 'number' && Number.isInteger(x) && x >= 0);
    if (typeof held !== 'object' || held === null || Object.keys(rest).length > 0 || bad(ports) || bad(cascadePorts)) {
      throw new UsageError(`${file}: /${mcu} must be { ports: N, cascadePorts: N } with whole numbers >= 0`);
    }
    out[mcu] = { ports: (ports as number | undefined) ?? 0, cascadePorts: (cascadePorts as number | undefined) ?? 0 };
  }
  return out;
}

export async function runPlan(argv: string[]): Promise<number> {
  let values: {
    config?: string;
    session?: string;
    all?: boolean;
    chair?: string;
    root?: string;
    unavailable?: string;
    reserved?: string;
    budget?: string;
    json?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        session: { type: 'string', short: 's' },
        all: { type: 'boolean', short: 'a' },
        chair: { type: 'string' },
        root: { type: 'string' },
        unavailable: { type: 'string' },
        reserved: { type: 'string' },
        budget: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`cascaded plan: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const json = values.json === true;
  try {
    if ((values.session === undefined) === (values.all !== true))
      throw new UsageError('give exactly one of --session FILE and --all');
    const budgetMs = values.budget === undefined ? PLAN_BUDGET_MS : Number(values.budget);
    if (!Number.isFinite(budgetMs) || budgetMs < 0) throw new UsageError('--budget must be a number of milliseconds');
    const { inventory } = await loadCommandConfig(values.config ?? DEFAULT_CONFIG);
    const base: Session = values.all
      ? { endpoints: inventory.endpoints.map((e) => e.id) }
      : await readSession(values.session!);
    const chair = values.chair ?? base.chair;
    const root = values.root ?? base.root;
    const session: Session = {
      endpoints: base.endpoints,
      ...(chair === undefined ? {} : { chair }),
      ...(root === undefined ? {} : { root }),
    };
    const unavailableMcus = (values.unavailable ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const reserved = values.reserved === undefined ? {} : await readReserved(values.reserved);
    const result = plan(inventory, session, { unavailableMcus, reserved, budgetMs });
    process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : renderTree(result));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`cascaded plan: ${err.message}\n`);
      return 2;
    }
    if (err instanceof PlanError || err instanceof ConfigError) {
      if (json) process.stdout.write(`${JSON.stringify(err.toJSON(), null, 2)}\n`);
      else process.stderr.write(`cascaded plan: ${err.code}: ${err.message}\n${reasonLines(err)}`);
      return err.code === 'PLAN_ERR_INFEASIBLE' || err.code === 'PLAN_ERR_TIMEOUT' ? 1 : 2;
    }
    throw err;
  }
}

function reasonLines(err: PlanError | ConfigError): string {
  const reasons = (err.details as { reasons?: InfeasibilityReason[] } | undefined)?.reasons;
  return reasons === undefined ? '' : reasons.map((r) => `  - ${r.message}\n`).join('');
}

/** A lower bound as a technician reads it: each tier that is bounded. */
function boundText(b: ObjectiveBound): string {
  return [
    `max depth ${b.maxDepth}`,
    `${b.atMaxDepth} endpoints there`,
    `depth sum ${b.depthSum}`,
    `preference sum ${b.preferenceSum}`,
    `${b.links} links`,
  ].join(', ');
}

/** The plan as an indented tree, one line per MCU, with its port and cascade-port use. */
export function renderTree(p: Plan): string {
  const o = p.objective;
  const byId = new Map(p.mcus.map((m) => [m.id, m]));
  const relayCount = Object.keys(p.relays).length;
  const lines = [
    `Plan: ${p.endpoints.length} endpoints${relayCount > 0 ? ` (${relayCount} relayed)` : ''} on ${p.mcus.length} MCUs, ` +
      `max depth ${o.maxDepth} (${o.atMaxDepth} endpoint${o.atMaxDepth === 1 ? '' : 's'} there), ${o.links} cascade links`,
    `Root: ${p.root}; chair: ${p.chair ?? '(none)'}; fullest MCU: ${o.maxUtilisation.mcu} ${o.maxUtilisation.used}/${o.maxUtilisation.ports} ports`,
    p.optimal
      ? `Proven optimal (${p.search.nodes} search nodes)`
      : `NOT proven optimal: the ${p.search.budgetExhausted ? 'time budget ran out' : 'search stopped'} first; lower bound ${boundText(p.bound)}`,
    '',
  ];
  const held = (x: { held: number }) => (x.held > 0 ? ` (+${x.held} held)` : '');
  const line = (m: McuUsage) =>
    `${m.id}  depth ${m.depth}  ports ${m.ports.used}${held(m.ports)}/${m.ports.capacity}  ` +
    `cascade ${m.cascadePorts.used}${held(m.cascadePorts)}/${m.cascadePorts.capacity}  ` +
    `${m.endpoints.length} endpoint${m.endpoints.length === 1 ? '' : 's'}`;
  const walk = (m: McuUsage, prefix: string, last: boolean, root: boolean) => {
    lines.push(root ? line(m) : `${prefix}${last ? '└─ ' : '├─ '}${line(m)}`);
    const next = root ? '' : `${prefix}${last ? '   ' : '│  '}`;
    m.children.forEach((c, i) => {
      walk(byId.get(c)!, next, i === m.children.length - 1, false);
    });
  };
  walk(byId.get(p.root)!, '', true, true);
  const reserved = Object.keys(p.reserved);
  if (reserved.length > 0) lines.push('', `Capacity held by other sessions on: ${reserved.join(', ')}`);
  if (p.addedForRelay.length > 0) lines.push('', `Added for relays: ${p.addedForRelay.join(', ')}`);
  if (p.unavailableMcus.length > 0) lines.push(`Unavailable MCUs: ${p.unavailableMcus.join(', ')}`);
  if (p.unusedMcus.length > 0) lines.push(`Unused MCUs: ${p.unusedMcus.join(', ')}`);
  return `${lines.join('\n')}\n`;
}
