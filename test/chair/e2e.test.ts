/**
 * Bring an endpoint to the chair, end to end: the simulator in its own
 * process, the daemon's parts here (drivers, store, cascade manager, chair
 * engine), a national session dialled by the cascade manager into rooms of
 * every MCU. Every outcome is read back from the simulator's display model
 * through its control interface: what the chair really sees and hears, and
 * what every other endpoint sees (the session's view, which the cascade
 * manager applies: the national session shows the speaker to everyone, the
 * others the chair).
 *
 *   m (master: chair, ubnd, chair2)
 *   ├── pa full ──────────────── va full                 (depth 2)
 *   ├── pb no-conference-events ─ vb full-state-only     (depth 2)
 *   ├── pc full-state-only
 *   └── pd challenging ────────── vd no-conference-events (depth 2)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { roomKey } from '../../src/cascade/index.js';
import type { ChairResult } from '../../src/chair/index.js';
import { isCascadedError } from '../../src/core/index.js';
import type { CascadeHead } from '../../src/store/index.js';
import { loopbackBase, until } from '../cascade/helpers.js';
import { type ChairWorld, chairWorld } from './harness.js';

t.setTimeout(600_000);

const MCUS = [
  { id: 'm', rooms: 4, ports: 60, cascadePorts: 8 },
  { id: 'pa', parents: ['m'], rooms: 4 },
  { id: 'pb', parents: ['m'], rooms: 4, profile: 'no-conference-events' as const },
  { id: 'pc', parents: ['m'], rooms: 4, profile: 'full-state-only' as const },
  { id: 'pd', parents: ['m'], rooms: 4 },
  { id: 'va', parents: ['pa'], rooms: 4 },
  { id: 'vb', parents: ['pb'], rooms: 4, profile: 'full-state-only' as const },
  { id: 'vd', parents: ['pd'], rooms: 4, profile: 'no-conference-events' as const },
];
const ENDPOINTS = [
  { id: 'chair', level: 'central', mcus: ['m'] },
  { id: 'ubnd', level: 'central', mcus: ['m'] },
  { id: 'pa-room', level: 'province', mcus: ['pa'] },
  { id: 'pa-x1', mcus: ['pa'] },
  { id: 'pb-room', level: 'province', mcus: ['pb'] },
  { id: 'pc-room', level: 'province', mcus: ['pc'] },
  { id: 'pd-room', level: 'province', mcus: ['pd'] },
  { id: 'va-h1', level: 'district', mcus: ['va'] },
  { id: 'va-x1', mcus: ['va'] },
  { id: 'vb-x1', mcus: ['vb'] },
  { id: 'vd-x1', mcus: ['vd'] },
  // A second session's own endpoints (an endpoint sits in one room at a time).
  { id: 'chair2', level: 'central', mcus: ['m'] },
  { id: 'pa-y1', mcus: ['pa'] },
  { id: 'pc-y1', mcus: ['pc'] },
  // The province of pa's own session, rooted at pa (chaired from its people's committee room).
  { id: 'pa-ubnd', level: 'province', mcus: ['pa'] },
  { id: 'pa-y2', level: 'district', mcus: ['pa'] },
  { id: 'va-y1', level: 'district', mcus: ['va'] },
  { id: 'va-y2', mcus: ['va'] },
];
const PROVINCIAL = ['pa-ubnd', 'pa-y2', 'va-y1', 'va-y2'];
const NATIONAL = ENDPOINTS.map((e) => e.id).filter((id) => !['chair2', 'pa-y1', 'pc-y1', ...PROVINCIAL].includes(id));
const SECRET = 'demo-only-secret';

let w: ChairWorld;
let national: CascadeHead;

t.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chair-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const secret = join(dir, 'pd.secret');
  writeFileSync(secret, `${SECRET}\n`);
  w = await chairWorld(dir, loopbackBase(), MCUS, ENDPOINTS, {
    mcuExtra: {
      pd: {
        sim: { profile: 'challenging', processingDelayMs: 5 },
        auth: { username: 'cascaded', passwordFile: secret },
      },
    },
    extraEndpoints: [{ id: 'pa-relay', name: 'pa-relay', level: 'commune', connection: 'relay', relayVia: 'pa-room' }],
    // No re-plan around the MCU a test silences for a few seconds.
    cascade: { replanAfterMs: 600_000 },
  });
  national = await w.parts.manager.admit({
    id: 'national',
    title: 'national',
    endpoints: [...NATIONAL, 'pa-relay'],
    chair: 'chair',
    view: 'speaker',
  });
  await up(national, NATIONAL);
  await everyoneSees(national, null);
});
t.teardown(() => w?.close());

/** Every link of the session up and every endpoint in one of its rooms, as the simulator says. */
async function up(head: CascadeHead, endpoints: readonly string[]): Promise<void> {
  const links = Object.keys(head.rooms).length - 1;
  await until(
    `${head.sessionId}: ${links} links up`,
    () => w.parts.manager.progress(head.sessionId)[0]?.counts.up === links,
    60_000,
  );
  const rooms = new Set(Object.values(head.rooms).map(roomKey));
  await until(
    `${head.sessionId}: every endpoint in its room`,
    async () => {
      for (const e of endpoints) {
        const v = (await w.control('GET', `/v1/endpoints/${e}/view`).catch(() => undefined)) as
          | { conference: string }
          | undefined;
        if (v === undefined || !rooms.has(roomKey(v.conference))) return false;
      }
      return true;
    },
    60_000,
  );
  // The chair resolves paths from what the MCUs told the daemon, which may come a moment after the simulator's
  // own view: ready once every endpoint's path resolves.
  const chair = w.parts.manager.session(head.sessionId)!.plan.chair;
  await until(
    `${head.sessionId}: every endpoint's path resolves`,
    () => endpoints.every((e) => e === chair || w.chair.preview(head.sessionId, e).ok),
    30_000,
  );
}

