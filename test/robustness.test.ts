/**
 * Bad input never crashes the daemon (DEVELOPERS.md): the real daemon, flooded
 * on its SIP ports with malformed, mutated and oversized messages over UDP and
 * TCP, keeps serving: a valid OPTIONS is still answered and /healthz is 200.
 */
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { seededRandom } from '../src/core/random.js';
import { baseConfig, toYaml } from './config/fixtures.js';
import { httpsGet, spawnDaemon } from './helpers/daemon.js';

const options = (branch: string, port: number) =>
  `OPTIONS sip:cascaded@127.0.0.1:${port} SIP/2.0\r\n` +
  `Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK${branch}\r\n` +
  'Max-Forwards: 70\r\nFrom: <sip:fuzz@127.0.0.1>;tag=f1\r\nTo: <sip:cascaded@127.0.0.1>\r\n' +
  `Call-ID: ${branch}@fuzz\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;

/** Malformed datagrams: random bytes, mutated and truncated requests, oversized and pathological headers. */
function* badMessages(port: number, n: number): Generator<Buffer> {
  const rnd = seededRandom(4475);
  const valid = Buffer.from(options('base', port));
  for (let i = 0; i < n; i++) {
    switch (i % 6) {
      case 0:
        yield Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 1400) }, () => Math.floor(rnd() * 256)));
        break;
      case 1: {
        const b = Buffer.from(valid);
        for (let k = 0; k < 1 + Math.floor(rnd() * 8); k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        yield b;
        break;
      }
      case 2:
        yield valid.subarray(0, Math.floor(rnd() * valid.length));
        break;
      case 3:
        yield Buffer.from(options(`cl${i}`, port).replace('Content-Length: 0', 'Content-Length: 99999999999'));
        break;
      case 4:
        yield Buffer.from(options(`h${i}`, port).replace('Max-Forwards: 70', `X-Big: ${'a'.repeat(60_000)}`));
        break;
      default:
        yield Buffer.from(options(`v${i}`, port).replace('Via: SIP/2.0/UDP 127.0.0.1:9', 'Via: ;;;,,,'));
    }
  }
}

t.test('the daemon survives a flood of malformed SIP over UDP and TCP', async (t) => {
  const dir = t.testdir();
  const o = baseConfig();
  o.daemon = {
    logLevel: 'warn',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0 },
    sip: {
      listen: [
        { transport: 'udp', host: '127.0.0.1', port: 0 },
        { transport: 'tcp', host: '127.0.0.1', port: 0 },
      ],
    },
  };
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, toYaml(o));
  const d = spawnDaemon(['--config', file, '--log-level', 'info']);
  t.teardown(() => d.child.kill('SIGKILL'));
  const ready = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'));
  const api = String(ready.api);
  const state = join(dir, 'state');
  const readyz = (await httpsGet(`${api}/readyz`, state)).body as { checks: { name: string; detail?: string }[] };
  const detail = readyz.checks.find((c) => c.name === 'sip')!.detail!;
  const udpPort = Number(/udp:127\.0\.0\.1:(\d+)/.exec(detail)![1]);
  const tcpPort = Number(/tcp:127\.0\.0\.1:(\d+)/.exec(detail)![1]);

  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  let sent = 0;
  for (const msg of badMessages(udpPort, 3_000)) {
    await new Promise<void>((r) => udp.send(msg, udpPort, '127.0.0.1', () => r()));
    sent++;
  }
  t.equal(sent, 3_000);

  // TCP: garbage, a header section that never ends, and a body that never arrives.
  const streams = [
    Buffer.from(Array.from({ length: 5_000 }, (_, i) => (i * 7919) % 256)),
    Buffer.from(`OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nX: ${'b'.repeat(200_000)}`),
    Buffer.from(options('tcp', tcpPort).replace('Content-Length: 0', 'Content-Length: 500000000')),
  ];
  await Promise.all(
    streams.map(
      (payload) =>
        new Promise<void>((resolve) => {
          const s = connect(tcpPort, '127.0.0.1', () => s.end(payload));
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          s.setTimeout(5_000, () => s.destroy());
          s.resume();
        }),
    ),
  );

  // Still alive, still answering SIP and HTTPS. The flood overflows the daemon's UDP receive buffer (the kernel drops
  // hundreds of its datagrams), so on a loaded machine the valid OPTIONS may meet a full buffer too: it is
  // retransmitted as a UAC's non-INVITE client transaction would (RFC 3261 Timer E: 500 ms doubling to T2, 4 s).
  const after = Buffer.from(options('after', udpPort).replace('base@fuzz', 'after@fuzz'));
  const sentAt = Date.now();
  let attempts = 0;
  const answer = await new Promise<string>((resolve, reject) => {
    let retransmit: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      clearTimeout(retransmit);
      reject(new Error(`no answer to a valid OPTIONS after the flood (${attempts} sent in 30 s)`));
    }, 30_000);
    const send = (interval: number) => {
      attempts++;
      udp.send(after, udpPort, '127.0.0.1');
      retransmit = setTimeout(() => send(Math.min(interval * 2, 4_000)), interval);
    };
    udp.on('message', (m) => {
      const text = m.toString('latin1');
      if (text.includes('Call-ID: after@fuzz')) {
        clearTimeout(deadline);
        clearTimeout(retransmit);
        resolve(text);
      }
    });
    send(500);
  });
  t.comment(`answered after ${attempts} transmission(s), ${Date.now() - sentAt} ms`);
  t.match(answer, /^SIP\/2\.0 200 /, 'a valid OPTIONS is answered 200');
  t.equal(d.child.exitCode, null, 'the daemon is running');
  t.same((await httpsGet(`${api}/healthz`, state)).status, 200);
  t.notOk(
    d.logs.some((l) => Number(l.level) >= 50),
    'no error or fatal log line',
  );

  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'and it still stops cleanly');
});

t.test('daemon.sip.limits reach the SIP port: connections from one address past the cap are refused', async (t) => {
  const dir = t.testdir();
  const o = baseConfig();
  o.daemon = {
    logLevel: 'warn',
    stateDir: join(dir, 'state'),
    api: { host: '127.0.0.1', port: 0 },
    sip: { listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }], limits: { maxConnectionsPerAddress: 2 } },
  };
  const file = join(dir, 'cascaded.yaml');
  writeFileSync(file, toYaml(o));
  const d = spawnDaemon(['--config', file, '--log-level', 'info']);
  t.teardown(() => d.child.kill('SIGKILL'));
  const ready = await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ready:'));
  const state = join(dir, 'state');
  const readyz = (await httpsGet(`${String(ready.api)}/readyz`, state)).body as {
    checks: { name: string; detail?: string }[];
  };
  const tcpPort = Number(/tcp:127\.0\.0\.1:(\d+)/.exec(readyz.checks.find((c) => c.name === 'sip')!.detail!)![1]);

  // An OPTIONS over a connection of its own: 'answered' with the connection kept open, or 'closed' unanswered.
  const ask = (branch: string) => {
    const s = connect(tcpPort, '127.0.0.1');
    const outcome = new Promise<'answered' | 'closed'>((resolve) => {
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        text += d;
        if (/^SIP\/2\.0 200 /.test(text)) resolve('answered');
      });
      s.on('error', () => resolve('closed'));
      s.on('close', () => resolve('closed'));
    });
    s.on('connect', () => s.write(options(branch, tcpPort).replace('SIP/2.0/UDP', 'SIP/2.0/TCP')));
    return { socket: s, outcome };
  };
  const first = ask('c1');
  const second = ask('c2');
  t.equal(await first.outcome, 'answered');
  t.equal(await second.outcome, 'answered');
  const third = ask('c3');
  t.equal(await third.outcome, 'closed', 'a third connection from 127.0.0.1 is refused (the stack default is 32)');
  // A slot freed is a slot again.
  const freed = new Promise((r) => first.socket.once('close', r));
  first.socket.destroy();
  await freed;
  let again: 'answered' | 'closed' = 'closed';
  // The daemon learns of the close asynchronously: ask until a new connection is accepted (bounded).
  for (let i = 0; i < 50 && again === 'closed'; i++) {
    const next = ask(`r${i}`);
    again = await next.outcome;
    if (again === 'answered') next.socket.destroy();
  }
  t.equal(again, 'answered', 'a closed connection frees its slot');
  second.socket.destroy();
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null });
});
