/**
 * One driver per inventory MCU, created and supervised together: what the
 * daemon starts between the SIP user agent and the API. Starting does not
 * wait for the MCUs (a down MCU must not stop the daemon); each driver keeps
 * trying in the background and reports up/down as it happens.
 */
import type { Logger } from 'pino';
import { readMcuSecret } from '../config/index.js';
import { isCascadedError, onceClose } from '../core/index.js';
import { conferenceUris, type Mcu } from '../inventory/index.js';
import type { DigestCredentials, UserAgent } from '../sip/index.js';
import { McuError } from './errors.js';
import { createSipMsmlDriver, type SipMsmlDriver, type SipMsmlDriverOptions } from './sip-msml-driver.js';
import type { McuDriver } from './types.js';

export interface McuPoolOptions {
  readonly ua: UserAgent;
  readonly mcus: readonly Mcu[];
  readonly logger?: Logger;
  /** Driver settings shared by every MCU (deadlines, health interval); an MCU's `control` settings override them. */
  readonly driver?: Omit<SipMsmlDriverOptions, 'ua' | 'mcu' | 'logger' | 'credentials'>;
  /** Where `passwordEnv` and `credential` secrets are looked up (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface McuPool {
  readonly drivers: ReadonlyMap<string, McuDriver>;
  /** Resolves once every driver's first connection attempt has settled (up or down). */
  readonly firstAttempts: Promise<{ up: number; down: number }>;
  driver(id: string): McuDriver;
  upCount(): number;
  /**
   * Read every MCU's secret again (SIGHUP: a rotated password file). An MCU whose secret cannot be read keeps
   * the credentials it has and is listed in `failed` with the error's code.
   */
  reloadSecrets(): SecretsReload;
  close(): Promise<void>;
}

export interface SecretsReload {
  /** MCUs with credentials whose secret was read again. */
  readonly reloaded: readonly string[];
  readonly failed: readonly { readonly mcu: string; readonly code: string; readonly message: string }[];
}

/**
 * Start one driver per sip-msml MCU. Secrets are read here, and again by
 * `reloadSecrets()`: a secret that vanished since the config was checked fails
 * the start with CFG_ERR_SECRET naming its file or variable.
 */
export async function startMcuPool(options: McuPoolOptions): Promise<McuPool> {
  const log = options.logger?.child({ module: 'mcu' });
  const drivers = new Map<string, McuDriver>();
  const withAuth: { mcu: Mcu; driver: SipMsmlDriver }[] = [];
  for (const m of options.mcus) {
    if (m.driver !== 'sip-msml') continue;
    const uri = m.sip[0];
    if (uri === undefined) continue;
    const driver = createSipMsmlDriver({
      ...options.driver,
      ...m.control,
      ...credentialsOf(m, options.env),
      ua: options.ua,
      mcu: { id: m.id, uri, conferences: conferenceUris(m) },
      logger: options.logger,
    });
    drivers.set(m.id, driver);
    if (m.auth !== undefined) withAuth.push({ mcu: m, driver });
  }
  const upCount = () => [...drivers.values()].filter((d) => d.health.up).length;
  const firstAttempts = Promise.allSettled([...drivers.values()].map((d) => d.connect())).then((r) => {
    const up = r.filter((x) => x.status === 'fulfilled').length;
    const summary = { up, down: r.length - up };
    log?.info(summary, `MCUs connected: ${up} of ${r.length} up`);
    return summary;
  });
  return {
    drivers,
    firstAttempts,
    driver(id) {
      const d = drivers.get(id);
      if (d === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `no driver for MCU ${id}`);
      return d;
    },
    upCount,
    reloadSecrets() {
      const reloaded: string[] = [];
      const failed: { mcu: string; code: string; message: string }[] = [];
      for (const { mcu, driver } of withAuth) {
        try {
          const { credentials } = credentialsOf(mcu, options.env);
          if (credentials !== undefined) driver.setCredentials(credentials);
          reloaded.push(mcu.id);
        } catch (err) {
          const code = isCascadedError(err) ? err.code : 'CFG_ERR_SECRET';
          failed.push({ mcu: mcu.id, code, message: err instanceof Error ? err.message : String(err) });
        }
      }
      return { reloaded, failed };
    },
    close: onceClose(async () => {
      await Promise.allSettled([...drivers.values()].map((d) => d.close()));
    }),
  };
}

function credentialsOf(m: Mcu, env: McuPoolOptions['env']): { credentials?: DigestCredentials } {
  if (m.auth === undefined) return {};
  const { username, realm } = m.auth;
  const password = readMcuSecret(m.auth, env);
  return { credentials: realm === undefined ? { username, password } : { username, password, realm } };
}