/**
 * What the session's view says an endpoint sees, written here from docs/cascade.md ("What everyone sees"):
 * the chair; or, in a speaker session while an endpoint is brought to the chair, that endpoint (a relayed
 * room: the room relaying it) large with the chair inset, except the speaker on the root itself, which sees
 * the chair (below the root one picture comes down each link, so the speaker sees what everyone sees).
 */
function sees(head: CascadeHead, view: 'chair' | 'speaker', e: string, speaker: string | null): string[] {
  const plan = w.parts.manager.session(head.sessionId)!.plan;
  const chair = plan.chair!;
  const shown = speaker === null ? null : (plan.relays[speaker] ?? speaker);
  if (view === 'chair' || shown === null || shown === chair) return [chair];
  const root = plan.mcus.find((m) => m.parent === null)!.id;
  if (e === shown && plan.assignments[e] === root) return [chair];
  return [shown, chair];
}

/**
 * Every endpoint of the session but the chair sees what its view says, as the simulator's display model has
 * it (the cascade manager applies the view after the dial, a redial and each chair command, off the
 * command's deadline: waited for, within a bound).
 */
async function everyoneSees(head: CascadeHead, speaker: string | null): Promise<void> {
  const inv = w.inventory;
  const plan = w.parts.manager.session(head.sessionId)!.plan;
  const view = (head.request as { view?: 'chair' | 'speaker' }).view ?? 'chair';
  // A relayed room has no call of its own: it sees what the room relaying it sees.
  const everyone = plan.mcus
    .flatMap((m) => m.endpoints)
    .filter((e) => e !== plan.chair && inv.endpoints.find((x) => x.id === e)?.sip !== undefined);
  let last = '';
  await until(
    `everyone in ${head.sessionId} sees what its ${view} view says (speaker ${speaker})`,
    async () => {
      for (const e of everyone) {
        const got = (await w.view(e)).seesIds.join();
        const want = sees(head, view, e, speaker).join();
        if (got !== want) {
          last = `${e} sees ${got || 'nothing'}, not ${want}`;
          return false;
        }
      }
      return true;
    },
    60_000,
  ).catch((err: Error) => {
    const m = w.parts.manager;
    const state = `selection ${m.session(head.sessionId)?.head.selection}, views applied ${m.progress(head.sessionId)[0]?.viewsApplied}`;
    throw new Error(`${err.message} (${last}; ${state})`);
  });
}

