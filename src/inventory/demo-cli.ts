/** `npm run gen:demo [-- --seed N --out FILE]`: write the demo network (config/demo.yaml). */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEMO_SEED, generateDemoYaml } from './demo.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(DEMO_SEED) },
    out: { type: 'string', default: 'config/demo.yaml' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'usage: npm run gen:demo -- [--seed N] [--out FILE]\n\n' +
      'Writes the simulated national network (deterministic for a seed).\n' +
      `  --seed N    generator seed (default ${DEMO_SEED})\n` +
      '  --out FILE  output path (default config/demo.yaml; "-" for stdout)\n',
  );
  process.exit(0);
}
const seed = Number(values.seed);
if (!Number.isInteger(seed)) {
  process.stderr.write(`gen:demo: --seed must be an integer, got "${values.seed}"\n`);
  process.exit(2);
}
const text = generateDemoYaml(seed);
if (values.out === '-') process.stdout.write(text);
else {
  writeFileSync(values.out, text);
  process.stderr.write(`gen:demo: wrote ${values.out} (${Buffer.byteLength(text)} bytes, seed ${seed})\n`);
}
