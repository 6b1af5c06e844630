/**
 * The display model: what every output of every simulated MCU shows and which
 * audio it carries, and the end-to-end question "what does endpoint E see and
 * hear", answered by following cascade links across MCUs. Pure: plain data in,
 * plain data out.
 *
 * Video: an output has a layout and a source per region; a region showing a
 * cascade link shows whatever the MCU at the other end sends over that link
 * (that MCU's output for the link), recursively.
 * Audio: every output carries the mix of all unmuted participants but itself
 * (an N-1 mix); a link contributes what the other MCU mixes towards it.
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

export interface McuDisplayState {
  readonly id: string;
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
  readonly output: string;
  readonly layout: LayoutName;
  readonly regions: readonly RegionView[];
}

export interface EndpointView {
  readonly endpoint: string;
  readonly mcu: string;
  readonly screen: ScreenView;
  /** Endpoints whose picture is on the screen (through any number of links), in region order. */
  readonly sees: readonly string[];
  /** Endpoints whose sound reaches this endpoint, sorted. */
  readonly hears: readonly string[];
}

export const EMPTY_OUTPUT: OutputState = { layout: 'single', regions: [null], keyframes: 0 };

export class DisplayModel {
  readonly #mcus: ReadonlyMap<string, McuDisplayState>;
  /** Call-ID -> both ends of a link. */
  readonly #ends = new Map<string, Array<{ mcu: string; entity: string }>>();

  constructor(mcus: Iterable<McuDisplayState>) {
    const m = new Map<string, McuDisplayState>();
    for (const s of mcus) {
      m.set(s.id, s);
      for (const [entity, p] of s.participants)
        if (p.kind === 'link' && p.callId !== undefined) {
          const list = this.#ends.get(p.callId) ?? [];
          list.push({ mcu: s.id, entity });
          this.#ends.set(p.callId, list);
        }
    }
    this.#mcus = m;
  }

  /** The MCU an endpoint is connected to, or undefined. */
  locate(endpoint: string): string | undefined {
    for (const s of this.#mcus.values()) if (s.participants.get(endpoint)?.kind === 'endpoint') return s.id;
    return undefined;
  }

  /** The other end of a link participant: which MCU, and how that MCU names the link. */
  peer(mcu: string, entity: string): { mcu: string; entity: string } | undefined {
    const p = this.#mcus.get(mcu)?.participants.get(entity);
    if (p?.kind !== 'link' || p.callId === undefined) return undefined;
    return this.#ends.get(p.callId)?.find((e) => e.mcu !== mcu);
  }

  screen(mcu: string, output: string, seen = new Set<string>()): ScreenView {
    const s = this.#mcus.get(mcu);
    const out = s?.outputs.get(output) ?? EMPTY_OUTPUT;
    const key = `${mcu}\n${output}`;
    seen.add(key);
    const regions = out.regions.map((source, i): RegionView => {
      if (source === null || s?.participants.has(source) !== true) return { region: i + 1, source: null };
      const peer = this.peer(mcu, source);
      if (peer === undefined || seen.has(`${peer.mcu}\n${peer.entity}`)) return { region: i + 1, source };
      return { region: i + 1, source, via: this.screen(peer.mcu, peer.entity, new Set(seen)) };
    });
    return { mcu, output, layout: out.layout, regions };
  }

  /** Endpoints audible on `output` of `mcu`: the N-1 mix, following links. */
  hears(mcu: string, output: string, seen = new Set<string>()): Set<string> {
    const acc = new Set<string>();
    seen.add(mcu);
    const s = this.#mcus.get(mcu);
    if (s === undefined) return acc;
    for (const [entity, p] of s.participants) {
      if (entity === output || p.audioMuted) continue;
      if (p.kind === 'endpoint') acc.add(entity);
      else {
        const peer = this.peer(mcu, entity);
        if (peer !== undefined && !seen.has(peer.mcu))
          for (const e of this.hears(peer.mcu, peer.entity, seen)) acc.add(e);
      }
    }
    return acc;
  }

  endpointView(endpoint: string): EndpointView | undefined {
    const mcu = this.locate(endpoint);
    if (mcu === undefined) return undefined;
    const screen = this.screen(mcu, endpoint);
    return { endpoint, mcu, screen, sees: visible(screen), hears: [...this.hears(mcu, endpoint)].sort() };
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
