/**
 * `npm run bench -- NAME [args]`: runs bench/NAME.ts. Each benchmark prints
 * its figures as one JSON object on the last line of its output (design 6).
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Exit once stdout and stderr have drained: `npm run bench -- NAME | tail -1` must see the last line. */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

const here = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'run.js' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === '-h' || !available.includes(name)) {
  const out = name === undefined || name === '--help' || name === '-h' ? process.stdout : process.stderr;
  out.write(`usage: npm run bench -- NAME [args]\n\nbenchmarks: ${available.join(', ')}\n`);
  exitWhenFlushed(name === undefined || name === '--help' || name === '-h' ? 0 : 2);
} else {
  const mod = (await import(`./${name}.js`)) as { default: (args: string[]) => Promise<Record<string, unknown>> };
  const result = await mod.default(rest);
  process.stdout.write(`${JSON.stringify({ bench: name, ...result })}\n`);
  exitWhenFlushed(0);
}
