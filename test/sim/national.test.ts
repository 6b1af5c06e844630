/**
 * The national demo network (config/demo.yaml: 74 MCUs on 127.0.1.1..74:5060,
 * 11,267 endpoints, each on its first candidate MCU with room). First `cascaded-sim` as a process:
 * within the memory target, answering its control interface, exiting cleanly.
 * Then in-process, driven by one sip-msml driver per MCU: every MCU up, the
 * planned cascade dialed as real SIP dialogs, an endpoint brought to the chair
 * through two cascade levels, and the HTTP control interface injecting faults
 * and answering display queries. Both bind the same addresses, so they live in
 * one file and run one after the other.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { loadConfigFile } from '../../src/config/index.js';
import { startMcuPool } from '../../src/mcu/index.js';
import { plan } from '../../src/planner/index.js';
import { startSimulator } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { waitFor } from './helpers.js';

t.setTimeout(120_000);

const RSS_TARGET_MB = 300; // the target for the national demo network

t.test('cascaded-sim runs the national network under the RSS target and stops on SIGTERM', async (t) => {
  const child = spawn(
    process.execPath,
    // As `npm run sim` runs it: --expose-gc lets the simulator drop its start-up garbage.
    ['--expose-gc', 'dist/src/cli/cascaded-sim.js', '--config', 'config/demo.yaml', '--control-port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line: ${out}`)), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of out.split('\n')) {
        if (!line.includes('simulator ready')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
  });
  t.match(ready, { mcus: 74, participants: 11_267 });
  // The start-up garbage (mostly the YAML inventory) is collected at ready; the kernel may take a moment to
  // show it in the resident set, so the RSS is watched for a bounded time.
  const rssMB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  let last = rssMB();
  const settled = await waitFor(
    'the RSS to settle under the target',
    () => {
      last = rssMB();
      return last < RSS_TARGET_MB;
    },
    20_000,
    100,
  ).catch(() => false);
  t.ok(settled, `RSS ${Math.round(last)} MB < ${RSS_TARGET_MB} MB`);
  const res = await fetch(`${String(ready.control)}/v1/mcus/master`);
  t.equal(res.status, 200);
  t.match(await res.json(), { id: 'master', uri: 'sip:conf@127.0.1.1:5060' });
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');

  const help = spawn(process.execPath, ['dist/src/cli/cascaded-sim.js', '--bogus'], { stdio: 'ignore' });
  t.equal(await new Promise((r) => help.once('exit', r)), 2, 'bad usage exits 2');
});

/** A parsed JSON reply, loosely typed for assertions. */
type Json = Record<string, unknown> & { length?: number; seesIds?: unknown };

