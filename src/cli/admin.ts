/**
 * `cascaded token create|list|revoke` and `cascaded audit verify`: work on the
 * store directly, so they run while the daemon runs (SQLite WAL: readers and
 * one writer at a time, busy_timeout waits for the daemon's short writes).
 * Token changes are audited under the local user's name.
 * Exit codes: 0 done (audit intact); 1 runtime failure or a broken audit
 * chain; 2 bad usage or invalid input.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/index.js';
import { isCascadedError } from '../core/index.js';
import { type ApiRole, openSqliteStore, type Store } from '../store/index.js';
import { DEFAULT_CONFIG, loadCommandConfig } from './config-file.js';

const TOKEN_HELP = `cascaded token: API bearer tokens (stored hashed; the token is shown once)

Usage:
  cascaded token create --role ROLE [--scope SCOPE] [--expires DURATION] [--name NAME] [--json]
  cascaded token list [--json]
  cascaded token revoke ID [--json]

Options:
  -c, --config FILE     the daemon's config (store path, operators, provinces). Default: config/demo.yaml.
      --role ROLE       viewer (read only), operator (commands in its scope), admin.
      --scope SCOPE     for an operator: operator:ID (vnpt, viettel, the central department) or province:ID.
      --expires D       lifetime: 90d (default), 12h, 30m, 3600s, or never.
      --name NAME       who holds it (shown in lists and the audit). Default: ROLE[-SCOPE].
      --json            machine-readable output.
`;

const AUDIT_HELP = `cascaded audit verify: walk the audit hash chain

Usage:
  cascaded audit verify [--config FILE] [--head HASH] [--json]

Exit codes: 0 intact; 1 broken (the first broken row is printed) or the head differs; 2 bad usage.
--head HASH also checks that the newest row's hash is HASH (kept from an earlier run): a cut tail
cannot be seen from the chain alone.
`;

class UsageError extends Error {}

interface Common {
  config?: string;
  json?: boolean;
  help?: boolean;
}

async function withStore<T>(
  configFile: string,
  fn: (store: Store, cfg: Awaited<ReturnType<typeof loadCommandConfig>>) => Promise<T>,
) {
  const config = await loadCommandConfig(configFile);
  const store = await openSqliteStore({ path: config.daemon.store.path, synchronous: config.daemon.store.synchronous });
  try {
    return await fn(store, config);
  } finally {
    await store.close();
  }
}

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const actor = () => `cli:${userInfo().username}`;

export async function runToken(argv: string[]): Promise<number> {
  return guard(async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        role: { type: 'string' },
        scope: { type: 'string' },
        expires: { type: 'string' },
        name: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
    const v = values as Common & { role?: string; scope?: string; expires?: string; name?: string };
    const [verb, ...rest] = positionals;
    if (v.help || verb === undefined) {
      out(TOKEN_HELP);
      return v.help ? 0 : 2;
    }
    // Only the token commands need the API's token code: loaded here, the audit and help runs do without the
    // whole API (its HTTP server and TLS modules are most of a run's start-up).
    const { issueToken, parseDuration, parseScope, TOKEN_ID_RE } = await import('../api/index.js');
    const file = v.config ?? DEFAULT_CONFIG;
    if (verb === 'create') {
      if (rest.length > 0) throw new UsageError(`unexpected ${rest.join(' ')}`);
      if (v.role === undefined || !['viewer', 'operator', 'admin'].includes(v.role)) {
        throw new UsageError('--role must be viewer, operator or admin');
      }
      const scope = v.scope === undefined ? undefined : parseScope(v.scope);
      if (v.scope !== undefined && scope === undefined) {
        throw new UsageError(`--scope "${v.scope}": expected operator:ID or province:ID`);
      }
      const lifetime = parseDuration(v.expires ?? '90d');
      return withStore(file, async (store, config) => {
        if (scope !== undefined) {
          const known =
            scope.kind === 'operator'
              ? config.inventory.operators.some((o) => o.id === scope.id)
              : config.inventory.provinces.some((p) => p.id === scope.id);
          if (!known) throw new UsageError(`--scope: no ${scope.kind} "${scope.id}" in ${file}`);
        }
        const issued = issueToken({
          name: v.name ?? (scope === undefined ? v.role! : `${v.role}-${scope.id}`),
          role: v.role as ApiRole,
          ...(scope === undefined ? {} : { scope }),
          ...(lifetime === undefined ? {} : { expiresAt: Date.now() + lifetime }),
        });
        const rec = await store.createToken(issued.record);
        await store.appendAudit({
          actor: actor(),
          action: 'token.create',
          target: rec.id,
          outcome: 'ok',
          details: { name: rec.name, role: rec.role, scope: rec.scope, expiresAt: rec.expiresAt },
        });
        if (v.json) out(JSON.stringify({ token: issued.token, ...publicView(rec) }));
        else {
          out(issued.token);
          process.stderr.write(
            `token ${rec.id} (${rec.name}, ${rec.role}${rec.scope ? ` ${rec.scope}` : ''}, expires ${rec.expiresAt ?? 'never'}): shown only now, store it safely\n`,
          );
        }
        return 0;
      });
    }
    if (verb === 'list') {
      return withStore(file, async (store) => {
        const now = Date.now();
        const rows = (await store.listTokens()).map((r) => ({ ...publicView(r), state: stateOf(r, now) }));
        if (v.json) out(JSON.stringify(rows));
        else
          out(
            table(
              ['ID', 'NAME', 'ROLE', 'SCOPE', 'CREATED', 'EXPIRES', 'STATE'],
              rows.map((r) => [r.id, r.name, r.role, r.scope ?? '-', r.createdAt, r.expiresAt ?? 'never', r.state]),
            ),
          );
        return 0;
      });
    }
    if (verb === 'revoke') {
      const id = rest[0];
      if (id === undefined || rest.length > 1) throw new UsageError('revoke takes one token id');
      if (!TOKEN_ID_RE.test(id)) throw new UsageError(`"${id}" is not a token id (16 hex digits, see token list)`);
      return withStore(file, async (store) => {
        const rec = await store.revokeToken(id);
        await store.appendAudit({ actor: actor(), action: 'token.revoke', target: id, outcome: 'ok' });
        if (v.json) out(JSON.stringify(publicView(rec)));
        else out(`token ${id} revoked (${rec.revokedAt})`);
        return 0;
      });
    }
    throw new UsageError(`unknown token command "${verb}"`);
  }, TOKEN_HELP);
}

export async function runAudit(argv: string[]): Promise<number> {
  return guard(async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        head: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
    const v = values as Common & { head?: string };
    if (v.help) {
      out(AUDIT_HELP);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'verify') throw new UsageError('expected: audit verify');
    if (v.head !== undefined && !/^[0-9a-f]{64}$/.test(v.head)) throw new UsageError('--head must be 64 hex digits');
    return withStore(v.config ?? DEFAULT_CONFIG, async (store) => {
      const r = await store.verifyAudit();
      const headDiffers = v.head !== undefined && r.ok && r.head !== v.head;
      if (v.json)
        out(
          JSON.stringify({
            ...r,
            ...(v.head === undefined ? {} : { expectedHead: v.head, headMatches: !headDiffers }),
          }),
        );
      else if (!r.ok)
        out(`audit BROKEN at row ${r.broken!.id}: ${r.broken!.reason} (${r.checked} rows intact before it)`);
      else if (headDiffers)
        out(`audit chain intact (${r.checked} rows) but its head ${r.head} is not ${v.head}: rows were cut`);
      else
        out(
          `audit intact: ${r.checked} rows${r.unchained > 0 ? ` (+${r.unchained} from before the chain)` : ''}, head ${r.head ?? '-'}`,
        );
      return r.ok && !headDiffers ? 0 : 1;
    });
  }, AUDIT_HELP);
}

function publicView(r: {
  id: string;
  name: string;
  role: string;
  scope: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}) {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    scope: r.scope,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    revokedAt: r.revokedAt,
  };
}

function stateOf(r: { expiresAt: string | null; revokedAt: string | null }, now: number): string {
  if (r.revokedAt !== null) return 'revoked';
  if (r.expiresAt !== null && Date.parse(r.expiresAt) <= now) return 'expired';
  return 'active';
}

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

async function guard(fn: () => Promise<number>, help: string): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    // parseArgs throws ERR_PARSE_ARGS_* errors (unknown option, missing value): usage errors too.
    const nodeCode = (err as { code?: unknown }).code;
    if (err instanceof UsageError || (typeof nodeCode === 'string' && nodeCode.startsWith(`ERR_PARSE_ARGS`))) {
      process.stderr.write(`cascaded: ${(err as Error).message}\n${help.split('\n').slice(2, 6).join('\n')}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return err.code === 'CFG_ERR_READ' ? 1 : 2;
    }
    if (isCascadedError(err)) {
      process.stderr.write(`cascaded: ${err.code}: ${err.message}\n`);
      return err.status < 500 && err.code !== 'STORE_ERR_NOT_FOUND' ? 2 : 1;
    }
    throw err;
  }
}
