/**
 * A small, strict SDP (RFC 4566) reader and writer, and the offer/answer
 * rules (RFC 3264) a control leg needs: our offer when we send one, our
 * answer when an MCU puts its offer in the 2xx to a body-less INVITE (RFC
 * 3261 13.2.2.4). A control dialog carries no media, so every stream we take
 * is `inactive` and the rest are rejected.
 */
import { randomInt } from 'node:crypto';
import { SipError } from './errors.js';
import { mediaType } from './headers.js';
import type { SessionOffer } from './types.js';

export const SDP_CONTENT_TYPE = 'application/sdp';

/** An `a=` line: `a=name` (a property) or `a=name:value`. */
export interface SdpAttribute {
  readonly name: string;
  readonly value?: string;
}

/** `c=` (RFC 4566 5.7); the address may carry a multicast `/ttl[/count]` suffix. */
export interface SdpConnection {
  readonly netType: string;
  readonly addrType: string;
  readonly address: string;
}

/** `o=` (RFC 4566 5.2). Ids stay strings: they may exceed 2^53. */
export interface SdpOrigin {
  readonly username: string;
  readonly sessionId: string;
  readonly sessionVersion: string;
  readonly netType: string;
  readonly addrType: string;
  readonly address: string;
}

/** `t=` with its `r=` lines (RFC 4566 5.9, 5.10), kept as text. */
export interface SdpTiming {
  readonly start: string;
  readonly stop: string;
  readonly repeats: readonly string[];
}

/** A media description (RFC 4566 5.14): `m=` and the lines up to the next `m=`. */
export interface SdpMedia {
  readonly media: string;
  readonly port: number;
  readonly portCount?: number;
  readonly proto: string;
  readonly formats: readonly string[];
  readonly info?: string;
  readonly connections: readonly SdpConnection[];
  readonly bandwidths: readonly string[];
  readonly key?: string;
  readonly attributes: readonly SdpAttribute[];
}

export interface SessionDescription {
  readonly origin: SdpOrigin;
  readonly sessionName: string;
  readonly info?: string;
  readonly uri?: string;
  readonly emails: readonly string[];
  readonly phones: readonly string[];
  readonly connection?: SdpConnection;
  readonly bandwidths: readonly string[];
  readonly timing: readonly SdpTiming[];
  readonly zone?: string;
  readonly key?: string;
  readonly attributes: readonly SdpAttribute[];
  readonly media: readonly SdpMedia[];
}

/** A body ready for a SIP message. */
export interface SdpBody {
  readonly contentType: typeof SDP_CONTENT_TYPE;
  readonly body: string;
}

// Line order of RFC 4566 5: the session part, then each media part. A type
// may repeat where the grammar says `*`; `t=` may follow `r=` (a new time description).
const SESSION_ORDER = 'vosiuepcbtrzka';
const SESSION_ONCE = 'vosiuczk';
const MEDIA_ORDER = 'micbka';
const MEDIA_ONCE = 'mik';

