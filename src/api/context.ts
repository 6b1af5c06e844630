import type { CascadeManager } from '../cascade/index.js';
import type { ChairEngine } from '../chair/index.js';
import type { Clock, TypedEmitter } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import type { McuDriver } from '../mcu/index.js';
import type { SessionLifecycle } from '../session/index.js';
import type { Store } from '../store/index.js';

/**
 * What /v1/events streams (server-sent events): changes of MCUs, cascade
 * links and chairs, for a live view. The daemon feeds it from the drivers'
 * (and later the cascade's and chair's) typed events.
 */
export type ApiEvents = {
  mcu: [{ readonly mcu: string; readonly up: boolean; readonly reason: string }];
  capabilities: [{ readonly mcu: string; readonly conferenceEvents: string }];
  link: [
    {
      readonly mcu: string;
      readonly target: string;
      readonly state: string;
      readonly reason?: string;
      /** The session whose cascade the link belongs to (links the cascade manager dials). */
      readonly session?: string;
    },
  ];
  chair: [{ readonly session: string; readonly endpoint: string; readonly outcome: string; readonly ms: number }];
};

/** One finished API request, for metrics (they stay out of the request path). */
export interface ApiRequestRecord {
  readonly method: string;
  /** The route pattern (`/v1/mcus/:id`), never the raw URL: bounded label values. */
  readonly route: string;
  readonly status: number;
  readonly durationMs: number;
}

export type ApiServerEvents = { request: [ApiRequestRecord] };

/**
 * The session report, plugged in by the composition root once the session
 * lifecycle provides it (issue 13). Absent: the route answers 501
 * API_ERR_NOT_IMPLEMENTED after authentication and authorisation.
 */
export interface SessionReports {
  report(id: string): Promise<object>;
  /** The same as CSV and as a self-contained HTML page (`?format=csv|html`). */
  reportCsv(id: string): Promise<string>;
  reportHtml(id: string): Promise<string>;
}

export interface ApiContext {
  readonly inventory: Inventory;
  readonly store: Store;
  readonly drivers: ReadonlyMap<string, McuDriver>;
  readonly events: TypedEmitter<ApiEvents>;
  readonly reports?: SessionReports;
  /**
   * The chair engine (issue 11): `POST .../chair`, `DELETE .../chair` and `.../chair/preview`. Absent: 501. The request id
   * (the client's X-Request-Id or a new one) is the command's idempotency key, the caller its actor.
   */
  readonly chair?: Pick<ChairEngine, 'bringToChair' | 'preview' | 'returnToDefault'>;
  /**
   * The cascade manager (issue 10): admits, dials and ends sessions (absent: those routes answer 501); what it
   * holds of a live session answers the session's scope without reading its plan from the store.
   */
  readonly cascade?: Pick<CascadeManager, 'admit' | 'end' | 'sync' | 'session'>;
  /** The session lifecycle (issue 13): `/v1/schedule` routes. Absent: they answer 501. */
  readonly sessions?: Pick<
    SessionLifecycle,
    'create' | 'change' | 'cancel' | 'get' | 'list' | 'acknowledge' | 'next' | 'recordCheck' | 'autoCheck' | 'checks'
  >;
  readonly metrics?: { readonly contentType: string; render(): Promise<string> };
  readonly clock: Clock;
  readonly startedAt: number;
  readonly version: string;
}
