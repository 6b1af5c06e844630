/**
 * A real Prometheus (Debian package `prometheus`) scrapes the API over HTTPS
 * and the test reads cascaded_ series back through Prometheus's HTTP API;
 * every expression of the alert rules and of the Grafana dashboard is
 * evaluated by that Prometheus; promtool checks and unit-tests the rules.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { TypedEmitter } from '../../src/core/index.js';
import type { CascadeSessionEvent, MeteredQuality } from '../../src/metrics/index.js';
import { startHarness } from '../api/harness.js';
import { freePort, have } from './sip-peers.js';

const RULES = resolve('config/prometheus/alerts.yml');
const DASHBOARD = resolve('config/grafana/cascaded.json');

if (!have('prometheus') || !have('promtool')) {
  if (process.env.CI === 'true') t.fail('prometheus and promtool are required in CI (Debian package prometheus)');
  else t.plan(0, 'prometheus is not installed (Debian package prometheus): skipping the Prometheus interop tests');
} else {
  t.test('promtool check rules and test rules', async (t) => {
    t.match(execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' }), /SUCCESS: \d+ rules found/);
    const out = execFileSync('promtool', ['test', 'rules', 'alerts.test.yml'], {
      cwd: resolve('config/prometheus'),
      encoding: 'utf8',
    });
    t.match(out, /SUCCESS/);
  });

  t.test('Prometheus scrapes /metrics and evaluates every rule and panel', async (t) => {
    const h = await startHarness(t);
    // Something to count: API requests, and an audit chain walk.
    await h.call('GET', '/v1/mcus', { token: h.tokens.viewer });
    h.metrics.setAuditChain(await h.store.verifyAudit());
    h.events.safeEmit('chair', { session: 's', endpoint: 'e', outcome: 'ok', ms: 420 });
    // Call quality reports as the cascade manager passes them on: a link's (2% loss, as its parent received
    // it) and an endpoint's.
    const quality = new TypedEmitter<{ quality: [MeteredQuality]; session: [CascadeSessionEvent] }>();
    h.metrics.watchQuality(quality);
    const link = { child: 'nb', parent: 'master' };
    quality.safeEmit('quality', { session: 's', mcu: 'nb', link, report: { remote: { lossPercent: 2, jitterMs: 9 } } });
    quality.safeEmit('quality', {
      session: 's',
      mcu: 'nb',
      endpoint: 'nb-x1',
      report: { local: { lossPercent: 0.3 } },
    });

    const caFile = join(h.dir, 'ca.pem');
    writeFileSync(caFile, h.ca);
    const port = await freePort();
    const target = new URL(h.url);
    const config = join(h.dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(RULES)}]`,
        'scrape_configs:',
        '  - job_name: cascaded',
        '    scheme: https',
        `    tls_config: { ca_file: ${JSON.stringify(caFile)} }`,
        `    static_configs: [{ targets: ["${target.host}"] }]`,
        '',
      ].join('\n'),
    );
    const prom: ChildProcess = spawn(
      'timeout',
      [
        '120',
        'prometheus',
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(h.dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    prom.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    t.teardown(() => {
      prom.kill('SIGTERM');
    });
    const api = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return (await res.json()) as { status: string; data: { result?: unknown[]; groups?: unknown[] }; error?: string };
    };
    const until = async <T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> => {
      const deadline = Date.now() + ms;
      for (;;) {
        try {
          const v = await fn();
          if (v !== undefined) return v;
        } catch {
          // Prometheus not listening yet.
        }
        if (Date.now() > deadline || prom.exitCode !== null) throw new Error(`${what} not seen; prometheus: ${stderr}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    const up = await until('cascaded_mcu_up series', async () => {
      const r = await api('/api/v1/query?query=cascaded_mcu_up');
      return r.data.result !== undefined && r.data.result.length === 3 ? r.data.result : undefined;
    });
    t.same(
      (up as { metric: { mcu: string }; value: [number, string] }[]).map((s) => [s.metric.mcu, s.value[1]]).sort(),
      [
        ['master', '1'],
        ['nb', '1'],
        ['qb-vnpt-1', '1'],
      ],
      'every MCU up, read back through Prometheus',
    );
    const target1 = await api('/api/v1/query?query=up{job="cascaded"}');
    t.match(target1.data.result, [{ value: [Number, '1'] }], 'the HTTPS scrape works');
    const sip = await api('/api/v1/query?query=sum(cascaded_sip_transactions_total{method="OPTIONS"})');
    t.ok(Number((sip.data.result as { value: [number, string] }[])[0]?.value[1]) > 0, 'SIP transactions counted');
    const chair = await api('/api/v1/query?query=cascaded_chair_switch_duration_seconds_count');
    t.match(chair.data.result, [{ value: [Number, '1'] }]);
    const apiReq = await api(
      `/api/v1/query?query=${encodeURIComponent('cascaded_api_requests_total{route="/v1/mcus",status="200"}')}`,
    );
    t.match(apiReq.data.result, [{ metric: { method: 'GET' }, value: [Number, '1'] }]);
    t.match((await api('/api/v1/query?query=process_resident_memory_bytes')).data.result, [{}], 'process defaults');
    t.match(
      (await api('/api/v1/query?query=cascaded_link_packet_loss_ratio')).data.result,
      [{ metric: { session: 's', child: 'nb', parent: 'master' }, value: [Number, '0.02'] }],
      "a cascade link's packet loss, read back through Prometheus",
    );
    const endpointLoss = await api(
      `/api/v1/query?query=${encodeURIComponent('cascaded_endpoint_packet_loss_ratio_bucket{mcu="nb",le="0.005"}')}`,
    );
    t.match(endpointLoss.data.result, [{ value: [Number, '1'] }], "an endpoint's report in its MCU's histogram");

    // Every alert expression and dashboard expression is valid PromQL over these metrics.
    const rules = parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const exprs: [string, string][] = rules.groups.flatMap((g) =>
      g.rules.map((r): [string, string] => [`alert ${r.alert}`, r.expr]),
    );
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    for (const p of dash.panels) for (const x of p.targets) exprs.push([`panel ${p.title}`, x.expr]);
    for (const [name, expr] of exprs) {
      const q = expr.replaceAll('$mcu', '.*').replaceAll('$__rate_interval', '1m');
      const r = await api(`/api/v1/query?query=${encodeURIComponent(q)}`);
      t.equal(r.status, 'success', `${name}: ${r.error ?? 'ok'}`);
    }
    // Prometheus loaded the rule file and evaluates every rule without error.
    const groups = await until('rule evaluation', async () => {
      const r = await api('/api/v1/rules');
      const rs = (r.data.groups as { rules: { health: string }[] }[] | undefined)?.flatMap((g) => g.rules) ?? [];
      return rs.length > 0 && rs.every((x) => x.health === 'ok') ? rs : undefined;
    });
    t.equal(groups.length, exprs.length - dash.panels.length);
  });
}
