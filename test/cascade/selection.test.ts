/**
 * The chair selection written behind (docs/chair.md, "The cascade manager and
 * the chair"): chair commands one after another write one row, the latest,
 * about a second after the first, not one row each; a read of the store
 * meanwhile (a CLI process changed something) does not take the manager back
 * to the selection the store still holds; close writes what is pending; a
 * selection made through `select` is not overwritten by an older one still
 * waiting. The cascade and its pictures run against the simulator over real
 * sockets; the rows are read from the store itself.
 */
import t from 'tap';
import { createSimNetwork } from '../../src/sim/index.js';
import { openSqliteStore } from '../../src/store/index.js';
import { loopbackBase, network, startParts, until } from './helpers.js';

t.setTimeout(60_000);

const inv = () =>
  network(
    loopbackBase(),
    [
      { id: 'm', rooms: 2 },
      { id: 'p', parents: ['m'], rooms: 2 },
    ],
    [
      { id: 'chair', level: 'central', mcus: ['m'] },
      { id: 'p-ubnd', level: 'province', mcus: ['p'] },
      { id: 'p-x1', mcus: ['p'] },
      { id: 'p-x2', mcus: ['p'] },
      { id: 'chair-2', level: 'central', mcus: ['m'] },
      { id: 'p-x3', mcus: ['p'] },
    ],
  );

t.test('selections of commands in a row: one row, the latest, written behind; close writes the pending', async (t) => {
  const inventory = inv();
  const sim = await createSimNetwork({ inventory, infoDelayMs: 5 });
  t.teardown(() => sim.close());
  const dir = t.testdir();
  const parts = await startParts(inventory, dir);
  let closed = false;
  t.teardown(() => (closed ? undefined : parts.close()));
  const head = await parts.manager.admit({ id: 's', endpoints: ['p-ubnd', 'p-x1', 'p-x2'], chair: 'chair' });
  t.equal(head.state, 'live');
  t.equal((await parts.manager.admit({ id: 'other', endpoints: ['p-x3'], chair: 'chair-2' })).state, 'live');
  const writes: [string, string | null][] = [];
  const setSelection = parts.store.setCascadeSelection.bind(parts.store);
  parts.store.setCascadeSelection = (id, selection) => {
    writes.push([id, selection]);
    return setSelection(id, selection);
  };
  const stored = async () => (await parts.store.getCascade('s'))?.selection;

  for (const e of ['p-x1', 'p-x2', 'p-ubnd']) parts.manager.claimChair('s', e).done(true);
  t.equal(parts.manager.session('s')?.head.selection, 'p-ubnd', 'the selection in memory at once');
  t.equal(await stored(), null, 'not in the store yet');
  await parts.manager.sync();
  t.equal(
    parts.manager.session('s')?.head.selection,
    'p-ubnd',
    'a read of the store meanwhile keeps the selection not yet written',
  );
  await until('the row written', async () => (await stored()) === 'p-ubnd', 5_000);
  t.same(writes, [['s', 'p-ubnd']], 'one row for three commands: the latest');

  // A selection made through the store's own path after a command's: the command's must not land after it.
  // Another session's command in the same second: its row shows when the pending rows were written.
  parts.manager.claimChair('s', 'p-x1').done(true);
  parts.manager.claimChair('other', 'p-x3').done(true);
  await parts.manager.select('s', 'p-x2');
  t.equal(await stored(), 'p-x2');
  t.equal(parts.manager.session('s')?.head.selection, 'p-x2');
  await until(
    "the other session's row written",
    async () => (await parts.store.getCascade('other'))?.selection === 'p-x3',
    5_000,
  );
  t.equal(await stored(), 'p-x2', 'the older selection, still waiting, was dropped, not written over it');
  t.notOk(
    writes.some(([id, e]) => id === 's' && e === 'p-x1'),
    'and never written',
  );

  parts.manager.claimChair('s', 'p-x1').done(true);
  closed = true;
  await parts.close();
  const again = await openSqliteStore({ path: `${dir}/cascaded.db` });
  t.teardown(() => again.close());
  t.equal((await again.getCascade('s'))?.selection, 'p-x1', 'close wrote the pending selection');
});
