import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import selfsigned from 'selfsigned';
import t from 'tap';
import { ROUTES } from '../../src/api/index.js';
import type { ChairResult } from '../../src/chair/index.js';
import { type Harness, type Reply, startHarness } from './harness.js';

const A = 'sip:a@ep.invalid';
const B = 'sip:b@ep.invalid';

let h: Harness;
t.before(async () => {
  h = await startHarness(t);
});

t.test('GET /v1/mcus: health and capabilities from the live drivers, paginated, filtered', async (t) => {
  const all = await h.call('GET', '/v1/mcus', { token: h.tokens.viewer });
  t.equal(all.status, 200);
  t.same(
    all.body.items.map((m: { id: string }) => m.id),
    ['master', 'nb', 'qb-vnpt-1'],
  );
  t.match(all.body.items[0], { role: 'master', health: { up: true }, capabilities: { conferenceEvents: 'available' } });
  const p1 = await h.call('GET', '/v1/mcus?limit=2', { token: h.tokens.viewer });
  t.same(p1.body.next, 'nb');
  const p2 = await h.call('GET', `/v1/mcus?limit=2&cursor=${p1.body.next}`, { token: h.tokens.viewer });
  t.same(
    p2.body.items.map((m: { id: string }) => m.id),
    ['qb-vnpt-1'],
  );
  t.equal(p2.body.next, null);
  const vnpt = await h.call('GET', '/v1/mcus?operator=vnpt&up=true', { token: h.tokens.viewer });
  t.same(
    vnpt.body.items.map((m: { id: string }) => m.id),
    ['qb-vnpt-1'],
  );
  t.match(await h.call('GET', '/v1/mcus/nope', { token: h.tokens.viewer }), {
    status: 404,
    body: { code: 'API_ERR_NOT_FOUND' },
  });
});

