/**
 * `cascaded session create --all` and `session show` on the national demo
 * network as a user runs them: the session's JSON (megabytes) arrives whole
 * through a pipe. A file of its own: each run reads the national config (2.4 MB
 * of YAML, seconds of CPU on a loaded machine) and plans 11,400 endpoints.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cli } from './helpers.js';

t.setTimeout(180_000);

t.test('the national session: created and shown whole through a pipe', async (t) => {
  const dir = t.testdir();
  const config = join(dir, 'national.yaml');
  // The demo network, with its store in this test's directory.
  const demo = readFileSync('config/demo.yaml', 'utf8');
  writeFileSync(config, demo.replace(/^daemon:\n/m, `daemon:\n  stateDir: ${JSON.stringify(dir)}\n`));
  // Bounded (a run that hangs fails here), loosely: seconds of CPU each, a minute on a machine at load 20.
  const created = await cli(['session', 'create', '--config', config, '--all', '--id', 'national', '--json'], 100_000);
  t.equal(created.code, 0, created.err);
  const summary = JSON.parse(created.out).summary;
  t.ok(summary.links > 50 && summary.mcus === summary.links + 1, `${summary.links} cascade links`);
  const show = await cli(['session', 'show', '--config', config, 'national', '--json'], 100_000);
  t.equal(show.code, 0, show.err);
  t.ok(show.out.length > 500_000, `${show.out.length} bytes through the pipe`);
  t.equal(Object.keys(JSON.parse(show.out).plan.assignments).length > 11_000, true, 'parsed whole');
});
