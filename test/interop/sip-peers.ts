/**
 * Running independent SIP peers (SIPp, kamailio) for the interop tests:
 * bounded in time, on loopback, with their exit status and call counters.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { UserAgent } from '../../src/sip/index.js';

export const SCENARIOS = fileURLToPath(new URL('../../../test/interop/sipp/', import.meta.url));
export const KAMAILIO_DIR = fileURLToPath(new URL('../../../test/interop/kamailio/', import.meta.url));

export function have(cmd: string, arg = '-v'): boolean {
  const r = spawnSync(cmd, [arg], { stdio: 'ignore', timeout: 5_000 });
  return r.error === undefined;
}

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sip-interop-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A port free for both UDP and TCP on 127.0.0.1 (so a proxy can use one number for both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

/**
 * Whether something holds `host:port`, from the kernel's socket tables (Linux /proc/net/udp, /proc/net/tcp: a
 * listening TCP socket is state 0A); undefined where there are none. Reading them never takes the port, where a
 * probe that binds it holds it for a moment: a peer binding just then fails ("unable to bind", SIPp exits 255).
 */
function bound(transport: 'udp' | 'tcp', host: string, port: number): boolean | undefined {
  let table: string;
  try {
    table = readFileSync(`/proc/net/${transport}`, 'utf8');
  } catch {
    return undefined;
  }
  // Addresses are hex in the host's byte order: 127.0.0.1:5060 is 0100007F:13C4 on a little-endian machine.
  const octets = host.split('.').map((n) => Number(n).toString(16).toUpperCase().padStart(2, '0'));
  const ip = (endianness() === 'LE' ? octets.reverse() : octets).join('');
  const address = `${ip}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return table.split('\n').some((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === address && (transport === 'udp' || f[3] === '0A');
  });
}

/** Whether something (a peer we started) holds `port` on `host`: the socket tables say, else our bind says EADDRINUSE. */
async function held(port: number, transport: 'udp' | 'tcp', host = '127.0.0.1'): Promise<boolean> {
  const known = bound(transport, host, port);
  if (known !== undefined) return known;
  const inUse = (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE';
  if (transport === 'udp') {
    const s = dgram.createSocket('udp4');
    return new Promise<boolean>((resolve) => {
      s.once('error', (err) => {
        s.close();
        resolve(inUse(err));
      });
      s.bind(port, host, () => s.close(() => resolve(false)));
    });
  }
  return new Promise<boolean>((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err) => resolve(inUse(err)));
    srv.listen(port, host, () => srv.close(() => resolve(false)));
  });
}

/**
 * Wait until a peer we started has bound its port (instead of sleeping a
 * guessed time); false when it has not within `ms`.
 */
export async function waitBound(port: number, transport: 'udp' | 'tcp', ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await held(port, transport)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** Derive a scenario variant: LOSS markers become lost="10" (or nothing), the PAUSE marker a 200 ms pause. */
export function scenario(dir: string, name: string, opts: { lossy?: boolean; tcp?: boolean } = {}): string {
  let xml = readFileSync(join(SCENARIOS, `${name}.xml`), 'utf8');
  xml = xml.replace(/ LOSS\/>/g, opts.lossy ? ' lost="10"/>' : '/>');
  xml = xml.replace('<!--PAUSE-->', opts.tcp ? '<pause milliseconds="200"/>' : '');
  const out = join(dir, `${name}${opts.lossy ? '-lossy' : ''}${opts.tcp ? '-tcp' : ''}.xml`);
  writeFileSync(out, xml);
  return out;
}

export interface SippResult {
  code: number | null;
  successful: number;
  failed: number;
  stderr: string;
}

export interface Peer {
  readonly done: Promise<SippResult>;
  stop(): void;
  /** SIPp's soft stop (SIGUSR1, as its `q` key): no new calls; it exits once the calls under way have ended. */
  quit(): void;
}

/** What a SIPp run plays: its scenario, its own port, where it calls, how much. */
export interface SippRun {
  readonly scenario: string;
  readonly port: number;
  /** Total calls (-m). */
  readonly calls: number;
  /** As UAC: the Request-URI user (-s) and the host:port called. */
  readonly call?: { readonly service: string; readonly target: string };
  /** Calls per second (-r) and the most at once (-l). */
  readonly rate?: number;
  readonly limit?: number;
  /** A transport other than SIPp's default UDP mode sets -t; with it comes a -timeout. */
  readonly transport?: 'udp' | 'tcp';
}

/** SIPp's command line for a run, always bound to 127.0.0.1. */
export function sippArgs(run: SippRun): string[] {
  return [
    ...['-sf', run.scenario, '-i', '127.0.0.1', '-p', `${run.port}`],
    ...(run.call === undefined ? [] : ['-s', run.call.service, run.call.target]),
    ...['-m', `${run.calls}`],
    ...(run.rate === undefined ? [] : ['-r', `${run.rate}`]),
    ...(run.limit === undefined ? [] : ['-l', `${run.limit}`]),
    ...(run.transport === undefined ? [] : ['-t', run.transport === 'udp' ? 'u1' : 't1', '-timeout', '60s']),
  ];
}

/** Run sipp with a hard deadline; counters come from its -trace_stat file. */
export function sipp(dir: string, args: string[], deadlineMs: number): Peer {
  const stf = join(dir, `stat-${Math.random().toString(36).slice(2)}.csv`);
  const child = spawn(
    'sipp',
    [...args, '-nostdin', '-trace_stat', '-stf', stf, '-trace_err', '-error_file', `${stf}.err`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: dir,
    },
  );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
  const done = new Promise<SippResult>((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      let successful = 0;
      let failed = 0;
      if (existsSync(stf)) {
        const lines = readFileSync(stf, 'utf8').trim().split('\n');
        const head = lines[0]!.split(';');
        const last = lines[lines.length - 1]!.split(';');
        successful = Number(last[head.indexOf('SuccessfulCall(C)')] ?? 0);
        failed = Number(last[head.indexOf('FailedCall(C)')] ?? 0);
      }
      if (existsSync(`${stf}.err`)) stderr += readFileSync(`${stf}.err`, 'utf8').slice(0, 4000);
      resolve({ code, successful, failed, stderr });
    });
  });
  return { done, stop: () => child.kill('SIGKILL'), quit: () => child.kill('SIGUSR1') };
}

/** SIPp's -trace_msg log, one entry per message, in the order SIPp handled them. */
export function sippMessages(file: string): { dir: 'sent' | 'received'; text: string }[] {
  return readFileSync(file, 'utf8')
    .split(/^-{20,}.*$/m)
    .map((chunk) => chunk.trim())
    .filter((chunk) => / message (sent|received)/.test(chunk))
    .map((chunk) => ({
      dir: / message sent/.test(chunk) ? ('sent' as const) : ('received' as const),
      text: chunk.slice(chunk.indexOf('\n') + 1).trim(),
    }));
}

/** Start kamailio in its own process group (so that stopping it also stops its workers). */
export function kamailio(dir: string, cfg: string, workers: number): { child: ChildProcess; stop(): Promise<void> } {
  const child = spawn(
    'kamailio',
    ['-f', cfg, '-DD', '-E', '-n', `${workers}`, '-m', '256', '-M', '8', '-P', join(dir, 'k.pid'), '-w', dir],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log = (log + c.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  // Never outlive the test run, whatever happens to the test.
  const guard = setTimeout(() => stop(), 300_000);
  guard.unref();
  function stop(): Promise<void> {
    clearTimeout(guard);
    if (child.exitCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    return exited;
  }
  Object.defineProperty(child, 'log', { get: () => log });
  return { child, stop };
}

/** Resolves once something holds UDP `port` on `host` (a peer we started has bound it), polling up to `ms`. */
export async function udpPortBound(port: number, ms = 10_000, host = '127.0.0.1'): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await held(port, 'udp', host)) return;
    if (Date.now() > end) throw new Error(`nothing bound UDP ${host}:${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with `n` once `n` requests of `method` sent by `ua` were answered 2xx; rejects after `ms`. */
export function answered(ua: UserAgent, method: string, n: number, ms = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let count = 0;
    const timer = setTimeout(() => reject(new Error(`only ${count} ${method} answered in ${ms} ms`)), ms);
    ua.on('transaction', (rec) => {
      if (rec.role === 'uac' && rec.method === method && rec.status < 300 && ++count === n) {
        clearTimeout(timer);
        resolve(count);
      }
    });
  });
}
