/**
 * Generated from the route table: every /v1 route gets the same battery, so
 * a route added to ROUTES without an example here fails this file.
 */
import { request as httpRequest } from 'node:http';
import t from 'tap';
import { ROUTES, type RouteSpec } from '../../src/api/index.js';
import { type Harness, startHarness } from './harness.js';

interface Example {
  readonly path: string;
  readonly body?: unknown;
  /** A path (params or query) that breaks its schema, and where the 400 must point. */
  readonly badPath?: { readonly path: string; readonly at: string };
}

/** A valid request per route, on the fixture inventory (test/config/fixtures.ts). */
const EXAMPLES: Record<string, Example> = {
  'GET /v1/status': { path: '/v1/status' },
  'GET /v1/mcus': { path: '/v1/mcus', badPath: { path: '/v1/mcus?bogus=1', at: '/querystring/bogus' } },
  'GET /v1/mcus/:id': { path: '/v1/mcus/nb', badPath: { path: '/v1/mcus/NO%20SUCH', at: '/params/id' } },
  'POST /v1/mcus/:id/layout': {
    path: '/v1/mcus/nb/layout',
    body: { output: 'sip:a@ep.invalid', layout: '2x2' },
    badPath: { path: '/v1/mcus/n%20b/layout', at: '/params/id' },
  },
  'POST /v1/mcus/:id/show': {
    path: '/v1/mcus/nb/show',
    body: { output: 'sip:a@ep.invalid', region: 1, source: 'sip:b@ep.invalid' },
    badPath: { path: '/v1/mcus/-nb/show', at: '/params/id' },
  },
  'POST /v1/mcus/:id/audio': {
    path: '/v1/mcus/nb/audio',
    body: { source: 'sip:a@ep.invalid', muted: true },
    badPath: { path: '/v1/mcus/N_B/audio', at: '/params/id' },
  },
  'POST /v1/mcus/:id/keyframe': {
    path: '/v1/mcus/nb/keyframe',
    body: { output: 'sip:a@ep.invalid' },
    badPath: { path: '/v1/mcus/n%2Fb/keyframe', at: '/params/id' },
  },
  'GET /v1/endpoints': {
    path: '/v1/endpoints',
    badPath: { path: '/v1/endpoints?limit=0', at: '/querystring/limit' },
  },
  'GET /v1/endpoints/:id': { path: '/v1/endpoints/nb-h1', badPath: { path: '/v1/endpoints/-x', at: '/params/id' } },
  'POST /v1/plans': { path: '/v1/plans', body: { endpoints: ['nb-h1', 'qb-x1'], chair: 'chair' } },
  'GET /v1/sessions': { path: '/v1/sessions', badPath: { path: '/v1/sessions?limit=x', at: '/querystring/limit' } },
  'GET /v1/sessions/:id': { path: '/v1/sessions/s1', badPath: { path: '/v1/sessions/_S1', at: '/params/id' } },
  'POST /v1/sessions': {
    path: '/v1/sessions',
    body: { id: 's1', kind: 'adhoc', title: 'Họp', root: 'nb', endpoints: ['nb-h1'] },
  },
  'DELETE /v1/sessions/:id': { path: '/v1/sessions/s1', badPath: { path: '/v1/sessions/%2Fx', at: '/params/id' } },
  'GET /v1/sessions/:id/cascade': {
    path: '/v1/sessions/s1/cascade',
    badPath: { path: '/v1/sessions/a%20b/cascade', at: '/params/id' },
  },
  'POST /v1/sessions/:id/cascade': {
    path: '/v1/sessions/s1/cascade',
    body: {},
    badPath: { path: '/v1/sessions/s%201/cascade', at: '/params/id' },
  },
  'POST /v1/sessions/:id/chair': {
    path: '/v1/sessions/s1/chair',
    body: { endpoint: 'nb-h1' },
    badPath: { path: '/v1/sessions/-s1/chair', at: '/params/id' },
  },
  'DELETE /v1/sessions/:id/chair': {
    path: '/v1/sessions/s1/chair',
    badPath: { path: '/v1/sessions/a%20b/chair', at: '/params/id' },
  },
  'POST /v1/sessions/:id/chair/preview': {
    path: '/v1/sessions/s1/chair/preview',
    body: { endpoint: 'nb-h1' },
    badPath: { path: '/v1/sessions/s%3F1/chair/preview', at: '/params/id' },
  },
  'GET /v1/sessions/:id/report': {
    path: '/v1/sessions/s1/report',
    badPath: { path: '/v1/sessions/%20/report', at: '/params/id' },
  },
  'GET /v1/schedule': { path: '/v1/schedule', badPath: { path: '/v1/schedule?status=A', at: '/querystring/status' } },
  'POST /v1/schedule': {
    path: '/v1/schedule',
    body: {
      id: 's1',
      kind: 'adhoc',
      title: 'Giao ban',
      requester: 'UBND tỉnh Ninh Bình',
      root: 'nb',
      chair: 'nb-ubnd',
      startsAt: '2026-12-07T08:00:00Z',
      endsAt: '2026-12-07T09:00:00Z',
      endpoints: [{ province: 'ninh-binh', level: 'district' }],
    },
  },
  'GET /v1/schedule/:id': { path: '/v1/schedule/s1', badPath: { path: '/v1/schedule/S_1', at: '/params/id' } },
  'POST /v1/schedule/:id': {
    path: '/v1/schedule/s1',
    body: { title: 'Giao ban (dời)' },
    badPath: { path: '/v1/schedule/-s1', at: '/params/id' },
  },
  'DELETE /v1/schedule/:id': { path: '/v1/schedule/s1', badPath: { path: '/v1/schedule/%2Fx', at: '/params/id' } },
  'POST /v1/schedule/:id/acks': {
    path: '/v1/schedule/s1/acks',
    body: { unit: 'ninh-binh' },
    badPath: { path: '/v1/schedule/s%201/acks', at: '/params/id' },
  },
  'POST /v1/schedule/:id/next': {
    path: '/v1/schedule/s1/next',
    body: {},
    badPath: { path: '/v1/schedule/_s1/next', at: '/params/id' },
  },
  'POST /v1/schedule/:id/checks': {
    path: '/v1/schedule/s1/checks',
    body: { endpoint: 'nb-h1', connected: true, audio: true, video: false, notes: 'hình bị nhiễu' },
    badPath: { path: '/v1/schedule/-s1/checks', at: '/params/id' },
  },
  'POST /v1/schedule/:id/checks/auto': {
    path: '/v1/schedule/s1/checks/auto',
    body: {},
    badPath: { path: '/v1/schedule/s%3F1/checks/auto', at: '/params/id' },
  },
  'GET /v1/schedule/:id/checks': {
    path: '/v1/schedule/s1/checks?format=csv',
    badPath: { path: '/v1/schedule/s1/checks?format=xml', at: '/querystring/format' },
  },
  'GET /v1/audit': { path: '/v1/audit', badPath: { path: '/v1/audit?order=sideways', at: '/querystring/order' } },
  'GET /v1/events': {
    path: '/v1/events?types=nope',
    badPath: { path: '/v1/events?types=A', at: '/querystring/types' },
  },
};

