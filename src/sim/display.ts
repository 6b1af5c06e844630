/**
 * The display model: what every output of every conference of every
 * simulated MCU shows and which audio it carries, and the end-to-end question
 * "what does endpoint E see and hear", answered by following cascade links
 * across conferences. Pure: plain data in, plain data out.
 *
 * The unit is a conference (a meeting room of an MCU, issue 10): an endpoint
 * sees and hears only the conference it is in, and a link joins one
 * conference of each MCU.
 * Video: an output has a layout and a source per region; a region showing a
 * cascade link shows whatever the conference at the other end sends over
 * that link (its output for the link), recursively.
 * Audio: every output carries the mix of all unmuted participants of its
 * conference but itself (an N-1 mix); a link contributes what the other
 * conference mixes towards it.
 * The two ends of a link are matched by the Call-ID of their SIP dialog.
 */
import type { LayoutName } from '../mcu/index.js';

export interface ParticipantState {
  readonly kind: 'endpoint' | 'link';
  readonly audioMuted: boolean;
  /** Call-ID of the link's dialog (links only). */
  readonly callId?: string;
}

export interface OutputState {
  readonly layout: LayoutName;
  /** Source entity per region (index 0 is region 1), null when empty. */
  readonly regions: readonly (string | null)[];
  readonly keyframes: number;
}

/** One conference of one MCU. */
export interface ConferenceDisplayState {
  /** The conference's key in the model: its URI. */
  readonly id: string;
  /** The MCU hosting it. */
  readonly mcu: string;
  readonly participants: ReadonlyMap<string, ParticipantState>;
  readonly outputs: ReadonlyMap<string, OutputState>;
}

export interface RegionView {
  readonly region: number;
  /** The participant shown, as the MCU names it; null for an empty region. */
  readonly source: string | null;
  /** For a link: what arrives over it. */
  readonly via?: ScreenView;
}

export interface ScreenView {
  readonly mcu: string;
  readonly conference: string;
  readonly output: string;
  readonly layout: LayoutName;
  readonly regions: readonly RegionView[];
}

export interface EndpointView {
  readonly endpoint: string;
  readonly mcu: string;
  /** The conference it is in. */
  readonly conference: string;
  readonly screen: ScreenView;
  /** Endpoints whose picture is on the screen (through any number of links), in region order. */
  readonly sees: readonly string[];
  /** Endpoints whose sound reaches this endpoint, sorted. */
  readonly hears: readonly string[];
}

export const EMPTY_OUTPUT: OutputState = { layout: 'single', regions: [null], keyframes: 0 };

export class DisplayModel {
  readonly #confs: ReadonlyMap<string, ConferenceDisplayState>;
  /** Call-ID -> both ends of a link. */
  readonly #ends = new Map<string, Array<{ conference: string; entity: string }>>();

  constructor(conferences: Iterable<ConferenceDisplayState>) {
    const m = new Map<string, ConferenceDisplayState>();
    for (const s of conferences) {
      m.set(s.id, s);
      for (const [entity, p] of s.participants)
        if (p.kind === 'link' && p.callId !== undefined) {
          const list = this.#ends.get(p.callId) ?? [];
          list.push({ conference: s.id, entity });
          this.#ends.set(p.callId, list);
        }
    }
    this.#confs = m;
  }

  /** The conference an endpoint is connected to, or undefined. */
  locate(endpoint: string): ConferenceDisplayState | undefined {
    for (const s of this.#confs.values()) if (s.participants.get(endpoint)?.kind === 'endpoint') return s;
    return undefined;
  }

  /** The other end of a link participant: which conference, and how that conference names the link. */
  peer(conference: string, entity: string): { conference: string; entity: string } | undefined {
    const p = this.#confs.get(conference)?.participants.get(entity);
    if (p?.kind !== 'link' || p.callId === undefined) return undefined;
    return this.#ends.get(p.callId)?.find((e) => e.conference !== conference || e.entity !== entity);
  }

  screen(conference: string, output: string, seen = new Set<string>()): ScreenView {
    const s = this.#confs.get(conference);
    const out = s?.outputs.get(output) ?? EMPTY_OUTPUT;
    seen.add(`${conference}\n${output}`);
    const regions = out.regions.map((source, i): RegionView => {
      if (source === null || s?.participants.has(source) !== true) return { region: i + 1, source: null };
      const peer = this.peer(conference, source);
      if (peer === undefined || seen.has(`${peer.conference}\n${peer.entity}`)) return { region: i + 1, source };
      return { region: i + 1, source, via: this.screen(peer.conference, peer.entity, new Set(seen)) };
    });
    return { mcu: s?.mcu ?? conference, conference, output, layout: out.layout, regions };
  }

  /** Endpoints audible on `output` of `conference`: the N-1 mix, following links. */
  hears(conference: string, output: string, seen = new Set<string>()): Set<string> {
    const acc = new Set<string>();
    seen.add(conference);
    const s = this.#confs.get(conference);
    if (s === undefined) return acc;
    for (const [entity, p] of s.participants) {
      if (entity === output || p.audioMuted) continue;
      if (p.kind === 'endpoint') acc.add(entity);
      else {
        const peer = this.peer(conference, entity);
        if (peer !== undefined && !seen.has(peer.conference))
          for (const e of this.hears(peer.conference, peer.entity, seen)) acc.add(e);
      }
    }
    return acc;
  }

  endpointView(endpoint: string): EndpointView | undefined {
    const c = this.locate(endpoint);
    if (c === undefined) return undefined;
    const screen = this.screen(c.id, endpoint);
    return {
      endpoint,
      mcu: c.mcu,
      conference: c.id,
      screen,
      sees: visible(screen),
      hears: [...this.hears(c.id, endpoint)].sort(),
    };
  }
}

/** The endpoints on a screen, nested link pictures flattened in region order. */
export function visible(screen: ScreenView): string[] {
  const out: string[] = [];
  for (const r of screen.regions) {
    if (r.via !== undefined) out.push(...visible(r.via));
    else if (r.source !== null) out.push(r.source);
  }
  return out;
}
