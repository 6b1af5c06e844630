/**
 * Session routes on the real cascade manager: admitted, dialed over SIP to
 * simulated MCUs, its cascade readable, ended; scoped and audited.
 */
import t from 'tap';
import { startHarness } from './harness.js';

t.test('POST /v1/sessions admits and dials; GET .../cascade follows it; DELETE ends it', async (t) => {
  const h = await startHarness(t, { withCascade: true });
  // Only central-department operators and admins command a national session (rooted on the master).
  const refused = await h.call('POST', '/v1/sessions', {
    token: h.tokens.opNinhBinh,
    body: { id: 'nat-1', title: 'Họp toàn quốc', endpoints: ['nb-h1', 'qb-x1'], chair: 'chair' },
  });
  t.match(refused, { status: 403, body: { code: 'API_ERR_OUT_OF_SCOPE' } });
  const created = await h.call('POST', '/v1/sessions', {
    token: h.tokens.opCentral,
    body: { id: 'nat-1', title: 'Họp toàn quốc', endpoints: ['nb-h1', 'qb-x1'], chair: 'chair', view: 'speaker' },
  });
  t.match(created, {
    status: 201,
    body: { sessionId: 'nat-1', root: 'master', state: 'live', request: { view: 'speaker' } },
  });
  const badView = await h.call('POST', '/v1/sessions', {
    token: h.tokens.admin,
    body: { endpoints: ['nb-h1'], view: 'grid' },
  });
  t.match(badView, { status: 400, body: { code: 'API_ERR_VALIDATION', details: [{ path: '/body/view' }] } });
  const again = await h.call('POST', '/v1/sessions', {
    token: h.tokens.opCentral,
    body: { id: 'nat-1', title: 'x', endpoints: ['nb-h1'] },
  });
  t.equal(again.status, 409, `a second session with the same id: ${again.body.code}`);
  const bad = await h.call('POST', '/v1/sessions', { token: h.tokens.admin, body: { endpoints: ['ghost'] } });
  t.ok(bad.status === 400 || bad.status === 422, `unknown endpoint: ${bad.status} ${bad.body.code}`);
  const neither = await h.call('POST', '/v1/sessions', { token: h.tokens.admin, body: { title: 'x' } });
  t.match(neither, { status: 400, body: { code: 'API_ERR_VALIDATION', details: [{ path: '/body/endpoints' }] } });

  // The cascade comes up: every link of the plan is dialed by the MCUs themselves.
  const deadline = Date.now() + 30_000;
  let status = await h.call('GET', '/v1/sessions/nat-1/cascade', { token: h.tokens.viewer });
  while (
    Date.now() < deadline &&
    !(status.body.links?.length > 0 && status.body.links.every((l: { state: string }) => l.state === 'up'))
  ) {
    await new Promise((r) => setTimeout(r, 100));
    status = await h.call('GET', '/v1/sessions/nat-1/cascade', { token: h.tokens.viewer });
  }
  t.match(status, { status: 200, body: { sessionId: 'nat-1', root: 'master' } });
  t.ok(status.body.links.length > 0, JSON.stringify(status.body));
  t.ok(
    status.body.links.every((l: { state: string }) => l.state === 'up'),
    `every link up: ${JSON.stringify(status.body.counts)}`,
  );
  const dial = await h.call('POST', '/v1/sessions/nat-1/cascade', { token: h.tokens.opCentral, body: {} });
  t.match(dial, { status: 200, body: { sessionId: 'nat-1' } });
  t.match(await h.call('GET', '/v1/sessions/none/cascade', { token: h.tokens.viewer }), {
    status: 404,
    body: { code: 'CASCADE_ERR_NOT_FOUND' },
  });
  const list = await h.call('GET', '/v1/sessions', { token: h.tokens.viewer });
  t.match(list.body.items, [{ id: 'nat-1', state: 'live' }]);

  t.match(await h.call('DELETE', '/v1/sessions/nat-1', { token: h.tokens.opVnpt }), { status: 403 });
  const ended = await h.call('DELETE', '/v1/sessions/nat-1', { token: h.tokens.admin });
  t.equal(ended.status, 200, JSON.stringify(ended.body));
  t.match(ended.body.state, /ending|ended/);

  const rows = await h.store.listAudit({ target: 'nat-1', limit: 100 });
  t.same(
    rows.map((r) => [r.action, r.outcome]),
    [
      ['session.create', 'API_ERR_OUT_OF_SCOPE'],
      ['session.create', 'ok'],
      ['session.create', again.body.code],
      ['session.cascade', 'ok'],
      ['session.end', 'API_ERR_OUT_OF_SCOPE'],
      ['session.end', 'ok'],
    ],
  );
});
