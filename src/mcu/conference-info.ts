/**
 * The conference event package body (RFC 4575, application/conference-info+xml):
 * the simulator builds it, the driver parses it. A full document carries the
 * whole roster; a partial one only what changed (users with state "full",
 * "partial" or "deleted"), and `version` increases by one per notification so
 * a subscriber can tell a lost one (RFC 4575 4.1).
 *
 * Participants are `user` elements; a cascade link is a user whose role entry
 * is "cascade" (the MCU at the other end joined as one participant, RFC 4579).
 * An audio-muted participant's audio media has status "recvonly": the mix no
 * longer takes its sound.
 */
import { detach } from '../sip/index.js';
import { McuError } from './errors.js';
import { ATTR, attr, buildXml, child, children, parseXml, text } from './xml.js';

export const CONFERENCE_INFO_CONTENT_TYPE = 'application/conference-info+xml';
const NS = 'urn:ietf:params:xml:ns:conference-info';

export type ElementState = 'full' | 'partial' | 'deleted';
export type ParticipantKind = 'endpoint' | 'link';
/** RFC 4575 5.7.1 endpoint status values we use. */
export type ParticipantStatus = 'connected' | 'dialing-out' | 'disconnected';

export interface ConferenceUser {
  /** The participant's URI: an endpoint's SIP URI, or the conference URI of the MCU at the other end of a link. */
  readonly entity: string;
  readonly state: ElementState;
  readonly kind: ParticipantKind;
  readonly displayText?: string;
  readonly status: ParticipantStatus;
  readonly audioMuted: boolean;
  /** Call-ID of the participant's dialog, when it has one. */
  readonly callId?: string;
}

export interface ConferenceInfo {
  readonly entity: string;
  readonly version: number;
  readonly state: ElementState;
  readonly displayText?: string;
  readonly users: readonly ConferenceUser[];
}

function userNode(u: ConferenceUser): Record<string, unknown> {
  if (u.state === 'deleted') return { [`${ATTR}entity`]: u.entity, [`${ATTR}state`]: 'deleted' };
  return {
    [`${ATTR}entity`]: u.entity,
    [`${ATTR}state`]: u.state,
    ...(u.displayText === undefined ? {} : { 'display-text': u.displayText }),
    roles: { entry: [u.kind === 'link' ? 'cascade' : 'participant'] },
    endpoint: [
      {
        [`${ATTR}entity`]: u.entity,
        [`${ATTR}state`]: 'full',
        status: u.status,
        'joining-method': u.kind === 'link' ? 'dialed-out' : 'dialed-in',
        media: [
          { [`${ATTR}id`]: 'a', type: 'audio', status: u.audioMuted ? 'recvonly' : 'sendrecv' },
          { [`${ATTR}id`]: 'v', type: 'video', status: 'sendrecv' },
        ],
        ...(u.callId === undefined ? {} : { 'call-info': { sip: { 'call-id': u.callId } } }),
      },
    ],
  };
}

export function buildConferenceInfo(info: ConferenceInfo): string {
  return buildXml({
    'conference-info': {
      [`${ATTR}xmlns`]: NS,
      [`${ATTR}entity`]: info.entity,
      [`${ATTR}state`]: info.state,
      [`${ATTR}version`]: String(info.version),
      ...(info.displayText === undefined ? {} : { 'conference-description': { 'display-text': info.displayText } }),
      users: info.users.length === 0 ? '' : { user: info.users.map(userNode) },
    },
  });
}

const STATES = new Set(['full', 'partial', 'deleted']);
const STATUSES = new Set(['connected', 'dialing-out', 'disconnected']);

export function parseConferenceInfo(body: string | Buffer): ConferenceInfo {
  const root = child(parseXml(body, 'conference-info'), 'conference-info');
  if (root === undefined) throw new McuError('MCU_ERR_PROTOCOL', 'conference-info: no <conference-info> root');
  const version = Number(attr(root, 'version'));
  const state = attr(root, 'state') ?? 'full';
  const entity = attr(root, 'entity');
  if (entity === undefined || !Number.isInteger(version) || version < 0 || !STATES.has(state))
    throw new McuError('MCU_ERR_PROTOCOL', 'conference-info: entity, version and state are required (RFC 4575 5.1)');
  const users: ConferenceUser[] = [];
  for (const u of children(child(root, 'users'), 'user')) {
    const uEntity = attr(u, 'entity');
    const uState = attr(u, 'state') ?? 'full';
    if (uEntity === undefined || !STATES.has(uState))
      throw new McuError('MCU_ERR_PROTOCOL', 'conference-info: a user without entity or with a bad state');
    const ep = children(u, 'endpoint')[0];
    const status = text(ep, 'status') ?? 'connected';
    const audio = children(ep, 'media').find((m) => text(m, 'type') === 'audio');
    const entries = child(u, 'roles')?.entry;
    const roles: unknown[] = Array.isArray(entries) ? entries : entries === undefined ? [] : [entries];
    const displayText = text(u, 'display-text');
    const callId = text(child(child(ep, 'call-info'), 'sip'), 'call-id');
    // Rosters keep these for as long as the call lasts: copies, not views of the whole NOTIFY body (a full state
    // of a national room is hundreds of kilobytes, kept alive by any one entity cut from it).
    users.push({
      entity: detach(uEntity),
      state: uState as ElementState,
      kind: roles.includes('cascade') ? 'link' : 'endpoint',
      status: (STATUSES.has(status) ? status : 'disconnected') as ParticipantStatus,
      audioMuted: audio !== undefined && text(audio, 'status') !== 'sendrecv' && text(audio, 'status') !== 'sendonly',
      ...(displayText === undefined ? {} : { displayText: detach(displayText) }),
      ...(callId === undefined ? {} : { callId: detach(callId) }),
    });
  }
  const displayText = text(child(root, 'conference-description'), 'display-text');
  return {
    entity: detach(entity),
    version,
    state: state as ElementState,
    ...(displayText === undefined ? {} : { displayText }),
    users,
  };
}