t.test(
  'depth 1 and depth 2, through MCUs of every simulator profile: the chair sees and hears each, everyone the speaker',
  async (t) => {
    for (const [e, path] of [
      ['pa-x1', ['pa', 'm']],
      ['pb-room', ['pb', 'm']],
      ['pc-room', ['pc', 'm']],
      ['pd-room', ['pd', 'm']],
      ['va-x1', ['va', 'pa', 'm']],
      ['vb-x1', ['vb', 'pb', 'm']],
      ['vd-x1', ['vd', 'pd', 'm']],
      ['ubnd', ['m']],
    ] as const) {
      const r = await w.chair.bringToChair('national', e);
      t.same(r.path, path, `${e}: the path ${path.join(' -> ')}`);
      const v = await w.view('chair');
      t.same(v.seesIds, [e], `${e}: the chair sees it (${r.ms} ms)`);
      t.ok(v.hearsIds.includes(e), `${e}: the chair hears it`);
      t.ok(
        r.steps.every((s) => s.outcome === 'ok' && s.keyframeMs !== undefined),
        'every hop switched, keyframe asked',
      );
      await everyoneSees(national, e);
      t.pass(`${e}: everyone else sees it large with the chair inset`);
    }
    const relayed = await w.chair.bringToChair('national', 'pa-relay');
    t.equal(relayed.shown, 'pa-room', 'a relayed room is shown through the room relaying it');
    t.same((await w.view('chair')).seesIds, ['pa-room']);
    await everyoneSees(national, 'pa-relay');
    t.same((await w.view('va-x1')).seesIds, ['pa-room', 'chair'], 'two levels down too');
  },
);

t.test("the previous speaker's MCUs show their main endpoints up their links again", async (t) => {
  const uri = (id: string) => roomKey(w.inventory.endpoints.find((e) => e.id === id)!.sip!);
  const address = (u: string) => roomKey(u).replace(/^[^@]*@/, '');
  /** What `m`'s room of the session sends up its link to `parent`, as the simulator shows it. */
  const uplink = async (m: string, parent: string) => {
    const confs = (await w.control('GET', `/v1/mcus/${m}/conferences`)) as {
      uri: string;
      outputs: Record<string, { regions: string[] }>;
    }[];
    const room = confs.find((c) => roomKey(c.uri) === roomKey(national.rooms[m]!));
    const up = Object.entries(room?.outputs ?? {}).find(([o]) => address(o) === address(national.rooms[parent]!));
    return up?.[1].regions.map(roomKey);
  };
  await w.chair.bringToChair('national', 'va-x1');
  t.same(await uplink('va', 'pa'), [uri('va-x1')], 'va sends the speaker up');
  t.same(await uplink('pa', 'm'), [roomKey(national.rooms.va!)], "pa passes va's link up");
  // The claim sends the previous path's pictures back as the command starts; they land about with it.
  await w.chair.bringToChair('national', 'pc-room');
  let seen = '';
  await until(
    "va and pa back to their main endpoints (the district room, the province's room)",
    async () => {
      const [va, pa] = [await uplink('va', 'pa'), await uplink('pa', 'm')];
      seen = JSON.stringify({ va, pa });
      return va?.[0] === uri('va-h1') && pa?.[0] === uri('pa-room');
    },
    10_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${seen}`);
  });
  t.pass(`restored: ${seen}`);
  t.same((await w.view('chair')).seesIds, ['pc-room'], 'the chair sees the new speaker');
  await everyoneSees(national, 'pc-room');
});

t.test('a provincial session rooted at a province MCU: its chair sees each endpoint brought to it', async (t) => {
  const prov = await w.parts.manager.admit({
    id: 'province-pa',
    title: 'province pa',
    root: 'pa',
    endpoints: PROVINCIAL,
    chair: 'pa-ubnd',
  });
  t.equal(prov.root, 'pa');
  t.not(prov.rooms.pa, national.rooms.pa, 'a room of its own on pa, beside the national one');
  await up(prov, PROVINCIAL);
  await everyoneSees(prov, null);
  const nationalChair = (await w.view('chair')).seesIds;
  for (const [e, path] of [
    ['va-y1', ['va', 'pa']],
    ['pa-y2', ['pa']],
    ['va-y2', ['va', 'pa']],
  ] as const) {
    const r = await w.chair.bringToChair('province-pa', e);
    t.same(r.path, path, `${e}: the path ${path.join(' -> ')}, ending at the province's MCU`);
    const v = await w.view('pa-ubnd');
    t.same(v.seesIds, [e], `${e}: the province's chair sees it (${r.ms} ms)`);
    t.ok(v.hearsIds.includes(e), `${e}: and hears it`);
    await everyoneSees(prov, e);
    t.same((await w.view('va-y2')).seesIds, ['pa-ubnd'], 'its default view: everyone else sees its chair');
  }
  t.same((await w.view('chair')).seesIds, nationalChair, "the national chair's screen untouched");
  await everyoneSees(national, 'pc-room');
  await w.parts.manager.end('province-pa');
  await until('province-pa ended', () => w.parts.manager.session('province-pa') === undefined, 60_000);
});