const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/; // RFC 4566 9 token-char
const DIGITS = /^[0-9]+$/;
const ADDRESS = /^[^\s/]+(\/[0-9]+){0,2}$/;
const PROTO = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(\/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*$/;

function fail(line: number, text: string, reason: string): never {
  throw new SipError('SIP_ERR_SDP', `SDP line ${line}: ${reason}`, { details: { line, text, reason } });
}

function parseConnection(v: string, n: number, text: string): SdpConnection {
  const f = v.split(' ');
  if (f.length !== 3 || !TOKEN.test(f[0]!) || !TOKEN.test(f[1]!) || !ADDRESS.test(f[2]!))
    fail(n, text, 'c= needs <nettype> <addrtype> <connection-address>');
  return { netType: f[0]!, addrType: f[1]!, address: f[2]! };
}

function parseAttribute(v: string, n: number, text: string): SdpAttribute {
  const colon = v.indexOf(':');
  const name = colon < 0 ? v : v.slice(0, colon);
  if (!TOKEN.test(name)) fail(n, text, 'a= needs an attribute name (token)');
  return colon < 0 ? { name } : { name, value: v.slice(colon + 1) };
}

interface MutableMedia {
  media: string;
  port: number;
  portCount?: number;
  proto: string;
  formats: string[];
  info?: string;
  connections: SdpConnection[];
  bandwidths: string[];
  key?: string;
  attributes: SdpAttribute[];
}

function parseMediaLine(v: string, n: number, text: string): MutableMedia {
  const f = v.split(' ');
  const [media, portField, proto] = f;
  if (f.length < 4 || !TOKEN.test(media!) || !PROTO.test(proto!))
    fail(n, text, 'm= needs <media> <port>[/<count>] <proto> <fmt> ...');
  const [port, count, extra] = portField!.split('/');
  if (
    !DIGITS.test(port!) ||
    Number(port) > 65_535 ||
    (count !== undefined && !DIGITS.test(count)) ||
    extra !== undefined
  )
    fail(n, text, 'm= port must be 0-65535, optionally /<count>');
  const formats = f.slice(3);
  if (formats.some((x) => !TOKEN.test(x))) fail(n, text, 'm= formats must be tokens');
  return {
    media: media!,
    port: Number(port),
    portCount: count === undefined ? undefined : Number(count),
    proto: proto!,
    formats,
    connections: [],
    bandwidths: [],
    attributes: [],
  };
}

/**
 * Parse an SDP body, strictly: every line `x=value`, the types and order of
 * RFC 4566 5 (an unknown type makes the whole description invalid, 5), the
 * fields of o=, c=, t= and m= checked, and a connection address for every
 * media stream in use (5.7). Records end with CRLF; a bare LF is tolerated
 * (RFC 4566 5). Throws SIP_ERR_SDP with the line number.
 */
export function parseSdp(input: string | Buffer): SessionDescription {
  const text = typeof input === 'string' ? input : input.toString('utf8');
  const lines = text.split('\n');
  // The last record ends with its newline; nothing may follow it.
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) fail(1, '', 'empty session description');
  let origin: SdpOrigin | undefined;
  let sessionName: string | undefined;
  let info: string | undefined;
  let uri: string | undefined;
  let connection: SdpConnection | undefined;
  let zone: string | undefined;
  let key: string | undefined;
  const emails: string[] = [];
  const phones: string[] = [];
  const bandwidths: string[] = [];
  const timing: Array<{ start: string; stop: string; repeats: string[] }> = [];
  const attributes: SdpAttribute[] = [];
  const media: MutableMedia[] = [];
  let pos = -1; // index in the current order of the last type seen
  let seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.length < 2 || line[1] !== '=' || line.charCodeAt(0) < 97 || line.charCodeAt(0) > 122)
      fail(n, line, 'not a <type>=<value> line');
    if (/[\0\r]/.test(line)) fail(n, line, 'NUL or CR inside a line');
    const type = line[0]!;
    const v = line.slice(2);
    const inMedia = media.length > 0 || type === 'm';
    if (type === 'm') {
      if (timing.length === 0) fail(n, line, 'm= before t=');
      pos = 0;
      seen = new Set('m');
      media.push(parseMediaLine(v, n, line));
      continue;
    }
    const order = inMedia ? MEDIA_ORDER : SESSION_ORDER;
    const once = inMedia ? MEDIA_ONCE : SESSION_ONCE;
    const idx = order.indexOf(type);
    if (idx < 0) fail(n, line, `${type}= is not allowed ${inMedia ? 'in a media description' : 'here'}`);
    const newTime = !inMedia && type === 't' && pos === order.indexOf('r');
    if (idx < pos && !newTime) fail(n, line, `${type}= out of order (RFC 4566 5)`);
    if (once.includes(type) && seen.has(type)) fail(n, line, `${type}= more than once`);
    if (i === 0 && type !== 'v') fail(n, line, 'the first line must be v=');
    pos = idx;
    seen.add(type);
    if (v.length === 0 && type !== 'a') fail(n, line, `${type}= is empty`);
    const m = media[media.length - 1];
    switch (type) {
      case 'v':
        if (v !== '0') fail(n, line, 'only v=0 is defined');
        break;
      case 'o': {
        const f = v.split(' ');
        if (
          f.length !== 6 ||
          f[0]!.length === 0 ||
          !DIGITS.test(f[1]!) ||
          !DIGITS.test(f[2]!) ||
          !TOKEN.test(f[3]!) ||
          !TOKEN.test(f[4]!) ||
          !ADDRESS.test(f[5]!)
        )
          fail(n, line, 'o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>');
        origin = {
          username: f[0]!,
          sessionId: f[1]!,
          sessionVersion: f[2]!,
          netType: f[3]!,
          addrType: f[4]!,
          address: f[5]!,
        };
        break;
      }
      case 's':
        sessionName = v;
        break;
      case 'i':
        if (m === undefined) info = v;
        else m.info = v;
        break;
      case 'u':
        uri = v;
        break;
      case 'e':
        emails.push(v);
        break;
      case 'p':
        phones.push(v);
        break;
      case 'c':
        if (m === undefined) connection = parseConnection(v, n, line);
        else m.connections.push(parseConnection(v, n, line));
        break;
      case 'b':
        if (!/^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+:[0-9]+$/.test(v)) fail(n, line, 'b= needs <bwtype>:<bandwidth>');
        (m === undefined ? bandwidths : m.bandwidths).push(v);
        break;
      case 't': {
        const f = v.split(' ');
        if (f.length !== 2 || !DIGITS.test(f[0]!) || !DIGITS.test(f[1]!)) fail(n, line, 't= needs <start> <stop>');
        timing.push({ start: f[0]!, stop: f[1]!, repeats: [] });
        break;
      }
      case 'r':
        timing[timing.length - 1]!.repeats.push(v);
        break;
      case 'z':
        zone = v;
        break;
      case 'k':
        if (m === undefined) key = v;
        else m.key = v;
        break;
      case 'a':
        (m === undefined ? attributes : m.attributes).push(parseAttribute(v, n, line));
        break;
    }
  }
  if (origin === undefined) fail(lines.length, '', 'no o= line');
  if (sessionName === undefined) fail(lines.length, '', 'no s= line');
  if (timing.length === 0) fail(lines.length, '', 'no t= line');
  for (const [k, m] of media.entries())
    if (connection === undefined && m.connections.length === 0 && m.port !== 0)
      fail(lines.length, '', `media ${k + 1} (${m.media}) has no c= and the session none either (RFC 4566 5.7)`);
  return {
    origin,
    sessionName,
    info,
    uri,
    emails,
    phones,
    connection,
    bandwidths,
    timing,
    zone,
    key,
    attributes,
    media,
  };
}

