/**
 * The re-plan shortcut (keeping the previous plan minus what left, `keptSolution`) against the
 * full search (`replanByFullSearch`): on seeded random instances and a spread of changes, the two
 * give the same plan byte for byte, or the same coded error. The changes include ones where the
 * shortcut must not apply (endpoints added, endpoints that must move, links that must relink) and
 * ones where it is offered but a shallower plan exists; the test counts each kind so that none
 * goes unexercised. Each re-plan also starts once from a JSON copy of the previous plan (as read
 * back from storage), which must give the same result as the plan object itself.
 */
import t, { type Test } from 'tap';
import type { Inventory } from '../../src/inventory/types.js';
import type { Plan, SessionChange } from '../../src/planner/index.js';
import { replanByFullSearch } from '../../src/planner/plan.js';
import { endpoint, inventory, MEDIUM, mcu, prng, randomInstance, type Shape, SMALL } from './fixtures.js';
import { checkPlan, plan, replan } from './harness.js';

type Outcome = { json: string; shortcut: Plan['search']['shortcut'] } | { error: string };

/** A plan's JSON without its search statistics, which differ between the shortcut and the full search by design. */
const planJson = (p: Plan) => JSON.stringify({ ...p, search: undefined });

function attempt(fn: () => Plan): Outcome {
  try {
    const p = fn();
    return { json: planJson(p), shortcut: p.search.shortcut };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === undefined) throw err;
    return { error: `${code} ${JSON.stringify((err as { details?: unknown }).details)}` };
  }
}

/** Changes to try on a live plan, drawn from the seed: removals, lost MCUs, both, restores, additions. */
function changes(inv: Inventory, p: Plan, unavailable: readonly string[], seed: number): SessionChange[] {
  const rnd = prng(seed * 31 + 7);
  const pick = <T>(xs: readonly T[], n: number): T[] => [...xs].sort(() => rnd() - 0.5).slice(0, n);
  const slaves = p.mcus.filter((m) => m.parent !== null).map((m) => m.id);
  const removable = p.endpoints.filter((e) => e !== p.chair && !p.addedForRelay.includes(e));
  const outside = inv.endpoints.map((e) => e.id).filter((e) => !p.endpoints.includes(e));
  const out: SessionChange[] = [{}];
  for (const m of slaves) out.push({ lostMcus: [m] });
  for (let k = 1; k <= 3; k++) out.push({ removeEndpoints: pick(removable, k) });
  if (slaves.length > 0) out.push({ lostMcus: pick(slaves, 1), removeEndpoints: pick(removable, 2) });
  if (unavailable.length > 0) out.push({ restoredMcus: [...unavailable] });
  if (outside.length > 0) {
    out.push({ addEndpoints: pick(outside, 2) });
    out.push({ addEndpoints: pick(outside, 1), removeEndpoints: pick(removable, 1) });
  }
  return out;
}

function compare(t: Test, shape: Shape, seeds: number, label: string) {
  const counts = { kept: 0, shallower: 0, none: 0, errors: 0, shortage: 0, cases: 0 };
  let mismatches = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const inst = randomInstance(seed, shape);
    let p: Plan;
    try {
      p = plan(inst.inventory, inst.session, { unavailableMcus: inst.unavailable, reserved: inst.reserved });
    } catch {
      continue;
    }
    for (const change of changes(inst.inventory, p, inst.unavailable, seed)) {
      counts.cases++;
      // A budget no search here needs: the comparison is byte for byte, so both must finish.
      const options = { budgetMs: 60_000 };
      const fast = attempt(() => replan(inst.inventory, p, change, options));
      const full = attempt(() => replanByFullSearch(inst.inventory, p, change, options));
      // A plan read back from storage is not the object `plan` returned: its records are read, not its cached numbers.
      const stored = attempt(() => replan(inst.inventory, JSON.parse(JSON.stringify(p)), change, options));
      if ('error' in fast) counts.errors++;
      else {
        counts[fast.shortcut]++;
        if ((JSON.parse(fast.json) as Plan).bound.unplaced !== undefined) counts.shortage++;
      }
      const outcome = (o: Outcome) => ('json' in o ? o.json : o.error);
      const same = outcome(fast) === outcome(full) && outcome(stored) === outcome(fast);
      const valid = !('json' in fast) || checkPlan(inst.inventory, JSON.parse(fast.json)).violations.length === 0;
      if ((!same || !valid) && mismatches++ < 5) t.fail(`${label} seed ${seed}`, { change, fast, full, stored, valid });
    }
  }
  t.equal(mismatches, 0, `${label}: shortcut = full search on ${counts.cases} re-plans`);
  t.ok(counts.kept > counts.cases / 10, `${label}: the previous plan kept ${counts.kept} times`);
  t.ok(counts.none > counts.cases / 10, `${label}: shortcut not applicable ${counts.none} times`);
  t.ok(counts.shortage > 0, `${label}: re-plans under a shortage compared too (${counts.shortage})`);
  return counts;
}

