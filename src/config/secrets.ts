/**
 * Where an MCU's digest secret comes from (design section 2, "credentials"):
 * a file, an environment variable, or a systemd credential
 * ($CREDENTIALS_DIRECTORY/NAME, passed with LoadCredential= so DynamicUser=
 * keeps working). The secret itself never appears in the config, the
 * inventory snapshot in the store, or a log line: only where it lives does.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { McuAuth } from '../inventory/index.js';
import { ConfigError, type Violation } from './errors.js';

/** A digest password is short; a larger file is almost surely the wrong file. */
const MAX_SECRET_BYTES = 4_096;

type Env = Readonly<Record<string, string | undefined>>;

const SOURCES = ['passwordFile', 'passwordEnv', 'credential'] as const;

/**
 * The secret of an MCU's `auth`. Throws CFG_ERR_SECRET naming the file or
 * variable (never the secret) when it is missing, unreadable or empty.
 * A relative passwordFile is resolved against the process's working
 * directory; loadConfigFile already made it absolute.
 */
export function readMcuSecret(auth: McuAuth, env: Env = process.env): string {
  if (auth.passwordEnv !== undefined) {
    const v = env[auth.passwordEnv];
    if (v === undefined || v === '')
      throw secretError(`environment variable ${auth.passwordEnv} is not set or empty`, {
        source: 'passwordEnv',
        variable: auth.passwordEnv,
      });
    return v;
  }
  if (auth.passwordFile !== undefined) return readSecretFile(resolve(auth.passwordFile), 'passwordFile');
  if (auth.credential !== undefined) {
    const dir = env.CREDENTIALS_DIRECTORY;
    if (dir === undefined || dir === '')
      throw secretError(
        `credential ${auth.credential}: $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=${auth.credential}:FILE)`,
        { source: 'credential', credential: auth.credential },
      );
    return readSecretFile(join(dir, auth.credential), 'credential');
  }
  throw secretError('no source for the secret: set passwordFile, passwordEnv or credential', { source: 'none' });
}

function readSecretFile(path: string, source: 'passwordFile' | 'credential'): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw secretError(`cannot read secret file ${path} (${reason})`, { source, path }, err);
  }
  if (buf.length > MAX_SECRET_BYTES)
    throw secretError(`secret file ${path} is larger than ${MAX_SECRET_BYTES} bytes`, { source, path });
  // Files written by `echo` or an editor end with a newline that is not part of the secret.
  const secret = buf.toString('utf8').replace(/\r?\n$/, '');
  if (secret === '') throw secretError(`secret file ${path} is empty`, { source, path });
  return secret;
}

function secretError(message: string, details: Record<string, string>, cause?: unknown): ConfigError {
  return new ConfigError('CFG_ERR_SECRET', message, { details, cause });
}

/**
 * Config-load checks of every `mcus[].auth`: exactly one source, and that
 * source readable now (so `--check-config` catches a missing secret file
 * before the daemon starts). Runs on the raw document like the semantic
 * rules; `cwd` resolves relative files as loading will.
 */
export function secretViolations(doc: unknown, cwd: string, env: Env): Violation[] {
  const out: Violation[] = [];
  const mcus = isObj(doc) && Array.isArray(doc.mcus) ? doc.mcus : [];
  mcus.forEach((m: unknown, i) => {
    if (!isObj(m) || !isObj(m.auth)) return;
    const auth = m.auth;
    const at = `/mcus/${i}/auth`;
    const given = SOURCES.filter((k) => auth[k] !== undefined);
    if (given.length !== 1) {
      out.push({
        path: at,
        message:
          given.length === 0
            ? 'needs one source of the secret: passwordFile, passwordEnv or credential'
            : `give exactly one source of the secret, not ${given.join(' and ')}`,
      });
      return;
    }
    const key = given[0]!;
    const value = auth[key];
    if (typeof value !== 'string') return; // the schema reported it
    const source: McuAuth =
      key === 'passwordFile'
        ? { username: '', passwordFile: isAbsolute(value) ? value : resolve(cwd, value) }
        : { username: '', [key]: value };
    try {
      readMcuSecret(source, env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      out.push({ path: `${at}/${key}`, message: err.message });
    }
  });
  return out;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