t.test('MCU commands reach the MCU over SIP and are audited; scope decides who may', async (t) => {
  const nb = h.sims.get('nb')!;
  nb.join(A, 'A');
  nb.join(B, 'B');
  // The driver learns the participants from the MCU's conference events.
  const deadline = Date.now() + 10_000;
  while (h.pool.driver('nb').roster.size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const conf = await h.call('GET', '/v1/mcus/nb', { token: h.tokens.viewer });
  t.match(conf.body.conferences, [{ participants: 2, links: 0 }]);

  const layout = await h.call('POST', '/v1/mcus/nb/layout', {
    token: h.tokens.opNinhBinh,
    body: { output: A, layout: '2x2' },
    headers: { 'x-request-id': 'req-layout-1' },
  });
  t.match(layout, { status: 200, body: { ok: true, mcu: 'nb' } });
  t.equal(layout.headers['x-request-id'], 'req-layout-1', 'the client request id is kept');
  const show = await h.call('POST', '/v1/mcus/nb/show', {
    token: h.tokens.opNinhBinh,
    body: { output: A, region: 2, source: B },
  });
  t.equal(show.status, 200);
  const out = nb.outputs.get(A)!;
  t.equal(out.layout, '2x2', 'the MCU carries the layout');
  t.equal(out.regions[1], B, 'and shows B in region 2');
  t.equal((await h.call('POST', '/v1/mcus/nb/keyframe', { token: h.tokens.admin, body: { output: A } })).status, 200);
  t.ok(nb.outputs.get(A)!.keyframes >= 1, 'the MCU saw the picture fast update');
  t.equal(
    (await h.call('POST', '/v1/mcus/nb/audio', { token: h.tokens.opNinhBinh, body: { source: B, muted: true } }))
      .status,
    200,
  );
  t.equal(nb.participants.get(B)!.audioMuted, true);

  // VNPT commands its own MCU, not the province's; the central department commands the master only.
  t.equal(
    (await h.call('POST', '/v1/mcus/nb/keyframe', { token: h.tokens.opVnpt, body: { output: A } })).body.code,
    'API_ERR_OUT_OF_SCOPE',
  );
  t.equal(
    (await h.call('POST', '/v1/mcus/nb/keyframe', { token: h.tokens.opCentral, body: { output: A } })).body.code,
    'API_ERR_OUT_OF_SCOPE',
  );
  // An MCU error surfaces with its own code and status.
  const unknown = await h.call('POST', '/v1/mcus/nb/layout', {
    token: h.tokens.admin,
    body: { output: 'sip:nobody@ep.invalid', layout: 'single' },
  });
  t.ok(unknown.status >= 400 && /^MCU_ERR_/.test(unknown.body.code), JSON.stringify(unknown.body));

  const rows = await h.store.listAudit({ target: 'nb', action: 'mcu.layout' });
  t.match(rows[0], {
    actor: h.tokens.opNinhBinh.split('.')[1],
    role: 'operator:province:ninh-binh',
    outcome: 'ok',
    requestId: 'req-layout-1',
    source: '127.0.0.1',
    details: { status: 200, via: 'token' },
  });
  t.ok(rows[0]!.durationMs! >= 0);
});

t.test('POST /v1/plans: a dry run of the planner; infeasible and invalid sessions keep their codes', async (t) => {
  const res = await h.call('POST', '/v1/plans', {
    token: h.tokens.viewer,
    body: { endpoints: ['nb-h1', 'qb-x1'], chair: 'chair' },
  });
  t.equal(res.status, 200);
  t.match(res.body, { root: 'master', chair: 'chair', links: { nb: 'master' } });
  const all = await h.call('POST', '/v1/plans', { token: h.tokens.viewer, body: { all: true } });
  t.equal(all.status, 200);
  t.equal(all.body.endpoints.length, 6);
  const unknown = await h.call('POST', '/v1/plans', { token: h.tokens.viewer, body: { endpoints: ['ghost'] } });
  t.match(unknown, { status: 400, body: { code: 'PLAN_ERR_INVALID_SESSION' } });
  const infeasible = await h.call('POST', '/v1/plans', {
    token: h.tokens.viewer,
    body: { endpoints: ['nb-h1'], unavailableMcus: ['nb'] },
  });
  t.match(infeasible, { status: 422, body: { code: 'PLAN_ERR_INFEASIBLE', details: { reasons: Array } } });
  const root = await h.call('POST', '/v1/plans', {
    token: h.tokens.viewer,
    body: { endpoints: ['nb-h1'], root: 'nb' },
  });
  t.match(root, { status: 200, body: { root: 'nb', assignments: { 'nb-h1': 'nb' } } }, 'a provincial root');
  const unknownRoot = await h.call('POST', '/v1/plans', {
    token: h.tokens.viewer,
    body: { endpoints: ['nb-h1'], root: 'atlantis' },
  });
  t.ok(unknownRoot.status >= 400 && unknownRoot.status < 500, `unknown root: ${unknownRoot.body.code}`);
});

t.test('session commands answer 501 until the session module is plugged in (after auth and scope)', async (t) => {
  const res = await h.call('POST', '/v1/sessions', {
    token: h.tokens.admin,
    body: { id: 's9', kind: 'adhoc', title: 'x', endpoints: ['nb-h1'] },
  });
  t.match(res, { status: 501, body: { code: 'API_ERR_NOT_IMPLEMENTED' } });
  const audit = await h.store.listAudit({ action: 'session.create', newestFirst: true, limit: 1 });
  t.match(audit[0], { target: 's9', outcome: 'API_ERR_NOT_IMPLEMENTED' });
  await h.store.createSession({ id: 's9', kind: 'adhoc', title: 'Họp khẩn', state: 'planned' });
  const list = await h.call('GET', '/v1/sessions', { token: h.tokens.viewer });
  t.match(list.body, { items: [{ id: 's9', title: 'Họp khẩn' }], next: null });
  t.match(await h.call('GET', '/v1/sessions/s9', { token: h.tokens.viewer }), { status: 200, body: { id: 's9' } });
  t.match(await h.call('GET', '/v1/sessions/s404', { token: h.tokens.viewer }), { status: 404 });
});

t.test('GET /v1/audit: admins and operators read it, filtered and paginated; viewers do not', async (t) => {
  t.match(await h.call('GET', '/v1/audit', { token: h.tokens.viewer }), {
    status: 403,
    body: { code: 'API_ERR_FORBIDDEN' },
  });
  const mine = await h.call('GET', `/v1/audit?actor=${h.tokens.opNinhBinh.split('.')[1]}&limit=2&order=asc`, {
    token: h.tokens.opCentral,
  });
  t.equal(mine.status, 200);
  t.equal(mine.body.items.length, 2);
  t.ok(mine.body.items[0].id < mine.body.items[1].id, 'ascending');
  t.type(mine.body.next, 'string');
  const next = await h.call(
    'GET',
    `/v1/audit?actor=${h.tokens.opNinhBinh.split('.')[1]}&limit=2&order=asc&cursor=${mine.body.next}`,
    { token: h.tokens.admin },
  );
  t.ok(next.body.items[0].id > mine.body.items[1].id, 'the next page follows');
  const ok = await h.call('GET', '/v1/audit?outcome=ok&since=2000-01-01T00:00:00Z', { token: h.tokens.admin });
  t.ok(ok.body.items.length > 0 && ok.body.items.every((r: { outcome: string }) => r.outcome === 'ok'));
  const future = await h.call('GET', '/v1/audit?since=2999-01-01T00:00:00%2B07:00', { token: h.tokens.admin });
  t.same(future.body.items, []);
});

t.test('the audit chain detects an edited or deleted row; the table refuses UPDATE and DELETE', async (t) => {
  const v = await h.store.verifyAudit();
  t.ok(v.ok, 'intact');
  t.ok(v.checked >= 5);
  t.match(v.head, /^[0-9a-f]{64}$/);
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(`${h.dir}/state/cascaded.db`);
  t.teardown(() => db.close());
  t.throws(() => db.prepare("UPDATE audit SET outcome = 'ok' WHERE id = 2").run(), /append-only/);
  t.throws(() => db.prepare('DELETE FROM audit WHERE id = 2').run(), /append-only/);
  // Someone goes around the triggers: the chain still tells.
  db.exec('DROP TRIGGER audit_no_update');
  const before = db.prepare('SELECT outcome FROM audit WHERE id = 3').get() as { outcome: string };
  db.prepare("UPDATE audit SET outcome = 'ok-edited' WHERE id = 3").run();
  t.match(await h.store.verifyAudit(), { ok: false, broken: { id: 3, reason: /hash/ }, checked: 2 });
  db.prepare('UPDATE audit SET outcome = ? WHERE id = 3').run(before.outcome);
  t.match(await h.store.verifyAudit(), { ok: true }, 'restored: intact again');
  db.exec('DROP TRIGGER audit_no_delete');
  db.prepare('DELETE FROM audit WHERE id = 4').run();
  t.match(await h.store.verifyAudit(), { ok: false, broken: { id: 5, reason: 'row 4 is missing' } });
});

t.test('/v1/events streams driver-fed events and replays after Last-Event-ID', async (t) => {
  const frames: string[] = [];
  const open = (lastId?: number) =>
    new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = httpsRequest(new URL('/v1/events?types=mcu,link', h.url), {
        ca: h.ca,
        headers: {
          authorization: `Bearer ${h.tokens.viewer}`,
          ...(lastId === undefined ? {} : { 'last-event-id': String(lastId) }),
        },
      });
      req.on('response', resolve).on('error', reject).end();
    });
  const res = await open();
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  res.setEncoding('utf8').on('data', (d: string) => frames.push(d));
  h.events.safeEmit('mcu', { mcu: 'nb', up: false, reason: 'test' });
  h.events.safeEmit('chair', { session: 's', endpoint: 'e', outcome: 'ok', ms: 1 });
  h.events.safeEmit('link', { mcu: 'nb', target: 'sip:x', state: 'connected' });
  const until = Date.now() + 5_000;
  while (!frames.join('').includes('event: link') && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  const text = frames.join('');
  t.match(text, /id: (\d+)\nevent: mcu\ndata: \{"mcu":"nb","up":false,"reason":"test"\}\n\n/);
  t.notMatch(text, /event: chair/, 'only the types asked for');
  res.destroy();
  const firstId = Number(/id: (\d+)\nevent: mcu/.exec(text)![1]);
  const again = await open(firstId);
  const replayed: string[] = [];
  again.setEncoding('utf8').on('data', (d: string) => replayed.push(d));
  const until2 = Date.now() + 5_000;
  while (!replayed.join('').includes('event: link') && Date.now() < until2) await new Promise((r) => setTimeout(r, 10));
  t.match(replayed.join(''), /event: link/, 'missed event replayed');
  t.notMatch(replayed.join(''), /event: mcu/, 'nothing from before the id');
  again.destroy();
});