t.test('the session asks for pip and muting: the speaker large with the chair small, the previous muted', async (t) => {
  const s2 = await w.parts.manager.admit({
    id: 'pip',
    title: 'pip',
    endpoints: ['chair2', 'pa-y1', 'pc-y1'],
    chair: 'chair2',
    chairLayout: 'pip',
    mutePrevious: true,
  });
  await up(s2, ['chair2', 'pa-y1', 'pc-y1']);
  await everyoneSees(s2, null);
  await w.chair.bringToChair('pip', 'pa-y1');
  t.same((await w.view('chair2')).seesIds, ['pa-y1', 'chair2'], 'the speaker, and the chair inset');
  t.ok((await w.view('chair2')).hearsIds.includes('pa-y1'));
  // The link the speaker comes over drops: the cascade manager redials it and puts it back on the chair's
  // screen the way the session shows it, still pip.
  await w.control('POST', '/v1/mcus/pa/drop-link', { target: s2.rooms.m, conference: s2.rooms.pa });
  await until(
    'the speaker gone with its link',
    async () => !(await w.view('chair2')).seesIds.includes('pa-y1'),
    30_000,
  );
  await until('the speaker back', async () => (await w.view('chair2')).seesIds.includes('pa-y1'), 60_000);
  t.same((await w.view('chair2')).seesIds, ['pa-y1', 'chair2'], 'after the redial: still pip');
  await everyoneSees(s2, 'pa-y1');
  t.same((await w.view('pa-y1')).seesIds, ['chair2'], "after the redial the speaker's room sees the chair again");
  const r = await w.chair.bringToChair('pip', 'pc-y1');
  t.ok(
    r.steps.some((s) => s.kind === 'mute'),
    'the previous speaker muted',
  );
  const v = await w.view('chair2');
  t.same(v.seesIds, ['pc-y1', 'chair2']);
  t.ok(v.hearsIds.includes('pc-y1'), 'the chair hears the new speaker');
  t.notOk(v.hearsIds.includes('pa-y1'), 'and no longer the previous one');
  await w.chair.bringToChair('pip', 'pa-y1');
  t.ok((await w.view('chair2')).hearsIds.includes('pa-y1'), 'called again: unmuted');
  const back = await w.chair.returnToDefault('pip');
  t.equal(back.endpoint, null);
  t.same((await w.view('chair2')).seesIds.sort(), ['pa-y1', 'pc-y1'], 'the default layout: the units, no speaker');
  t.equal(w.parts.manager.session('pip')?.head.selection, null, 'the selection cleared with the cascade manager');
  await w.parts.manager.end('pip');
  await until('pip ended', () => w.parts.manager.session('pip') === undefined, 60_000);
});

t.test('with 20% message loss every command succeeds, each one seen by the chair', async (t) => {
  for (const m of MCUS) await w.control('POST', `/v1/mcus/${m.id}/impairment`, { loss: 0.2 });
  t.teardown(async () => {
    for (const m of MCUS) await w.control('POST', `/v1/mcus/${m.id}/impairment`, { loss: 0 });
  });
  for (const e of ['va-x1', 'pb-room', 'vd-x1', 'pc-room', 'vb-x1', 'pa-x1']) {
    const r = await w.chair.bringToChair('national', e);
    t.same(
      (await w.view('chair')).seesIds,
      [e],
      `${e}: seen (${r.ms} ms, ${r.steps.map((s) => s.attempts).join('/')} attempts)`,
    );
  }
  // The screens follow off the commands' deadlines, each retried with its own backoff (up to 10 s): checked
  // once the loss is over, that they all arrive.
  for (const m of MCUS) await w.control('POST', `/v1/mcus/${m.id}/impairment`, { loss: 0 });
  await everyoneSees(national, 'pa-x1');
  t.pass('everyone else sees the last speaker');
});

t.test('a link dropped on the path is healed inside the deadline', async (t) => {
  const rooms = national.rooms;
  await w.control('POST', '/v1/mcus/pa/drop-link', { target: rooms.m, conference: rooms.pa });
  const r = await w.chair.bringToChair('national', 'va-x1');
  t.same((await w.view('chair')).seesIds, ['va-x1'], `seen after the heal (${r.ms} ms)`);
  t.comment(`healed hops: ${JSON.stringify(r.healed)}`);
  await until('the link up at both ends', () => w.parts.manager.progress('national')[0]?.counts.up === 7, 30_000);
  t.same((await w.view('chair')).seesIds, ['va-x1'], 'and still seen once the cascade manager settled');
  // Over the new call, pa's and va's endpoints see what the session's view says again: the cascade manager
  // applies it after the redial.
  await everyoneSees(national, 'va-x1');
  t.same((await w.view('pa-x1')).seesIds, ['va-x1', 'chair'], 'below the redialled link too');
  await until(
    'views applied, as the manager reports',
    () => w.parts.manager.progress('national')[0]?.viewsApplied === true,
    30_000,
  );
});

