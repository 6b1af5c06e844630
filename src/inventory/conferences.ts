/**
 * Addressing of an MCU's conferences (issue 10: one conference per live
 * session). Pure: the inventory in, URIs out.
 */
import type { Mcu, McuConferences } from './types.js';

/** Where the room number goes in a `conferences.template`. */
export const ROOM_PLACEHOLDER = '{room}';
/** Rooms one MCU may list: an MCU hosts a few hundred meeting rooms at most; a larger range is a typo. */
export const MAX_ROOMS = 1000;

/**
 * Every conference URI of the MCU, in order: its rooms when it has
 * `conferences`, else its first `sip` URI (one conference, the lobby).
 */
export function conferenceUris(mcu: Pick<Mcu, 'sip' | 'conferences'>): readonly string[] {
  if (mcu.conferences === undefined) return mcu.sip.length === 0 ? [] : [mcu.sip[0]!];
  return roomUris(mcu.conferences);
}

/** The URIs of a `conferences` entry (a template over a range, or the list as given). */
export function roomUris(c: McuConferences): readonly string[] {
  if ('uris' in c) return c.uris;
  const out: string[] = [];
  // The config refuses longer ranges; the bound only keeps an unchecked inventory from looping for long.
  const to = Math.min(c.rooms.to, c.rooms.from + MAX_ROOMS - 1);
  for (let room = c.rooms.from; room <= to; room++) out.push(c.template.replaceAll(ROOM_PLACEHOLDER, String(room)));
  return out;
}

/**
 * A comparison key for conference URIs: two spellings of one address (host
 * case, the default port, URI parameters) are one room. Not a SIP parser:
 * enough to find two MCUs claiming the same room in the inventory.
 */
export function conferenceKey(uri: string): string {
  const m = /^(sips?):(?:([^@;?]*)@)?(\[[^\]]*\]|[^:;?]*)(?::(\d+))?/i.exec(uri);
  if (m === null) return uri;
  const scheme = m[1]!.toLowerCase();
  const port = m[4] === undefined || m[4] === (scheme === 'sips' ? '5061' : '5060') ? '' : `:${m[4]}`;
  return `${scheme}:${m[2] === undefined ? '' : `${m[2]}@`}${m[3]!.toLowerCase()}${port}`;
}
