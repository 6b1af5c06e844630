/**
 * `cascaded --with-sim`: the daemon starts `cascaded-sim` as a child process
 * (its own pid), waits for it, drives its MCUs over SIP, and stops it after
 * itself; a crash of either side is reported and never leaves the other
 * behind. A small inventory on loopback addresses of its own, so it can run
 * beside the national tests and other runs of itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { baseConfig, toYaml } from '../config/fixtures.js';
import { spawnDaemon } from '../helpers/daemon.js';
import { alive, randomLoopback, waitFor } from './helpers.js';

t.setTimeout(90_000);

function writeConfig(dir: string): string {
  const o = baseConfig();
  o.daemon = {
    logLevel: 'info',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0 },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
  };
  for (const m of o.mcus) m.sip = [`sip:conf@${randomLoopback()}:5060`];
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, toYaml(o));
  return file;
}

type Log = Record<string, unknown>;
type Tap = { teardown(fn: () => unknown): void; testdir(): string };
const isSim = (l: Log) => l.service === 'cascaded-sim';

async function startWithSim(t: Tap) {
  const file = writeConfig(t.testdir());
  const d = spawnDaemon(['--config', file, '--with-sim', '--sim-control-port', '0']);
  t.teardown(() => d.child.kill('SIGKILL'));
  const spawned = await d.waitForLog((l) => typeof l.msg === 'string' && /^simulator process \d+ ready$/.test(l.msg));
  const simPid = Number(spawned.pid);
  t.teardown(() => {
    if (alive(simPid)) process.kill(simPid, 'SIGKILL');
  });
  await d.waitForLog((l) => l.msg === 'MCUs connected: 3 of 3 up', 60_000);
  // Signals are the daemon's to handle once it is ready (before, the default action ends it).
  await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'), 60_000);
  return { d, simPid, control: String(spawned.control) };
}

t.test('the simulator runs in its own process, and stops after the daemon', async (t) => {
  const { d, simPid, control } = await startWithSim(t);
  t.not(simPid, d.child.pid, 'the simulator is another process');
  t.ok(
    d.logs.some((l) => isSim(l) && l.pid === simPid && String(l.msg).startsWith('simulator ready')),
    'its own ready line, from its own pid',
  );
  const mcus = (await (await fetch(`${control}/v1/mcus`)).json()) as { id: string; controlDialogs: number }[];
  t.same(
    mcus.map((m) => [m.id, m.controlDialogs]),
    [
      ['master', 1],
      ['nb', 1],
      ['qb-vnpt-1', 1],
    ],
    'the daemon holds a control dialog with every simulated MCU',
  );

  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'exit 0');
  // The two processes write to one pipe and the daemon's logger buffers: order by the lines' own clocks.
  const at = (pred: (l: Log) => boolean) => Number(d.logs.find(pred)?.time);
  const closed = at((l) => l.msg === 'closed notifier');
  const simStopping = at((l) => isSim(l) && l.msg === 'stopping');
  const simStopped = at((l) => l.msg === 'simulator stopped');
  t.ok(closed <= simStopping, 'the daemon closes every part first, then asks the simulator to stop');
  t.ok(simStopping <= simStopped, 'and waits for it');
  t.notOk(alive(simPid), 'the simulator process is gone');
});

t.test('a simulator crash is reported and fails the exit code', async (t) => {
  const { d, simPid } = await startWithSim(t);
  process.kill(simPid, 'SIGKILL');
  const crash = await d.waitForLog((l) => l.msg === 'simulator exited unexpectedly');
  t.match(crash, { level: 50, signal: 'SIGKILL', pid: simPid });
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 1, signal: null }, 'the daemon still stops in order, with exit code 1');
});

t.test('a daemon crash ends the simulator too', async (t) => {
  const { d, simPid } = await startWithSim(t);
  d.child.kill('SIGKILL');
  // 'close' of the daemon's stdout waits for the simulator too: it writes to the same pipe.
  await d.exited;
  await waitFor('the simulator to exit', () => !alive(simPid), 20_000);
  t.ok(
    d.logs.some((l) => isSim(l) && l.msg === 'parent process gone: stopping'),
    'the simulator noticed its parent was gone and stopped',
  );
});