const key = (r: RouteSpec) => `${r.method} ${r.url}`;
/** Where a national or provincial target lies, for the out-of-scope check. */
const mutating = (r: RouteSpec) => r.audit !== undefined;

let h: Harness;
t.before(async () => {
  h = await startHarness(t, { rateLimit: { max: 1_000, windowMs: 60_000 } });
});

t.test('every route has an example', async (t) => {
  for (const r of ROUTES) t.ok(EXAMPLES[key(r)], `example for ${key(r)}`);
  t.equal(Object.keys(EXAMPLES).length, ROUTES.length, 'no example for a route that is gone');
  for (const r of ROUTES) {
    if (r.schema.params === undefined && r.schema.querystring === undefined) continue;
    t.ok(EXAMPLES[key(r)]?.badPath, `${key(r)} takes parameters: its example breaks one (badPath)`);
  }
});

for (const r of ROUTES) {
  const ex = EXAMPLES[key(r)];
  if (ex === undefined) continue;
  t.test(key(r), async (t) => {
    const send = (token: string | undefined, extra: { body?: unknown; raw?: string; contentType?: string } = {}) =>
      h.call(r.method, ex.path, {
        ...(token === undefined ? {} : { token }),
        ...(r.method === 'POST' && extra.raw === undefined ? { body: extra.body ?? ex.body } : {}),
        ...extra,
      });

    t.test('401 without a token, with a malformed, unknown, expired or revoked one', async (t) => {
      const none = await send(undefined);
      t.match(none, { status: 401, body: { code: 'API_ERR_UNAUTHENTICATED', details: { reason: 'missing' } } });
      t.match(none.headers['www-authenticate'], /^Bearer/);
      t.match(await send('not-a-token'), { status: 401, body: { details: { reason: 'malformed' } } });
      const forged = `cdt.${h.tokens.admin.split('.')[1]}.${'A'.repeat(43)}`;
      t.match(await send(forged), { status: 401, body: { details: { reason: 'unknown' } } });
      t.match(await send(h.tokens.expired), { status: 401, body: { details: { reason: 'expired' } } });
      t.match(await send(h.tokens.revoked), { status: 401, body: { details: { reason: 'revoked' } } });
    });

    if (ex.badPath !== undefined) {
      t.test('400 with the path of a bad parameter', async (t) => {
        const res = await h.call(r.method, ex.badPath!.path, { token: h.tokens.admin });
        t.equal(res.status, 400);
        t.equal(res.body.code, 'API_ERR_VALIDATION');
        t.ok(
          res.body.details.some((v: { path: string }) => v.path === ex.badPath!.at),
          `${JSON.stringify(res.body.details)} names ${ex.badPath!.at}`,
        );
        t.notMatch(res.text, /at .*\.js:\d+/, 'no stack trace');
      });
    }

    if (r.schema.body !== undefined) {
      t.test('400 with the path of an unknown body property; 413 oversized; 415 not JSON; 400 bad JSON', async (t) => {
        const bad = await send(h.tokens.admin, { body: { ...(ex.body as object), bogus: 1 } });
        t.match(bad, { status: 400, body: { code: 'API_ERR_VALIDATION' } });
        t.ok(
          bad.body.details.some((v: { path: string }) => v.path === '/body/bogus'),
          JSON.stringify(bad.body),
        );
        const big = await send(h.tokens.admin, { raw: JSON.stringify({ pad: 'x'.repeat(20_000) }) });
        t.match(big, { status: 413, body: { code: 'API_ERR_BODY_TOO_LARGE' } });
        const xml = await send(h.tokens.admin, { raw: '<a/>', contentType: 'application/xml' });
        t.match(xml, { status: 415, body: { code: 'API_ERR_MEDIA_TYPE' } });
        const broken = await send(h.tokens.admin, { raw: '{"a":' });
        t.match(broken, { status: 400, body: { code: 'API_ERR_BAD_JSON' } });
      });
    }

    if (mutating(r)) {
      t.test('403 for a viewer, audited as refused', async (t) => {
        const res = await send(h.tokens.viewer);
        t.match(res, { status: 403, body: { code: 'API_ERR_FORBIDDEN' } });
        const rows = await h.store.listAudit({ action: r.audit!, newestFirst: true, limit: 1 });
        t.match(rows[0], {
          actor: h.tokens.viewer.split('.')[1],
          role: 'viewer',
          outcome: 'API_ERR_FORBIDDEN',
          requestId: res.headers['x-request-id'],
          source: '127.0.0.1',
        });
      });
      t.test('403 for an operator of another province', async (t) => {
        // Every example targets Ninh Bình (MCU nb, or a session rooted there or on the master).
        const res = await send(h.tokens.opQuangBinh);
        t.match(res, { status: 403, body: { code: 'API_ERR_OUT_OF_SCOPE' } });
      });
    }

    t.test('plain HTTP is refused on the HTTPS port', async (t) => {
      const port = new URL(h.url).port;
      const outcome = await new Promise<string>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: ex.path, method: r.method, timeout: 5_000 }, (res) =>
          resolve(`answered ${res.statusCode}`),
        );
        req.on('error', (e) => resolve(`refused: ${e.message}`));
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.end();
      });
      t.notMatch(outcome, /^answered 2/, outcome);
    });
  });
}
