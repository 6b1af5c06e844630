/**
 * The MSML subset (RFC 5707) the sip-msml driver sends in INFO bodies, and the
 * result the MCU answers with. Schema: msml/msml-subset.xsd (validated in tests).
 *
 * - layout of one output: `modifyconference` / `videolayout id="conn:OUTPUT"` with its regions;
 * - a source into a region of an output: `modifystream id1="conn:SOURCE" id2="conn:OUTPUT"`
 *   with `stream media="video" dir="from-id1" display="REGION"`;
 * - audio mute and unmute of a source in the mix: `modifystream id1="conn:SOURCE" id2="conf:main"`
 *   with `stream media="audio" dir="from-id1"` and `gain amt="mute|unmute"`;
 * - a switch of one output (the chair's hot path): its `modifyconference` then one video
 *   `modifystream` per region, in one request.
 */
import { McuError } from './errors.js';
import { type LayoutName, layoutOf, layoutRegions, type Region } from './layouts.js';
import { ATTR, attr, buildXml, child, children, parseXml, remember, type XmlNode } from './xml.js';

export const MSML_CONTENT_TYPE = 'application/msml+xml';
export const CONFERENCE_ID = 'conf:main';

export type MsmlCommand =
  | { readonly op: 'layout'; readonly output: string; readonly layout: LayoutName }
  | { readonly op: 'show'; readonly output: string; readonly region: number; readonly source: string }
  | { readonly op: 'audio'; readonly source: string; readonly muted: boolean };

export interface MsmlResult {
  readonly response: number;
  readonly description?: string;
}

const conn = (uri: string) => `conn:${uri}`;

function unconn(id: string | undefined, what: string): string {
  if (id === undefined || !id.startsWith('conn:') || id.length <= 5)
    throw new McuError('MCU_ERR_PROTOCOL', `MSML: ${what} is not a connection id`);
  return id.slice(5);
}

function layoutNode(output: string, layout: LayoutName): Record<string, unknown> {
  return {
    [`${ATTR}id`]: CONFERENCE_ID,
    videolayout: {
      [`${ATTR}type`]: 'text/msml-basic-layout',
      [`${ATTR}id`]: conn(output),
      root: { [`${ATTR}size`]: 'CIF' },
      region: layoutRegions(layout).map((r) => ({
        [`${ATTR}id`]: String(r.id),
        [`${ATTR}left`]: `${r.left}%`,
        [`${ATTR}top`]: `${r.top}%`,
        [`${ATTR}relativesize`]: r.size,
      })),
    },
  };
}

function showNode(output: string, region: number, source: string): Record<string, unknown> {
  return {
    [`${ATTR}id1`]: conn(source),
    [`${ATTR}id2`]: conn(output),
    stream: { [`${ATTR}media`]: 'video', [`${ATTR}dir`]: 'from-id1', [`${ATTR}display`]: String(region) },
  };
}

export function buildMsml(cmd: MsmlCommand): string {
  let body: Record<string, unknown>;
  switch (cmd.op) {
    case 'layout':
      body = { modifyconference: layoutNode(cmd.output, cmd.layout) };
      break;
    case 'show':
      body = { modifystream: showNode(cmd.output, cmd.region, cmd.source) };
      break;
    case 'audio':
      body = {
        modifystream: {
          [`${ATTR}id1`]: conn(cmd.source),
          [`${ATTR}id2`]: CONFERENCE_ID,
          stream: {
            [`${ATTR}media`]: 'audio',
            [`${ATTR}dir`]: 'from-id1',
            gain: { [`${ATTR}amt`]: cmd.muted ? 'mute' : 'unmute' },
          },
        },
      };
      break;
  }
  return buildXml({ msml: { [`${ATTR}version`]: '1.1', ...body } });
}

/** One output switched in one request: its layout, then the source of each region from region 1. */
export interface OutputSwitch {
  readonly output: string;
  readonly layout: LayoutName;
  readonly sources: readonly string[];
}

/**
 * Switch bodies built before, by what they switch. A chair command builds three (its path's two, the
 * previous path's uplink back to its main endpoint) and two of them recur from command to command (the
 * chair's screen showing one of the root's links, an uplink showing its MCU's main endpoint): about a
 * tenth of a millisecond each to build (issue 11).
 */
const SWITCHES = new Map<string, string>();

/**
 * The MSML request that switches an output at once: `modifyconference` with
 * its layout, then one `modifystream` per region. An MSML request may carry
 * several operations, which the media server carries out in document order
 * and stops at the first that fails (RFC 5707, section 5), so one INFO does
 * what three did.
 */
export function buildSwitch(s: OutputSwitch): string {
  // Each string with its length before it: no two switches share a key, whatever their URIs hold.
  let key = `${s.layout} ${s.output.length} ${s.output}`;
  for (const source of s.sources) key += ` ${source.length} ${source}`;
  const known = SWITCHES.get(key);
  if (known !== undefined) return known;
  const streams = s.sources.map((source, i) => showNode(s.output, i + 1, source));
  const body = buildXml({
    msml: {
      [`${ATTR}version`]: '1.1',
      modifyconference: layoutNode(s.output, s.layout),
      ...(streams.length === 0 ? {} : { modifystream: streams }),
    },
  });
  remember(SWITCHES, key, body);
  return body;
}

