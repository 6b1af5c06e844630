/**
 * Picture fast update (RFC 5168): an INFO asking the MCU's encoder for an
 * intra frame, so a switched picture appears at once rather than at the next
 * periodic keyframe. `stream_id` names the output whose encoder is meant.
 */
import { McuError } from './errors.js';
import { buildXml, child, parseXml, remember, text } from './xml.js';

export const MEDIA_CONTROL_CONTENT_TYPE = 'application/media_control+xml';

/** Requests built before, by output: every switch sends one, mostly for outputs switched before (msml.ts). */
const REQUESTS = new Map<string, string>();

export function buildPictureFastUpdate(output: string): string {
  const known = REQUESTS.get(output);
  if (known !== undefined) return known;
  const body = buildXml({
    media_control: { vc_primitive: { to_encoder: { picture_fast_update: '' }, stream_id: output } },
  });
  remember(REQUESTS, output, body);
  return body;
}

/** The output named by a picture fast update request. */
export function parsePictureFastUpdate(body: string | Buffer): { readonly output?: string } {
  const prim = child(child(parseXml(body, 'media_control'), 'media_control'), 'vc_primitive');
  const enc = child(prim, 'to_encoder');
  if (enc === undefined || !('picture_fast_update' in enc))
    throw new McuError('MCU_ERR_PROTOCOL', 'media_control: no vc_primitive/to_encoder/picture_fast_update');
  const output = text(prim, 'stream_id');
  return output === undefined ? {} : { output };
}