t.test('OpenAPI at /docs/json lists every route with its schemas; /docs serves the UI; security headers', async (t) => {
  const doc = await h.call('GET', '/docs/json');
  t.equal(doc.status, 200);
  t.equal(doc.body.openapi, '3.0.3');
  for (const r of ROUTES) {
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    t.ok(doc.body.paths[path]?.[r.method.toLowerCase()], `${r.method} ${path} documented`);
  }
  t.ok(doc.body.paths['/v1/plans'].post.requestBody, 'body schema documented');
  const ui = await h.call('GET', '/docs/');
  t.equal(ui.status, 200);
  t.match(ui.text, /swagger/i);
  const s = await h.call('GET', '/v1/status', { token: h.tokens.opNinhBinh });
  t.match(s.body, { mcus: { total: 3 }, caller: { role: 'operator', scope: 'province:ninh-binh' } });
  t.match(s.headers, {
    'strict-transport-security': /max-age/,
    'x-content-type-options': 'nosniff',
    'content-security-policy': /default-src 'self'/,
  });
});

t.test('SIGHUP reload: new connections get the new certificate', async (t) => {
  const fingerprint = () =>
    new Promise<string>((resolve, reject) => {
      const u = new URL(h.url);
      const s = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.end();
      });
      s.on('error', reject);
    });
  const before = await fingerprint();
  const fresh = await selfsigned.generate([{ name: 'commonName', value: 'renewed' }], {
    keyType: 'ec',
    curve: 'P-256',
  });
  h.server.reloadTls({ cert: fresh.cert, key: fresh.private });
  const after = await fingerprint();
  t.not(after, before);
  t.match((await import('node:crypto')).X509Certificate.prototype, {});
  t.equal(after, new (await import('node:crypto')).X509Certificate(fresh.cert).fingerprint256);
});