const conn = (c: SdpConnection): string => `${c.netType} ${c.addrType} ${c.address}`;
const attr = (a: SdpAttribute): string => (a.value === undefined ? `a=${a.name}` : `a=${a.name}:${a.value}`);

/** Write a session description with CRLF line ends, in the order of RFC 4566 5. */
export function formatSdp(sd: SessionDescription): string {
  const o = sd.origin;
  const out = ['v=0', `o=${o.username} ${o.sessionId} ${o.sessionVersion} ${o.netType} ${o.addrType} ${o.address}`];
  out.push(`s=${sd.sessionName}`);
  if (sd.info !== undefined) out.push(`i=${sd.info}`);
  if (sd.uri !== undefined) out.push(`u=${sd.uri}`);
  for (const e of sd.emails) out.push(`e=${e}`);
  for (const p of sd.phones) out.push(`p=${p}`);
  if (sd.connection !== undefined) out.push(`c=${conn(sd.connection)}`);
  for (const b of sd.bandwidths) out.push(`b=${b}`);
  for (const t of sd.timing) {
    out.push(`t=${t.start} ${t.stop}`);
    for (const r of t.repeats) out.push(`r=${r}`);
  }
  if (sd.zone !== undefined) out.push(`z=${sd.zone}`);
  if (sd.key !== undefined) out.push(`k=${sd.key}`);
  for (const a of sd.attributes) out.push(attr(a));
  for (const m of sd.media) {
    const port = m.portCount === undefined ? `${m.port}` : `${m.port}/${m.portCount}`;
    out.push(`m=${m.media} ${port} ${m.proto} ${m.formats.join(' ')}`);
    if (m.info !== undefined) out.push(`i=${m.info}`);
    for (const c of m.connections) out.push(`c=${conn(c)}`);
    for (const b of m.bandwidths) out.push(`b=${b}`);
    if (m.key !== undefined) out.push(`k=${m.key}`);
    for (const a of m.attributes) out.push(attr(a));
  }
  return `${out.join('\r\n')}\r\n`;
}

/** Where our (absent) media would be: an IP literal or a host name, checked so it cannot break a line. */
function ourConnection(host: string): SdpConnection {
  if (!/^[0-9A-Za-z.:-]+$/.test(host))
    throw new SipError('SIP_ERR_INVALID_ARGUMENT', `not an SDP address: ${JSON.stringify(host)}`);
  return { netType: 'IN', addrType: host.includes(':') ? 'IP6' : 'IP4', address: host };
}

/** A session id (RFC 4566 5.2: a numeric string unique for the host; any such value will do). */
function newSessionId(): string {
  return `${randomInt(1, 2 ** 47)}`;
}

function ourOrigin(c: SdpConnection, username = 'cascaded'): SdpOrigin {
  const id = newSessionId();
  return { username, sessionId: id, sessionVersion: id, netType: 'IN', addrType: c.addrType, address: c.address };
}

/**
 * Port of a stream we accept but never use: nonzero (0 would reject it, RFC
 * 3264 6) and `inactive`, so no media is sent to it; 9 is the discard port.
 */
