/**
 * JSON Schemas of the REST API (draft-07, as the config's): Fastify validates
 * requests with them through ajv, serialises responses with them, and
 * @fastify/swagger turns them into the OpenAPI document at /docs/json.
 * Objects are closed (`additionalProperties: false`) so a misspelt field is a
 * 400 with its path, never silently ignored.
 */

export const id = { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]*$', minLength: 1, maxLength: 64 } as const;

export const errorBody = {
  $id: 'Error',
  type: 'object',
  description: 'Every error: a stable code (docs/errors.md), a message for people, details for programs.',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', examples: ['API_ERR_VALIDATION'] },
    message: { type: 'string' },
    details: {},
  },
} as const;

const errorRef = { $ref: 'Error#' } as const;

/** The error responses every authenticated route may give. */
export const commonErrors = {
  400: errorRef,
  401: errorRef,
  403: errorRef,
  404: errorRef,
  413: errorRef,
  415: errorRef,
  429: errorRef,
  500: errorRef,
  501: errorRef,
  503: errorRef,
} as const;

export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  cursor: { type: 'string', minLength: 1, maxLength: 128, description: 'The `next` of the previous page.' },
} as const;

export const page = (item: object) =>
  ({
    type: 'object',
    required: ['items', 'next'],
    properties: {
      items: { type: 'array', items: item },
      next: { type: ['string', 'null'], description: 'Cursor of the next page; null on the last page.' },
    },
  }) as const;

export const idParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id } } as const;
/** Session ids as admission takes them (src/cascade, SessionRequest.id): upper case allowed, unlike inventory ids. */
export const sessionId = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } as const;
export const sessionParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: sessionId },
} as const;

export const health = {
  type: 'object',
  required: ['up', 'reason', 'since'],
  properties: {
    up: { type: 'boolean' },
    reason: { type: 'string' },
    since: { type: 'string', format: 'date-time' },
  },
} as const;

export const capabilities = {
  type: 'object',
  required: ['conferenceEvents', 'lacks'],
  properties: {
    conferenceEvents: { enum: ['available', 'missing', 'unknown'] },
    refer: { enum: ['out-of-dialog', 'in-dialog'] },
    // Only when the driver subscribes to call quality reports (daemon.mcu.qualityReports, RFC 6035).
    qualityReports: { enum: ['available', 'missing', 'unknown'] },
    lacks: {
      type: 'array',
      items: {
        type: 'object',
        properties: { feature: { type: 'string' }, reason: { type: 'string' }, sipStatus: { type: 'integer' } },
      },
    },
  },
} as const;

export const mcu = {
  $id: 'Mcu',
  type: 'object',
  required: ['id', 'name', 'operator', 'role', 'driver', 'vendor', 'capacity', 'parents', 'health', 'capabilities'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    operator: { type: 'string' },
    role: { enum: ['master', 'slave'] },
    driver: { type: 'string' },
    vendor: { type: 'string' },
    province: { type: 'string' },
    capacity: {
      type: 'object',
      properties: { ports: { type: 'integer' }, cascadePorts: { type: 'integer' } },
    },
    parents: { type: 'array', items: { type: 'string' } },
    sip: { type: 'array', items: { type: 'string' } },
    health: { ...health, description: 'Absent a driver: down, "no driver".' },
    capabilities,
  },
} as const;

export const participant = {
  type: 'object',
  required: ['entity', 'kind', 'status', 'audioMuted'],
  properties: {
    entity: { type: 'string' },
    kind: { enum: ['endpoint', 'link'] },
    status: { type: 'string' },
    audioMuted: { type: 'boolean' },
    displayText: { type: 'string' },
  },
} as const;

export const conference = {
  type: 'object',
  required: ['uri', 'participants', 'links', 'roster'],
  properties: {
    uri: { type: 'string' },
    participants: { type: 'integer', description: 'Connected participants.' },
    links: { type: 'integer', description: 'Connected cascade links.' },
    roster: { type: 'array', items: participant },
  },
} as const;

export const endpoint = {
  $id: 'Endpoint',
  type: 'object',
  required: ['id', 'name', 'level', 'mcus', 'connection', 'vcs'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    level: { type: 'string' },
    province: { type: 'string' },
    mcus: { type: 'array', items: { type: 'string' } },
    connection: { enum: ['direct', 'via-operator', 'relay'] },
    operator: { type: 'string' },
    relayVia: { type: 'string' },
    vcs: { type: 'string' },
    sip: { type: 'string' },
  },
} as const;

export const session = {
  $id: 'Session',
  type: 'object',
  required: ['id', 'kind', 'title', 'state', 'startsAt', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    kind: { enum: ['planned', 'adhoc'] },
    title: { type: 'string' },
    state: { type: 'string' },
    startsAt: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    data: {},
  },
} as const;

export const auditEntry = {
  $id: 'AuditEntry',
  type: 'object',
  required: ['id', 'at', 'actor', 'action', 'outcome'],
  properties: {
    id: { type: 'integer' },
    at: { type: 'string' },
    actor: { type: 'string' },
    role: { type: ['string', 'null'] },
    action: { type: 'string' },
    target: { type: ['string', 'null'] },
    outcome: { type: 'string' },
    durationMs: { type: ['number', 'null'] },
    requestId: { type: ['string', 'null'] },
    source: { type: ['string', 'null'] },
    details: {},
    hash: { type: ['string', 'null'] },
  },
} as const;

/** A module's result whose shape that module owns (plans, cascade and chair outcomes, reports). */
export const opaque = { type: 'object', additionalProperties: true } as const;

export const SHARED_SCHEMAS = [errorBody, mcu, endpoint, session, auditEntry] as const;
