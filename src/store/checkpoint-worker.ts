/**
 * The store's WAL checkpointer, in a worker thread with a connection of its own (see checkpointer.ts).
 * A checkpoint copies the WAL's pages into the database file and fsyncs both files: milliseconds of
 * I/O wait that, run by the daemon's own connection (SQLite's auto-checkpoint, inside whichever commit
 * crossed 1,000 pages), held its event loop once every hundred-odd chair commands.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointResult {
  /** Pages in the WAL, and how many of them are now in the database file (PRAGMA wal_checkpoint), at the last round. */
  readonly log: number;
  readonly checkpointed: number;
  /** 1 when a reader or writer kept a PASSIVE checkpoint from finishing: the next one goes on. */
  readonly busy: number;
  /** Checkpoints run back to back to catch up with the commits made meanwhile. */
  readonly rounds: number;
  readonly ms: number;
}

const MAX_ROUNDS = 4;

type Pages = Omit<CheckpointResult, 'rounds' | 'ms'>;

const port = parentPort!;
const db = new Database((workerData as { path: string }).path);
// The daemon's connection may hold the write lock for a commit: wait for it rather than fail.
db.pragma('busy_timeout = 5000');
db.pragma('wal_autocheckpoint = 0');

port.on('message', (m: 'run' | 'close') => {
  if (m === 'close') {
    db.close();
    port.close();
    return;
  }
  const t0 = performance.now();
  try {
    // PASSIVE: never waits for the daemon's readers or writers, so it never delays a commit (sqlite.org/wal.html).
    // The WAL restarts from its beginning at the first commit that finds every page of it copied; commits
    // made during a checkpoint are left for another round, each shorter than the one before. Rounds stop
    // when one finds nothing new (caught up) or after MAX_ROUNDS (a writer that never pauses: the store
    // then finishes on its own thread, see sqlite.ts).
    let r = (db.pragma('wal_checkpoint(PASSIVE)') as Pages[])[0]!;
    let rounds = 1;
    while (rounds < MAX_ROUNDS) {
      const again = (db.pragma('wal_checkpoint(PASSIVE)') as Pages[])[0]!;
      rounds++;
      const caughtUp = again.log === r.log && again.checkpointed === again.log;
      r = again;
      if (caughtUp) break;
    }
    port.postMessage({ ...r, rounds, ms: performance.now() - t0 } satisfies CheckpointResult);
  } catch (err) {
    port.postMessage({ error: (err as Error).message });
  }
});
