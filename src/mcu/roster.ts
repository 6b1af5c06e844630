/**
 * The driver's view of an MCU's conference: from the conference event
 * package when the MCU serves it (RFC 4575: a full document, then partial
 * ones whose version follows the last), else from what the driver itself set
 * up and saw accepted (links it dialled and their outcome, participants its
 * commands named). Pure state: the driver emits what each change returns.
 */
import type { ConferenceInfo, ConferenceUser } from './conference-info.js';
import type { LinkState, RosterEntry, RosterUpdate } from './types.js';

export interface RosterChange {
  readonly update: RosterUpdate;
  /** Cascade links whose state changed with it. */
  readonly links: readonly LinkState[];
}

export class Roster {
  readonly entries = new Map<string, RosterEntry>();
  /** Version of the last conference-info document applied; -1 until a full one arrives. */
  #version = -1;
  /** Count of the driver's own updates (the `version` of updates with source 'driver'). */
  #driverVersion = 0;

  /** Until the next full document, partial ones are ignored (a new subscription, or a lost notification). */
  expectFullState(): void {
    this.#version = -1;
  }

  /**
   * Apply a conference-info document (RFC 4575 4.1): a full one replaces the
   * roster; a partial one applies when it follows the last version. 'stale':
   * before the first full state or a duplicate, ignored; 'gap': a version
   * was lost, and the caller asks for the full state again.
   */
  apply(info: ConferenceInfo): RosterChange | 'stale' | 'gap' {
    if (info.state === 'full') {
      const old = new Map(this.entries);
      this.entries.clear();
      for (const u of info.users) if (u.state !== 'deleted') this.entries.set(u.entity, toEntry(u));
      this.#version = info.version;
      const removed = [...old.keys()].filter((e) => !this.entries.has(e));
      const links: LinkState[] = removed.filter((e) => old.get(e)?.kind === 'link').map(linkGone);
      for (const e of this.entries.values()) if (e.kind === 'link') links.push(linkOf(e));
      return {
        update: {
          source: 'conference-events',
          full: true,
          version: info.version,
          changed: [...this.entries.values()],
          removed,
        },
        links,
      };
    }
    if (this.#version < 0 || info.version <= this.#version) return 'stale';
    if (info.version !== this.#version + 1) {
      this.#version = -1;
      return 'gap';
    }
    this.#version = info.version;
    const changed: RosterEntry[] = [];
    const removed: string[] = [];
    const links: LinkState[] = [];
    for (const u of info.users) {
      const was = this.entries.get(u.entity);
      if (u.state === 'deleted') {
        if (was === undefined) continue;
        this.entries.delete(u.entity);
        removed.push(u.entity);
        if (was.kind === 'link') links.push(linkGone(u.entity));
        continue;
      }
      const entry = toEntry(u);
      this.entries.set(u.entity, entry);
      changed.push(entry);
      if (entry.kind === 'link' && was?.status !== entry.status) links.push(linkOf(entry));
    }
    return { update: { source: 'conference-events', full: false, version: info.version, changed, removed }, links };
  }

  /**
   * What the driver set up or saw accepted, for an MCU without the conference
   * event package: create or update a participant. Undefined when nothing changed.
   */
  learn(entity: string, patch: Partial<Omit<RosterEntry, 'entity'>>): RosterChange | undefined {
    const was = this.entries.get(entity);
    const entry: RosterEntry = {
      entity,
      kind: 'endpoint',
      status: 'connected',
      audioMuted: false,
      ...was,
      ...patch,
    };
    if (
      was !== undefined &&
      was.kind === entry.kind &&
      was.status === entry.status &&
      was.audioMuted === entry.audioMuted
    )
      return undefined;
    this.entries.set(entity, entry);
    return {
      update: { source: 'driver', full: false, version: ++this.#driverVersion, changed: [entry], removed: [] },
      links: [],
    };
  }

  /** A participant the driver saw go (a link it hung up or failed to dial). */
  forget(entity: string): RosterChange | undefined {
    const was = this.entries.get(entity);
    if (was === undefined) return undefined;
    this.entries.delete(entity);
    return {
      update: { source: 'driver', full: false, version: ++this.#driverVersion, changed: [], removed: [entity] },
      links: was.kind === 'link' ? [linkGone(entity)] : [],
    };
  }

  /** The MCU restarted and lost every call: a roster the driver built is void. */
  clear(): RosterChange | undefined {
    if (this.entries.size === 0) return undefined;
    const old = [...this.entries.values()];
    this.entries.clear();
    this.#version = -1;
    return {
      update: {
        source: 'driver',
        full: true,
        version: ++this.#driverVersion,
        changed: [],
        removed: old.map((e) => e.entity),
      },
      links: old.filter((e) => e.kind === 'link').map((e) => linkGone(e.entity)),
    };
  }
}

function linkOf(e: RosterEntry): LinkState {
  const state = e.status === 'connected' ? 'connected' : e.status === 'dialing-out' ? 'dialing' : 'disconnected';
  return { target: e.entity, state };
}

function linkGone(target: string): LinkState {
  return { target, state: 'disconnected', reason: 'left the conference' };
}

function toEntry(u: ConferenceUser): RosterEntry {
  return {
    entity: u.entity,
    kind: u.kind,
    status: u.status,
    audioMuted: u.audioMuted,
    ...(u.displayText === undefined ? {} : { displayText: u.displayText }),
    ...(u.callId === undefined ? {} : { callId: u.callId }),
  };
}
