import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ALL_ERRORS } from '../src/errors.js';

const doc = readFileSync('docs/errors.md', 'utf8');
const documented = new Map(
  [...doc.matchAll(/^\| `([A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const),
);

t.test('every error code is documented in docs/errors.md with its HTTP status', async (t) => {
  for (const [code, spec] of Object.entries(ALL_ERRORS)) {
    t.equal(documented.get(code), spec.status, `${code} documented with status ${spec.status}`);
  }
  for (const code of documented.keys()) t.ok(code in ALL_ERRORS, `${code} in docs exists in src/errors.ts`);
});

t.test('every code string used in src/ is registered', async (t) => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk('src');
  walk('native');
  const used = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(f, 'utf8').matchAll(/'([A-Z]+_ERR_[A-Z0-9_]+|ERR_[A-Z0-9_]+)'/g)) used.add(m[1]!);
  }
  t.ok(used.size > 5);
  for (const code of used) t.ok(code in ALL_ERRORS, `${code} is registered`);
});
