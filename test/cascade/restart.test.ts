/**
 * End to end, as it runs in production, with MCUs of every simulator profile
 * (full, no conference events, full-state-only, asking for digest
 * credentials), each session in rooms: the simulator in its own process
 * (`cascaded-sim`), the daemon in its own (`cascaded`), the session created
 * with `cascaded session create` while the daemon runs. The daemon is killed
 * with SIGKILL mid-session and started again: no cascade link drops (they run
 * MCU to MCU), the daemon reconciles from the MCUs' full state without
 * dialing anything, and nothing is lost from the store. Witnesses: the
 * simulator's control interface (links per MCU), and, where tshark can
 * capture, the SIP between the MCUs themselves: no INVITE or BYE crosses
 * from MCU to MCU while the daemon is down and restarting.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openSqliteStore } from '../../src/store/index.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { cli, loopbackBase, networkConfig, until } from './helpers.js';

t.setTimeout(240_000);

type Json = Record<string, unknown>;

function startSim(config: string): Promise<{ child: ChildProcess; control: string }> {
  const child = spawn(process.execPath, ['dist/src/cli/cascaded-sim.js', '--config', config, '--control-port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('simulator not ready in 60 s')), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        const j = JSON.parse(l) as Json;
        if (typeof j.msg === 'string' && j.msg.startsWith('simulator ready')) {
          clearTimeout(timer);
          resolve({ child, control: String(j.control) });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`simulator exited ${code}`)));
  });
}

/** Links each simulated MCU holds, from its control interface: MCU -> sorted link entities. */
async function simLinks(control: string): Promise<Record<string, string[]>> {
  const mcus = (await (await fetch(`${control}/v1/mcus`)).json()) as { id: string }[];
  const out: Record<string, string[]> = {};
  for (const m of mcus) {
    const d = (await (await fetch(`${control}/v1/mcus/${m.id}`)).json()) as {
      participants?: { entity: string; kind: string; status: string }[];
      conferences?: { participants: { entity: string; kind: string; status: string }[] }[];
    };
    const all = d.conferences?.flatMap((c) => c.participants) ?? d.participants ?? [];
    out[m.id] = all
      .filter((p) => p.kind === 'link' && p.status === 'connected')
      .map((p) => p.entity)
      .sort();
  }
  return out;
}

interface Capture {
  /** SIP methods of the requests seen so far, in order (re-INVITEs as `refresh`). */
  readonly methods: string[];
  stop(): Promise<void>;
}

/**
 * tshark printing, as it decodes them (-P -l), the SIP requests between the MCUs' addresses only (not the
 * daemon's). It is known to capture once a probe datagram between two unused addresses of that network shows
 * up: a wait on a condition. Undefined when tshark is missing or cannot capture here.
 */
