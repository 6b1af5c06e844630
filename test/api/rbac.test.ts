import t from 'tap';
import { authorize, type Permission, type Principal, parseScope, type ResourceScope } from '../../src/api/index.js';
import { checkToken, issueToken, parseDuration, parseToken } from '../../src/api/tokens.js';

const p = (role: Principal['role'], scope?: string, central = false): Principal => ({
  id: 'x',
  name: 'x',
  role,
  ...(scope === undefined ? {} : { scope: parseScope(scope)! }),
  central,
  via: 'token',
});
const viewer = p('viewer');
const admin = p('admin');
const opQb = p('operator', 'province:quang-binh');
const opNb = p('operator', 'province:ninh-binh');
const opVnpt = p('operator', 'operator:vnpt');
const opCuc = p('operator', 'operator:cuc', true);
const opNoScope = p('operator');

const qbMcu: ResourceScope = { operators: ['so-qb'], provinces: ['quang-binh'], national: false };
const vnptQb: ResourceScope = { operators: ['vnpt'], provinces: [], national: false };
const national: ResourceScope = { operators: ['cuc'], provinces: [], national: true };
const qbSession: ResourceScope = { operators: ['so-qb'], provinces: ['quang-binh'], national: false };

type Row = [
  string,
  Principal,
  Permission,
  ResourceScope | undefined,
  true | 'API_ERR_FORBIDDEN' | 'API_ERR_OUT_OF_SCOPE',
];
const TABLE: Row[] = [
  ['anyone reads', viewer, 'read', undefined, true],
  ['anyone plans (dry run)', viewer, 'plan', undefined, true],
  ['a viewer does not command', viewer, 'command', qbMcu, 'API_ERR_FORBIDDEN'],
  ['a viewer does not chair', viewer, 'chair', qbSession, 'API_ERR_FORBIDDEN'],
  ['a viewer does not read the audit', viewer, 'audit', undefined, 'API_ERR_FORBIDDEN'],
  ['a viewer does not administer', viewer, 'admin', undefined, 'API_ERR_FORBIDDEN'],
  ['an operator reads the audit', opQb, 'audit', undefined, true],
  ['an operator does not administer', opCuc, 'admin', undefined, 'API_ERR_FORBIDDEN'],
  ['a province operator commands its province', opQb, 'command', qbMcu, true],
  ['a province operator does not command another province', opNb, 'command', qbMcu, 'API_ERR_OUT_OF_SCOPE'],
  ['a province operator runs its province session', opQb, 'chair', qbSession, true],
  ['a province operator does not run another province session', opNb, 'chair', qbSession, 'API_ERR_OUT_OF_SCOPE'],
  ['an operator commands its telco MCU', opVnpt, 'command', vnptQb, true],
  ['a telco operator does not command a province MCU', opVnpt, 'command', qbMcu, 'API_ERR_OUT_OF_SCOPE'],
  [
    'a province operator does not command the telco MCU in its province',
    opQb,
    'command',
    vnptQb,
    'API_ERR_OUT_OF_SCOPE',
  ],
  ['the central department chairs a national session', opCuc, 'chair', national, true],
  ['a province operator does not chair a national session', opQb, 'chair', national, 'API_ERR_OUT_OF_SCOPE'],
  [
    'a non-central operator scoped to the master operator still does not chair national',
    p('operator', 'operator:cuc', false),
    'chair',
    national,
    'API_ERR_OUT_OF_SCOPE',
  ],
  ['the central department commands the national session', opCuc, 'command', national, true],
  ['the central department does not command a province MCU', opCuc, 'command', qbMcu, 'API_ERR_OUT_OF_SCOPE'],
  ['an operator without scope commands nothing', opNoScope, 'command', qbMcu, 'API_ERR_OUT_OF_SCOPE'],
  ['an admin commands anything', admin, 'command', qbMcu, true],
  ['an admin chairs national sessions', admin, 'chair', national, true],
  ['an admin administers', admin, 'admin', undefined, true],
  ['role check before the target is known', opQb, 'command', undefined, true],
];

t.test('authorize(): the role and scope table', async (t) => {
  for (const [name, who, perm, res, want] of TABLE) {
    const d = authorize(who, perm, res);
    if (want === true) t.same(d, { allow: true }, name);
    else t.match(d, { allow: false, code: want, reason: String }, name);
  }
});

t.test('scopes parse strictly', async (t) => {
  t.same(parseScope('province:quang-binh'), { kind: 'province', id: 'quang-binh' });
  t.same(parseScope('operator:vnpt'), { kind: 'operator', id: 'vnpt' });
  for (const bad of ['province:', 'region:x', 'operator:VNPT', 'province:quang binh', 'operator'])
    t.equal(parseScope(bad), undefined, bad);
});

t.test('tokens: 256-bit secrets, stored as a hash, checked for expiry and revocation', async (t) => {
  const i = issueToken({ name: 'n', role: 'operator', scope: { kind: 'province', id: 'qb' }, expiresAt: 2_000 });
  const parsed = parseToken(i.token)!;
  t.equal(Buffer.from(parsed.secret, 'base64url').length, 32, '256 random bits');
  t.notMatch(JSON.stringify(i.record), parsed.secret, 'the secret is not in the record');
  const rec = {
    ...i.record,
    scope: i.record.scope!,
    createdAt: 'now',
    expiresAt: i.record.expiresAt!,
    revokedAt: null,
  };
  t.match(checkToken(rec, parsed.secret, 1_000), { ok: true, scope: { kind: 'province', id: 'qb' } });
  t.same(checkToken(rec, parsed.secret, 2_000), { ok: false, reason: 'expired' });
  t.same(checkToken(rec, 'A'.repeat(43), 1_000), { ok: false, reason: 'unknown' });
  t.same(checkToken(undefined, parsed.secret, 1_000), { ok: false, reason: 'unknown' });
  t.same(checkToken({ ...rec, revokedAt: 'then' }, parsed.secret, 1_000), { ok: false, reason: 'revoked' });
  t.equal(parseToken(`${i.token}x`), undefined);
  t.equal(parseToken('Bearer x'), undefined);
  t.throws(() => issueToken({ name: 'n', role: 'operator' }), { code: 'API_ERR_TOKEN_SPEC' });
  t.throws(() => issueToken({ name: 'n', role: 'viewer', scope: { kind: 'province', id: 'qb' } }), {
    code: 'API_ERR_TOKEN_SPEC',
  });
  t.not(issueToken({ name: 'n', role: 'admin' }).token, issueToken({ name: 'n', role: 'admin' }).token);
});

t.test('durations', async (t) => {
  t.equal(parseDuration('90d'), 90 * 86_400_000);
  t.equal(parseDuration('12h'), 12 * 3_600_000);
  t.equal(parseDuration('never'), undefined);
  for (const bad of ['0d', '90', 'd', '-1h', '1.5h', '90days'])
    t.throws(() => parseDuration(bad), { code: 'API_ERR_TOKEN_SPEC' }, bad);
});
