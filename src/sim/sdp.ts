/**
 * The simulated MCU's side of SDP offer/answer (RFC 3264, RFC 4566), kept
 * to the lines it needs and written here, not with our SIP stack's SDP code:
 * the simulator judges the answers the daemon sends, so it must not share
 * the code that writes them.
 *
 * - Our offer: audio and video, sendrecv, as an MCU offers a call.
 * - Our answer to a caller's offer: one m= line per offered one, in order
 *   (RFC 3264 6); audio and video taken with the first offered format and
 *   the mirrored direction (6.1), anything else rejected with port 0.
 * - Judging an answer to our offer: SDP, version 0, and exactly our m= lines
 *   (same count, same media, same order, RFC 3264 6), each either taken or
 *   rejected with port 0.
 */

export const SDP_TYPE = 'application/sdp';

interface MLine {
  readonly media: string;
  readonly port: number;
  readonly proto: string;
  readonly formats: readonly string[];
  /** a=rtpmap lines of the formats, by payload type. */
  readonly rtpmap: ReadonlyMap<string, string>;
  /** The stream's direction (RFC 4566 6: a media-level attribute over the session-level one; sendrecv by default). */
  direction: string;
}

const DIRECTIONS = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);
/** The answer's direction for the offer's (RFC 3264 6.1). */
const MIRROR: Readonly<Record<string, string>> = {
  sendrecv: 'sendrecv',
  sendonly: 'recvonly',
  recvonly: 'sendonly',
  inactive: 'inactive',
};

function mLines(sdp: string): MLine[] | undefined {
  const out: MLine[] = [];
  let session = 'sendrecv';
  let current: (MLine & { rtpmap: Map<string, string> }) | null = null;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      const [media, port, proto, ...formats] = line.slice(2).trim().split(/\s+/);
      const p = Number.parseInt(port ?? '', 10);
      if (media === undefined || proto === undefined || !Number.isInteger(p) || p < 0 || p > 65535) return undefined;
      current = { media, port: p, proto, formats, rtpmap: new Map(), direction: session };
      out.push(current);
    } else if (line.startsWith('a=rtpmap:') && current !== null) {
      const [pt, ...rest] = line.slice('a=rtpmap:'.length).split(' ');
      if (pt !== undefined) current.rtpmap.set(pt, rest.join(' '));
    } else if (DIRECTIONS.has(line.slice(2).trim()) && line.startsWith('a=')) {
      if (current === null) session = line.slice(2).trim();
      else current.direction = line.slice(2).trim();
    }
  }
  return out;
}

/**
 * An offer that carries no media: every stream inactive or rejected (port 0).
 * That is a control leg (an MSML client's), not a participant's call.
 */
export function carriesNoMedia(offer: string): boolean {
  const ms = mLines(offer);
  return ms?.every((m) => m.port === 0 || m.direction === 'inactive') === true;
}

let version = 0;

/** The MCU's offer (in its 2xx to an INVITE without one, RFC 3261 13.3.1.4). */
export function mcuOffer(host: string): string {
  version++;
  return [
    'v=0',
    `o=cascaded-sim ${version} ${version} IN IP4 ${host}`,
    's=conference',
    `c=IN IP4 ${host}`,
    't=0 0',
    'm=audio 49170 RTP/AVP 0',
    'a=rtpmap:0 PCMU/8000',
    'a=sendrecv',
    'm=video 49172 RTP/AVP 96',
    'a=rtpmap:96 H264/90000',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/** Our answer to a caller's offer, or undefined when the offer is not SDP we can read. */
export function mcuAnswer(offer: string, host: string): string | undefined {
  const offered = mLines(offer);
  if (!offer.startsWith('v=0') || offered === undefined || offered.length === 0) return undefined;
  const lines = ['v=0', `o=cascaded-sim ${++version} 1 IN IP4 ${host}`, 's=conference', `c=IN IP4 ${host}`, 't=0 0'];
  offered.forEach((m, i) => {
    const fmt = m.formats[0] ?? '0';
    const take = m.port !== 0 && (m.media === 'audio' || m.media === 'video');
    lines.push(`m=${m.media} ${take ? 49170 + 2 * i : 0} ${m.proto} ${fmt}`);
    const map = m.rtpmap.get(fmt);
    if (take && map !== undefined) lines.push(`a=rtpmap:${fmt} ${map}`);
    if (take) lines.push(`a=${MIRROR[m.direction] ?? 'sendrecv'}`);
  });
  lines.push('');
  return lines.join('\r\n');
}

/** Why an answer to our offer is not one (RFC 3264 6), or undefined when it is. */
export function answerProblem(
  offer: string,
  contentType: string | undefined,
  answer: Buffer,
  where = 'the ACK',
): string | undefined {
  if (answer.length === 0) return `no answer in ${where}`;
  if (contentType?.split(';')[0]?.trim().toLowerCase() !== SDP_TYPE) return `answer is ${contentType ?? 'untyped'}`;
  const text = answer.toString('utf8');
  if (!text.startsWith('v=0')) return 'answer is not SDP version 0';
  const ours = mLines(offer)!;
  const theirs = mLines(text);
  if (theirs === undefined) return 'answer has a malformed m= line';
  if (theirs.length !== ours.length) return `answer has ${theirs.length} m= lines for our ${ours.length}`;
  const wrong = theirs.findIndex((m, i) => m.media !== ours[i]!.media);
  if (wrong >= 0) return `answer m= line ${wrong + 1} is ${theirs[wrong]!.media}, offered ${ours[wrong]!.media}`;
  return undefined;
}
