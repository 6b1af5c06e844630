/**
 * The report as one self-contained HTML page: no external assets (styles
 * inline, the chart inline SVG, no script), UTF-8 declared first so
 * Vietnamese names render, print CSS for A4. Every text from the store is
 * escaped.
 */
import type { Figure, QualityFigures, SessionReport } from './report.js';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (v: unknown): string =>
  v === null || v === undefined ? '–' : String(v).replace(/[&<>"']/g, (c) => ESC[c]!);

/** Wall time as Hà Nội reads it (UTC+7, no daylight saving), for people; the JSON keeps ISO 8601 UTC. */
function local(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '–';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return esc(iso);
  const d = new Date(t + 7 * 3_600_000).toISOString();
  return `${d.slice(8, 10)}/${d.slice(5, 7)}/${d.slice(0, 4)} ${d.slice(11, 19)}`;
}

const STATE_CLASS: Record<string, string> = {
  met: 'ok',
  done: 'ok',
  ok: 'ok',
  missed: 'bad',
  failed: 'bad',
  failing: 'bad',
};
const cls = (state: string) => STATE_CLASS[state] ?? 'mid';
const ms = (n: number | null) => (n === null ? '–' : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`);

/**
 * Chair-command latencies against the 30-second rule: one bar per command on a logarithmic scale (the rule
 * is some three orders of magnitude above a healthy switch, which a linear axis would flatten to nothing).
 */
export function chairChart(rep: SessionReport): string {
  const W = 640;
  const H = 220;
  const left = 56;
  const bottom = 28;
  const top = 14;
  const lo = 1; // ms
  const hi = 100_000; // ms
  const y = (v: number) => {
    const c = Math.min(Math.max(v, lo), hi);
    return top + (H - top - bottom) * (1 - (Math.log10(c) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)));
  };
  const cmds = rep.chair.commands;
  const n = Math.max(cmds.length, 1);
  const slot = (W - left - 10) / n;
  const bw = Math.max(2, Math.min(28, slot * 0.7));
  const ticks = [1, 10, 100, 1_000, 10_000, 100_000]
    .map(
      (t) =>
        `<line x1="${left}" x2="${W - 10}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" class="grid"/>` +
        `<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t >= 1000 ? `${t / 1000} s` : `${t} ms`}</text>`,
    )
    .join('');
  const bars = cmds
    .map((c, i) => {
      const x = left + slot * i + (slot - bw) / 2;
      const top = y(c.ms);
      const klass = c.withinRule ? 'bar' : 'bar over';
      return (
        `<rect class="${klass}" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${(H - bottom - top).toFixed(1)}">` +
        `<title>${esc(c.name ?? c.endpoint ?? 'default layout')}: ${esc(ms(c.ms))} (${esc(c.outcome)})</title></rect>` +
        `<text x="${(x + bw / 2).toFixed(1)}" y="${H - bottom + 14}" text-anchor="middle">${i + 1}</text>`
      );
    })
    .join('');
  const rule = y(rep.chair.ruleMs).toFixed(1);
  return (
    `<svg id="chair-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Chair-command latencies against the 30-second rule">` +
    `<rect x="${left}" y="${top}" width="${W - left - 10}" height="${H - top - bottom}" class="frame"/>${ticks}${bars}` +
    `<line x1="${left}" x2="${W - 10}" y1="${rule}" y2="${rule}" class="rule"/>` +
    `<text x="${W - 14}" y="${(Number(rule) - 5).toFixed(1)}" text-anchor="end" class="rule-label">30 s (Decision 1594 II.1.6)</text>` +
    (cmds.length === 0 ? `<text x="${(W + left) / 2}" y="${H / 2}" text-anchor="middle">no chair command</text>` : '') +
    '</svg>'
  );
}

const table = (head: readonly string[], rows: readonly string[][], klass = ''): string =>
  `<table${klass === '' ? '' : ` class="${klass}"`}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>` +
  `<tbody>${rows.map((r) => `<tr>${r.join('')}</tr>`).join('')}</tbody></table>`;
const td = (v: unknown, klass = '') => `<td${klass === '' ? '' : ` class="${klass}"`}>${esc(v)}</td>`;
const tdRaw = (html: string, klass = '') => `<td${klass === '' ? '' : ` class="${klass}"`}>${html}</td>`;

/** Where a call is marked (our thresholds): loss over 1% shows in video; 50 ms is ITU-T Y.1541's delay-variation bound for its interactive classes. */
const LOSS_BAD_PCT = 1;
const JITTER_BAD_MS = 50;
const fig = (f: Figure | null | undefined, unit: string) => (f == null ? '–' : `${f.mean} ${unit} (${f.worst})`);
const qualityCells = (q: QualityFigures | null) => [
  td(fig(q?.lossPercent, '%'), (q?.lossPercent?.worst ?? 0) > LOSS_BAD_PCT ? 'num bad' : 'num'),
  td(fig(q?.jitterMs, 'ms'), (q?.jitterMs?.worst ?? 0) > JITTER_BAD_MS ? 'num bad' : 'num'),
  td(fig(q?.bitrateKbps, 'kbit/s'), 'num'),
];

