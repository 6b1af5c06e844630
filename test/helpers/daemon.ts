import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

export interface SpawnedDaemon {
  readonly child: ChildProcess;
  /** Parsed JSON log lines so far. */
  readonly logs: Record<string, unknown>[];
  readonly stderr: () => string;
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start the real daemon (compiled CLI) as a child process, collecting its JSON log lines. */
export function spawnDaemon(args: string[], env: NodeJS.ProcessEnv = {}): SpawnedDaemon {
  const child = spawn(process.execPath, ['dist/src/cli/cascaded.js', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  // Each waitForLog in progress: told of every line as it is parsed, and of the end of the output.
  const waiters = new Set<(l: Record<string, unknown> | 'closed') => void>();
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const l of lines) {
      if (l.trim() === '') continue;
      const line = JSON.parse(l) as Record<string, unknown>;
      logs.push(line);
      for (const w of waiters) w(line);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  // 'close', not 'exit': it fires once stdout is drained, so every log line is parsed by then.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      for (const w of waiters) w('closed');
      resolve({ code, signal });
    }),
  );
  let closed = false;
  void exited.then(() => {
    closed = true;
  });
  return {
    child,
    logs,
    stderr: () => err,
    exited,
    // Settled by the line itself as it arrives (or the end of the output, or the deadline): no polling, and
    // each line is tested once, however long the log grows.
    waitForLog(pred, timeoutMs = 20_000) {
      const hit = logs.find(pred);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        const fail = (why: string) => {
          done();
          reject(new Error(`log line not seen (${why}); stderr: ${err}; logs: ${JSON.stringify(logs)}`));
        };
        const waiter = (l: Record<string, unknown> | 'closed') => {
          if (l === 'closed') fail(`exit ${child.exitCode}`);
          else if (pred(l)) {
            done();
            resolve(l);
          }
        };
        const timer = setTimeout(() => fail(`not within ${timeoutMs} ms; exit ${child.exitCode}`), timeoutMs);
        if (closed) fail(`exit ${child.exitCode}`);
        else waiters.add(waiter);
      });
    },
  };
}

/** GET over HTTPS, trusting the daemon's (self-signed) certificate from its state directory. */
export function httpsGet(url: string, stateDir: string): Promise<{ status: number; body: unknown }> {
  const ca = readFileSync(join(stateDir, 'tls', 'api.crt'));
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
    });
    req.on('error', reject);
    req.end();
  });
}
