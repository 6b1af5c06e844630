/**
 * `cascaded plan` (src/cli/plan.ts): tree and JSON output, exit codes, session files, output through a pipe;
 * and any command's output through a pipe whose reader went away (src/cli/exit.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { EXIT_SIGPIPE } from '../../src/cli/exit.js';
import { runPlan } from '../../src/cli/plan.js';
import type { Plan } from '../../src/planner/index.js';

const dir = mkdtempSync(join(tmpdir(), 'cascaded-plan-'));
const config = join(dir, 'net.yaml');
writeFileSync(
  config,
  `version: 1
levels: [ { id: commune, name: Commune } ]
provinces: [ { id: p1, name: P1 } ]
operators: [ { id: op, name: Op, kind: central } ]
mcus:
  - { id: master, name: Master, operator: op, role: master, sip: [ "sip:m@127.0.0.1" ], vendor: x, capacity: { ports: 10, cascadePorts: 1 }, parents: [ p1 ] }
  - { id: p1, name: P1, operator: op, role: slave, sip: [ "sip:p@127.0.0.1" ], vendor: x, capacity: { ports: 4, cascadePorts: 1 }, parents: [ master ] }
endpoints:
  - { id: chair, name: Chair, level: commune, mcus: [ master ], vcs: x }
  - { id: e1, name: E1, level: commune, mcus: [ p1 ], vcs: x }
  - { id: e2, name: E2, level: commune, mcus: [ p1 ], vcs: x }
`,
);
const session = join(dir, 'session.json');
writeFileSync(session, JSON.stringify({ endpoints: ['e1', 'e2'], chair: 'chair' }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w1 = process.stdout.write;
  const w2 = process.stderr.write;
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await runPlan(args), out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

t.test('prints the tree with port use', async (t) => {
  const r = await run(['--config', config, '--session', session]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /max depth 1/);
  t.match(r.out, /master {2}depth 0 {2}ports 2\/10 {2}cascade 1\/1 {2}1 endpoint/);
  t.match(r.out, /└─ p1 {2}depth 1 {2}ports 3\/4/);
});

t.test('--json prints the plan; --all takes every endpoint', async (t) => {
  const r = await run(['-c', config, '--all', '--chair', 'chair', '--json']);
  t.equal(r.code, 0, r.err);
  const plan = JSON.parse(r.out);
  t.same(plan.assignments, { chair: 'master', e1: 'p1', e2: 'p1' });
  t.same(plan.links, { p1: 'master' });
});

t.test('infeasible: exit 1 with reasons; JSON error body with --json', async (t) => {
  const r = await run(['-c', config, '-s', session, '--unavailable', 'p1']);
  t.equal(r.code, 1);
  t.match(r.err, /PLAN_ERR_INFEASIBLE/);
  t.match(r.err, /p1 is unavailable/);
  const j = await run(['-c', config, '-s', session, '--unavailable', 'p1', '--json']);
  t.equal(j.code, 1);
  t.match(JSON.parse(j.out), {
    code: 'PLAN_ERR_INFEASIBLE',
    details: { reasons: [{ kind: 'no-reachable-candidate' }] },
  });
});

t.test('--root plans a session rooted at another MCU; --reserved leaves what other sessions hold', async (t) => {
  const r = await run(['-c', config, '--all', '--root', 'p1', '--chair', 'e1', '--json']);
  t.equal(r.code, 0, r.err);
  const p = JSON.parse(r.out);
  t.equal(p.root, 'p1');
  t.same(p.links, { master: 'p1' }, 'the master cascades into the root');
  t.same(p.assignments, { chair: 'master', e1: 'p1', e2: 'p1' }, 'the chair e1 sits on the root');
  t.same(p.depths, { chair: 1, e1: 0, e2: 0 });
  t.equal(p.optimal, true);
  const tree = await run(['-c', config, '-s', session, '--root', 'p1']);
  t.match(tree.out, /Root: p1; chair: chair/);
  t.match(tree.out, /Proven optimal/);
  const held = join(dir, 'held.yaml');
  writeFileSync(held, 'p1: { ports: 2 }\n');
  const h = await run(['-c', config, '-s', session, '--reserved', held]);
  t.equal(h.code, 1, 'two ports left on p1: its link and one endpoint');
  t.match(h.err, /PLAN_ERR_INFEASIBLE/);
  writeFileSync(held, 'p1: { ports: 1 }\n');
  const ok = await run(['-c', config, '-s', session, '--reserved', held]);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /p1 {2}depth 1 {2}ports 3 \(\+1 held\)\/4/);
  writeFileSync(held, 'p1: { ports: -1 }\n');
  t.equal((await run(['-c', config, '-s', session, '--reserved', held])).code, 2);
});

t.test('--budget: a plan not proven optimal says so', async (t) => {
  const r = await run(['-c', config, '-s', session, '--budget', '0']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /NOT proven optimal: the time budget ran out first; lower bound max depth \d/);
  const json = await run(['-c', config, '-s', session, '--budget', '0', '--json']);
  t.equal(json.code, 0, json.err);
  const p = JSON.parse(json.out) as Plan;
  t.equal(p.optimal, false, 'JSON: optimal false');
  t.equal(p.search.budgetExhausted, true);
  t.ok(p.bound.maxDepth <= p.objective.maxDepth, 'JSON: the proven bound, below the objective');
  t.equal((await run(['-c', config, '-s', session, '--budget', 'soon'])).code, 2);
});

t.test('the national plan as JSON through a pipe arrives whole', async (t) => {
  // The process exits only once its output has drained into the pipe (1.35 MB: more than a pipe buffers).
  const cli = join(process.cwd(), 'dist/src/cli/cascaded.js');
  const reader =
    'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>{const p=JSON.parse(s);process.stdout.write(JSON.stringify({n:p.endpoints.length,bytes:s.length,optimal:p.optimal}))})';
  const producer = spawn(process.execPath, [cli, 'plan', '--all', '--json', '--chair', 'vpcp-chair'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const consumer = spawn(process.execPath, ['-e', reader], { stdio: ['pipe', 'pipe', 'inherit'] });
  producer.stdout.pipe(consumer.stdin);
  let out = '';
  consumer.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const timer = setTimeout(() => {
    producer.kill();
    consumer.kill();
  }, 100_000);
  const [code] = await Promise.all([
    new Promise<number | null>((resolve) => producer.on('close', resolve)),
    new Promise<number | null>((resolve) => consumer.on('close', resolve)),
  ]);
  clearTimeout(timer);
  t.equal(code, 0);
  const got = JSON.parse(out) as { n: number; bytes: number; optimal: boolean };
  t.equal(got.n, 11_398, 'every endpoint of the demo network');
  t.ok(got.bytes > 1_000_000, `${got.bytes} bytes, more than a pipe holds`);
  t.equal(got.optimal, true);
});

t.test('a reader that goes away: the command ends quietly with the SIGPIPE status', async (t) => {
  // `cascaded session create ... --json | head -c 0`: the pipe is closed before the command writes (EPIPE).
  // It crashed with an unhandled 'error' event (exit 1, a stack trace on stderr) once the session was stored.
  const withStore = join(dir, 'with-store.yaml');
  writeFileSync(
    withStore,
    `daemon: { stateDir: ${JSON.stringify(join(dir, 'state'))} }\n${readFileSync(config, 'utf8')}`,
  );
  const cli = join(process.cwd(), 'dist/src/cli/cascaded.js');
  const producer = spawn(
    process.execPath,
    [cli, 'session', 'create', '-c', withStore, '--all', '--chair', 'chair', '--json'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  producer.stdout.destroy();
  let err = '';
  producer.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const timer = setTimeout(() => producer.kill(), 100_000);
  const code = await new Promise<number | null>((resolve) => producer.on('close', resolve));
  clearTimeout(timer);
  t.equal(code, EXIT_SIGPIPE, 'the status of a writer ended by SIGPIPE (128 + 13)');
  t.equal(err, '', 'no stack trace');
});

t.test('bad usage and bad input: exit 2', async (t) => {
  t.equal((await run(['-c', config])).code, 2, 'neither --session nor --all');
  t.equal((await run(['--bogus'])).code, 2);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'endpoints: [e1]\nchairman: x\n');
  t.match((await run(['-c', config, '-s', bad])).err, /unknown key chairman/);
  writeFileSync(bad, '[e1, nope]\n');
  const r = await run(['-c', config, '-s', bad]);
  t.equal(r.code, 2);
  t.match(r.err, /PLAN_ERR_INVALID_SESSION/);
  t.equal((await run(['-c', join(dir, 'missing.yaml'), '--all'])).code, 2);
  const h = await run(['--help']);
  t.equal(h.code, 0);
  t.match(h.out, /--session FILE/);
});