const STYLE = `
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Noto Sans", Arial, sans-serif; font-size: 10.5pt; color: #111; margin: 0 auto; max-width: 190mm; padding: 8mm 0; }
h1 { font-size: 16pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm; page-break-inside: auto; }
tr { page-break-inside: avoid; }
thead { display: table-header-group; }
th, td { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #0a6b1f; font-weight: bold; }
.bad { color: #b00020; font-weight: bold; }
.mid { color: #8a5a00; }
dl.meta { display: grid; grid-template-columns: 38mm 1fr; gap: 0.5mm 3mm; margin: 2mm 0; }
dl.meta dt { font-weight: bold; }
dl.meta dd { margin: 0; }
.verdict { font-size: 12pt; margin: 2mm 0; }
svg { max-width: 100%; height: auto; font-size: 10px; }
svg .frame { fill: #fafafa; stroke: #999; }
svg .grid { stroke: #ddd; }
svg .bar { fill: #2b6cb0; }
svg .bar.over { fill: #b00020; }
svg .rule { stroke: #b00020; stroke-width: 2; stroke-dasharray: 6 3; }
svg .rule-label { fill: #b00020; font-weight: bold; }
.note { color: #555; font-size: 9pt; }
@media print { body { padding: 0; max-width: none; } h2 { break-after: avoid; } }
`;

