import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { TypedEmitter } from '../../src/core/index.js';
import type { McuDriverEvents } from '../../src/mcu/index.js';
import {
  type CascadeLinkEvent,
  type CascadeSessionEvent,
  type ChairEvent,
  createMetrics,
  type MeteredQuality,
  type TransactionEvent,
} from '../../src/metrics/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';

class FakeDriver extends TypedEmitter<McuDriverEvents> {
  health = { up: true };
  capabilities = { conferenceEvents: 'missing' };
  roster = new Map<string, { kind: string; status: string }>();
  readonly conferences = new Map([['lobby', { roster: this.roster }]]);
  constructor(readonly mcuId: string) {
    super();
  }
}

const sample = (text: string, name: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');

t.test('metrics follow the events they subscribe to and the state read at scrape time', async (t) => {
  const o = baseConfig();
  o.endpoints[2].sip = 'sip:nb-h1@ep.invalid';
  o.endpoints[3].sip = 'sip:nb-x1@ep.invalid';
  const inv = parseConfig(toYaml(o)).inventory;
  const store = await openSqliteStore({ path: ':memory:' });
  t.teardown(() => store.close());
  await store.createSession({
    id: 's1',
    kind: 'planned',
    title: 'x',
    state: 'planned',
    startsAt: '2030-01-01T00:00:00Z',
  });
  const m = createMetrics({ inventory: inv, store });
  const nb = new FakeDriver('nb');
  const master = new FakeDriver('master');
  master.capabilities = { conferenceEvents: 'available' };
  nb.health = { up: false };
  m.watchDrivers([master, nb]);
  nb.roster.set('sip:nb-h1@ep.invalid', { kind: 'endpoint', status: 'connected' });
  nb.roster.set('sip:conf@master', { kind: 'link', status: 'connected' });

  nb.safeEmit('link', { target: 'sip:conf@master', state: 'connected' });
  nb.safeEmit('link', { target: 'sip:conf@master', state: 'disconnected', reason: 'BYE' });
  nb.safeEmit('link', { target: 'sip:conf@master', state: 'dialing' });
  const sip = new TypedEmitter<{ transaction: [TransactionEvent] }>();
  m.watchTransactions(sip);
  sip.safeEmit('transaction', { role: 'uac', method: 'INFO', status: 200, durationMs: 40 });
  sip.safeEmit('transaction', { role: 'uac', method: 'INFO', status: 408, durationMs: 32_000 });
  const chair = new TypedEmitter<{ chair: [ChairEvent] }>();
  m.watchChair(chair);
  chair.safeEmit('chair', { outcome: 'ok', ms: 800 });
  chair.safeEmit('chair', { outcome: 'ok', ms: 31_000 });
  chair.safeEmit('chair', { outcome: 'ERR_DEADLINE', ms: 30_000 });
  m.setAuditChain({ ok: true, checked: 7 });
  m.storeCheckpoint({ ms: 30 });
  m.storeCheckpoint({ ms: 40, finishedMs: 3 });

  const text = await m.render();
  t.match(sample(text, 'cascaded_mcu_up'), /cascaded_mcu_up\{mcu="nb",role="slave",operator="nb"\} 0/);
  t.match(text, /cascaded_mcu_up\{mcu="master",role="master",operator="cuc"\} 1/);
  t.match(text, /cascaded_mcu_conference_events\{mcu="nb"\} 0/);
  t.match(text, /cascaded_cascade_links\{state="dialing"\} 1/);
  t.match(text, /cascaded_cascade_links\{state="up"\} 0/);
  t.match(text, /cascaded_cascade_redials_total\{mcu="nb"\} 1/);
  t.match(text, /cascaded_cascade_link_down_since_seconds\{mcu="nb",target="sip:conf@master"\} \d/);
  t.match(text, /cascaded_sip_transactions_total\{method="INFO",role="uac",status_class="4xx"\} 1/);
  t.match(text, /cascaded_sip_transaction_duration_seconds_bucket\{le="0.05",method="INFO",role="uac"\} 1/);
  t.match(text, /cascaded_chair_slo_violations_total 2/, 'one too slow, one failed');
  t.match(text, /cascaded_chair_switch_duration_seconds_count\{outcome="ok"\} 2/);
  t.match(text, /cascaded_endpoints_connected\{level="district",province="ninh-binh"\} 1/);
  t.notMatch(text, /cascaded_endpoints_connected\{level="commune"/, 'nobody of a commune yet');
  t.match(text, /cascaded_sessions\{phase="planned"\} 1/);
  t.match(text, /cascaded_session_start_timestamp_seconds\{session="s1"\} 1893456000/);
  t.match(text, /cascaded_session_ready\{session="s1"\} 0/);
  t.match(text, /cascaded_audit_chain_ok 1/);
  t.match(text, /cascaded_store_wal_checkpoint_seconds_count\{thread="worker"\} 2/);
  t.match(text, /cascaded_store_wal_checkpoint_seconds_bucket\{le="0.005",thread="daemon"\} 1/);
  t.match(text, /process_cpu_seconds_total/);
  for (const line of text.split('\n')) {
    const name = /^(cascaded_[a-z_]+)/.exec(line)?.[1];
    if (name !== undefined) t.notMatch(name, /_ms$|_millis/, `${name}: units in seconds`);
  }

  nb.safeEmit('link', { target: 'sip:conf@master', state: 'connected' });
  t.notMatch(await m.render(), /cascaded_cascade_link_down_since_seconds\{/, 'a link back up is no longer down');

  // Dialled into a session's room: out of the lobby (or left there as disconnected), counted once.
  nb.roster.set('sip:nb-h1@ep.invalid', { kind: 'endpoint', status: 'disconnected' });
  const room = new Map([
    ['sip:nb-h1@ep.invalid', { kind: 'endpoint', status: 'connected' }],
    ['sip:nb-x1@ep.invalid', { kind: 'endpoint', status: 'connected' }],
  ]);
  nb.conferences.set('sip:8001@nb', { roster: room });
  master.conferences.set('sip:8001@master', { roster: new Map(room) });
  const rooms = await m.render();
  t.match(rooms, /cascaded_endpoints_connected\{level="district",province="ninh-binh"\} 1/);
  t.match(rooms, /cascaded_endpoints_connected\{level="commune",province="ninh-binh"\} 1/);

  // Links of sessions' cascades, as the cascade manager reports them.
  const cascade = new TypedEmitter<{ link: [CascadeLinkEvent] }>();
  m.watchCascade(cascade);
  cascade.safeEmit('link', { session: 's1', child: 'qb-vnpt-1', parent: 'nb', state: 'planned' });
  cascade.safeEmit('link', { session: 's1', child: 'qb-vnpt-1', parent: 'nb', state: 'dialing' });
  cascade.safeEmit('link', { session: 's1', child: 'qb-vnpt-1', parent: 'nb', state: 'up' });
  let after = await m.render();
  t.match(after, /cascaded_cascade_links\{state="up"\} 2/, "the driver's link and the session's");
  t.notMatch(after, /cascaded_cascade_redials_total\{mcu="qb-vnpt-1"\}/, 'a first dial is no redial');
  cascade.safeEmit('link', { session: 's1', child: 'qb-vnpt-1', parent: 'nb', state: 'failed' });
  cascade.safeEmit('link', { session: 's1', child: 'qb-vnpt-1', parent: 'nb', state: 'dialing' });
  after = await m.render();
  t.match(after, /cascaded_cascade_redials_total\{mcu="qb-vnpt-1"\} 1/);
  t.match(after, /cascaded_cascade_link_down_since_seconds\{mcu="qb-vnpt-1",target="nb"\} \d/);
});

t.test(
  'call quality: per cascade link the worse end and direction, per MCU a histogram of its endpoints',
  async (t) => {
    const inv = parseConfig(toYaml(baseConfig())).inventory;
    const m = createMetrics({ inventory: inv });
    const cascade = new TypedEmitter<{
      link: [CascadeLinkEvent];
      quality: [MeteredQuality];
      session: [CascadeSessionEvent];
    }>();
    m.watchCascade(cascade);
    m.watchQuality(cascade);
    const link = { child: 'nb', parent: 'master' };
    const series = (name: string, session: string, value: number) =>
      new RegExp(`${name}\\{session="${session}",child="nb",parent="master"\\} ${value}\\n`);
    cascade.safeEmit('link', { session: 's1', ...link, state: 'up' });
    t.notMatch(await m.render(), /cascaded_link_packet_loss_ratio\{/, 'no series before a report');

    // The child's report: 0.5% loss received, 2% as the parent received it (its RTCP XR); 12 ms jitter.
    cascade.safeEmit('quality', {
      session: 's1',
      mcu: 'nb',
      link,
      report: { local: { lossPercent: 0.5, jitterMs: 12 }, remote: { lossPercent: 2, jitterMs: 4 } },
    });
    // The parent's own report about the same call: less loss, more jitter. Each figure is the worse end's.
    cascade.safeEmit('quality', {
      session: 's1',
      mcu: 'master',
      link,
      report: { local: { lossPercent: 1, jitterMs: 30 } },
    });
    let text = await m.render();
    t.match(text, series('cascaded_link_packet_loss_ratio', 's1', 0.02));
    t.match(text, series('cascaded_link_jitter_seconds', 's1', 0.03));
    // A later report of an end replaces its own figures only.
    cascade.safeEmit('quality', { session: 's1', mcu: 'nb', link, report: { local: { lossPercent: 0 } } });
    text = await m.render();
    t.match(text, series('cascaded_link_packet_loss_ratio', 's1', 0.01), "now the parent's figure");
    t.match(text, series('cascaded_link_jitter_seconds', 's1', 0.03), 'the jitter it did not give stays');

    // Endpoints: one histogram per reporting MCU, never a series per endpoint.
    for (const [endpoint, loss] of [
      ['nb-h1', 0],
      ['nb-x1', 3],
      ['nb-x1', 0.4],
    ] as const) {
      cascade.safeEmit('quality', {
        session: 's1',
        mcu: 'nb',
        endpoint,
        report: { local: { lossPercent: loss, jitterMs: 8 }, remote: { lossPercent: Number.NaN } },
      });
    }
    text = await m.render();
    t.match(text, /cascaded_endpoint_packet_loss_ratio_bucket\{le="0.001",mcu="nb"\} 1\n/);
    t.match(text, /cascaded_endpoint_packet_loss_ratio_bucket\{le="0.005",mcu="nb"\} 2\n/);
    t.match(text, /cascaded_endpoint_packet_loss_ratio_bucket\{le="0.05",mcu="nb"\} 3\n/);
    t.match(text, /cascaded_endpoint_packet_loss_ratio_count\{mcu="nb"\} 3\n/);
    t.match(text, /cascaded_endpoint_jitter_seconds_bucket\{le="0.005",mcu="nb"\} 0\n/);
    t.match(text, /cascaded_endpoint_jitter_seconds_bucket\{le="0.01",mcu="nb"\} 3\n/);
    t.notMatch(text, /nb-x1/, 'no endpoint label');

    // A link no longer up loses its figures; a report of the new call brings them back; an ended session's go.
    cascade.safeEmit('link', { session: 's1', ...link, state: 'dialing' });
    t.notMatch(await m.render(), /cascaded_link_packet_loss_ratio\{/, 'gone while the link is redialled');
    cascade.safeEmit('quality', { session: 's1', mcu: 'nb', link, report: { local: { lossPercent: 5 } } });
    cascade.safeEmit('quality', { session: 's2', mcu: 'nb', link, report: { local: { lossPercent: 1 } } });
    text = await m.render();
    t.match(text, series('cascaded_link_packet_loss_ratio', 's1', 0.05));
    t.notMatch(text, /cascaded_link_jitter_seconds\{session="s1"/, 'no jitter reported for the new call');
    // Re-planned under another parent while up (no link event): the new call's figures only.
    cascade.safeEmit('quality', {
      session: 's2',
      mcu: 'nb',
      link: { child: 'nb', parent: 'qb-vnpt-1' },
      report: { local: { jitterMs: 20 } },
    });
    text = await m.render();
    t.notMatch(text, /cascaded_link_packet_loss_ratio\{session="s2"/, "the old parent's loss is not the new call's");
    t.match(text, /cascaded_link_jitter_seconds\{session="s2",child="nb",parent="qb-vnpt-1"\} 0.02\n/);
    cascade.safeEmit('quality', { session: 's2', mcu: 'nb', link, report: { local: { lossPercent: 1 } } });
    cascade.safeEmit('session', { session: 's1', kind: 'ended' });
    text = await m.render();
    t.notMatch(text, /cascaded_link_packet_loss_ratio\{session="s1"/, 'the ended session has no series');
    t.match(text, series('cascaded_link_packet_loss_ratio', 's2', 0.01), 'the other stays');
  },
);