async function http(method: string, url: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

t.test('the national network: all MCUs up, the cascade dialed, a commune brought to the chair', async (t) => {
  const config = await loadConfigFile('config/demo.yaml');
  const inv = config.inventory;
  const sim = await startSimulator({ inventory: inv, controlPort: 0 });
  t.teardown(() => sim.close());

  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    maxMessageSize: 2 * 1_048_576,
  });
  t.teardown(() => ua.close());
  const pool = await startMcuPool({
    ua,
    mcus: inv.mcus,
    // Settings a loaded 2-core machine running 74 MCUs and their drivers in one process can keep: tighter
    // health checks took a healthy master down in the middle of the dial, and 74 national rosters parsed at
    // once can hold a SUBSCRIBE's answer past 2 s (the driver then comes up without the roster and retries).
    driver: {
      healthIntervalMs: 1_000,
      healthFailures: 3,
      requestTimeoutMs: 5_000,
      connectTimeoutMs: 30_000,
      resubscribeIntervalMs: 3_000,
    },
  });
  t.teardown(() => pool.close());
  t.same(await pool.firstAttempts, { up: 74, down: 0 }, 'every simulated MCU up');
  // The demo mixes MCU profiles (docs/sim.md): the ones without the conference event package stay without.
  const lacking = inv.mcus.filter((m) => m.sim?.profile === 'no-conference-events').map((m) => m.id);
  t.ok(lacking.length > 0 && inv.mcus.some((m) => m.sim?.profile === 'challenging'), 'the demo mixes profiles');
  const noRoster = () =>
    inv.mcus.filter((m) => pool.driver(m.id).capabilities.conferenceEvents !== 'available').map((m) => m.id);
  await waitFor('every other MCU to serve its roster', () => noRoster().length === lacking.length, 60_000, 100).catch(
    () => {},
  );
  t.same(noRoster(), lacking, 'every MCU serves the conference event package but those whose profile lacks it');
  const challenged = inv.mcus.filter((m) => m.sim?.profile === 'challenging').map((m) => sim.network.mcu(m.id));
  t.ok(
    challenged.every((m) => m.counters.challenges > 0 && m.counters.authFailures === 0),
    'the challenging MCUs asked for credentials and got the right ones',
  );
  const master = pool.driver('master');
  t.ok(master.roster.size > 50, `the master's roster has ${master.roster.size} endpoints`);

  // Dial the planned cascade: each parent is asked (REFER) to dial its child.
  const p = plan(inv, { endpoints: inv.endpoints.filter((e) => e.connection !== 'relay').map((e) => e.id) });
  const links = Object.entries(p.links);
  const t0 = performance.now();
  await Promise.all(links.map(([child, parent]) => pool.driver(parent).dialLink(sim.network.mcu(child).uri)));
  t.comment(`${links.length} cascade links dialed in ${Math.round(performance.now() - t0)} ms`);
  for (const [child, parent] of links)
    t.equal(
      sim.network.mcu(parent).participants.get(sim.network.mcu(child).uri)?.status,
      'connected',
      `${parent} -> ${child}`,
    );

  // An endpoint the simulator seated two cascade levels below the master, and the chair on the master.
  const depth = (m: string): number => (p.links[m] === undefined ? 0 : 1 + depth(p.links[m]!));
  const xMcu = inv.mcus.find((m) => depth(m.id) === 2 && sim.network.mcu(m.id).participants.size > 1)!.id;
  const seated = (m: string) =>
    [...sim.network.mcu(m).participants.values()]
      .filter((q) => q.kind === 'endpoint')
      .map((q) => sim.network.idOf(q.entity)!);
  const x = seated(xMcu)[0]!;
  const chair = seated('master').find((e) => e.startsWith('vpcp'))!;
  const mid = p.links[xMcu]!;
  const uri = (mcu: string) => sim.network.mcu(mcu).uri;
  // Wait until both ends of the two links have the participant (the child side counts it on the ACK).
  await waitFor('the link to show at the child', () => sim.network.mcu(xMcu).participants.has(uri(mid)), 5_000);
  const t1 = performance.now();
  await Promise.all([
    pool.driver(xMcu).showSource(uri(mid), 1, sim.network.endpointUri(x)),
    pool.driver(mid).showSource(uri('master'), 1, uri(xMcu)),
    master.showSource(sim.network.endpointUri(chair), 1, uri(mid)),
  ]);
  await Promise.all([
    pool.driver(xMcu).requestKeyframe(uri(mid)),
    pool.driver(mid).requestKeyframe(uri('master')),
    master.requestKeyframe(sim.network.endpointUri(chair)),
  ]);
  t.comment(`bring ${x} (on ${xMcu}, via ${mid}) to ${chair}: ${Math.round(performance.now() - t1)} ms`);
  t.same(sim.network.endpointView(chair).seesIds, [x], 'the chair sees the commune endpoint');
  t.ok(sim.network.endpointView(chair).hearsIds.includes(x), 'and hears it');

  // A provincial session at the same time, in rooms of the same MCUs (issue 10): mid's room 8001 dials a link to
  // xMcu's room 8001, each room dials an endpoint out of its lobby; the national picture is untouched.
  const room = (mcu: string) => sim.network.mcu(mcu).roomUri('8001');
  const midRoom = pool.driver(mid).conference(room(mid));
  const xRoom = pool.driver(xMcu).conference(room(xMcu));
  await Promise.all([midRoom.open(), xRoom.open()]);
  await midRoom.dialLink(room(xMcu));
  const y = seated(xMcu).find((e) => e !== x)!;
  const z = seated(mid)[0]!;
  await Promise.all([
    xRoom.dialParticipant(sim.network.endpointUri(y)),
    midRoom.dialParticipant(sim.network.endpointUri(z)),
  ]);
  await waitFor('the link at the room of the child', () => sim.network.mcu(xMcu).locate(room(mid)) === room(xMcu));
  await Promise.all([
    xRoom.showSource(room(mid), 1, sim.network.endpointUri(y)),
    midRoom.showSource(sim.network.endpointUri(z), 1, room(xMcu)),
  ]);
  t.same(sim.network.endpointView(z).seesIds, [y], 'the provincial session shows its own endpoint');
  t.same(sim.network.endpointView(z).hearsIds, [y], 'and hears only its own session');
  t.same(sim.network.endpointView(chair).seesIds, [x], 'the national session still shows the commune');
  t.notOk(sim.network.endpointView(chair).hearsIds.includes(y), 'and does not hear the provincial session');

  // The control interface.
  const base = sim.control.url;
  const list = await http('GET', `${base}/v1/mcus`);
  t.equal(list.status, 200);
  t.equal(list.body.length, 74);
  const view = await http('GET', `${base}/v1/endpoints/${encodeURIComponent(chair)}/view`);
  t.same(view.body.seesIds, [x]);
  t.match(await http('GET', `${base}/v1/mcus/nowhere`), { status: 404, body: { code: 'SIM_ERR_UNKNOWN_MCU' } });
  t.match(await http('POST', `${base}/v1/mcus/master/impairment`, { loss: 2 }), {
    status: 400,
    body: { code: 'SIM_ERR_INVALID_ARGUMENT' },
  });
  t.match(await http('POST', `${base}/v1/mcus/${xMcu}/faults`, { silent: 'yes' }), { status: 400 });

  const victim = pool.driver(xMcu);
  t.match(await http('POST', `${base}/v1/mcus/${xMcu}/faults`, { silent: true }), {
    status: 200,
    body: { faults: { silent: true } },
  });
  await waitFor('the silent MCU to go down', () => !victim.health.up, 30_000);
  t.equal(victim.health.up, false, 'a silent MCU goes down');
  await http('POST', `${base}/v1/mcus/${xMcu}/faults`, { silent: false });
  await waitFor('the MCU to come back', () => victim.health.up, 30_000);
  t.equal(victim.health.up, true, 'and comes back');
  await waitFor('its room to re-open', () => xRoom.state === 'open', 30_000);
  t.ok(xRoom.roster.has(room(mid)), 'with the link of the provincial session, read afresh');

  const dropped = new Promise<string>((resolve) =>
    pool.driver(mid).on('link', (l) => {
      if (l.state === 'disconnected') resolve(l.target);
    }),
  );
  t.match(await http('POST', `${base}/v1/mcus/${xMcu}/drop-link`, { target: mid }), { status: 200 });
  t.equal(await dropped, uri(xMcu), 'the parent driver sees the dropped link');
  t.same(sim.network.endpointView(chair).seesIds, [], 'the picture is gone from the chair');
  t.equal(pool.upCount(), 74);
});