export function reportHtml(rep: SessionReport): string {
  const s = rep.session;
  const t = rep.timeline;
  const deadlines = table(
    ['Deadline', 'Due', 'State', 'At', 'At risk since', 'Rule'],
    t.deadlines.map((d) => [
      td(d.name),
      td(local(d.dueAt)),
      td(d.state, cls(d.state)),
      td(local(d.at)),
      td(local(d.atRiskAt)),
      td(d.rule),
    ]),
  );
  const steps = table(
    ['Step', 'Due', 'State', 'Ran', 'Late'],
    t.steps.map((x) => [
      td(x.step),
      td(local(x.dueAt)),
      td(x.state, cls(x.state)),
      td(local(x.ranAt)),
      td(
        x.lateMs === null ? '–' : x.lateMs === 0 ? 'on time' : `${Math.round(x.lateMs / 1000)} s`,
        (x.lateMs ?? 0) > 60_000 ? 'bad' : '',
      ),
    ]),
  );
  const units = table(
    ['Unit', 'Acknowledged', 'Within 15 minutes'],
    rep.units.map((u) => [
      td(u.name),
      td(local(u.ack)),
      td(
        u.withinRule === null ? 'no acknowledgement' : u.withinRule ? 'yes' : 'no',
        u.withinRule === true ? 'ok' : 'bad',
      ),
    ]),
  );
  const provinces = table(
    ['Province', 'Endpoints', 'Tested', 'OK', 'Failing', 'Untested', 'Connected'],
    [
      ...rep.checks.provinces.map((p) => [
        td(p.name),
        td(p.endpoints, 'num'),
        td(p.tested, 'num'),
        td(p.ok, 'num'),
        td(p.failing, p.failing > 0 ? 'num bad' : 'num'),
        td(p.untested, 'num'),
        td(p.connected, 'num'),
      ]),
      [
        tdRaw('<b>Total</b>'),
        td(rep.checks.totals.endpoints, 'num'),
        td(rep.checks.totals.tested, 'num'),
        td(rep.checks.totals.ok, 'num'),
        td(rep.checks.totals.failing, 'num'),
        td(rep.checks.totals.untested, 'num'),
        td(rep.checks.totals.connected, 'num'),
      ],
    ],
  );
  const endpoints = table(
    [
      'Endpoint',
      'Name',
      'Province',
      'MCU',
      'Depth',
      'Checks',
      'Connected',
      'Link drops',
      'Call drops',
      'Away',
      'Chair',
      'Loss',
      'Jitter',
      'Bitrate',
    ],
    rep.endpoints.map((e) => [
      td(e.endpoint),
      td(e.name),
      td(e.provinceName),
      td(e.mcu),
      td(e.depth, 'num'),
      td(e.verdict, cls(e.verdict)),
      td(e.connected === null ? '–' : e.connected ? 'yes' : 'no', e.connected === false ? 'bad' : ''),
      td(e.drops, e.drops > 0 ? 'num bad' : 'num'),
      td(e.calls.drops, e.calls.drops > 0 ? 'num bad' : 'num'),
      td(e.calls.disconnectedMs === 0 ? '–' : ms(e.calls.disconnectedMs), 'num'),
      td(e.chairCommands, 'num'),
      ...qualityCells(e.quality),
    ]),
  );
  const q = rep.quality;
  const quality =
    q === null
      ? '<p>No MCU of this session reported call quality (RFC 6035 reports: <code>daemon.mcu.qualityReports</code>).</p>'
      : `<p>${q.reports} report${q.reports === 1 ? '' : 's'}. Each cell: the mean over the session, the worst report in brackets (the lowest bitrate); loss over ${LOSS_BAD_PCT}% or jitter over ${JITTER_BAD_MS} ms in red.</p>
${table(
  ['Province', 'Endpoints reporting', 'Loss', 'Jitter', 'Bitrate'],
  [
    ...q.provinces.map((p) => [td(p.name), td(p.endpoints, 'num'), ...qualityCells(p)]),
    [
      tdRaw('<b>All endpoints</b>'),
      td(
        q.provinces.reduce((n, p) => n + p.endpoints, 0),
        'num',
      ),
      ...qualityCells(q.endpoints),
    ],
    ...(q.links === null ? [] : [[tdRaw('<b>Cascade links</b>'), td('', 'num'), ...qualityCells(q.links)]]),
  ],
)}`;
  const links =
    rep.links.length === 0
      ? '<p>No cascade link event recorded.</p>'
      : table(
          ['Link', 'Drops', 'Failures', 'Loss', 'Jitter', 'Bitrate', 'Events'],
          rep.links.map((l) => [
            td(`${l.child} → ${l.parent}`),
            td(l.drops, l.drops > 0 ? 'num bad' : 'num'),
            td(l.failures, 'num'),
            ...qualityCells(l.quality),
            td(
              l.events
                .map((e) => `${local(e.at)} ${e.state}${e.detail === undefined ? '' : ` (${e.detail})`}`)
                .join('; '),
            ),
          ]),
        );
  const c = rep.chair;
  const commands = table(
    ['#', 'At', 'Endpoint', 'Outcome', 'Latency', 'Within 30 s'],
    c.commands.map((x, i) => [
      td(i + 1, 'num'),
      td(local(x.at)),
      td(x.name ?? 'default layout'),
      td(x.outcome, x.outcome === 'ok' ? 'ok' : 'bad'),
      td(ms(x.ms), 'num'),
      td(x.withinRule ? 'yes' : 'no', x.withinRule ? 'ok' : 'bad'),
    ]),
  );
  const verdict =
    t.missed === 0 && c.overRule === 0
      ? '<p class="verdict ok">Every deadline met; every chair command within 30 seconds.</p>'
      : `<p class="verdict bad">${t.missed} deadline${t.missed === 1 ? '' : 's'} missed; ${c.overRule} chair command${c.overRule === 1 ? '' : 's'} failed or over 30 seconds.</p>`;
  return `<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(s.title)}: báo cáo chất lượng phiên họp</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(s.title)}</h1>
<p>Báo cáo chất lượng phiên họp trực tuyến (Quyết định 1594/QĐ-BTTTT, II.1.7): session quality report</p>
<dl class="meta">
<dt>Session</dt><dd>${esc(s.id)} (${esc(s.kind === 'planned' ? 'planned' : 'ad-hoc')}, ${esc(s.level)})</dd>
<dt>Requested by</dt><dd>${esc(s.requester)}, ${local(s.requestedAt)}</dd>
<dt>Root MCU, chair</dt><dd>${esc(s.root)}, ${esc(s.chair)}</dd>
<dt>Rehearsal</dt><dd>${local(s.rehearsalAt)}</dd>
<dt>Official time</dt><dd>${local(s.startsAt)} to ${local(s.endsAt)} (Hà Nội time, UTC+7)</dd>
<dt>Endpoints</dt><dd>${s.endpoints}</dd>
<dt>Status</dt><dd>${esc(s.status)}</dd>
<dt>Generated</dt><dd>${local(rep.generatedAt)}</dd>
</dl>
${verdict}
<h2>Deadlines (${t.met} met, ${t.missed} missed, ${t.pending} pending)</h2>
${deadlines}
<h2>Timeline: the daemon's steps</h2>
${steps}
<h2>Units: acknowledgement of the notification</h2>
${units}
<h2>Chair commands against the 30-second rule</h2>
<p>${c.commands.length} command${c.commands.length === 1 ? '' : 's'}: ${c.ok} ok, ${c.failed} failed; median ${ms(c.medianMs)}, slowest ${ms(c.maxMs)}.</p>
${chairChart(rep)}
${commands}
<h2>Per province: endpoint checks</h2>
${provinces}
<h2>Call quality as the MCUs reported it</h2>
${quality}
<h2>Cascade links (${rep.drops} drop${rep.drops === 1 ? '' : 's'})</h2>
${links}
<h2>Per endpoint</h2>
${endpoints}
<p class="note">Link drops count the cascade links on an endpoint's path to the root that went down during the session; call drops its own call leaving its room, and Away how long it was out. Quality figures are the MCUs' RFC 6035 reports: the worse of the two directions of each call.</p>
</body>
</html>
`;
}
