/**
 * What the chair engine reads from and asks of the rest of the daemon: the
 * sessions' cascades as planned (the cascade manager's desired state), the
 * MCUs as they are (the drivers' health, rooms and rosters), and the cascade
 * manager's healing. `driverSource` builds it from the MCU drivers and a
 * session lookup; the daemon passes the cascade manager's parts in.
 */
import type { CascadeManager } from '../cascade/index.js';
import type { ChairSettings } from '../config/index.js';
import type { Inventory } from '../inventory/index.js';
import type { Conference, McuDriver } from '../mcu/index.js';
import type { Plan } from '../planner/index.js';
import type { BrokenHop, ChairObserved, ChairSession, RoomView } from './path.js';

export interface ChairSource {
  /** The session's cascade as planned, or undefined when it is unknown or not live. */
  session(id: string): ChairSession | undefined;
  /** What the MCUs of the session report now. */
  observed(s: ChairSession): ChairObserved;
  /** The session's room on an MCU, to send commands to. */
  conference(mcu: string, room: string): Conference | undefined;
  /**
   * Call `listener` whenever something that can heal a path through `mcus`
   * changes (an MCU's health, a room's state or roster). Returns the unsubscribe.
   */
  watch(s: ChairSession, mcus: readonly string[], listener: () => void): () => void;
  /** Ask the cascade manager to heal a broken hop now (redial a link at once, past its backoff). */
  heal?(session: string, hop: BrokenHop): void;
  /** The endpoint on the chair's screen as recorded (the previous speaker after a restart), if known. */
  selection?(session: string): string | null | undefined;
  /**
   * A command takes over the pictures of its path from the cascade manager: the selection is recorded at
   * once (a redial under way applies it, not the previous one) and the manager leaves those pictures to the
   * command until `done` (ok: applied; not ok: the previous selection comes back). It keeps the selection
   * applied afterwards, across redials and restarts.
   */
  claim?(session: string, endpoint: string | null): { done(ok: boolean): void };
}

export interface DriverSourceOptions {
  readonly drivers: ReadonlyMap<string, McuDriver>;
  readonly sessions: (id: string) => ChairSession | undefined;
  /** An endpoint's SIP URI as MCUs name it. */
  readonly uri: (endpoint: string) => string | undefined;
  readonly heal?: ChairSource['heal'];
  readonly selection?: ChairSource['selection'];
  readonly claim?: ChairSource['claim'];
}

/** A live view of one conference, without copying its roster. */
function viewOf(c: Conference): RoomView {
  return {
    get state() {
      return c.state;
    },
    get reports() {
      return c.capabilities.conferenceEvents === 'available';
    },
    get roster() {
      return c.roster;
    },
  };
}

/** A ChairSource over the MCU drivers: rooms are the drivers' conference handles. */
export function driverSource(o: DriverSourceOptions): ChairSource {
  const views = new WeakMap<Conference, RoomView>();
  const conference = (mcu: string, room: string): Conference | undefined => {
    const d = o.drivers.get(mcu);
    if (d === undefined) return undefined;
    try {
      return d.conference(room);
    } catch {
      // Not one of this MCU's rooms (an inventory change under a live session): nothing to command.
      return undefined;
    }
  };
  return {
    session: o.sessions,
    observed(s) {
      return {
        mcuUp: (m) => o.drivers.get(m)?.health.up === true,
        room(m) {
          const uri = s.rooms[m];
          const c = uri === undefined ? undefined : conference(m, uri);
          if (c === undefined) return undefined;
          let v = views.get(c);
          if (v === undefined) {
            v = viewOf(c);
            views.set(c, v);
          }
          return v;
        },
        uri: o.uri,
      };
    },
    conference,
    watch(s, mcus, listener) {
      const offs: (() => void)[] = [];
      for (const m of mcus) {
        const d = o.drivers.get(m);
        const uri = s.rooms[m];
        const c = uri === undefined ? undefined : conference(m, uri);
        if (d !== undefined) {
          d.on('health', listener);
          offs.push(() => d.off('health', listener));
        }
        if (c !== undefined) {
          c.on('state', listener);
          c.on('roster', listener);
          offs.push(() => {
            c.off('state', listener);
            c.off('roster', listener);
          });
        }
      }
      return () => {
        for (const off of offs) off();
      };
    },
    ...(o.heal === undefined ? {} : { heal: o.heal }),
    ...(o.selection === undefined ? {} : { selection: o.selection }),
    ...(o.claim === undefined ? {} : { claim: o.claim }),
  };
}

