/**
 * `cascaded chair SESSION ENDPOINT`: bring an endpoint to the chair through
 * the running daemon's REST API, printing the path, every step and when each
 * MCU confirmed it. It is `cascadectl chair` with the daemon's address and
 * certificate taken from the config file (daemon.api, <stateDir>/tls/api.crt),
 * so a technician on the daemon's host needs only a token.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG, loadCommandConfig } from './config-file.js';

const HELP = `cascaded chair: bring an endpoint to the chair of a live session, through the running daemon

Usage:
  cascaded chair SESSION ENDPOINT [--preview] [options]
  cascaded chair SESSION --default [options]

  --preview             the path and steps the command would take; nothing is switched.
  --default             the chair's screen back to the session's default layout.
  -c, --config FILE     the daemon's config: the API address (daemon.api) and, when the
                        daemon generated it, its certificate (<stateDir>/tls/api.crt).
                        Default: config/demo.yaml.
  -u, --url URL         the daemon's API instead (https://HOST:PORT).
  -t, --token TOKEN     bearer token (cascaded token create); or CASCADECTL_TOKEN.
      --token-file F    read the token from a file.
      --ca FILE         trust this certificate; --pin-sha256 FP: exactly this one.
      --json            the daemon's answer as JSON.
  -h, --help            this text.

The chair of a national session belongs to central-department operators and admins.
Exit codes: 0 done; 1 the command failed (the error code is printed); 2 bad usage;
3 not authenticated or not allowed.
`;

const CASCADECTL = fileURLToPath(new URL('./cascadectl.js', import.meta.url));

export async function runChair(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        url: { type: 'string', short: 'u' },
        token: { type: 'string', short: 't' },
        'token-file': { type: 'string' },
        ca: { type: 'string' },
        'pin-sha256': { type: 'string' },
        preview: { type: 'boolean' },
        default: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    process.stderr.write(`cascaded chair: ${(err as Error).message}\nTry 'cascaded chair --help'.\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  if (positionals.length !== (values.default === true ? 1 : 2)) {
    process.stderr.write(`cascaded chair: give SESSION ENDPOINT, or SESSION --default\nTry 'cascaded chair --help'.\n`);
    return 2;
  }
  const args = ['chair', ...positionals];
  for (const flag of ['preview', 'default', 'json'] as const) if (values[flag] === true) args.push(`--${flag}`);
  for (const opt of ['token', 'token-file', 'pin-sha256'] as const) {
    const v = values[opt];
    if (typeof v === 'string') args.push(`--${opt}`, v);
  }
  let url = values.url as string | undefined;
  let ca = values.ca as string | undefined;
  if (url === undefined || (ca === undefined && values['pin-sha256'] === undefined)) {
    const file = (values.config as string | undefined) ?? DEFAULT_CONFIG;
    let api: { host: string; port: number; plainHttp: boolean; tls?: unknown };
    let stateDir: string;
    try {
      const config = await loadCommandConfig(file);
      ({ api, stateDir } = config.daemon);
    } catch (err) {
      process.stderr.write(`cascaded chair: ${(err as Error).message}\n`);
      return 2;
    }
    url ??= `${api.plainHttp ? 'http' : 'https'}://${api.host.includes(':') ? `[${api.host}]` : api.host}:${api.port}`;
    // The certificate the daemon generated for itself (a configured one is trusted through the system or --ca).
    const generated = join(stateDir, 'tls', 'api.crt');
    if (ca === undefined && api.tls === undefined && existsSync(generated)) ca = generated;
  }
  args.push('--url', url);
  if (ca !== undefined) args.push('--ca', ca);
  return new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [CASCADECTL, ...args], { stdio: 'inherit' });
    child.on('error', (err) => {
      process.stderr.write(`cascaded chair: ${err.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}