t.test('mTLS: a client certificate signed by the configured CA maps to its identity and role', async (t) => {
  const { X509Certificate } = await import('node:crypto');
  const client = await selfsigned.generate([{ name: 'commonName', value: 'qb-console' }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'extKeyUsage', clientAuth: true }],
  });
  const stranger = await selfsigned.generate([{ name: 'commonName', value: 'stranger' }], {
    keyType: 'ec',
    curve: 'P-256',
  });
  const fp = new X509Certificate(client.cert).fingerprint256;
  // The client certificate is self-signed, so it is its own CA here.
  const m = await startHarness(t, {
    clientCertificates: {
      ca: client.cert,
      identities: [{ name: 'qb-console', fingerprint256: fp, role: 'operator', scope: 'province:quang-binh' }],
    },
  });
  const withCert = (cert: { cert: string; private: string }, path: string, method = 'GET', body?: unknown) =>
    new Promise<{ status: number; body: Reply['body'] }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(new URL(path, m.url), {
        method,
        ca: m.ca,
        cert: cert.cert,
        key: cert.private,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on('error', reject).end(payload);
    });
  const status = await withCert(client, '/v1/status');
  t.match(status, {
    status: 200,
    body: { caller: { name: 'qb-console', role: 'operator', scope: 'province:quang-binh', id: /^cert:[0-9a-f]{16}$/ } },
  });
  const out = await withCert(client, '/v1/mcus/nb/keyframe', 'POST', { output: A });
  t.match(out, { status: 403, body: { code: 'API_ERR_OUT_OF_SCOPE' } }, 'its scope applies');
  const rows = await m.store.listAudit({ action: 'mcu.keyframe', newestFirst: true, limit: 1 });
  t.match(rows[0], { actor: status.body.caller.id, details: { via: 'certificate', name: 'qb-console' } });
  const unknown = await withCert(stranger, '/v1/status');
  t.match(
    unknown,
    { status: 401, body: { details: { reason: 'missing' } } },
    'a certificate from another CA is no identity',
  );
  t.match(await m.call('GET', '/v1/status', { token: m.tokens.viewer }), { status: 200 }, 'tokens still work');
});

