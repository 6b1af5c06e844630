/**
 * The full national dial, as `npm start` runs it: the daemon on the demo
 * network with the simulator as its child process and --demo-session, which
 * admits a session with every endpoint at the master and dials it. The demo
 * mixes every simulator profile (MCUs without the conference event package,
 * with full-state-only notifications, asking for digest credentials), so they
 * all take part in one cascade. The demo's addresses are moved to a /24 of
 * this test's own (the national simulator tests hold 127.0.1.x), and every
 * check is made on the simulator's control interface: each planned link in
 * the session's rooms at both MCUs, each endpoint in its room, each slave
 * sending an endpoint of the highest level among those in its room up its
 * link.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { loopbackBase, until } from './helpers.js';

// The file's bound (a loaded machine takes minutes); each wait below gets what is left of it, so a phase too
// slow fails here, by name, not as the file's timeout.
const FILE_MS = 600_000;
t.setTimeout(FILE_MS);
const deadline = performance.now() + FILE_MS - 5_000;
const left = () => Math.max(1, Math.ceil(deadline - performance.now()));

interface Conf {
  uri: string;
  lobby: boolean;
  participants: { entity: string; kind: string; status: string }[];
  outputs: Record<string, { layout: string; regions: (string | null)[] }>;
}

t.test('the national demo session: every link up at both ends, every slave showing its main endpoint', async (t) => {
  const dir = t.testdir();
  const config = join(dir, 'demo.yaml');
  writeFileSync(
    config,
    readFileSync('config/demo.yaml', 'utf8')
      .replaceAll('127.0.1.', loopbackBase())
      // Links and each MCU's main endpoint (what the pictures up the links need); the other 11,000 endpoints
      // take minutes on a loaded machine: the benchmark (npm run bench -- cascade) dials them.
      .replace(
        /^daemon:\n/m,
        `daemon:\n  stateDir: ${JSON.stringify(join(dir, 'state'))}\n  cascade: { dialEndpoints: false }\n`,
      )
      .replace(/api: \{ host: 127\.0\.0\.1, port: 8443 \}/, 'api: { host: 127.0.0.1, port: 0 }')
      .replace(
        /listen: \[ \{ transport: udp, host: 127\.0\.0\.1, port: 5060 \} \]/,
        'listen: [ { transport: udp, host: 127.0.0.1, port: 0 } ]',
      ),
  );
  const d = spawnDaemon(['--config', config, '--with-sim', '--sim-control-port', '0', '--demo-session']);
  t.teardown(() => d.child.kill('SIGKILL'));
  // Read here while the simulator and the daemon start (seconds of CPU each, in processes of their own).
  const inv = parseConfig(readFileSync(config, 'utf8')).inventory;
  const profiles = ['no-conference-events', 'full-state-only', 'challenging'];
  t.ok(
    profiles.every((p) => inv.mcus.some((m) => m.sim?.profile === p)),
    'the demo mixes every simulator profile',
  );
  const sim = await d.waitForLog((l) => /^simulator process \d+ ready$/.test(String(l.msg)), left());
  const control = String(sim.control);
  // Progress while it dials: `cascaded cascade status --json` (another process, reading the store) with counts.
  const started = await d.waitForLog((l) => /^session .*: dialing \d+ cascade links from /.test(String(l.msg)), left());
  const during = JSON.parse(await run(config, ['cascade', 'status', String(started.session), '--json'])) as {
    counts: Record<'planned' | 'dialing' | 'up' | 'failed', number>;
    links: unknown[];
  };
  const c = during.counts;
  t.equal(c.planned + c.dialing + c.up + c.failed, during.links.length, `status while dialing: ${JSON.stringify(c)}`);
  const up = await d.waitForLog((l) => /^session .*: all \d+ cascade links up \(/.test(String(l.msg)), left());
  t.comment(String(up.msg));
  // The log counts links up as they come: "link C -> P up (K of N up)", from 1 to N.
  const counts = d.logs
    .map((l) => /^link \S+ -> \S+ up \((\d+) of (\d+) up\)$/.exec(String(l.msg)))
    .filter((m) => m !== null)
    .map((m) => [Number(m[1]), Number(m[2])] as const);
  const total = Number(/all (\d+) cascade links up/.exec(String(up.msg))![1]);
  t.ok(counts.length >= total, `${counts.length} progress lines for ${total} links`);
  t.ok(
    counts[0]?.[0] === 1 && counts.every(([, n]) => n === total) && counts.some(([k]) => k === total),
    'the progress lines count from 1 up to every link, out of the plan total',
  );
  // Three reads that need not wait for each other: each CLI run reads the national config (2.4 MB of YAML,
  // seconds of CPU on a loaded machine) in a process of its own.
  const [status, shown, mains] = await Promise.all([
    run(config, ['cascade', 'status', String(up.session), '--json']),
    show(config, String(up.session)),
    d.waitForLog((l) => /: all \d+ endpoints in their rooms/.test(String(l.msg)), left()),
  ]);
  const after = JSON.parse(status) as { counts: Record<string, number> };
  t.match(after.counts, { up: total, planned: 0, dialing: 0, failed: 0 }, 'status: every link up');
  t.comment(String(mains.msg));

  const record = JSON.parse(shown) as {
    rooms: Record<string, string>;
    plan: { links: Record<string, string>; assignments: Record<string, string> };
  };
  const key = (uri: string) => uri.replace(/;.*$/, '');
  const fetchConfs = async () => {
    const out = new Map<string, Conf>();
    for (const m of Object.keys(record.rooms)) {
      const list = (await (await fetch(`${control}/v1/mcus/${m}/conferences`)).json()) as Conf[];
      const room = list.find((c) => c.uri === key(record.rooms[m]!));
      if (room !== undefined) out.set(m, room);
    }
    return out;
  };
  let confs = await fetchConfs();
  const links = Object.entries(record.plan.links);
  t.ok(links.length > 50, `${links.length} links planned`);
  const missing = links.filter(([child, parent]) => {
    const atParent = confs.get(parent)?.participants.find((p) => p.entity === key(record.rooms[child]!));
    const atChild = confs.get(child)?.participants.find((p) => p.entity === key(record.rooms[parent]!));
    return atParent?.status !== 'connected' || atChild?.status !== 'connected';
  });
  t.same(missing, [], 'every planned link connected in both rooms');
  t.ok(
    profiles.every((p) => links.some(([child]) => inv.mcus.find((m) => m.id === child)?.sim?.profile === p)),
    'MCUs of every profile are in the cascade',
  );

  // Up every link: one of the slave's own endpoints (by the plan) of the highest level, full-screen, checked
  // from the inventory's levels. The last layouts may still be on their way: read again until right, bounded.
  const rank = new Map(inv.levels.map((l, i) => [l.id, i]));
  const levelOf = new Map(inv.endpoints.map((e) => [e.id, rank.get(e.level)!]));
  const byUri = new Map(inv.endpoints.filter((e) => e.sip !== undefined).map((e) => [e.sip!, e.id]));
  const onMcu = new Map<string, string[]>();
  for (const [ep, m] of Object.entries(record.plan.assignments)) onMcu.set(m, [...(onMcu.get(m) ?? []), ep]);
  const wrongPictures = () =>
    links
      .filter(([child, parent]) => {
        const mine = onMcu.get(child) ?? [];
        if (mine.length === 0) return false;
        const best = Math.min(...mine.map((e) => levelOf.get(e)!));
        const out = confs.get(child)!.outputs[key(record.rooms[parent]!)];
        const first = out?.regions[0];
        const shown = first === null || first === undefined ? undefined : byUri.get(first);
        return out?.layout !== 'single' || shown === undefined || !mine.includes(shown) || levelOf.get(shown) !== best;
      })
      .map(([child]) => child);
  await until(
    'every uplink picture',
    async () => {
      confs = await fetchConfs();
      return wrongPictures().length === 0;
    },
    Math.min(60_000, left()),
    500,
  ).catch(() => {});
  t.same(wrongPictures(), [], 'each slave sends one of its own endpoints of the highest level up its link');

  d.child.kill('SIGTERM');
  t.equal((await d.exited).code, 0, 'the daemon and the simulator stop cleanly');
});

/** `cascaded session show ID --json`, through a pipe. */
function show(config: string, session: string): Promise<string> {
  return run(config, ['session', 'show', session, '--json']);
}

/** `cascaded ARGS --config FILE`, its stdout through a pipe. */
function run(config: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const c = spawn(process.execPath, ['dist/src/cli/cascaded.js', ...args, '--config', config], { timeout: left() });
    c.stdout.setEncoding('utf8').on('data', (x: string) => {
      out += x;
    });
    c.once('close', () => resolve(out));
  });
}
