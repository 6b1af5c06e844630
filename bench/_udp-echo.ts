/**
 * The chair benchmark's bare replay (bench/chair.ts, `bareReplay`): a command's datagrams with no SIP and no
 * logic, each process on its own as the daemon and the simulator are.
 *
 * - `_udp-echo.js peer`: answers each datagram after the delay its first bytes name (`<ms>:`) with one the
 *   size of a 200 to an INFO; prints its port on stdout.
 * - `_udp-echo.js replay PORT`: reads the commands from stdin (JSON: per command, its datagrams as
 *   `[bytes, ms]`), sends each command's at once and waits for all their answers before the next, in the
 *   phase's blocks with the phase's estimator (`inBlocks`), and prints its CPU per command and the quartiles:
 *   this process does nothing else, so the idle rate it takes out is about nothing.
 *
 * Both exit when stdin closes, so neither outlives the benchmark.
 */
import { createSocket } from 'node:dgram';
import { inBlocks } from './_blocks.js';

const ANSWER = Buffer.alloc(360, 0x61);
const HOST = '127.0.0.1';

/** Per command, its datagrams: their size and how long the peer waits before it answers each. */
type Plan = readonly (readonly [bytes: number, ms: number])[][];

function peer(): void {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => {
    const colon = msg.indexOf(0x3a);
    const ms = colon > 0 && colon < 8 ? Number(msg.toString('latin1', 0, colon)) : 0;
    setTimeout(() => socket.send(ANSWER, from.port, from.address), Number.isFinite(ms) ? ms : 0);
  });
  socket.bind(0, HOST, () => process.stdout.write(`${socket.address().port}\n`));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

async function replay(port: number): Promise<void> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  const plan = JSON.parse(text) as Plan;
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, HOST, r));
  let waiting = 0;
  let done: () => void = () => {};
  socket.on('message', () => {
    if (--waiting === 0) done();
  });
  const commands = plan.map((c) =>
    c.map(([bytes, ms]) => {
      const b = Buffer.alloc(bytes, 0x62);
      b.write(`${Math.round(ms)}:`, 'latin1');
      return b;
    }),
  );
  const one = (datagrams: Buffer[]) =>
    new Promise<void>((resolve, reject) => {
      // Loopback does not lose datagrams at this rate; if it ever did, the run fails rather than hangs.
      const lost = setTimeout(() => reject(new Error('bare replay: an answer did not come back')), 5_000);
      done = () => {
        clearTimeout(lost);
        resolve();
      };
      waiting = datagrams.length;
      for (const d of datagrams) socket.send(d, port, HOST);
    });
  const r = await inBlocks(commands.length, (i) => one(commands[i]!));
  socket.close();
  process.stdout.write(`${JSON.stringify({ perCmd: r.perCmd, quartiles: r.quartiles })}\n`);
}

if (process.argv[2] === 'peer') peer();
else if (process.argv[2] === 'replay') await replay(Number(process.argv[3]));
else throw new Error('usage: _udp-echo.js peer | replay PORT');
