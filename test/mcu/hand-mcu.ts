/**
 * A hand-driven MCU on our SIP stack, for the driver's module tests: each
 * test decides how it answers the control INVITE, the conference SUBSCRIBE,
 * INFO and REFER, and sees every request the driver sent. (The witnesses we
 * did not write are in test/interop/.)
 */
import {
  buildConferenceInfo,
  buildResult,
  CONFERENCE_INFO_CONTENT_TYPE,
  MSML_CONTENT_TYPE,
} from '../../src/mcu/index.js';
import {
  createUserAgent,
  type Dialog,
  type IncomingInvite,
  type IncomingRefer,
  type IncomingRequest,
  type IncomingSubscribe,
  type ServerSubscription,
  type TimerConfig,
  type UserAgent,
} from '../../src/sip/index.js';
import { freePort } from '../interop/sip-peers.js';

export type Tap = { teardown(fn: () => unknown): void };

export const FAST: Partial<TimerConfig> = { t1: 50, t2: 400, t4: 500 }; // ms: quick retransmissions and failures
export const HOST = '127.0.0.1';

export interface HandMcuBehaviour {
  /** The control INVITE: default accept. A dialog it accepts is watched when passed to `mcu.adopt`. */
  invite?: (inv: IncomingInvite, n: number) => void;
  /** The conference SUBSCRIBE: default accept with a full document of `users`. */
  subscribe?: (sub: IncomingSubscribe, n: number) => void;
  /** INFO in the control dialog: default 200 with an MSML result 200. */
  info?: (req: IncomingRequest) => void;
  /** REFER in the control dialog: default 202, then sipfrag 200. */
  refer?: (ref: IncomingRefer) => void;
}

export interface HandMcu {
  readonly ua: UserAgent;
  readonly uri: string;
  /** Every request the MCU received, in order of arrival. */
  readonly requests: IncomingRequest[];
  /** Control dialogs in order of creation. */
  readonly controls: Dialog[];
  /** Accepted conference subscriptions. */
  readonly subscriptions: ServerSubscription[];
  users: string[];
  readonly behaviour: HandMcuBehaviour;
  count(method: string): number;
  /** Watch a control dialog a custom `invite` behaviour accepted (INFO, REFER, OPTIONS answered as by default). */
  adopt(d: Dialog): void;
  /** The full conference state as the default subscribe answer sends it. */
  fullState(version?: number): { contentType: string; body: string };
}

export function okInfo(req: IncomingRequest): void {
  req.respond(200, { contentType: MSML_CONTENT_TYPE, body: buildResult({ response: 200 }) });
}

export async function handMcu(
  t: Tap,
  behaviour: HandMcuBehaviour = {},
  opts: { tcp?: boolean; timers?: Partial<TimerConfig> } = {},
): Promise<HandMcu> {
  // UDP and TCP on one port, as an MCU listens: the conference URI names both.
  const port = opts.tcp ? await freePort() : 0;
  const ua = await createUserAgent({
    listen: [
      { transport: 'udp', host: HOST, port },
      ...(opts.tcp ? [{ transport: 'tcp' as const, host: HOST, port }] : []),
    ],
    timers: opts.timers ?? FAST,
    user: 'conf',
    // A test that never answers a request holds it as long as it likes.
    handlerTimeoutMs: 60_000,
  });
  t.teardown(() => ua.close());
  const udp = ua.listening.find((l) => l.transport === 'udp')!;
  let invites = 0;
  let subscribes = 0;
  const mcu: HandMcu = {
    ua,
    uri: `sip:conf@${HOST}:${udp.port}`,
    requests: [],
    controls: [],
    subscriptions: [],
    users: [],
    behaviour,
    count: (method) => mcu.requests.filter((r) => r.method === method).length,
    adopt: (d) => {
      mcu.controls.push(d);
      watch(d);
    },
    fullState: (version = 1) => ({
      contentType: CONFERENCE_INFO_CONTENT_TYPE,
      body: buildConferenceInfo({
        entity: mcu.uri,
        version,
        state: 'full',
        users: mcu.users.map((entity) => ({
          entity,
          state: 'full',
          kind: 'endpoint',
          status: 'connected',
          audioMuted: false,
        })),
      }),
    }),
  };
  function watch(d: Dialog): void {
    d.on('request', (req) => {
      mcu.requests.push(req);
      if (req.method === 'INFO') (mcu.behaviour.info ?? okInfo)(req);
      else req.respond(200);
    });
    d.on('refer', (ref) => {
      mcu.requests.push(ref);
      if (mcu.behaviour.refer !== undefined) mcu.behaviour.refer(ref);
      else
        ref.accept().then(
          (n) => n.done(200, 'OK'),
          () => {},
        );
    });
  }
  ua.on('invite', (inv) => {
    mcu.requests.push(inv);
    const n = invites++;
    if (mcu.behaviour.invite !== undefined) {
      mcu.behaviour.invite(inv, n);
      return;
    }
    inv.accept().then(
      (d) => mcu.adopt(d),
      () => {},
    );
  });
  ua.on('subscribe', (sub) => {
    mcu.requests.push(sub);
    const n = subscribes++;
    if (mcu.behaviour.subscribe !== undefined) {
      mcu.behaviour.subscribe(sub, n);
      return;
    }
    sub.accept({ ...mcu.fullState(), expires: 600 }).then(
      (s) => mcu.subscriptions.push(s),
      () => {},
    );
  });
  return mcu;
}

/** Wait for a condition, polling with a bound (never a bare sleep). */
export async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