t.test('re-plan shortcut = full search on seeded small and medium instances', async (t) => {
  const small = compare(t, SMALL, 400, 'small');
  const medium = compare(t, MEDIUM, 25, 'medium');
  t.ok(small.shallower + medium.shallower > 0, 'the kept plan was beaten by a shallower one at least once');
});

t.test('a removal that allows a shallower tree is not kept', async (t) => {
  // The master has one cascade port: with y in the session, a takes it and d sits under a (depth 2).
  const inv = inventory(
    [mcu('master', 20, 1), mcu('a', 6, 2, ['master']), mcu('d', 6, 0, ['a', 'master'])],
    [endpoint('x', ['d']), endpoint('y', ['a'])],
  );
  const p = plan(inv, { endpoints: ['x', 'y'] });
  t.same(p.links, { a: 'master', d: 'a' });
  const q = replan(inv, p, { removeEndpoints: ['y'] });
  t.equal(q.search.shortcut, 'shallower');
  t.same(q.links, { d: 'master' }, 'depth 1 now fits: optimal depth before fewer relinks');
  t.same(q.changes!.relinkedMcus, ['d']);
  t.equal(q.objective.maxDepth, 1);
  t.equal(planJson(q), planJson(replanByFullSearch(inv, p, { removeEndpoints: ['y'] })));
});

t.test('losing a province MCU: its second MCU goes with it unless it can relink', async (t) => {
  // p2 cascades only into p (like nghe-an-2 into nghe-an): losing p strands p2's endpoints, and
  // everyone else stays where they were, so the previous plan is kept. p-only keeps p in the tree
  // and the master's two cascade ports go to p and q, so p2 starts under p in both variants.
  const build = (p2Parents: string[]) =>
    inventory(
      [mcu('master', 40, 2), mcu('p', 5, 1, ['master']), mcu('p2', 10, 0, p2Parents), mcu('q', 10, 1, ['master'])],
      [
        endpoint('gov', ['master']),
        endpoint('p-ubnd', ['master', 'p']),
        endpoint('p-only', ['p']),
        ...['a', 'b', 'c'].map((x) => endpoint(`p-${x}`, ['p', 'p2'])),
        ...['d', 'e', 'f', 'g'].map((x) => endpoint(`p-${x}`, ['p', 'p2'])),
        endpoint('q-a', ['q']),
      ],
    );
  const only = build(['p']);
  const all = only.endpoints.map((e) => e.id);
  const before = plan(only, { endpoints: all, chair: 'gov' });
  t.equal(before.links.p2, 'p');
  const after = replan(only, before, { lostMcus: ['p'] });
  t.equal(after.search.shortcut, 'kept');
  t.same(after.changes!.droppedEndpoints, ['p-a', 'p-b', 'p-c', 'p-d', 'p-e', 'p-f', 'p-g', 'p-only']);
  t.same(after.changes!.movedEndpoints, []);
  t.equal(after.assignments['p-ubnd'], 'master');
  t.equal(planJson(after), planJson(replanByFullSearch(only, before, { lostMcus: ['p'] })));

  // With the master as a second parent (its cascade ports freed by p), p2 survives by relinking:
  // the full search must run.
  const both = build(['p', 'master']);
  const before2 = plan(both, { endpoints: all, chair: 'gov' });
  t.equal(before2.links.p2, 'p');
  const after2 = replan(both, before2, { lostMcus: ['p'] });
  t.equal(after2.search.shortcut, 'none');
  t.same(after2.changes!.relinkedMcus, ['p2']);
  t.same(after2.changes!.droppedEndpoints, ['p-only']);
  t.equal(planJson(after2), planJson(replanByFullSearch(both, before2, { lostMcus: ['p'] })));
});
