import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { type Document, isNode, LineCounter, parseDocument } from 'yaml';
import type { Inventory, Mcu } from '../inventory/index.js';
import { ConfigError, type Violation } from './errors.js';
import { configSchema, RENAMED_KEYS } from './schema.js';
import { secretViolations } from './secrets.js';
import { semanticViolations } from './semantic.js';
import type { Config, DaemonConfig } from './types.js';

/** A config larger than this is refused before parsing (the national demo is about 2 MB). */
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

let validator: ValidateFunction | undefined;
function validate(): ValidateFunction {
  // The schema is ours and fixed: checked against JSON Schema's meta-schema by a test (test/config), not at every
  // start, and compiled without ajv's code optimisation pass (validation is as fast without it). Together they
  // halve the compile (about 0.25 to 0.11 s of CPU), which every daemon start and every CLI run pays.
  validator ??= new Ajv({
    allErrors: true,
    useDefaults: true,
    verbose: true,
    strict: true,
    validateSchema: false,
    code: { optimize: false },
  }).compile(configSchema);
  return validator;
}

export interface ParseOptions {
  /** Label for messages: the file path, or e.g. "<inline>". */
  readonly source?: string;
  /** Base for relative paths (default: process.cwd()). */
  readonly cwd?: string;
  /** Environment for defaults such as STATE_DIRECTORY (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Read and validate a config file. Throws ConfigError (CFG_ERR_READ, CFG_ERR_YAML, CFG_ERR_INVALID). */
export async function loadConfigFile(file: string, options: Omit<ParseOptions, 'source'> = {}): Promise<Config> {
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_CONFIG_BYTES) {
      throw new ConfigError('CFG_ERR_READ', `${file}: ${buf.length} bytes exceeds the ${MAX_CONFIG_BYTES}-byte limit`);
    }
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError('CFG_ERR_READ', `${file}: cannot read config (${reason})`, { cause: err });
  }
  return parseConfig(text, { ...options, source: file });
}

/** Validate config text (YAML or JSON). Returns a deeply frozen Config. */
export function parseConfig(text: string, options: ParseOptions = {}): Config {
  const source = options.source ?? '<inline>';
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const violations: Violation[] = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      return { path: '', message: e.message.split('\n')[0]!, line: pos?.line, column: pos?.col };
    });
    throw new ConfigError('CFG_ERR_YAML', formatViolations(source, violations), { details: { source, violations } });
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};

  const violations: Violation[] = [];
  if (!validate()(raw)) violations.push(...(validate().errors ?? []).map(fromAjv));
  const semantic = semanticViolations(raw);
  violations.push(...semantic.violations);
  violations.push(...secretViolations(raw, options.cwd ?? process.cwd(), options.env ?? process.env));
  if (violations.length > 0) {
    const located = dedupe(violations).map((v) => locate(doc, lines, v));
    located.sort(byPosition);
    throw new ConfigError('CFG_ERR_INVALID', formatViolations(source, located), {
      details: { source, violations: located },
    });
  }
  const warnings = semantic.warnings.map((v) => locate(doc, lines, v)).sort(byPosition);
  return deepFreeze({ ...build(raw as RawConfig, source, options), warnings });
}

/** The human-readable form: one line per violation (or warning), as `--check-config` prints it. */
export function formatViolations(source: string, violations: readonly Violation[], noun = 'problem'): string {
  const n = violations.length;
  const head = `${source}: ${n} ${noun}${n === 1 ? '' : 's'}`;
  const body = violations.map((v) => {
    const at = v.line === undefined ? '' : ` (line ${v.line}${v.column === undefined ? '' : `:${v.column}`})`;
    return `  ${v.path || '/'}${at}: ${v.message}`;
  });
  return [head, ...body].join('\n');
}

// ---------------------------------------------------------------------------

interface RawConfig {
  daemon: {
    logLevel: DaemonConfig['logLevel'];
    stateDir?: string;
    shutdownTimeoutMs: number;
    store: { driver: 'sqlite'; path?: string; synchronous: 'normal' | 'full' };
    api: DaemonConfig['api'];
    sip: DaemonConfig['sip'];
    mcu: DaemonConfig['mcu'];
    cascade: DaemonConfig['cascade'];
    chair: DaemonConfig['chair'];
    session: DaemonConfig['session'];
  };
  levels: Inventory['levels'];
  provinces: Inventory['provinces'];
  operators: Inventory['operators'];
  mcus: Inventory['mcus'];
  endpoints: Inventory['endpoints'];
}

