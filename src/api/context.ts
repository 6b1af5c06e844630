import type { Clock, TypedEmitter } from '../core/index.js';
import type { Inventory } from '../inventory/index.js';
import type { McuDriver } from '../mcu/index.js';
import type { Store } from '../store/index.js';

/**
 * What /v1/events streams (server-sent events): changes of MCUs, cascade
 * links and chairs, for a live view. The daemon feeds it from the drivers'
 * (and later the cascade's and chair's) typed events.
 */
export type ApiEvents = {
  mcu: [{ readonly mcu: string; readonly up: boolean; readonly reason: string }];
  capabilities: [{ readonly mcu: string; readonly conferenceEvents: string }];
  link: [{ readonly mcu: string; readonly target: string; readonly state: string; readonly reason?: string }];
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
 * Session commands, plugged in by the composition root once the cascade and
 * session modules provide them (issues 10, 11, 13). Absent: the routes answer
 * 501 API_ERR_NOT_IMPLEMENTED after authentication and authorisation.
 */
export interface SessionCommands {
  /** The root MCU of a session (its scope), or undefined when unknown. */
  rootOf(id: string): Promise<string | undefined>;
  create?(body: unknown, actor: string): Promise<object>;
  dial?(id: string): Promise<object>;
  chair?(id: string, endpoint: string, requestId: string): Promise<object>;
  chairPreview?(id: string, endpoint: string): Promise<object>;
  report?(id: string): Promise<object>;
}

export interface ApiContext {
  readonly inventory: Inventory;
  readonly store: Store;
  readonly drivers: ReadonlyMap<string, McuDriver>;
  readonly events: TypedEmitter<ApiEvents>;
  readonly sessions?: SessionCommands;
  readonly metrics?: { readonly contentType: string; render(): Promise<string> };
  readonly clock: Clock;
  readonly startedAt: number;
  readonly version: string;
}
