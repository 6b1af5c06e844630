import { Worker } from 'node:worker_threads';
import type { Clock, TimerHandle } from '../core/index.js';
import type { CheckpointResult } from './checkpoint-worker.js';

export type { CheckpointResult };

export interface CheckpointerOptions {
  /** The database file (WAL mode). */
  readonly path: string;
  readonly clock: Clock;
  /** Time between two checkpoints. */
  readonly everyMs: number;
  /** After each checkpoint (for metrics and tests). */
  readonly onCheckpoint?: (r: CheckpointResult) => void;
  /** The worker failed or exited: the caller takes checkpoints back (its connection's auto-checkpoint). */
  readonly onFailure: (err: Error) => void;
}

export interface Checkpointer {
  /** Stop the worker (idempotent); resolves once its connection is closed. */
  close(): Promise<void>;
}

/**
 * Checkpoints of a WAL database in a worker thread, every `everyMs` (the clock's timer asks, the worker
 * runs one at a time). The daemon's connection sets `wal_autocheckpoint = 0`, so neither its commits nor
 * its event loop ever wait for the fsyncs of a checkpoint; the WAL is reset by the first commit after a
 * checkpoint that found no reader behind it (sqlite.org/wal.html, "Checkpointing").
 */
export function startCheckpointer(o: CheckpointerOptions): Checkpointer {
  const worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), {
    workerData: { path: o.path },
    // It prints nothing. Left to Node, its stdout and stderr are piped into the process's own, which
    // makes the process's stdout stream (a pipe under systemd or a test) non-blocking: pino's synchronous
    // writes then meet EAGAIN and a log line could come out after later ones.
    stdout: true,
    stderr: true,
  });
  // Not a reason to stay alive: the store's close() ends it.
  worker.unref();
  let timer: TimerHandle | undefined;
  let running = false;
  let stopped = false;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));

  const fail = (err: Error) => {
    if (stopped) return;
    stopped = true;
    o.clock.clearTimeout(timer);
    void worker.terminate();
    o.onFailure(err);
  };
  const arm = () => {
    timer = o.clock.setTimeout(() => {
      timer = undefined;
      // A checkpoint still running (a slow disk) is not queued behind: the next tick asks again.
      if (!running) {
        running = true;
        worker.postMessage('run');
      }
      arm();
    }, o.everyMs);
  };
  worker.on('message', (m: CheckpointResult | { error: string }) => {
    running = false;
    if ('error' in m) fail(new Error(`WAL checkpoint: ${m.error}`));
    else o.onCheckpoint?.(m);
  });
  // An error thrown in the worker arrives cloned: a SqliteError as a bare `{ code }`.
  worker.on('error', (err: unknown) =>
    fail(
      err instanceof Error && err.message !== undefined
        ? err
        : new Error(`WAL checkpointer: ${(err as { code?: string }).code ?? String(err)}`, { cause: err }),
    ),
  );
  worker.on('exit', (code) => fail(new Error(`the WAL checkpointer exited (${code})`)));
  arm();

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        const wasRunning = !stopped;
        stopped = true;
        o.clock.clearTimeout(timer);
        // Kept alive until the worker's connection is closed.
        worker.ref();
        if (wasRunning) worker.postMessage('close');
        await exited;
      })();
      return closing;
    },
  };
}
