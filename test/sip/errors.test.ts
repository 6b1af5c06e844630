import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ALL_ERRORS } from '../../src/errors.js';
import { SIP_ERRORS, SipError, SipResponseError } from '../../src/sip/index.js';

t.setTimeout(10_000);

t.test('every SIP error code is registered and documented in docs/errors.md', async (t) => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/errors.md', import.meta.url)), 'utf8');
  const section = doc.slice(doc.indexOf('\n## sip\n'));
  for (const [code, spec] of Object.entries(SIP_ERRORS)) {
    t.equal(ALL_ERRORS[code], spec, `${code} is in src/errors.ts`);
    t.match(section, `| \`${code}\` | ${spec.status} | ${spec.description} |`, `${code} documented`);
  }
});

t.test('SipError and SipResponseError carry codes, statuses and details', async (t) => {
  const e = new SipError('SIP_ERR_TIMEOUT', 'no answer');
  t.equal(e.code, 'SIP_ERR_TIMEOUT');
  t.equal(e.status, 504);
  const r = new SipResponseError(486, 'Busy Here', { details: { method: 'INVITE' } });
  t.equal(r.code, 'SIP_ERR_RESPONSE');
  t.equal(r.sipStatus, 486);
  t.equal(r.reason, 'Busy Here');
  t.same(r.toJSON(), {
    code: 'SIP_ERR_RESPONSE',
    message: 'SIP 486 Busy Here',
    details: { sipStatus: 486, reason: 'Busy Here', method: 'INVITE' },
  });
  t.ok(r instanceof SipError);
});