t.test('plugged-in session commands: national chair rule, request deadline, per-token rate limit', async (t) => {
  const calls: string[] = [];
  const m = await startHarness(t, {
    requestTimeoutMs: 1_000,
    rateLimit: { max: 3, windowMs: 60_000 },
    context: {
      // A stand-in for the chair engine: this test is about the route's rules, not the hot path.
      chair: {
        bringToChair: async (id, endpoint, options) => {
          calls.push(`${id}:${endpoint}:${options?.requestId}:${options?.actor}`);
          // A chair path that never finishes: the API's deadline answers for it.
          if (endpoint === 'stuck') return new Promise<never>(() => {});
          return { session: id, endpoint, outcome: 'ok', ms: 1, steps: [] } as unknown as ChairResult;
        },
        returnToDefault: async (id) => ({ session: id, outcome: 'ok', ms: 1, steps: [] }) as unknown as ChairResult,
        preview: (id, endpoint) => ({
          ok: true,
          session: id,
          endpoint,
          shown: endpoint,
          path: ['nb', 'master'],
          steps: [],
        }),
      },
    },
  });
  // Sessions and their roots as the cascade manager records them.
  for (const [id, root] of [
    ['national', 'master'],
    ['nb-session', 'nb'],
  ] as const) {
    await m.store.createCascade(
      { session: { id, kind: 'adhoc', title: id }, root, request: {}, plan: {}, usage: {}, rooms: {} },
      await m.store.cascadeGeneration(),
    );
  }
  const chair = (token: string, session: string, endpoint = 'nb-h1') =>
    m.call('POST', `/v1/sessions/${session}/chair`, { token, body: { endpoint } });
  t.match(await chair(m.tokens.opNinhBinh, 'national'), { status: 403, body: { code: 'API_ERR_OUT_OF_SCOPE' } });
  t.match(await chair(m.tokens.opVnpt, 'national'), { status: 403 });
  t.match(await chair(m.tokens.opCentral, 'national'), { status: 200, body: { outcome: 'ok' } });
  t.match(await chair(m.tokens.opNinhBinh, 'nb-session'), { status: 200 }, 'a province runs its own session');
  t.match(await chair(m.tokens.opQuangBinh, 'nb-session'), { status: 403 });
  t.equal(calls.length, 2, 'refused commands never reached the chair');
  t.match(
    calls[0],
    /^national:nb-h1:[A-Za-z0-9_-]+:[0-9a-f]{16}$/,
    'the request id and the caller go with the command',
  );
  const same = await m.call('POST', '/v1/sessions/national/chair', {
    token: m.tokens.opCentral,
    body: { endpoint: 'nb-h1' },
    headers: { 'x-request-id': 'chair-42' },
  });
  t.equal(same.status, 200);
  t.match(calls.at(-1), /:chair-42:/, "the client's request id is the idempotency key");
  const preview = await m.call('POST', '/v1/sessions/nb-session/chair/preview', {
    token: m.tokens.viewer,
    body: { endpoint: 'nb-h1' },
  });
  t.match(preview, { status: 200, body: { ok: true, path: ['nb', 'master'] } });
  const slow = await chair(m.tokens.admin, 'national', 'stuck');
  t.match(slow, { status: 503, body: { code: 'API_ERR_TIMEOUT' } });
  // Three per token per window: the fourth is refused with Retry-After, another token is not affected.
  const viewerRuns = await Promise.all([1, 2, 3, 4].map(() => chair(m.tokens.opCentral, 'national')));
  const limited = viewerRuns.filter((r) => r.status === 429);
  t.ok(limited.length >= 1, 'rate limited');
  t.match(limited[0], { body: { code: 'API_ERR_RATE_LIMITED' }, headers: { 'retry-after': /\d/ } });
  t.match(await chair(m.tokens.opNinhBinh, 'nb-session'), { status: 200 }, 'per token');
  const rows = await m.store.listAudit({ action: 'chair.switch', outcome: 'API_ERR_RATE_LIMITED' });
  t.equal(rows.length, 0, '429s are not audited');
});
