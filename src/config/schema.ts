/**
 * The JSON Schema of the one YAML config file: daemon settings and the
 * inventory. `additionalProperties: false` everywhere so a misspelt key is an
 * error, not a silently ignored setting; defaults are filled in by ajv.
 * `config/cascaded.schema.json` is this object serialised (`npm run gen:schema`),
 * for editors; a test keeps the two equal.
 */

const id = { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]*$', minLength: 1, maxLength: 64 } as const;
const name = { type: 'string', minLength: 1, maxLength: 200 } as const;
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const sipUri = { type: 'string', pattern: '^sips?:[^\\s]+$', maxLength: 512 } as const;
const path = { type: 'string', minLength: 1 } as const;
const healthIntervalMs = { type: 'integer', minimum: 500, maximum: 600_000 } as const;
// RFC 4028 4: Min-SE may not go below 90 s; a day is far beyond any MCU's limit.
const sessionExpires = { type: 'integer', minimum: 90, maximum: 86_400 } as const;

const DEFAULT_LEVELS = [
  { id: 'central', name: 'Central Government' },
  { id: 'province', name: 'Province' },
  { id: 'district', name: 'District' },
  { id: 'commune', name: 'Commune' },
];

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://cascaded.invalid/schema/config.json',
  title: 'cascaded configuration and inventory',
  type: 'object',
  additionalProperties: false,
  required: ['operators', 'mcus', 'endpoints'],
  properties: {
    version: { const: 1, default: 1, description: 'Format version of this file.' },
    daemon: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        logLevel: {
          enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
          default: 'info',
        },
        stateDir: {
          ...path,
          description: 'Where the store and generated certificates live. Default: $STATE_DIRECTORY (systemd) or ./var.',
        },
        shutdownTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 10_000 },
        store: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            driver: { const: 'sqlite', default: 'sqlite' },
            path: { ...path, description: 'SQLite file. Default: <stateDir>/cascaded.db.' },
            synchronous: {
              enum: ['normal', 'full'],
              default: 'normal',
              description: 'normal: durable across process crashes; full: also across power loss (slower).',
            },
          },
        },
        api: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            host: { type: 'string', minLength: 1, default: '127.0.0.1' },
            port: { ...port, default: 8443 },
            tls: {
              type: 'object',
              additionalProperties: false,
              required: ['cert', 'key'],
              description:
                'PEM files, read again on SIGHUP. Absent: a self-signed certificate is generated in stateDir.',
              properties: { cert: path, key: path },
            },
            plainHttp: {
              type: 'boolean',
              default: false,
              description: 'Serve plain HTTP instead of HTTPS: only allowed when host is a loopback address.',
            },
            bodyLimitBytes: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 },
            requestTimeoutMs: {
              type: 'integer',
              minimum: 1_000,
              maximum: 600_000,
              default: 35_000,
              description: 'Deadline of one request (above the 30 s chair deadline); also the bound on receiving it.',
            },
            rateLimit: {
              type: 'object',
              additionalProperties: false,
              default: {},
              description: 'Per token, on every mutating route and on plans.',
              properties: {
                max: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1_200 },
                windowMs: { type: 'integer', minimum: 1_000, maximum: 3_600_000, default: 60_000 },
              },
            },
            maxEventClients: { type: 'integer', minimum: 1, maximum: 10_000, default: 100 },
            metricsAuth: {
              type: 'boolean',
              default: false,
              description: '/metrics needs a bearer token too (Prometheus: authorization.credentials_file).',
            },
            clientCertificates: {
              type: 'object',
              additionalProperties: false,
              required: ['ca', 'identities'],
              description: 'mTLS: client certificates signed by ca, mapped to roles by their SHA-256 fingerprint.',
              properties: {
                ca: path,
                identities: {
                  type: 'array',
                  items: {
                    type: 'object',
                    additionalProperties: false,
                    required: ['name', 'fingerprint256', 'role'],
                    properties: {
                      name,
                      fingerprint256: { type: 'string', pattern: '^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$' },
                      role: { enum: ['viewer', 'operator', 'admin'] },
                      scope: { type: 'string', pattern: '^(operator|province):[a-z0-9][a-z0-9._-]*$' },
                    },
                  },
                },
              },
            },
          },
        },
        mcu: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'MCU drivers: health checks and deadlines, shared by every MCU.',
          properties: {
            healthIntervalMs: { ...healthIntervalMs, default: 5_000 },
            healthFailures: { type: 'integer', minimum: 1, maximum: 100, default: 3 },
            requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: 5_000 },
            connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 10_000 },
            dialTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 30_000 },
            sessionExpires: {
              ...sessionExpires,
              default: 1800,
              description: 'Session interval (s) asked for on control dialogs (RFC 4028); refreshed at half of it.',
            },
            qualityReports: {
              type: 'boolean',
              default: false,
              description:
                "Subscribe every open conference to its calls' quality reports (RFC 6035 vq-rtcpxr: packet loss, jitter, delay, bitrate) for the session report. Off by default: an MCU without the package refuses each attempt (489).",
            },
          },
        },
        cascade: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The cascade manager: how it dials, heals and re-plans live sessions (docs/cascade.md).',
          properties: {
            linkConcurrency: {
              type: 'integer',
              minimum: 1,
              maximum: 1_000,
              default: 64,
              description: 'Cascade link dials and hang-ups in flight at once, over every session.',
            },
            endpointConcurrency: {
              type: 'integer',
              minimum: 1,
              maximum: 1_000,
              default: 64,
              description: 'Endpoint dials and hang-ups in flight at once.',
            },
            layoutConcurrency: {
              type: 'integer',
              minimum: 1,
              maximum: 1_000,
              default: 32,
              description: 'Layouts (one endpoint full-screen on a link or screen) being set at once.',
            },
            dialEndpoints: {
              type: 'boolean',
              default: true,
              description:
                "Dial every endpoint of a session into its rooms (false: only each MCU's main endpoint, the one its link shows).",
            },
            halfDeadGraceMs: {
              type: 'integer',
              minimum: 0,
              maximum: 600_000,
              default: 3_000,
              description:
                "A link up at one MCU and gone at the other is hung up and redialled after this long (four times this long when the MCU without it has reported nothing since the call appeared at the other); a replacement after the first waits up to this long for both MCUs' full rosters and leaves a link they show up alone.",
            },
            linkProbeMs: {
              type: 'integer',
              minimum: 0,
              maximum: 600_000,
              default: 1_000,
              description:
                'How often a link between two MCUs that both lack the conference event package is probed (its layout re-sent at both ends: an MCU that lost the link answers 404), so that its drop is seen; 0: never (such a drop then goes unnoticed).',
            },
            replanAfterMs: {
              type: 'integer',
              minimum: 1_000,
              maximum: 86_400_000,
              default: 60_000,
              description:
                'An MCU of a session unusable this long (down, or its link failing) triggers a re-plan without it.',
            },
            unexpectedLinks: {
              enum: ['report', 'hang-up'],
              default: 'report',
              description:
                "Links in a session's rooms that no session asked for: report them (and leave them), or hang them up.",
            },
            pollMs: {
              type: 'integer',
              minimum: 100,
              maximum: 60_000,
              default: 1_000,
              description: 'How often the store is checked for sessions created, ended or changed by other processes.',
            },
            retry: {
              type: 'object',
              additionalProperties: false,
              default: {},
              description:
                'Redials: immediate first, then baseMs doubling up to maxMs, minus up to jitter of it at random.',
              properties: {
                baseMs: { type: 'integer', minimum: 10, maximum: 600_000, default: 250 },
                maxMs: { type: 'integer', minimum: 10, maximum: 3_600_000, default: 10_000 },
                jitter: { type: 'number', minimum: 0, maximum: 1, default: 0.25 },
              },
            },
          },
        },
        chair: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: "The chair hot path: bringing an endpoint to the chair's screen (docs/chair.md).",
          properties: {
            deadlineMs: {
              type: 'integer',
              minimum: 1_000,
              maximum: 300_000,
              default: 30_000,
              description: "One command's deadline, retries included (Decision 1594: 30 s).",
            },
            layout: {
              enum: ['full', 'pip'],
              default: 'full',
              description:
                "The chair's screen with the endpoint brought to it: full screen, or pip (the speaker large, the chair small). A session's own choice wins.",
            },
            mutePrevious: {
              type: 'boolean',
              default: false,
              description: 'Mute the previous speaker when another is brought to the chair. A session may ask for it.',
            },
            defaultLayout: {
              // The layout names of src/mcu (LAYOUT_NAMES).
              enum: ['single', '1+1', '2x2', '1+5', '1+7', '3x3', 'pip'],
              default: '3x3',
              description:
                "The chair's screen when no one is brought to it: the root's cascade links, then its endpoints.",
            },
          },
        },
        session: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The session lifecycle of Decision 1594: its timeline and deadlines (docs/session.md).',
          properties: {
            dialLeadMs: {
              type: 'integer',
              minimum: 0,
              maximum: 86_400_000,
              default: 1_800_000,
              description: 'Dial the cascade this long before it must be up (planned: T-2h; ad-hoc: T-30min).',
            },
            riskWindowMs: {
              type: 'integer',
              minimum: 0,
              maximum: 86_400_000,
              default: 900_000,
              description: 'A deadline not met this long before it is due is at risk (metric, alert, log line).',
            },
            notifyRiskWindowMs: {
              type: 'integer',
              minimum: 0,
              maximum: 900_000,
              default: 300_000,
              description: 'The risk window of the 15-minute rules (notification, an ad-hoc plan).',
            },
            teardownAfterMs: {
              type: 'integer',
              minimum: 0,
              maximum: 86_400_000,
              default: 300_000,
              description: 'Tear the cascade down this long after the expected end.',
            },
            lateToleranceMs: {
              type: 'integer',
              minimum: 0,
              maximum: 3_600_000,
              default: 60_000,
              description: 'A step run later than this after its time (the daemon was down) is recorded as late.',
            },
            dialRetryMs: {
              type: 'integer',
              minimum: 1_000,
              maximum: 3_600_000,
              default: 60_000,
              description: 'A failed dial is tried again this often, until the start.',
            },
          },
        },
        sip: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            listen: {
              type: 'array',
              minItems: 1,
              default: [{ transport: 'udp', host: '127.0.0.1', port: 5060 }],
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['transport'],
                properties: {
                  transport: { enum: ['udp', 'tcp', 'tls'] },
                  host: { type: 'string', minLength: 1, default: '127.0.0.1' },
                  port: { ...port, default: 5060 },
                },
              },
            },
            limits: {
              type: 'object',
              additionalProperties: false,
              default: {},
              description:
                'Caps on what a peer can make the SIP port hold (docs/sip.md, "Transport hardening"). Absent: the stack\'s defaults.',
              properties: {
                maxConnections: {
                  type: 'integer',
                  minimum: 1,
                  description: 'TCP/TLS connections open at once, both directions (default 1,024).',
                },
                maxConnectionsPerAddress: {
                  type: 'integer',
                  minimum: 1,
                  description: 'Inbound TCP/TLS connections from one IP address (default 32).',
                },
                maxQueuedBytes: {
                  type: 'integer',
                  minimum: 1,
                  description: 'Unsent bytes one TCP/TLS connection may hold (default 1 MiB).',
                },
                maxHeaderSize: {
                  type: 'integer',
                  minimum: 1024,
                  description: 'Largest header section over TCP/TLS, in bytes (default 64 KiB).',
                },
                maxStreamMessageSize: {
                  type: 'integer',
                  minimum: 65536,
                  description: 'Largest message over TCP/TLS, in bytes (default 2 MiB).',
                },
                idleTimeoutMs: {
                  type: 'integer',
                  minimum: 1000,
                  description: 'Close a TCP/TLS connection that completes no message for this long (default 120,000).',
                },
                udpReceiveBufferBytes: {
                  type: 'integer',
                  minimum: 65536,
                  description:
                    "Receive buffer asked of the kernel for each UDP socket, in bytes (default 4 MiB: a national dial's bursts overflowed the kernel's 208 KiB default). Linux grants at most net.core.rmem_max; a smaller grant is logged.",
                },
              },
            },
          },
        },
      },
    },
    levels: {
      type: 'array',
      minItems: 1,
      default: DEFAULT_LEVELS,
      description: 'The administrative hierarchy, top first. Default: central, province, district, commune.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name'],
        properties: { id, name },
      },
    },
    provinces: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name'],
        properties: { id, name },
      },
    },
    operators: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name', 'kind'],
        properties: {
          id,
          name,
          kind: { enum: ['central', 'province', 'telco'] },
          province: id,
        },
      },
    },
    mcus: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name', 'operator', 'role', 'sip', 'capacity'],
        properties: {
          id,
          name,
          operator: id,
          role: { enum: ['master', 'slave'] },
          driver: { enum: ['sip-msml'], default: 'sip-msml' },
          sip: { type: 'array', minItems: 1, items: sipUri },
          conferences: {
            type: 'object',
            additionalProperties: false,
            description:
              "The MCU's conferences (meeting rooms), one per live session: a URI template with {room} over a range of rooms, or a list of URIs. Absent: one conference, the first sip URI.",
            properties: {
              template: {
                type: 'string',
                minLength: 1,
                maxLength: 512,
                description: 'A SIP URI with {room} where the room number goes, e.g. "sip:{room}@10.1.2.3:5060".',
              },
              rooms: {
                type: 'object',
                additionalProperties: false,
                required: ['from', 'to'],
                description: 'Room numbers of the template, both ends included (at most 1000 rooms).',
                properties: {
                  from: { type: 'integer', minimum: 0, maximum: 999_999_999 },
                  to: { type: 'integer', minimum: 0, maximum: 999_999_999 },
                },
              },
              uris: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: sipUri },
            },
          },
          h323: { type: 'string', pattern: '^[^\\s:]+:[0-9]{1,5}$' },
          vendor: { type: 'string', default: 'generic' },
          capacity: {
            type: 'object',
            additionalProperties: false,
            required: ['ports'],
            properties: {
              ports: { type: 'integer', minimum: 1, maximum: 100_000 },
              cascadePorts: { type: 'integer', minimum: 0, maximum: 100_000, default: 0 },
            },
          },
          parents: { type: 'array', default: [], items: id, uniqueItems: true },
          province: id,
          auth: {
            type: 'object',
            additionalProperties: false,
            required: ['username'],
            description:
              "Digest credentials (RFC 8760) the daemon answers this MCU's 401/407 with. Exactly one source of the secret: passwordFile, passwordEnv or credential; never the secret itself.",
            properties: {
              username: { type: 'string', minLength: 1, maxLength: 256 },
              passwordFile: { ...path, description: 'A file holding the secret (one trailing newline is ignored).' },
              passwordEnv: {
                type: 'string',
                pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
                maxLength: 256,
                description: 'An environment variable holding the secret.',
              },
              credential: {
                type: 'string',
                pattern: '^[A-Za-z0-9_-][A-Za-z0-9._-]*$',
                maxLength: 256,
                description: 'A systemd credential: the file $CREDENTIALS_DIRECTORY/NAME (LoadCredential=NAME:...).',
              },
              realm: {
                type: 'string',
                minLength: 1,
                maxLength: 256,
                description: 'Only answer challenges of this realm (any realm when absent).',
              },
            },
          },
          control: {
            type: 'object',
            additionalProperties: false,
            description: 'Driver settings of this MCU; each overrides daemon.mcu or the default.',
            properties: {
              transport: {
                enum: ['udp', 'tcp', 'tls'],
                description: "Transport of the control dialog. Default: the URI's transport parameter, else UDP.",
              },
              sessionExpires,
              healthIntervalMs,
              sdp: {
                enum: ['answer', 'offer'],
                description:
                  "answer (default): INVITE without SDP, the MCU's offer in its 2xx is answered in the ACK; offer: the INVITE carries an inactive offer.",
              },
              refer: {
                enum: ['out-of-dialog', 'in-dialog'],
                description:
                  'out-of-dialog (default): REFERs (cascade links, participants, hang-ups) go to the conference URI outside any dialog (RFC 4579 5.5), each with its own subscription dialog, so their NOTIFYs never queue behind one another; in-dialog: in the control dialog. An MCU that refuses one outside a dialog (403, 405, 481, 501) gets them in the control dialog from then on.',
              },
            },
          },
          sim: {
            type: 'object',
            additionalProperties: false,
            description: 'How the MCU simulator (cascaded-sim) plays this MCU; the daemon ignores it. See docs/sim.md.',
            properties: {
              profile: {
                enum: ['full', 'no-conference-events', 'full-state-only', 'challenging'],
                description:
                  "full (default): every feature; no-conference-events: SUBSCRIBE answered 489; full-state-only: RFC 4575 notifications always full; challenging: digest 401 (SHA-256 and MD5) with this MCU's auth, stale nonces now and then.",
              },
              processingDelayMs: {
                type: 'integer',
                minimum: 0,
                maximum: 60_000,
                description:
                  'How long the simulated MCU takes to carry out an INFO, ms. Absent: drawn per MCU, 20..79.',
              },
            },
          },
        },
      },
    },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name', 'level'],
        properties: {
          id,
          name,
          level: id,
          province: id,
          mcus: { type: 'array', default: [], items: id, uniqueItems: true },
          connection: { enum: ['direct', 'via-operator', 'relay'], default: 'direct' },
          operator: id,
          relayVia: id,
          vcs: { type: 'string', default: 'unknown' },
          sip: sipUri,
        },
      },
    },
  },
} as const;

/**
 * Keys people write that were renamed or are easy to guess wrong: an unknown
 * key listed here gets a hint rather than a bare "unknown property".
 */
export const RENAMED_KEYS: Readonly<Record<string, string>> = {
  candidates: 'mcus',
  candidateMcus: 'mcus',
  mcu: 'mcus',
  endpoint: 'endpoints',
  parent: 'parents',
  parentCandidates: 'parents',
  cascadeTo: 'parents',
  uri: 'sip',
  uris: 'sip',
  room: 'rooms',
  sipUri: 'sip',
  type: 'role',
  model: 'connection',
  connectionModel: 'connection',
  relay: 'relayVia',
  ports: 'capacity.ports',
  cascade_ports: 'cascadePorts',
  cascadeports: 'cascadePorts',
  log_level: 'logLevel',
  loglevel: 'logLevel',
  state_dir: 'stateDir',
  // The secret never goes in the config file: where to read it from instead.
  password: 'passwordFile',
  secret: 'passwordFile',
  passwordfile: 'passwordFile',
  password_file: 'passwordFile',
  user: 'username',
};
