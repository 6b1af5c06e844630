/**
 * Endpoint checks (Decision 1594 II.1.4-5): each unit records its endpoints'
 * test results, the daemon records what it sees itself; the per-province
 * summary of the procedure's template, its CSV, and the endpoints to test
 * again. Pure: records in, tables out.
 */
import type { Inventory } from '../inventory/index.js';
import type { LifecycleCheckRecord } from '../store/index.js';

export interface EndpointChecks {
  readonly endpoint: string;
  readonly name: string;
  readonly level: string;
  readonly province: string | null;
  /** The unit's last check, and the daemon's. */
  readonly unit: LifecycleCheckRecord | null;
  readonly daemon: LifecycleCheckRecord | null;
  /** untested: no unit check; failing: a last check (either) failed; ok otherwise. */
  readonly verdict: 'ok' | 'failing' | 'untested';
}

export interface ProvinceSummary {
  /** The province id, or `central` for endpoints without one. */
  readonly province: string;
  readonly name: string;
  readonly endpoints: number;
  readonly tested: number;
  readonly ok: number;
  readonly failing: number;
  readonly untested: number;
  /** Connected as the daemon last saw them. */
  readonly connected: number;
}

export interface CheckSummary {
  readonly session: string;
  readonly provinces: readonly ProvinceSummary[];
  readonly totals: Omit<ProvinceSummary, 'province' | 'name'>;
  /** Endpoints failing a check: to test again. */
  readonly retest: readonly EndpointChecks[];
  readonly endpoints: readonly EndpointChecks[];
}

/** A check fails when any of its results is false (a result not given is not a failure). */
export const failed = (c: LifecycleCheckRecord | null): boolean =>
  c !== null && (c.connected === false || c.audio === false || c.video === false);

/** Each endpoint's last check per source. */
export function lastChecks(
  checks: readonly LifecycleCheckRecord[],
): Map<string, { unit: LifecycleCheckRecord | null; daemon: LifecycleCheckRecord | null }> {
  const out = new Map<string, { unit: LifecycleCheckRecord | null; daemon: LifecycleCheckRecord | null }>();
  for (const c of checks) {
    const e = out.get(c.endpoint) ?? { unit: null, daemon: null };
    e[c.source] = c;
    out.set(c.endpoint, e);
  }
  return out;
}

export function summarize(
  inventory: Inventory,
  session: string,
  endpoints: readonly string[],
  checks: readonly LifecycleCheckRecord[],
): CheckSummary {
  const byId = new Map(inventory.endpoints.map((e) => [e.id, e]));
  const provinceName = new Map(inventory.provinces.map((p) => [p.id, p.name]));
  const last = lastChecks(checks);
  const rows: EndpointChecks[] = endpoints.map((id) => {
    const e = byId.get(id);
    const l = last.get(id) ?? { unit: null, daemon: null };
    const verdict = failed(l.unit) || failed(l.daemon) ? 'failing' : l.unit === null ? 'untested' : 'ok';
    return {
      endpoint: id,
      name: e?.name ?? id,
      level: e?.level ?? 'unknown',
      province: e?.province ?? null,
      unit: l.unit,
      daemon: l.daemon,
      verdict,
    };
  });
  const groups = new Map<string, EndpointChecks[]>();
  for (const r of rows) {
    const k = r.province ?? 'central';
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const count = (rs: readonly EndpointChecks[]) => ({
    endpoints: rs.length,
    tested: rs.filter((r) => r.unit !== null).length,
    ok: rs.filter((r) => r.verdict === 'ok').length,
    failing: rs.filter((r) => r.verdict === 'failing').length,
    untested: rs.filter((r) => r.verdict === 'untested').length,
    connected: rs.filter((r) => r.daemon?.connected === true).length,
  });
  const provinces = [...groups.entries()]
    .map(([province, rs]) => ({ province, name: provinceName.get(province) ?? province, ...count(rs) }))
    .sort((a, b) =>
      a.province === 'central' ? -1 : b.province === 'central' ? 1 : a.name.localeCompare(b.name, 'vi'),
    );
  return {
    session,
    provinces,
    totals: count(rows),
    retest: rows.filter((r) => r.verdict === 'failing'),
    endpoints: rows,
  };
}

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
export function csvField(v: string | number | boolean | null | undefined): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const csvLine = (fields: readonly (string | number | boolean | null | undefined)[]): string =>
  `${fields.map(csvField).join(',')}\r\n`;

const yesNo = (v: boolean | null | undefined) => (v === null || v === undefined ? '' : v ? 'yes' : 'no');

/**
 * The summary as CSV (UTF-8 with a byte order mark, so spreadsheet programs read the Vietnamese names right):
 * one row per province, a totals row, then one row per endpoint.
 */
export function summaryCsv(s: CheckSummary): string {
  let out = '\uFEFF';
  out += csvLine(['province', 'name', 'endpoints', 'tested', 'ok', 'failing', 'untested', 'connected']);
  for (const p of s.provinces)
    out += csvLine([p.province, p.name, p.endpoints, p.tested, p.ok, p.failing, p.untested, p.connected]);
  const t = s.totals;
  out += csvLine(['total', '', t.endpoints, t.tested, t.ok, t.failing, t.untested, t.connected]);
  out += '\r\n';
  out += csvLine([
    'endpoint',
    'name',
    'level',
    'province',
    'verdict',
    'connected',
    'audio',
    'video',
    'notes',
    'checked_at',
    'checked_by',
    'daemon_connected',
    'daemon_notes',
    'daemon_at',
  ]);
  for (const r of s.endpoints)
    out += csvLine([
      r.endpoint,
      r.name,
      r.level,
      r.province,
      r.verdict,
      yesNo(r.unit?.connected),
      yesNo(r.unit?.audio),
      yesNo(r.unit?.video),
      r.unit?.notes,
      r.unit?.at,
      r.unit?.actor,
      yesNo(r.daemon?.connected),
      r.daemon?.notes,
      r.daemon?.at,
    ]);
  return out;
}