async function captureBetweenMcus(base: string): Promise<Capture | undefined> {
  if (spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status !== 0) return undefined;
  const net = `${base}0/24`;
  const child = spawn(
    'tshark',
    [
      '-i',
      'lo',
      '-f',
      `udp and src net ${net} and dst net ${net}`,
      '-a',
      'duration:180',
      '-P',
      '-l',
      '-T',
      'fields',
      '-e',
      'frame.number',
      '-e',
      'sip.Method',
      '-e',
      'sip.to.tag',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const lines: string[] = [];
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    pending += d;
    const parts = pending.split('\n');
    pending = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, `${base}250`, () => r()));
  try {
    const end = Date.now() + 20_000;
    while (lines.length === 0) {
      if (child.exitCode !== null || Date.now() > end) {
        child.kill('SIGKILL');
        return undefined;
      }
      probe.send('capture probe', 9, `${base}251`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    probe.close();
  }
  const methods: string[] = [];
  child.stdout.on('data', () => {
    methods.length = 0;
    for (const l of lines) {
      const [, m, toTag] = l.split('\t').map((f) => f.trim());
      // A re-INVITE (a To tag: inside a dialog) is a link's session refresh (RFC 4028), not a new link.
      if (m) methods.push(m === 'INVITE' && toTag ? 'refresh' : m);
    }
  });
  return {
    methods,
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}

t.test('kill -9 mid-session, restart: no link dropped, state reconciled, nothing lost from the store', async (t) => {
  const dir = t.testdir();
  const base = loopbackBase();
  const config = join(dir, 'net.yaml');
  const secret = join(dir, 'mcu.secret');
  writeFileSync(secret, 'restart-test-secret\n');
  writeFileSync(
    config,
    JSON.stringify(
      networkConfig(
        base,
        [
          { id: 'm', rooms: 2 },
          { id: 'p', parents: ['m'], rooms: 2 },
          { id: 'v', parents: ['p'], rooms: 2, profile: 'no-conference-events' },
          { id: 'q', parents: ['m'], rooms: 2, profile: 'full-state-only' },
          { id: 'c', parents: ['m'], rooms: 2, profile: 'challenging', secretFile: secret },
        ],
        [
          { id: 'chair', level: 'central', mcus: ['m'] },
          { id: 'p-room', level: 'province', mcus: ['p'] },
          { id: 'v-x1', mcus: ['v'] },
          { id: 'q-x1', mcus: ['q'] },
          { id: 'c-x1', mcus: ['c'] },
        ],
        {
          logLevel: 'info',
          stateDir: join(dir, 'state'),
          api: { host: '127.0.0.1', port: 0 },
          sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
          mcu: { healthIntervalMs: 500 },
          cascade: { pollMs: 200, retry: { baseMs: 100, maxMs: 1_000 } },
        },
      ),
    ),
  );
  const sim = await startSim(config);
  t.teardown(() => sim.child.kill('SIGKILL'));
  const first = spawnDaemon(['--config', config]);
  t.teardown(() => first.child.kill('SIGKILL'));
  await first.waitForLog((l) => String(l.msg).startsWith('ready:'), 60_000);

  const created = await cli([
    'session',
    'create',
    '--config',
    config,
    '--all',
    '--chair',
    'chair',
    '--id',
    's1',
    '--json',
  ]);
  t.equal(created.code, 0, created.err);
  const rooms = (JSON.parse(created.out) as { rooms: Record<string, string> }).rooms;
  await first.waitForLog((l) => String(l.msg).startsWith('session s1: all 4'), 60_000);
  const before = await simLinks(sim.control);
  t.equal(Object.values(before).flat().length, 8, 'four links, listed at both MCUs');

  const capture = await captureBetweenMcus(base);
  if (capture === undefined)
    t.comment('tshark is missing or cannot capture on lo: the capture between the MCUs is skipped');
  else t.teardown(() => capture.stop());

  first.child.kill('SIGKILL');
  await first.exited;
  t.same(await simLinks(sim.control), before, 'the links outlive the daemon');

  const second = spawnDaemon(['--config', config]);
  t.teardown(() => second.child.kill('SIGKILL'));
  await second.waitForLog((l) => String(l.msg).startsWith('session s1: all 4'), 60_000);
  t.same(await simLinks(sim.control), before, 'the same links after the restart');
  // The offending lines in the message: on a loaded machine this once failed and passed alone.
  const bad = second.logs.filter((l) => /failed|dropped/.test(String(l.msg))).map((l) => String(l.msg));
  t.same(bad, [], 'nothing failed or dropped on the way back up');
  const status = await cli(['cascade', 'status', '--config', config, 's1', '--json']);
  t.match(JSON.parse(status.out), {
    sessionId: 's1',
    state: 'live',
    counts: { up: 4, dialing: 0, failed: 0, planned: 0 },
  });

  // A drop now, on purpose: the capture must see its BYE and the redial's INVITE, and nothing before them.
  const drop = await fetch(`${sim.control}/v1/mcus/p/drop-link`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ target: rooms.v, conference: rooms.p }),
  });
  t.equal(drop.status, 200, 'the simulator drops v -> p');
  await second.waitForLog((l) => String(l.msg).startsWith('link v -> p dropped'));
  await second.waitForLog((l) => l.msg === 'session s1: all 4 cascade links up again', 30_000);
  t.same(await simLinks(sim.control), before, 'healed');

  if (capture !== undefined) {
    // The redial's INVITE after the drop's BYE: then everything before them is in too.
    await until('the capture to show the drop and the redial', () => {
      const bye = capture.methods.indexOf('BYE');
      return bye >= 0 && capture.methods.indexOf('INVITE', bye) > bye;
    }).catch(() => {});
    const methods = [...capture.methods];
    await capture.stop();
    const bye = methods.indexOf('BYE');
    t.ok(bye >= 0, `the capture saw the drop's BYE (${methods.join(' ')})`);
    t.same(
      methods.slice(0, bye).filter((m) => m === 'INVITE' || m === 'BYE'),
      [],
      'before it, while the daemon was killed and restarted: no link dialled or hung up between the MCUs',
    );
    t.ok(methods.indexOf('INVITE', bye) > bye, 'after it, the redial');
  }

  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'the second daemon stops cleanly');
  t.same(await simLinks(sim.control), before, 'and a clean stop drops no link either');

  // Nothing lost from the store: the session, its plan, the events from before the kill.
  const store = await openSqliteStore({ path: join(dir, 'state', 'cascaded.db') });
  t.teardown(() => store.close());
  const c = await store.getCascade('s1');
  t.match(c, { state: 'live', planVersion: 1 });
  const events = (await store.listEvents({ subject: 's1', limit: 1_000 })).map((e) => e.type);
  t.ok(events.filter((e) => e === 'cascade.session.up').length >= 2, 'both runs recorded the session up');
  t.ok(events.filter((e) => e === 'cascade.link.up').length >= 4, 'the link events of the first run are there');
});