t.test('a silent MCU delays only the commands through it', async (t) => {
  const s2 = await w.parts.manager.admit({
    id: 'other',
    title: 'other',
    endpoints: ['chair2', 'pa-y1'],
    chair: 'chair2',
  });
  await up(s2, ['chair2', 'pa-y1']);
  await w.control('POST', '/v1/mcus/pc/faults', { silent: true });
  t.teardown(() => w.control('POST', '/v1/mcus/pc/faults', { silent: false }));
  const through = w.chair.bringToChair('national', 'pc-room', { deadlineMs: 4_000 });
  let settled = false;
  through.then(
    () => (settled = true),
    () => (settled = true),
  );
  const other = await w.chair.bringToChair('other', 'pa-y1');
  t.notOk(settled, `the other session's command finished (${other.ms} ms) while the one through pc waits`);
  t.same((await w.view('chair2')).seesIds, ['pa-y1']);
  const err = await through.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(
    isCascadedError(err) && ['CHAIR_ERR_DEADLINE', 'CHAIR_ERR_PATH_DOWN'].includes(err.code),
    'failed at its deadline',
  );
  await w.control('POST', '/v1/mcus/pc/faults', { silent: false });
  await until('pc back', () => w.parts.manager.progress('national')[0]?.counts.up === 7, 60_000);
  const r = await w.chair.bringToChair('national', 'pc-room');
  t.same((await w.view('chair')).seesIds, ['pc-room'], `through pc again once it answers (${r.ms} ms)`);
  await everyoneSees(national, 'pc-room');
});

t.test('supersession: the newer command wins on the chair screen, the older reports it', async (t) => {
  // A slow master: the older command's switch of the chair's screen is still in flight when the newer comes.
  await w.control('POST', '/v1/mcus/m/impairment', { infoDelayMs: 300 });
  t.teardown(() => w.control('POST', '/v1/mcus/m/impairment', { infoDelayMs: 5 }));
  const older = w.chair.bringToChair('national', 'vb-x1', { requestId: 'older' });
  const newer = w.chair.bringToChair('national', 'pd-room', { requestId: 'newer' });
  await t.rejects(older, { code: 'CHAIR_ERR_SUPERSEDED' });
  await newer;
  t.same((await w.view('chair')).seesIds, ['pd-room'], 'the chair sees the newer one');
});

t.test('the same request id does the work once', async (t) => {
  const keyframes = async () => {
    const confs = (await w.control('GET', '/v1/mcus/m/conferences')) as {
      uri: string;
      outputs: Record<string, { keyframes: number }>;
    }[];
    const room = confs.find((c) => roomKey(c.uri) === roomKey(national.rooms.m!))!;
    return room.outputs[w.inventory.endpoints.find((e) => e.id === 'chair')!.sip!]?.keyframes ?? 0;
  };
  const before = await keyframes();
  const a = w.chair.bringToChair('national', 'va-h1', { requestId: 'once' });
  const b = w.chair.bringToChair('national', 'va-h1', { requestId: 'once' });
  const [ra, rb]: ChairResult[] = await Promise.all([a, b]);
  t.equal(ra, rb, 'one result');
  const again = await w.chair.bringToChair('national', 'va-h1', { requestId: 'once' });
  t.equal(again.command, ra.command, 'after it finished too');
  t.equal((await keyframes()) - before, 1, "the chair's screen switched once");
});

t.test('deadline expiry: an MCU refusing every command fails the command at its deadline', async (t) => {
  await w.control('POST', '/v1/mcus/vd/faults', { infoStatus: 500 });
  t.teardown(() => w.control('POST', '/v1/mcus/vd/faults', { infoStatus: null }));
  const t0 = performance.now();
  const err = await w.chair.bringToChair('national', 'vd-x1', { deadlineMs: 2_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isCascadedError(err, 'CHAIR_ERR_DEADLINE'), 'CHAIR_ERR_DEADLINE');
  const steps = (err as { details: { steps: { id: string; outcome: string; attempts: number }[] } }).details.steps;
  const vd = steps.find((s) => s.id === 'switch:vd');
  t.ok(vd !== undefined && vd.outcome !== 'ok' && vd.attempts > 1, `the step on vd retried (${vd?.attempts} attempts)`);
  t.ok(performance.now() - t0 >= 2_000, 'not before the deadline');
});