const INACTIVE_PORT = 9;
/** Media and transports we can accept (inactive) in an answer; others are rejected with port 0. */
const ACCEPTED_MEDIA = new Set(['audio', 'video']);
const ACCEPTED_PROTO = new Set(['RTP/AVP', 'RTP/AVPF']);

/**
 * The offer of a control leg: audio and video, both `inactive` (RFC 3264 5.1),
 * so an MCU that insists on a session description gets a valid one and no
 * media flows. G.711 (static payload types 0 and 8) and H.264 (dynamic 96).
 */
export function controlLegOffer(opts: { readonly host: string; readonly username?: string }): SdpBody {
  const c = ourConnection(opts.host);
  const sd: SessionDescription = {
    origin: ourOrigin(c, opts.username),
    sessionName: '-',
    emails: [],
    phones: [],
    connection: c,
    bandwidths: [],
    timing: [{ start: '0', stop: '0', repeats: [] }],
    attributes: [],
    media: [
      {
        media: 'audio',
        port: INACTIVE_PORT,
        proto: 'RTP/AVP',
        formats: ['0', '8'],
        connections: [],
        bandwidths: [],
        attributes: [
          { name: 'rtpmap', value: '0 PCMU/8000' },
          { name: 'rtpmap', value: '8 PCMA/8000' },
          { name: 'inactive' },
        ],
      },
      {
        media: 'video',
        port: INACTIVE_PORT,
        proto: 'RTP/AVP',
        formats: ['96'],
        connections: [],
        bandwidths: [],
        attributes: [{ name: 'rtpmap', value: '96 H264/90000' }, { name: 'inactive' }],
      },
    ],
  };
  return { contentType: SDP_CONTENT_TYPE, body: formatSdp(sd) };
}

/** The rtpmap/fmtp lines of payload type `fmt` in an offered stream (RFC 4566 6). */
function formatAttributes(m: SdpMedia, fmt: string): SdpAttribute[] {
  return m.attributes.filter(
    (a) => (a.name === 'rtpmap' || a.name === 'fmtp') && a.value !== undefined && a.value.split(' ', 1)[0] === fmt,
  );
}

/**
 * Our RFC 3264 answer to an offer: one m-line per offered m-line, in the same
 * order (6); audio and video over RTP/AVP(F) accepted with the first offered
 * format (the offerer's preference) and `inactive`, a valid answer to any
 * direction (6.1); other streams, and streams the offer itself disabled,
 * rejected with port 0 (6, 8.2). The t= lines are the offer's (6). Throws
 * SIP_ERR_SDP when the offer is not SDP or is malformed.
 */
export function answerOffer(offer: SessionOffer, opts: { readonly host: string; readonly username?: string }): SdpBody {
  return { contentType: SDP_CONTENT_TYPE, body: formatSdp(answerOf(offer, opts, true)) };
}

/**
 * An answer rejecting every stream (port 0): what the ACK carries when we
 * cannot take an offer and end the call at once (RFC 3261 13.2.2.4).
 */
export function rejectOffer(offer: SessionOffer, opts: { readonly host: string }): SdpBody {
  return { contentType: SDP_CONTENT_TYPE, body: formatSdp(answerOf(offer, opts, false)) };
}

function answerOf(
  offer: SessionOffer,
  opts: { readonly host: string; readonly username?: string },
  accept: boolean,
): SessionDescription {
  const type = mediaType(offer.contentType);
  if (offer.contentType !== undefined && type !== SDP_CONTENT_TYPE)
    throw new SipError('SIP_ERR_SDP', `the offer is ${offer.contentType}, not ${SDP_CONTENT_TYPE}`, {
      details: { contentType: offer.contentType },
    });
  const o = parseSdp(offer.body);
  const c = ourConnection(opts.host);
  const media = o.media.map((m): SdpMedia => {
    const take = accept && m.port !== 0 && ACCEPTED_MEDIA.has(m.media) && ACCEPTED_PROTO.has(m.proto);
    if (!take)
      return {
        media: m.media,
        port: 0,
        proto: m.proto,
        formats: m.formats,
        connections: [],
        bandwidths: [],
        attributes: [],
      };
    const fmt = m.formats[0]!;
    return {
      media: m.media,
      port: INACTIVE_PORT,
      proto: m.proto,
      formats: [fmt],
      connections: [],
      bandwidths: [],
      attributes: [...formatAttributes(m, fmt), { name: 'inactive' }],
    };
  });
  return {
    origin: ourOrigin(c, opts.username),
    sessionName: '-',
    emails: [],
    phones: [],
    connection: c,
    bandwidths: [],
    timing: o.timing,
    attributes: [],
    media,
  };
}
