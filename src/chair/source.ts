/**
 * What the chair engine reads from and asks of the rest of the daemon: the
 * sessions' cascades as planned (the cascade manager's desired state), the
 * MCUs as they are (the drivers' health, rooms and rosters), and the cascade
 * manager's healing. `driverSource` builds it from the MCU drivers and a
 * session lookup; the daemon passes the cascade manager's parts in.
 */
import type { Conference, McuDriver } from '../mcu/index.js';
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
  /** Record what is on the chair's screen now, so that the cascade manager keeps it applied across redials. */
  select?(session: string, endpoint: string | null): void;
}

export interface DriverSourceOptions {
  readonly drivers: ReadonlyMap<string, McuDriver>;
  readonly sessions: (id: string) => ChairSession | undefined;
  /** An endpoint's SIP URI as MCUs name it. */
  readonly uri: (endpoint: string) => string | undefined;
  readonly heal?: ChairSource['heal'];
  readonly selection?: ChairSource['selection'];
  readonly select?: ChairSource['select'];
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
    ...(o.select === undefined ? {} : { select: o.select }),
  };
}
