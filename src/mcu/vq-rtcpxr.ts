/**
 * The voice quality event package body (RFC 6035, application/vq-rtcpxr):
 * the simulator builds it, the driver parses it. One report per call, as
 * lines `Name:value` (a line starting with white space continues the one
 * before, as the RFC's own examples fold them): the report type first
 * (VQSessionReport, VQIntervalReport or VQAlertReport, RFC 6035 4.2), the
 * call's identity (CallID, LocalID, RemoteID, ...), then `LocalMetrics:` (the
 * stream as the reporter received it) and `RemoteMetrics:` (as the far end
 * reported it over RTCP XR), each a block of parameter lines
 * (`PacketLoss:NLR=5.0 JDR=2.0`, `Delay:RTD=200 ... IAJ=2`).
 *
 * Bitrate is not among RFC 6035's metrics: cascaded reads and writes it as an
 * extension line `x-Bitrate:KBPS=n` in a metrics block (the stream's received
 * bitrate, kbit/s), in the `x-` form vendors use for their own lines (snom and
 * Gigaset phones send `x-UserAgent`, `x-SIPmetrics`). Lines it does not know
 * are skipped, as a collector must for another vendor's extensions.
 */
import { McuError } from './errors.js';

export const VQ_RTCPXR_CONTENT_TYPE = 'application/vq-rtcpxr';
/** The event package name (RFC 6035 3). */
export const VQ_RTCPXR_EVENT = 'vq-rtcpxr';

export type VqReportType = 'session' | 'interval' | 'alert';

/** One direction's figures; absent when the report does not give them. */
export interface VqMetrics {
  /** Network packet loss rate, % (PacketLoss NLR). */
  readonly lossPercent?: number;
  /** Jitter buffer discard rate, % (PacketLoss JDR). */
  readonly discardPercent?: number;
  /** Interarrival jitter, ms (Delay IAJ, RFC 3550 6.4.1). */
  readonly jitterMs?: number;
  /** Round-trip delay, ms (Delay RTD). */
  readonly roundTripMs?: number;
  /** One-way delay, ms (Delay OWD, else SOWD). */
  readonly oneWayMs?: number;
  /** Received bitrate, kbit/s (the cascaded extension line `x-Bitrate:KBPS=`). */
  readonly bitrateKbps?: number;
  /** The measurement's interval (Timestamps START, STOP), as written. */
  readonly start?: string;
  readonly stop?: string;
  /** Payload description (SessionDesc PD), e.g. G729, H264. */
  readonly codec?: string;
}

export interface VqReport {
  readonly type: VqReportType;
  /** `VQSessionReport: CallTerm`: the last report of a call that ended. */
  readonly callTerm: boolean;
  readonly callId: string;
  /** The reporter and the far end as written (`Alice <sip:alice@example.org>`); see `uriOfId`. */
  readonly localId: string;
  readonly remoteId: string;
  readonly origId?: string;
  readonly localGroup?: string;
  readonly remoteGroup?: string;
  readonly dialogId?: string;
  readonly local?: VqMetrics;
  readonly remote?: VqMetrics;
}

const TYPES: Record<string, VqReportType> = {
  vqsessionreport: 'session',
  vqintervalreport: 'interval',
  vqalertreport: 'alert',
};
const TYPE_NAMES: Record<VqReportType, string> = {
  session: 'VQSessionReport',
  interval: 'VQIntervalReport',
  alert: 'VQAlertReport',
};
/** A report is a few hundred bytes; a body this large is not one. */
const MAX_BODY = 16_384;

function protocolError(message: string, line?: number): McuError {
  return new McuError('MCU_ERR_PROTOCOL', `vq-rtcpxr: ${line === undefined ? '' : `line ${line}: `}${message}`, {
    details: line === undefined ? {} : { line },
  });
}

/** `NAME=value` pairs of a parameter line; a quoted value keeps its spaces (FMTP="annexb=no"). */
function params(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of value.matchAll(/([A-Za-z][\w.-]*)=("[^"]*"|\S*)/g)) out.set(m[1]!.toUpperCase(), m[2]!);
  return out;
}

function number(p: Map<string, string>, key: string, line: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = p.get(key);
  if (v === undefined) return undefined;
  const n = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 0 && n <= max)) throw protocolError(`${key}=${v} is not a number in 0..${max}`, line);
  return n;
}

/** The URI of a LocalID or RemoteID (`Name <sip:...>` or a bare URI). */
export function uriOfId(id: string): string {
  const m = /<([^>]*)>/.exec(id);
  return (m === null ? id : m[1]!).trim();
}

