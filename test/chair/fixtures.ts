/**
 * A cascade for the engine's unit tests: a plan tree, rooms whose rosters
 * the test changes, and fake conferences that record every command and let
 * the test answer each one when it wants (on the FakeClock). Module tests
 * only: the engine's end-to-end witness is the simulator (e2e.test.ts).
 */
import type { ChairSession, ChairSource, EntryView, RoomView } from '../../src/chair/index.js';
import { McuError, type SwitchTiming } from '../../src/mcu/index.js';

export interface Call {
  readonly mcu: string;
  readonly kind: 'switch' | 'mute' | 'unmute';
  /** The output switched, or the source muted. */
  readonly target: string;
  readonly sources: readonly string[];
  /** Order of issue over every room. */
  readonly seq: number;
  settled: boolean;
  ok(): void;
  fail(err: Error): void;
}

export const roomOf = (m: string) => `sip:7001@${m}.mcu.invalid:5060`;
export const uriOf = (e: string) => `sip:${e}@endpoints.invalid`;

export class FakeCascade implements ChairSource {
  readonly calls: Call[] = [];
  readonly up = new Map<string, boolean>();
  readonly rooms = new Map<string, { state: RoomView['state']; reports: boolean; roster: Map<string, EntryView> }>();
  readonly heals: string[] = [];
  readonly selections: [string, string | null][] = [];
  readonly #listeners = new Set<() => void>();
  readonly sessions = new Map<string, ChairSession>();
  /** Answer every command at once (ok) instead of holding it. */
  autoAnswer = false;

  /** A session: `parent` gives the tree (child -> parent), `at` where each endpoint sits; the chair on the root. */
  addSession(
    id: string,
    root: string,
    parent: Record<string, string>,
    at: Record<string, string>,
    extra: Partial<ChairSession> = {},
  ): ChairSession {
    const mcus = [root, ...Object.keys(parent)];
    const children: Record<string, string[]> = {};
    for (const m of mcus) children[m] = [];
    for (const [c, p] of Object.entries(parent)) children[p]!.push(c);
    const rooms: Record<string, string> = {};
    for (const m of mcus) {
      rooms[m] = roomOf(m);
      if (!this.rooms.has(m)) this.rooms.set(m, { state: 'open', reports: true, roster: new Map() });
      this.up.set(m, true);
    }
    const assignments = { ...at, chair: root };
    for (const [e, m] of Object.entries(assignments)) this.join(m, uriOf(e));
    for (const [c, p] of Object.entries(parent)) this.link(c, p, true);
    const s: ChairSession = {
      id,
      root,
      chair: 'chair',
      parent,
      children,
      rooms,
      assignments,
      relays: {},
      layout: 'full',
      mutePrevious: false,
      defaultLayout: '2x2',
      ...extra,
    };
    this.sessions.set(id, s);
    return s;
  }

  join(m: string, uri: string, audioMuted = false): void {
    this.rooms.get(m)!.roster.set(uri, { entity: uri, kind: 'endpoint', status: 'connected', audioMuted });
  }

  /** A link up or down at both ends (the rosters change, listeners are told). */
  link(child: string, parent: string, up: boolean): void {
    const status = up ? 'connected' : 'disconnected';
    this.rooms.get(parent)!.roster.set(roomOf(child), {
      entity: roomOf(child),
      kind: 'link',
      status,
      callId: `${child}-${parent}`,
      audioMuted: false,
    });
    this.rooms.get(child)!.roster.set(roomOf(parent), {
      entity: roomOf(parent),
      kind: 'link',
      status,
      callId: `${child}-${parent}`,
      audioMuted: false,
    });
    this.changed();
  }

  changed(): void {
    for (const l of [...this.#listeners]) l();
  }

  pending(): Call[] {
    return this.calls.filter((c) => !c.settled);
  }

  // ---- ChairSource ------------------------------------------------------------------

  session(id: string): ChairSession | undefined {
    return this.sessions.get(id);
  }

  observed(_s: ChairSession) {
    return {
      mcuUp: (m: string) => this.up.get(m) === true,
      room: (m: string) => this.rooms.get(m),
      uri: (e: string) => uriOf(e),
    };
  }

  conference(mcu: string) {
    const record = (kind: Call['kind'], target: string, sources: readonly string[]) =>
      new Promise<SwitchTiming>((resolve, reject) => {
        const call: Call = {
          mcu,
          kind,
          target,
          sources,
          seq: this.calls.length,
          settled: false,
          ok: () => {
            call.settled = true;
            resolve({ switchedMs: 1, keyframeMs: 2 });
          },
          fail: (err) => {
            call.settled = true;
            reject(err);
          },
        };
        this.calls.push(call);
        if (this.autoAnswer) queueMicrotask(() => call.ok());
      });
    return {
      switchOutput: (output: string, _layout: string, sources: readonly string[]) => record('switch', output, sources),
      mute: (source: string) => record('mute', source, []).then(() => {}),
      unmute: (source: string) => record('unmute', source, []).then(() => {}),
    } as unknown as ReturnType<ChairSource['conference']>;
  }

  watch(_s: ChairSession, _mcus: readonly string[], listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get watchers(): number {
    return this.#listeners.size;
  }

  heal(session: string, hop: { child?: string; parent?: string; mcu?: string }): void {
    this.heals.push(`${session}:${hop.mcu ?? `${hop.child}>${hop.parent}`}`);
  }

  claim(session: string, endpoint: string | null) {
    this.selections.push([session, endpoint]);
    return {
      done: (ok: boolean) => {
        if (!ok) this.selections.push([session, 'reverted']);
      },
    };
  }
}

export const timeout = (mcu: string) =>
  new McuError('MCU_ERR_TIMEOUT', `MCU ${mcu}: no answer`, { details: { mcu, timeoutMs: 5000 } });
export const msml = (response: number) =>
  new McuError('MCU_ERR_REJECTED', `MSML ${response}`, { details: { msmlResponse: response } });

/** Let promise callbacks run (the engine reacts to settled commands in microtasks). */
export const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};
