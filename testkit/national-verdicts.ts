/**
 * `npm run gen:planner-verdicts`: the ILP oracle's verdicts on the national instances the planner
 * tests check (test/planner/national-*.test.ts), written to test/planner/national-verdicts.json.
 * HiGHS takes seconds per instance, so the suite reads its verdicts from that file instead of
 * solving them again; nothing the planner computes is cached. Each verdict carries a fingerprint
 * of its instance: a change to the generator makes the tests fail until this script is run again.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ilpOptimum } from './ilp.js';
import { fingerprint, nationalInstance, VERDICT_OPTIONS } from './national.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, count: { type: 'string' } },
    strict: true,
  });
  if (values.out === undefined) throw new Error('usage: national-verdicts --out FILE [--count N]');
  const count = Number(values.count ?? 20);
  const instances = [];
  for (let seed = 1; seed <= count; seed++) {
    const inst = nationalInstance(seed, VERDICT_OPTIONS);
    const ilp = await ilpOptimum(inst.inventory, inst.session, inst.unavailable, inst.reserved);
    instances.push({ seed, fingerprint: fingerprint(inst), objective: ilp.objective, ilpMs: Math.round(ilp.ms) });
    process.stderr.write(`seed ${seed}: ${JSON.stringify(ilp.objective)} in ${Math.round(ilp.ms)} ms\n`);
  }
  const body = { generator: 'testkit/national.ts', options: VERDICT_OPTIONS, oracle: 'testkit/ilp.ts', instances };
  writeFileSync(values.out, `${JSON.stringify(body, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