/** Parse one report. Unreadable: MCU_ERR_PROTOCOL naming the line. */
export function parseVqReport(body: string): VqReport {
  if (body.length > MAX_BODY) throw protocolError(`body of ${body.length} bytes (at most ${MAX_BODY})`);
  // Logical lines: a line starting with white space continues the previous one.
  const lines: { name: string; value: string; line: number }[] = [];
  body.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    const last = lines.at(-1);
    if (/^[ \t]/.test(raw) && last !== undefined) {
      last.value = `${last.value} ${raw.trim()}`;
      return;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) throw protocolError(`not a "Name:value" line: ${JSON.stringify(raw.slice(0, 80))}`, i + 1);
    lines.push({ name: raw.slice(0, colon).trim(), value: raw.slice(colon + 1).trim(), line: i + 1 });
  });
  const first = lines[0];
  const type = first === undefined ? undefined : TYPES[first.name.toLowerCase()];
  if (first === undefined || type === undefined)
    throw protocolError('the first line is not VQSessionReport, VQIntervalReport or VQAlertReport', first?.line ?? 1);
  const top: Record<string, string> = {};
  const blocks: { local: Record<string, unknown>; remote: Record<string, unknown> } = { local: {}, remote: {} };
  let block: Record<string, unknown> | undefined;
  let seen = { local: false, remote: false };
  for (const l of lines.slice(1)) {
    const name = l.name.toLowerCase();
    if (name === 'localmetrics' || name === 'remotemetrics') {
      const which = name === 'localmetrics' ? 'local' : 'remote';
      block = blocks[which];
      seen = { ...seen, [which]: true };
      continue;
    }
    switch (name) {
      case 'callid':
      case 'localid':
      case 'remoteid':
      case 'origid':
      case 'localgroup':
      case 'remotegroup':
      case 'dialogid':
        top[name] = l.value;
        continue;
    }
    if (block === undefined) continue;
    const p = params(l.value);
    switch (name) {
      case 'timestamps':
        if (p.has('START')) block.start = p.get('START');
        if (p.has('STOP')) block.stop = p.get('STOP');
        break;
      case 'sessiondesc':
        if (p.has('PD')) block.codec = p.get('PD');
        break;
      case 'packetloss':
        block.lossPercent = number(p, 'NLR', l.line, 100);
        block.discardPercent = number(p, 'JDR', l.line, 100);
        break;
      case 'delay':
        block.roundTripMs = number(p, 'RTD', l.line);
        block.oneWayMs = number(p, 'OWD', l.line) ?? number(p, 'SOWD', l.line);
        block.jitterMs = number(p, 'IAJ', l.line);
        break;
      case 'x-bitrate':
        block.bitrateKbps = number(p, 'KBPS', l.line);
        break;
    }
  }
  for (const [field, name] of [
    ['callid', 'CallID'],
    ['localid', 'LocalID'],
    ['remoteid', 'RemoteID'],
  ] as const)
    if (!top[field]) throw protocolError(`no ${name} line (RFC 6035 4.2 requires it)`);
  const clean = (b: Record<string, unknown>): VqMetrics =>
    Object.fromEntries(Object.entries(b).filter(([, v]) => v !== undefined)) as VqMetrics;
  const rest = first.value.trim().toLowerCase();
  return {
    type,
    callTerm: type === 'session' && rest === 'callterm',
    callId: top.callid!,
    localId: top.localid!,
    remoteId: top.remoteid!,
    ...(top.origid === undefined ? {} : { origId: top.origid }),
    ...(top.localgroup === undefined ? {} : { localGroup: top.localgroup }),
    ...(top.remotegroup === undefined ? {} : { remoteGroup: top.remotegroup }),
    ...(top.dialogid === undefined ? {} : { dialogId: top.dialogid }),
    ...(seen.local ? { local: clean(blocks.local) } : {}),
    ...(seen.remote ? { remote: clean(blocks.remote) } : {}),
  };
}

function fixed(n: number): string {
  return Number.isInteger(n) ? n.toFixed(1) : String(Math.round(n * 10) / 10);
}

function metricLines(m: VqMetrics): string[] {
  const out: string[] = [];
  if (m.start !== undefined && m.stop !== undefined) out.push(`Timestamps:START=${m.start} STOP=${m.stop}`);
  if (m.codec !== undefined) out.push(`SessionDesc:PD=${m.codec}`);
  if (m.lossPercent !== undefined || m.discardPercent !== undefined)
    out.push(`PacketLoss:NLR=${fixed(m.lossPercent ?? 0)} JDR=${fixed(m.discardPercent ?? 0)}`);
  const delay = [
    m.roundTripMs === undefined ? '' : `RTD=${Math.round(m.roundTripMs)}`,
    m.oneWayMs === undefined ? '' : `OWD=${Math.round(m.oneWayMs)}`,
    m.jitterMs === undefined ? '' : `IAJ=${Math.round(m.jitterMs)}`,
  ].filter((s) => s !== '');
  if (delay.length > 0) out.push(`Delay:${delay.join(' ')}`);
  if (m.bitrateKbps !== undefined) out.push(`x-Bitrate:KBPS=${Math.round(m.bitrateKbps)}`);
  return out;
}

/** One report's body, CRLF-terminated lines (RFC 6035 4.2). */
export function buildVqReport(r: VqReport): string {
  const lines = [
    `${TYPE_NAMES[r.type]}:${r.callTerm && r.type === 'session' ? ' CallTerm' : ''}`,
    `CallID:${r.callId}`,
    `LocalID:${r.localId}`,
    `RemoteID:${r.remoteId}`,
    ...(r.origId === undefined ? [] : [`OrigID:${r.origId}`]),
    ...(r.localGroup === undefined ? [] : [`LocalGroup:${r.localGroup}`]),
    ...(r.remoteGroup === undefined ? [] : [`RemoteGroup:${r.remoteGroup}`]),
    ...(r.local === undefined ? [] : ['LocalMetrics:', ...metricLines(r.local)]),
    ...(r.remote === undefined ? [] : ['RemoteMetrics:', ...metricLines(r.remote)]),
    ...(r.dialogId === undefined ? [] : [`DialogID:${r.dialogId}`]),
  ];
  for (const l of lines)
    if (/[\r\n]/.test(l))
      throw new McuError('MCU_ERR_INVALID_ARGUMENT', `vq-rtcpxr: a line break in ${l.slice(0, 40)}`);
  return `${lines.join('\r\n')}\r\n`;
}
