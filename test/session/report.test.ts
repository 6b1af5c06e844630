/**
 * The report: its figures from what the store recorded (steps, deadlines,
 * acknowledgements, checks, cascade link events, chair commands), the CSV,
 * and the HTML page opened in a real headless browser (Debian's chromium
 * through playwright-core): no console error, the chart present, Vietnamese
 * names as written, a screenshot and an A4 PDF written to the test output
 * (dist/test-output/session-report/).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { CascadeManagerEvents, CascadeProgress, SessionRequest } from '../../src/cascade/index.js';
import { parseConfig } from '../../src/config/index.js';
import { FakeClock, TypedEmitter } from '../../src/core/index.js';
import { HOUR, MINUTE, reportHtml, startSessionLifecycle } from '../../src/session/index.js';
import { type CascadeHead, openSqliteStore, type Store } from '../../src/store/index.js';
import { BASE, nationalRequest, sessionNetwork } from './fixtures.js';

t.setTimeout(120_000);

const inventory = parseConfig(JSON.stringify(sessionNetwork('127.9.8.'))).inventory;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = join('dist', 'test-output', 'session-report');

/** Records admissions as the manager would (a cascade row with a plan); reports every link up at once. */
class RecordingCascade extends TypedEmitter<CascadeManagerEvents> {
  constructor(readonly store: Store) {
    super();
  }
  async admit(r: SessionRequest): Promise<CascadeHead> {
    const plan = {
      root: 'm',
      chair: 'chair',
      endpoints: r.endpoints,
      assignments: { chair: 'm', 'nb-room': 'nb', 'qb-room': 'qb', 'qb-x1': 'qb' },
      relays: {},
      depths: { chair: 0, 'nb-room': 1, 'qb-room': 1, 'qb-x1': 1 },
      links: { nb: 'm', qb: 'm' },
    };
    return this.store.createCascade(
      {
        session: { id: r.id!, kind: r.kind ?? 'adhoc', title: r.title ?? '' },
        root: 'm',
        request: r,
        plan,
        usage: {},
        rooms: {},
      },
      await this.store.cascadeGeneration(),
    );
  }
  async end(id: string): Promise<CascadeHead> {
    return this.store.setCascadeState(id, 'ending');
  }
  endpointsWithoutView(): number {
    return 0;
  }
  progress(id?: string): CascadeProgress[] {
    return id === undefined
      ? []
      : [
          {
            session: id,
            phase: 'live',
            root: 'm',
            counts: { planned: 0, dialing: 0, up: 2, failed: 0 },
            links: [],
            endpoints: { wanted: 4, in: 4 },
            viewsApplied: true,
          },
        ];
  }
}

