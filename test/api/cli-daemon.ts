/**
 * What the CLI tests share: the real `cascaded` CLI as a child process, and
 * the daemon (compiled, its own process) on three simulated MCUs of the
 * fixture inventory with an API certificate of the test's own.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import selfsigned from 'selfsigned';
import type { Test } from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';
import { type SpawnedDaemon, spawnDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);

export const certFor = (cn: string) =>
  selfsigned.generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7 as const, ip: '127.0.0.1' }] }],
  });

/** `cascaded ARGS` to its end (bounded: a CLI that hangs fails the test rather than the file's timeout). */
export async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['dist/src/cli/cascaded.js', ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The fixture inventory's config with state in `dir` and the API certificate `dir/api.crt`, written to a file. */
export function writeConfig(dir: string, mcuUris: readonly string[] = []): string {
  const o = baseConfig();
  o.daemon = {
    logLevel: 'info',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0, tls: { cert: join(dir, 'api.crt'), key: join(dir, 'api.key') } },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] },
  };
  mcuUris.forEach((uri, i) => {
    o.mcus[i].sip = [uri];
  });
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, toYaml(o));
  return file;
}

export interface RunningDaemon {
  readonly file: string;
  readonly url: string;
  /** The certificate the API serves (to pin). */
  readonly cert: string;
  readonly d: SpawnedDaemon;
}

/** The daemon on simulated MCUs, up once it logs ready; killed at the end of `t`. */
export async function runningDaemon(t: Test): Promise<RunningDaemon> {
  const dir = t.testdir();
  const sims = await Promise.all(
    ['master', 'nb', 'qb-vnpt-1'].map((id) => createSimMcu({ id, uri: 'sip:conf@127.0.0.1:0', ports: 20 })),
  );
  t.teardown(() => Promise.all(sims.map((s) => s.close())));
  const first = await certFor('first');
  writeFileSync(join(dir, 'api.crt'), first.cert);
  writeFileSync(join(dir, 'api.key'), first.private);
  const file = writeConfig(
    dir,
    sims.map((s) => s.uri),
  );
  const d = spawnDaemon(['--config', file]);
  t.teardown(() => d.child.kill('SIGKILL'));
  // Bounded by the file's timeout: the daemon starts in a few seconds, much longer on a loaded machine.
  const ready = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'), 100_000);
  return { file, url: /API (https:\S+)/.exec(String(ready.msg))![1]!, cert: first.cert, d };
}
