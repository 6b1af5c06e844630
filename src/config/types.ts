import type { Inventory } from '../inventory/index.js';
import type { Violation } from './errors.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type SipTransportName = 'udp' | 'tcp' | 'tls';

/** Caps on the SIP port (docs/sip.md, "Transport hardening"); absent: the stack's defaults. */
export interface SipLimits {
  readonly maxConnections?: number;
  readonly maxConnectionsPerAddress?: number;
  readonly maxQueuedBytes?: number;
  readonly maxHeaderSize?: number;
  readonly maxStreamMessageSize?: number;
  readonly idleTimeoutMs?: number;
}

export interface SipListen {
  readonly transport: SipTransportName;
  readonly host: string;
  readonly port: number;
}

/** Daemon settings after defaults and path resolution (every path absolute). */
export interface DaemonConfig {
  readonly logLevel: LogLevel;
  readonly stateDir: string;
  readonly shutdownTimeoutMs: number;
  readonly store: { readonly driver: 'sqlite'; readonly path: string; readonly synchronous: 'normal' | 'full' };
  readonly api: ApiConfig;
  readonly sip: { readonly listen: readonly SipListen[]; readonly limits?: SipLimits };
  readonly mcu: McuDriverSettings;
  readonly cascade: CascadeSettings;
  readonly chair: ChairSettings;
  readonly session: SessionSettings;
}

/** The session lifecycle's timings (docs/session.md). */
export interface SessionSettings {
  readonly dialLeadMs: number;
  readonly riskWindowMs: number;
  readonly notifyRiskWindowMs: number;
  readonly teardownAfterMs: number;
  readonly lateToleranceMs: number;
  readonly dialRetryMs: number;
}

/** The chair hot path (docs/chair.md). */
export interface ChairSettings {
  readonly deadlineMs: number;
  readonly layout: 'full' | 'pip';
  readonly mutePrevious: boolean;
  readonly defaultLayout: 'single' | '1+1' | '2x2' | '1+5' | '1+7' | '3x3' | 'pip';
}

/** The cascade manager's settings (docs/cascade.md): bounds, healing and re-planning. */
export interface CascadeSettings {
  readonly linkConcurrency: number;
  readonly endpointConcurrency: number;
  readonly layoutConcurrency: number;
  readonly dialEndpoints: boolean;
  readonly halfDeadGraceMs: number;
  readonly linkProbeMs: number;
  readonly replanAfterMs: number;
  readonly unexpectedLinks: 'report' | 'hang-up';
  readonly pollMs: number;
  readonly retry: { readonly baseMs: number; readonly maxMs: number; readonly jitter: number };
}

/** The REST API (docs/api.md). */
export interface ApiConfig {
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly plainHttp: boolean;
  readonly bodyLimitBytes: number;
  readonly requestTimeoutMs: number;
  readonly rateLimit: { readonly max: number; readonly windowMs: number };
  readonly maxEventClients: number;
  readonly metricsAuth: boolean;
  readonly clientCertificates?: {
    readonly ca: string;
    readonly identities: readonly {
      readonly name: string;
      readonly fingerprint256: string;
      readonly role: 'viewer' | 'operator' | 'admin';
      readonly scope?: string;
    }[];
  };
}

/**
 * Health checks and deadlines of the MCU drivers (ms; failures in a row
 * before an MCU is down) and the RFC 4028 session interval of control
 * dialogs (s). An MCU's `control` settings override them.
 */
export interface McuDriverSettings {
  readonly healthIntervalMs: number;
  readonly healthFailures: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly dialTimeoutMs: number;
  readonly sessionExpires: number;
}

/** The validated, frozen configuration handed down from the composition root. */
export interface Config {
  /** The file it came from, or a label for in-memory text. */
  readonly source: string;
  readonly daemon: DaemonConfig;
  readonly inventory: Inventory;
  /** What loads but deserves attention (for example an endpoint no MCU can take), located like violations. */
  readonly warnings: readonly Violation[];
}
