/**
 * `cascaded-sim` as a process: the national demo network in one process
 * within the memory target, its control interface answering, and a clean
 * exit on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';

t.setTimeout(90_000);

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
  // Let the start-up garbage (mostly the YAML inventory) settle, then read the resident set.
  await new Promise((r) => setTimeout(r, 2_000));
  const rssKB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]);
  t.ok(rssKB / 1024 < RSS_TARGET_MB, `RSS ${Math.round(rssKB / 1024)} MB < ${RSS_TARGET_MB} MB`);
  const res = await fetch(`${String(ready.control)}/v1/mcus/master`);
  t.equal(res.status, 200);
  t.match(await res.json(), { id: 'master', uri: 'sip:conf@127.0.1.1:5060' });
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');

  const help = spawn(process.execPath, ['dist/src/cli/cascaded-sim.js', '--bogus'], { stdio: 'ignore' });
  t.equal(await new Promise((r) => help.once('exit', r)), 2, 'bad usage exits 2');
});