t.test('the report of a session that ran', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'session-report-'));
  const store = await openSqliteStore({ path: join(dir, 'cascaded.db') });
  const clock = new FakeClock(BASE);
  const lc = await startSessionLifecycle({ store, inventory, cascade: new RecordingCascade(store), clock });
  t.teardown(async () => {
    await lc.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await lc.create(nationalRequest());
  clock.advance(3 * MINUTE);
  await lc.acknowledge('national', 'ninh-binh', 'op-nb');
  clock.advance(20 * MINUTE);
  await lc.acknowledge('national', 'quang-binh', 'op-qb');
  for (const e of ['chair', 'nb-room', 'qb-room'])
    await lc.recordCheck('national', { endpoint: e, connected: true, audio: true, video: true }, 'op');
  await lc.recordCheck('national', { endpoint: 'qb-x1', connected: true, audio: false, notes: 'Mất tiếng' }, 'op-qb');
  clock.advance(3 * HOUR);
  await lc.idle();
  // What the cascade manager and the daemon record during a session: a link dropped and redialled, chair commands.
  const ev = (type: string, data: unknown) => store.appendEvent({ type, subject: 'national', data });
  await ev('cascade.link.up', { child: 'qb', parent: 'm' });
  await ev('cascade.link.up', { child: 'nb', parent: 'm' });
  await ev('cascade.link.down', { child: 'qb', parent: 'm', detail: 'BYE from qb' });
  await ev('cascade.link.up', { child: 'qb', parent: 'm' });
  const latencies = [84.2, 61.5, 32_750, 120.9];
  for (const [i, ms] of latencies.entries())
    await ev('chair.command', { requestId: `r${i}`, endpoint: i === 1 ? 'nb-room' : 'qb-room', outcome: 'ok', ms });
  await ev('chair.command', { requestId: 'r9', endpoint: 'qb-x1', outcome: 'CHAIR_ERR_DEADLINE', ms: 30_000 });
  clock.advance(HOUR);
  await lc.idle();

  const rep = await lc.report('national');
  t.match(rep.session, { id: 'national', level: 'national', status: 'ended', requester: 'Văn phòng Chính phủ' });
  t.match(rep.timeline, { met: 2, missed: 3, pending: 0 });
  t.same(
    rep.timeline.deadlines.filter((d) => d.state === 'missed').map((d) => d.name),
    ['notify', 'tests', 'ready'],
    'Quảng Bình acknowledged late; its commune failed its test, so not ready either',
  );
  t.match(rep.units, [
    { unit: 'ninh-binh', name: 'Ninh Bình', withinRule: true },
    { unit: 'quang-binh', name: 'Quảng Bình', withinRule: false },
  ]);
  t.match(rep.chair, { ruleMs: 30_000, ok: 4, failed: 1, overRule: 2, maxMs: 32_750 });
  t.equal(rep.chair.medianMs, (84.2 + 120.9) / 2);
  t.equal(rep.drops, 1);
  t.match(rep.links, [
    { child: 'nb', drops: 0 },
    { child: 'qb', drops: 1 },
  ]);
  const byId = new Map(rep.endpoints.map((e) => [e.endpoint, e]));
  t.match(byId.get('qb-x1'), { drops: 1, verdict: 'failing', mcu: 'qb', provinceName: 'Quảng Bình', chairCommands: 1 });
  t.match(byId.get('nb-room'), { drops: 0, verdict: 'ok', chairCommands: 1 });
  t.match(byId.get('chair'), { drops: 0, depth: 0 });
  t.match(rep.checks.retest, [{ endpoint: 'qb-x1' }]);

  const csv = await lc.reportCsv('national');
  t.match(csv, /^\uFEFFsession,title,/);
  t.match(csv, /\r\nnotify,\S+,missed,/);
  t.match(csv, /\r\nqb-x1,Xã Quảng Phú,commune,quang-binh,qb,1,failing,,1,1,0,0,0,{9}\r\n/);

  const html = await lc.reportHtml('national');
  t.ok(html.startsWith('<!DOCTYPE html>'));
  t.match(html, /<meta charset="utf-8">/);
  t.notMatch(html, /(src|href)=|@import|url\(/, 'no external asset');
  t.match(html, /<svg id="chair-chart"/);
  t.equal((html.match(/<rect class="bar( over)?"/g) ?? []).length, 5, 'a bar per chair command');
  t.equal((html.match(/<rect class="bar over"/g) ?? []).length, 2, 'two over the rule');
  t.match(html, /Hội nghị trực tuyến toàn quốc về chuyển đổi số/);
  const escaped = reportHtml({ ...rep, session: { ...rep.session, title: '<script>alert(1)</script> & "x"' } });
  t.notMatch(escaped, /<script>/, 'text from the store is escaped');

  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, 'national.html');
  writeFileSync(file, html);

  if (!existsSync(CHROMIUM) && process.env.CI === 'true')
    t.fail(`chromium not found at ${CHROMIUM} (.ci/run installs it: apt-get install chromium)`);
  t.test(
    'in a headless browser',
    { skip: existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM}: apt-get install -y chromium` },
    (t) => inBrowser(t, file),
  );
});

async function inBrowser(t: Test, file: string): Promise<void> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 60_000 });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 900, height: 1200 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`file://${join(process.cwd(), file)}`, { waitUntil: 'load', timeout: 30_000 });
  t.same(errors, [], 'no console error');
  t.same(
    requests.filter((u) => !u.startsWith('file:')),
    [],
    'nothing fetched besides the page',
  );
  t.equal(await page.title(), 'Hội nghị trực tuyến toàn quốc về chuyển đổi số: báo cáo chất lượng phiên họp');
  t.equal(await page.locator('h1').textContent(), 'Hội nghị trực tuyến toàn quốc về chuyển đổi số', 'UTF-8 as written');
  const chart = await page.locator('#chair-chart').boundingBox();
  t.ok(chart !== null && chart.width > 300 && chart.height > 100, `the chart is drawn (${JSON.stringify(chart)})`);
  t.equal(await page.locator('#chair-chart rect.bar').count(), 5);
  t.match(await page.locator('body').textContent(), /Xã Quảng Phú/);
  await page.screenshot({ path: join(OUT, 'national.png'), fullPage: true });
  await page.emulateMedia({ media: 'print' });
  await page.pdf({ path: join(OUT, 'national.pdf'), format: 'A4', printBackground: true });
  t.ok(statSync(join(OUT, 'national.png')).size > 10_000, 'a screenshot written');
  t.ok(statSync(join(OUT, 'national.pdf')).size > 10_000, 'an A4 PDF written');
}