function parseLayout(mc: XmlNode): MsmlCommand {
  const vl = child(mc, 'videolayout');
  if (vl === undefined) throw new McuError('MCU_ERR_PROTOCOL', 'MSML: modifyconference without videolayout');
  const regions: Region[] = children(vl, 'region').map((r) => ({
    id: Number(attr(r, 'id')),
    left: Number.parseFloat(attr(r, 'left') ?? 'NaN'),
    top: Number.parseFloat(attr(r, 'top') ?? 'NaN'),
    size: attr(r, 'relativesize') ?? '',
  }));
  const layout = layoutOf(regions);
  if (layout === undefined) throw new McuError('MCU_ERR_PROTOCOL', 'MSML: videolayout is not a known layout');
  return { op: 'layout', output: unconn(attr(vl, 'id'), 'videolayout id'), layout };
}

function parseStream(ms: XmlNode): MsmlCommand {
  const stream = children(ms, 'stream')[0];
  const source = unconn(attr(ms, 'id1'), 'id1');
  if (attr(stream, 'dir') !== 'from-id1') throw new McuError('MCU_ERR_PROTOCOL', 'MSML: stream dir must be from-id1');
  if (attr(stream, 'media') === 'video') {
    const region = Number(attr(stream, 'display'));
    if (!Number.isInteger(region) || region < 1) throw new McuError('MCU_ERR_PROTOCOL', 'MSML: bad display region');
    return { op: 'show', source, output: unconn(attr(ms, 'id2'), 'id2'), region };
  }
  if (attr(stream, 'media') === 'audio') {
    const amt = attr(child(stream, 'gain'), 'amt');
    if (amt !== 'mute' && amt !== 'unmute')
      throw new McuError('MCU_ERR_PROTOCOL', 'MSML: gain amt must be mute or unmute');
    return { op: 'audio', source, muted: amt === 'mute' };
  }
  throw new McuError('MCU_ERR_PROTOCOL', 'MSML: stream media must be audio or video');
}

/**
 * Every operation of an MSML request of our subset (the simulator's side),
 * in the order the MCU carries them out: the layout first, then the streams.
 */
export function parseMsmlRequest(body: string | Buffer): MsmlCommand[] {
  const doc = child(parseXml(body, 'MSML'), 'msml');
  if (doc === undefined || attr(doc, 'version') !== '1.1')
    throw new McuError('MCU_ERR_PROTOCOL', 'MSML: no <msml version="1.1"> root');
  const conferences = children(doc, 'modifyconference');
  if (conferences.length > 1) throw new McuError('MCU_ERR_PROTOCOL', 'MSML: more than one modifyconference');
  const ops = [...conferences.map(parseLayout), ...children(doc, 'modifystream').map(parseStream)];
  if (ops.length === 0) throw new McuError('MCU_ERR_PROTOCOL', 'MSML: no modifyconference or modifystream');
  return ops;
}

/** Parse an MSML request of one operation (the simulator's side). */
export function parseMsml(body: string | Buffer): MsmlCommand {
  const ops = parseMsmlRequest(body);
  if (ops.length !== 1) throw new McuError('MCU_ERR_PROTOCOL', `MSML: ${ops.length} operations, one expected`);
  return ops[0]!;
}

export function buildResult(result: MsmlResult): string {
  return buildXml({
    msml: {
      [`${ATTR}version`]: '1.1',
      result: {
        [`${ATTR}response`]: String(result.response),
        ...(result.description === undefined ? {} : { description: result.description }),
      },
    },
  });
}

/**
 * Answers parsed lately, by their text: an MCU answers every switch with the same bytes (`<result
 * response="200"/>`), and validating and parsing them again was a tenth of a chair command's CPU (issue 11).
 * Bounded in count and in the size of what is kept; a refusal (a throw) is never kept.
 */
const RESULTS = new Map<string, MsmlResult>();
const RESULTS_MAX = 32;
const RESULT_KEPT_MAX_CHARS = 512;

/** Parse the MCU's answer (RFC 5707 7.11 `result`). */
export function parseResult(body: string | Buffer): MsmlResult {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const known = RESULTS.get(text);
  if (known !== undefined) return known;
  const doc = child(parseXml(text, 'MSML result'), 'msml');
  const res = child(doc, 'result');
  const response = Number(attr(res, 'response'));
  if (res === undefined || !Number.isInteger(response))
    throw new McuError('MCU_ERR_PROTOCOL', 'MSML result: no <result response=...>');
  const description = typeof res.description === 'string' ? res.description : undefined;
  const result: MsmlResult = Object.freeze(description === undefined ? { response } : { response, description });
  if (text.length <= RESULT_KEPT_MAX_CHARS) {
    if (RESULTS.size >= RESULTS_MAX) RESULTS.delete(RESULTS.keys().next().value!);
    RESULTS.set(text, result);
  }
  return result;
}