export interface CascadeSourceOptions {
  readonly cascade: Pick<CascadeManager, 'session' | 'healNow' | 'claimChair'>;
  readonly drivers: ReadonlyMap<string, McuDriver>;
  readonly inventory: Inventory;
  /** The daemon's defaults; a session's request may choose its own layout and muting. */
  readonly settings: Pick<ChairSettings, 'layout' | 'mutePrevious' | 'defaultLayout'>;
}

/**
 * The chair's view of the cascade manager: live sessions as it holds them
 * (plan, rooms, selection), rooms through the drivers, heals through its
 * redial, the selection recorded with it (it keeps it applied across redials
 * and restarts).
 */
export function cascadeSource(o: CascadeSourceOptions): ChairSource {
  const uris = new Map<string, string>();
  for (const e of o.inventory.endpoints) if (e.sip !== undefined) uris.set(e.id, e.sip);
  // One ChairSession per plan and set of rooms: rebuilt only when a re-plan or a room changes them.
  const built = new WeakMap<
    Plan,
    { rooms: Readonly<Record<string, string>>; request: unknown; session: ChairSession }
  >();
  const sessionOf = (id: string): ChairSession | undefined => {
    const held = o.cascade.session(id);
    if (held === undefined || held.head.state !== 'live') return undefined;
    const { head, plan } = held;
    const known = built.get(plan);
    if (known !== undefined && known.rooms === head.rooms && known.request === head.request) return known.session;
    const session = chairSession(head.sessionId, plan, head.rooms, head.request, o.settings);
    built.set(plan, { rooms: head.rooms, request: head.request, session });
    return session;
  };
  return driverSource({
    drivers: o.drivers,
    sessions: sessionOf,
    uri: (e) => uris.get(e),
    heal(session, hop) {
      if ('child' in hop) o.cascade.healNow(session, hop.child);
    },
    selection: (session) => o.cascade.session(session)?.head.selection,
    claim: (session, endpoint) => o.cascade.claimChair(session, endpoint),
  });
}

/** A session's cascade in the chair's terms, from its plan, rooms and request (plain data; exported for tests). */
export function chairSession(
  id: string,
  plan: Plan,
  rooms: Readonly<Record<string, string>>,
  request: unknown,
  settings: Pick<ChairSettings, 'layout' | 'mutePrevious' | 'defaultLayout'>,
): ChairSession {
  const parent: Record<string, string> = {};
  const children: Record<string, readonly string[]> = {};
  let root = '';
  for (const m of plan.mcus) {
    if (m.parent === null) root = m.id;
    else parent[m.id] = m.parent;
    children[m.id] = m.children;
  }
  const inPlan: Record<string, string> = {};
  for (const m of plan.mcus) if (rooms[m.id] !== undefined) inPlan[m.id] = rooms[m.id]!;
  const r = (request ?? {}) as { chairLayout?: unknown; mutePrevious?: unknown };
  return {
    id,
    root,
    chair: plan.chair,
    parent,
    children,
    rooms: inPlan,
    assignments: plan.assignments,
    relays: plan.relays,
    layout: r.chairLayout === 'pip' || r.chairLayout === 'full' ? r.chairLayout : settings.layout,
    mutePrevious: typeof r.mutePrevious === 'boolean' ? r.mutePrevious : settings.mutePrevious,
    defaultLayout: settings.defaultLayout,
  };
}
