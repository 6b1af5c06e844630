/** `npm run gen:schema`: write config/cascaded.schema.json from src/config/schema.ts (for editors). */
import { writeFileSync } from 'node:fs';
import { configSchema } from './schema.js';

const out = process.argv[2] ?? 'config/cascaded.schema.json';
writeFileSync(out, `${JSON.stringify(configSchema, null, 2)}\n`);
process.stderr.write(`gen:schema: wrote ${out}\n`);
