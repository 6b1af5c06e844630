/** withUriParams: parameters set, replaced or removed through the URI model, never doubled by concatenation. */
import t from 'tap';
import { parseUri, withUriParams } from '../../src/sip/index.js';

t.setTimeout(10_000);

t.test('a transport parameter is replaced, not doubled', async (t) => {
  t.equal(withUriParams('sip:conf@127.0.1.2:5060', { transport: 'tcp' }), 'sip:conf@127.0.1.2:5060;transport=tcp');
  t.equal(
    withUriParams('sip:conf@127.0.1.2:5060;transport=tcp', { transport: 'tcp' }),
    'sip:conf@127.0.1.2:5060;transport=tcp',
  );
  t.equal(withUriParams('sip:conf@h;TRANSPORT=udp;lr', { transport: 'tls' }), 'sip:conf@h;transport=tls;lr');
  t.equal(withUriParams('sip:conf@h;transport=tcp;lr', { transport: undefined }), 'sip:conf@h;lr', 'removed');
});

t.test('other components survive; a bare name is null; RFC 4579 method=BYE on a Refer-To target', async (t) => {
  const out = withUriParams('sip:conf%20room@[::1]:5070;maddr=10.0.0.1?subject=x', { method: 'BYE', lr: null })!;
  const u = parseUri(out)!;
  t.equal(u.user, 'conf room');
  t.equal(u.host, '[::1]');
  t.equal(u.port, 5070);
  t.same({ ...u.params }, { maddr: '10.0.0.1', method: 'BYE', lr: null });
  t.same(u.headers, { subject: 'x' });
  t.equal(withUriParams('sip:a@b;method=INVITE', { method: 'BYE' }), 'sip:a@b;method=BYE');
});

t.test('not a URI, or an opaque one: undefined', async (t) => {
  t.equal(withUriParams('not a uri', { transport: 'tcp' }), undefined);
  t.equal(withUriParams('urn:x:y', { transport: 'tcp' }), undefined);
});
