/**
 * `cascaded session ...` and `cascaded cascade status` as a user runs them:
 * child processes against a config file, exit codes, --help, refusals with
 * reasons. The national session through a pipe: cli-national.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cli, networkConfig } from './helpers.js';

t.setTimeout(180_000);

t.test('create, list, show, status and end a session from the command line', async (t) => {
  const dir = t.testdir();
  const config = join(dir, 'net.yaml');
  writeFileSync(
    config,
    JSON.stringify(
      networkConfig(
        '127.251.0.',
        [
          { id: 'm', ports: 6, rooms: 2 },
          { id: 'p', parents: ['m'], rooms: 2 },
        ],
        [
          { id: 'chair', level: 'central', mcus: ['m'] },
          { id: 'gov-1', level: 'central', mcus: ['m'] },
          { id: 'gov-2', level: 'central', mcus: ['m'] },
          { id: 'gov-3', level: 'central', mcus: ['m'] },
          { id: 'x1', mcus: ['p'] },
          { id: 'x2', mcus: ['p'] },
        ],
        { stateDir: dir, logLevel: 'warn' },
      ),
    ),
  );
  const c = ['--config', config];

  const created = await cli([
    'session',
    'create',
    ...c,
    '--id',
    'one',
    '--title',
    'Phiên 1',
    '--endpoints',
    'x1,gov-1',
    '--chair',
    'chair',
    '--view',
    'speaker',
    '--json',
  ]);
  t.equal(created.code, 0, created.err);
  t.match(JSON.parse(created.out), {
    sessionId: 'one',
    title: 'Phiên 1',
    state: 'live',
    root: 'm',
    request: { view: 'speaker' },
    summary: { endpoints: 3, mcus: 2, links: 1, maxDepth: 1 },
  });
  t.notOk('plan' in JSON.parse(created.out), 'the plan stays in the store (session show has it)');

  const text = await cli(['session', 'create', ...c, '--id', 'two', '--endpoints', 'x2']);
  t.equal(text.code, 0, text.err);
  t.match(text.out, /session two admitted: .*1 cascade links/);

  // Runs that change nothing (refusals, reads) go at once: each is a process of its own, most of its time
  // spent loading its modules and the config, and a loaded machine has them wait for a core one after another.
  const refuse = ['session', 'create', ...c, '--endpoints', 'gov-2,gov-3,x1', '--chair', 'chair'];
  const [refused, refusedJson, list, show, status, all] = await Promise.all([
    cli(refuse),
    cli([...refuse, '--json']),
    cli(['session', 'list', ...c, '--json']),
    cli(['session', 'show', ...c, 'one', '--json']),
    cli(['cascade', 'status', ...c, 'one', '--json']),
    cli(['cascade', 'status', ...c]),
  ]);
  t.equal(refused.code, 1, 'no capacity: exit 1');
  t.match(refused.err, /PLAN_ERR_INFEASIBLE/);
  t.match(refused.err, /held by one, two|held by two, one/, 'the reasons name the sessions holding the capacity');
  t.match(JSON.parse(refusedJson.out), { code: 'PLAN_ERR_INFEASIBLE', details: { heldBy: ['one', 'two'] } });

  t.same(
    JSON.parse(list.out).map((s: { sessionId: string }) => s.sessionId),
    ['one', 'two'],
  );
  t.match(JSON.parse(show.out), { sessionId: 'one', plan: { links: { p: 'm' } }, events: [] });

  t.equal(status.code, 0);
  t.match(JSON.parse(status.out), {
    sessionId: 'one',
    counts: { planned: 1, dialing: 0, up: 0, failed: 0 },
    links: [{ child: 'p', parent: 'm', state: 'planned' }],
  });
  t.match(all.out, /one "Phiên 1" live, root m: 1 links: 0 up, 0 dialing, 0 failed, 1 planned/);

  const end = await cli(['session', 'end', ...c, 'one']);
  t.equal(end.code, 0);
  t.match(end.out, /one: ending/);
  t.equal((await cli(['session', 'end', ...c, 'one'])).code, 0, 'ending twice is fine');
  const [gone, noStatus] = await Promise.all([
    cli(['session', 'end', ...c, 'nope', '--json']),
    cli(['cascade', 'status', ...c, 'nope']),
  ]);
  t.equal(gone.code, 1);
  t.match(JSON.parse(gone.out), { code: 'CASCADE_ERR_NOT_FOUND' });
  t.equal(noStatus.code, 1);
});

t.test('usage: --help everywhere, bad usage exits 2', async (t) => {
  // Independent runs, at once (see above).
  const helps = [['session', '--help'], ['session', 'create', '--help'], ['cascade', 'status', '--help'], ['--help']];
  const bad: [string[], object][] = [
    [['session', 'create', '--endpoints', 'a', '--all'], { code: 2, err: /exactly one of/ }],
    [['session', 'frobnicate'], { code: 2 }],
    [['session', 'create', '--bogus'], { code: 2 }],
    [['cascade', 'nothing'], { code: 2 }],
    [['cascade', 'status', '--interval', '5'], { code: 2 }],
    [['session', 'create', '--config', '/nonexistent.yaml', '--all'], { code: 1 }],
  ];
  const runs = await Promise.all([...helps, ...bad.map(([args]) => args)].map((args) => cli(args)));
  helps.forEach((args, i) => {
    t.equal(runs[i]!.code, 0, `${args.join(' ')}: exit 0`);
    t.match(runs[i]!.out, /Usage:/);
  });
  bad.forEach(([args, want], i) => {
    t.match(runs[helps.length + i], want, args.join(' '));
  });
});