function build(raw: RawConfig, source: string, options: ParseOptions): Omit<Config, 'warnings'> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  // systemd's StateDirectory= exports STATE_DIRECTORY (colon-separated when several).
  const stateDir = abs(raw.daemon.stateDir ?? env.STATE_DIRECTORY?.split(':')[0] ?? 'var');
  const d = raw.daemon;
  const daemon: DaemonConfig = {
    logLevel: d.logLevel,
    stateDir,
    shutdownTimeoutMs: d.shutdownTimeoutMs,
    store: {
      driver: d.store.driver,
      path: abs(d.store.path ?? join(stateDir, 'cascaded.db')),
      synchronous: d.store.synchronous,
    },
    api: {
      ...d.api,
      ...(d.api.tls ? { tls: { cert: abs(d.api.tls.cert), key: abs(d.api.tls.key) } } : {}),
      ...(d.api.clientCertificates
        ? { clientCertificates: { ...d.api.clientCertificates, ca: abs(d.api.clientCertificates.ca) } }
        : {}),
    },
    sip: d.sip,
    mcu: d.mcu,
    cascade: d.cascade,
    chair: d.chair,
    session: d.session,
  };
  const inventory: Inventory = {
    levels: raw.levels,
    provinces: raw.provinces,
    operators: raw.operators,
    mcus: raw.mcus.map((m) => withAbsoluteSecretFile(m, abs)),
    endpoints: raw.endpoints,
  };
  return { source, daemon, inventory };
}

function withAbsoluteSecretFile(m: Mcu, abs: (p: string) => string): Mcu {
  if (m.auth?.passwordFile === undefined) return m;
  return { ...m, auth: { ...m.auth, passwordFile: abs(m.auth.passwordFile) } };
}

const ID_PATTERN = configSchema.properties.levels.items.properties.id.pattern;

function fromAjv(e: ErrorObject): Violation {
  const at = e.instancePath;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty);
      return { path: `${at}/${escapePointer(key)}`, message: `unknown property${hint(key, e.parentSchema)}` };
    }
    case 'required':
      return { path: `${at}/${escapePointer(String(e.params.missingProperty))}`, message: 'is required' };
    case 'enum':
      return {
        path: at,
        message: `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'const':
      return { path: at, message: `must be ${JSON.stringify(e.params.allowedValue)}` };
    case 'uniqueItems':
      // Report the later of the two identical items, pointing back at the first.
      return {
        path: `${at}/${Math.max(e.params.i, e.params.j)}`,
        message: `duplicate of item ${Math.min(e.params.i, e.params.j)}`,
      };
    case 'pattern':
      return {
        path: at,
        message:
          e.params.pattern === ID_PATTERN
            ? 'must be an id: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit'
            : `must match ${e.params.pattern}`,
      };
    default:
      return { path: at, message: e.message ?? e.keyword };
  }
}

function hint(key: string, parentSchema: unknown): string {
  const renamed = RENAMED_KEYS[key];
  const props = Object.keys((parentSchema as { properties?: object } | undefined)?.properties ?? {});
  if (renamed !== undefined && (props.includes(renamed) || renamed.includes('.')))
    return ` (did you mean "${renamed}"?)`;
  let best: string | undefined;
  let bestDistance = 3;
  for (const p of props) {
    const d = editDistance(key.toLowerCase(), p.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [p, d];
  }
  const allowed = props.length > 0 && props.length <= 12 ? `; allowed: ${props.join(', ')}` : '';
  return best === undefined ? allowed && ` (${allowed.slice(2)})` : ` (did you mean "${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
const unescapePointer = (seg: string) => seg.replace(/~1/g, '/').replace(/~0/g, '~');

function dedupe(vs: Violation[]): Violation[] {
  const seen = new Set<string>();
  return vs.filter((v) => {
    const k = `${v.path}\0${v.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Attach the line and column of the deepest YAML node that exists along the path. */
function locate(doc: Document, lines: LineCounter, v: Violation): Violation {
  const segs = v.path === '' ? [] : v.path.slice(1).split('/').map(unescapePointer);
  for (let n = segs.length; n >= 0; n--) {
    const keys = segs.slice(0, n).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const node = n === 0 ? doc.contents : doc.getIn(keys, true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return { ...v, line: pos.line, column: pos.col };
    }
  }
  return v;
}

function byPosition(a: Violation, b: Violation): number {
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0) || a.path.localeCompare(b.path);
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
