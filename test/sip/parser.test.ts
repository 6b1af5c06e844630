import fc from 'fast-check';
import t from 'tap';
import { detach } from '../../src/sip/grammar.js';
import { parseNameAddr, parseVia, SipHeaders } from '../../src/sip/headers.js';
import { SipRequest, SipResponse, serialize } from '../../src/sip/message.js';
import { parseMessage, StreamFramer } from '../../src/sip/parser.js';
import { formatUri, parseUri } from '../../src/sip/uri.js';

t.setTimeout(60_000);

const BASE = [
  'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx1',
  'From: <sip:a@10.0.0.1>;tag=1',
  'To: <sip:b@10.0.0.2>',
  'Call-ID: c1',
  'CSeq: 1 OPTIONS',
  'Max-Forwards: 70',
];
const msg = (start: string, headers: string[] = BASE, body = '') =>
  Buffer.from(`${start}\r\n${headers.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);

// Cases the RFC 4475 vectors do not cover: [description, bytes, datagram, expected outcome].
const cases: Array<[string, Buffer, boolean, 'message' | 'error' | 'incomplete']> = [
  ['minimal request', msg('OPTIONS sip:b@10.0.0.2 SIP/2.0'), true, 'message'],
  ['lowercase version', msg('OPTIONS sip:b@10.0.0.2 sip/2.0'), true, 'message'],
  ['tel Request-URI', msg('OPTIONS tel:+84-24-3825-1234 SIP/2.0'), true, 'message'],
  ['sips IPv6 Request-URI', msg('OPTIONS sips:b@[2001:db8::1]:5061 SIP/2.0'), true, 'message'],
  [
    'leading CRLF keep-alives',
    Buffer.concat([Buffer.from('\r\n\r\n'), msg('OPTIONS sip:b@h SIP/2.0')]),
    true,
    'message',
  ],
  ['header without colon', msg('OPTIONS sip:b@h SIP/2.0', [...BASE, 'Broken header']), true, 'error'],
  ['continuation before any header', Buffer.from('OPTIONS sip:b@h SIP/2.0\r\n folded\r\n\r\n'), true, 'error'],
  ['bad header name', msg('OPTIONS sip:b@h SIP/2.0', [...BASE, 'Bad Name: x']), true, 'error'],
  [
    'Via without branch value',
    msg('OPTIONS sip:b@h SIP/2.0', ['Via: SIP/2.0/UDP h;branch=', ...BASE.slice(1)]),
    true,
    'error',
  ],
  [
    'Via port out of range',
    msg('OPTIONS sip:b@h SIP/2.0', ['Via: SIP/2.0/UDP h:70000', ...BASE.slice(1)]),
    true,
    'error',
  ],
  ['URI port out of range', msg('OPTIONS sip:b@h:99999 SIP/2.0'), true, 'error'],
  ['status 099', Buffer.from('SIP/2.0 099 Low\r\nContent-Length: 0\r\n\r\n'), true, 'error'],
  ['status 700', Buffer.from('SIP/2.0 700 High\r\nContent-Length: 0\r\n\r\n'), true, 'error'],
  ['Max-Forwards 256', msg('OPTIONS sip:b@h SIP/2.0', [...BASE.slice(0, 5), 'Max-Forwards: 256']), true, 'error'],
  [
    'CSeq 2^32-1',
    msg('OPTIONS sip:b@h SIP/2.0', [...BASE.slice(0, 4), 'CSeq: 4294967295 OPTIONS', BASE[5]!]),
    true,
    'message',
  ],
  [
    'CSeq 2^32',
    msg('OPTIONS sip:b@h SIP/2.0', [...BASE.slice(0, 4), 'CSeq: 4294967296 OPTIONS', BASE[5]!]),
    true,
    'error',
  ],
  [
    'Call-ID with space',
    msg('OPTIONS sip:b@h SIP/2.0', [...BASE.slice(0, 3), 'Call-ID: a b', ...BASE.slice(4)]),
    true,
    'error',
  ],
  [
    'stream: header section incomplete',
    Buffer.from('OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/TCP h'),
    false,
    'incomplete',
  ],
  [
    'stream: body incomplete',
    msg('MESSAGE sip:b@h SIP/2.0', [...BASE.slice(0, 4), 'CSeq: 1 MESSAGE'], 'hello').subarray(0, -2),
    false,
    'incomplete',
  ],
  ['oversized datagram', Buffer.alloc(70_000, 65), true, 'error'],
];

t.test('own table of parser cases', async (t) => {
  for (const [name, bytes, datagram, want] of cases) {
    t.equal(parseMessage(bytes, datagram).kind, want, name);
  }
});

t.test('thousands of distinct header names: every one kept and found (the index past a dozen names)', async (t) => {
  const names = Array.from({ length: 3_000 }, (_, i) => `X-H${i}`);
  const r = parseMessage(
    msg('OPTIONS sip:b@h SIP/2.0', [...BASE, ...names.map((n, i) => `${n}: v${i}`), 'x-h7: again']),
    true,
  );
  t.equal(r.kind, 'message');
  if (r.kind !== 'message') return;
  const h = r.message.headers;
  t.ok(
    names.every((n, i) => h.get(n.toLowerCase()) === `v${i}`),
    'each name is found, case-insensitively',
  );
  t.same(h.getAll('X-H7'), ['v7', 'again'], 'repeated lines of one name stay together, in order');
  t.equal(r.message.callId, 'c1');
  h.delete('x-h2999').set('X-New', 'n');
  t.equal(h.get('x-h2999'), undefined);
  t.equal(h.get('x-new'), 'n');
  const order: string[] = [];
  h.forEachLine((n) => order.push(n));
  t.equal(order.at(-1), 'X-New', 'a new name goes last');
  t.equal(order[0], 'Via', 'the first stays first');
});

t.test('UTF-8 body: Content-Length counts bytes', async (t) => {
  const body = 'Xin chào Hà Nội — điều khiển MCU';
  const r = parseMessage(
    msg('MESSAGE sip:b@h SIP/2.0', [...BASE.slice(0, 4), 'CSeq: 1 MESSAGE', 'Content-Type: text/plain'], body),
    false,
  );
  t.equal(r.kind, 'message');
  if (r.kind === 'message') t.equal(r.message.body.toString('utf8'), body);
});

t.test('compact forms, case-insensitive names, comma-separated and repeated values', async (t) => {
  const r = parseMessage(
    Buffer.from(
      'INVITE sip:b@h SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b:5070;branch=z9hG4bK2\r\nVIA: SIP/2.0/TLS c;branch=z9hG4bK3\r\n' +
        'f: <sip:a@h>;tag=9\r\nt: "Bob" <sip:b@h>\r\ni: x\r\nCSEQ: 2 INVITE\r\nm: <sip:a@1.2.3.4>;expires=60, <sip:a@5.6.7.8>\r\nk: timer, 100rel\r\nl: 0\r\n\r\n',
    ),
    true,
  );
  t.equal(r.kind, 'message');
  if (r.kind !== 'message') return;
  const m = r.message;
  t.same(
    m.via?.map((v) => [v.transport, v.host, v.port ?? null]),
    [
      ['UDP', 'a', null],
      ['TCP', 'b', 5070],
      ['TLS', 'c', null],
    ],
  );
  t.equal(m.from?.params.tag, '9');
  t.equal(m.to?.displayName, '"Bob"');
  t.equal(m.callId, 'x');
  t.equal(m.contact?.length, 2);
  t.equal(m.contact?.[0]?.params.expires, '60');
  t.same(m.headers.list('supported'), ['timer', '100rel']);
});

t.test('URIs: parameters, headers, escaping and formatting', async (t) => {
  const u = parseUri('sip:alice:secret@example.com:5070;transport=tcp;lr?subject=project%20x&priority=urgent')!;
  t.equal(u.user, 'alice');
  t.equal(u.password, 'secret');
  t.equal(u.port, 5070);
  t.equal(u.params.transport, 'tcp');
  t.equal(u.params.lr, null);
  t.same(u.headers, { subject: 'project x', priority: 'urgent' });
  t.equal(parseUri(formatUri(u))?.headers?.subject, 'project x', 'format then parse keeps components');
  t.equal(parseUri('tel:+84-24-1234;phone-context=vn')?.params['phone-context'], 'vn');
  t.equal(parseUri('sip:a@b c'), undefined);
  t.equal(parseUri('sip:'), undefined);
  t.equal(parseUri('<sip:a@b>'), undefined);
  t.equal(parseUri('urn:service:sos')?.opaque, 'service:sos');
  t.equal(parseNameAddr('sip:a@b;tag=1')?.params.tag, '1');
  t.equal(parseNameAddr('"unterminated <sip:a@b>'), undefined);
  t.equal(parseVia('SIP/2.0/UDP [::1]:5060;received=::1;branch=z9hG4bKa')?.host, '[::1]');
});

t.test('parameter names that are Object.prototype members are ordinary parameters', async (t) => {
  const v = parseVia('SIP/2.0/UDP h;branch=z9hG4bKp;__proto__=x;constructor=y;toString')!;
  t.equal(Object.getOwnPropertyDescriptor(v.params, '__proto__')?.value, 'x', 'an own property named __proto__');
  t.equal(v.params.constructor, 'y');
  t.equal(v.params.tostring, null, 'names are lower-cased');
  t.same(Object.keys(v.params), ['branch', '__proto__', 'constructor', 'tostring']);
  const plain = parseVia('SIP/2.0/UDP h;branch=z9hG4bKq')!;
  t.equal(plain.params.constructor, undefined, 'nothing is inherited');
  t.equal(plain.params.hasOwnProperty, undefined);
  t.equal(({} as Record<string, unknown>).x, undefined, 'Object.prototype untouched');
});

t.test('detach: an equal string, for table keys that outlive their message', async (t) => {
  const text = 'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlong-branch-value';
  const branch = text.slice(text.indexOf('z9hG4bK'));
  const key = `${branch}|10.0.0.1:5060:INVITE`;
  t.equal(detach(key), key);
  t.equal(detach(''), '');
  t.equal(detach('Hà Nội'), 'Hà Nội', 'non-ASCII text survives');
});

t.test('parsed URIs are shared between messages, so they are frozen', async (t) => {
  const a = parseUri('sip:mcu@10.0.0.7:5070;transport=udp')!;
  const b = parseUri('sip:mcu@10.0.0.7:5070;transport=udp')!;
  t.same(b, a, 'the same components');
  t.throws(() => {
    (a.params as Record<string, string | null>).transport = 'tcp';
  }, TypeError);
  t.equal(parseNameAddr('<sip:mcu@10.0.0.7:5070;transport=udp>;tag=1')?.uri.params.transport, 'udp');
});

t.test('parsed name-addrs are shared between messages with the same value, so they are frozen', async (t) => {
  const value = '"Ba Dinh" <sip:ep-42@10.1.1.42;transport=tcp>;tag=abc;expires=60';
  const a = parseNameAddr(value)!;
  // The same text from another message (a different string object): the same parse.
  const b = parseNameAddr(detach(value))!;
  t.equal(a, b, 'parsed once');
  t.ok(Object.isFrozen(a) && Object.isFrozen(a.params), 'frozen');
  t.throws(() => {
    (a.params as Record<string, string | null>).tag = 'other';
  }, TypeError);
  t.equal(parseNameAddr(value)?.params.tag, 'abc');
  t.equal(parseNameAddr('<sip:a@b'), undefined, 'malformed stays undefined');
  t.equal(parseNameAddr('<sip:a@b'), undefined, 'also from the cache');
  // Bounded: past the cap the cache starts over, and every value still parses to its own result.
  let wrong = 0;
  for (let i = 0; i < 10_000; i++) if (parseNameAddr(`<sip:u${i}@10.0.0.1>;tag=${i}`)?.params.tag !== `${i}`) wrong++;
  t.equal(wrong, 0, '10,000 distinct values, each parsed to its own tag');
  t.same(parseNameAddr(value), a, 'an equal result after the cache started over');
});

t.test('stream framer: several messages in one chunk, one message in many chunks, fatal error', async (t) => {
  const a = msg('OPTIONS sip:b@h SIP/2.0');
  const b = msg('MESSAGE sip:b@h SIP/2.0', [...BASE.slice(0, 4), 'CSeq: 1 MESSAGE'], 'hi');
  const f = new StreamFramer();
  const out = f.push(Buffer.concat([a, b]));
  t.same(
    out.map((o) => o.kind),
    ['message', 'message'],
  );
  const f2 = new StreamFramer();
  const all = Buffer.concat([Buffer.from('\r\n\r\n'), b]);
  let got = 0;
  for (let i = 0; i < all.length; i++) got += f2.push(all.subarray(i, i + 1)).length;
  t.equal(got, 1, 'byte-by-byte delivery yields the message once');
  t.equal(f2.buffered, 0);
  const f3 = new StreamFramer();
  const bad = f3.push(Buffer.from(a.toString().replace('Content-Length: 0', 'Content-Length: -5')));
  t.equal(bad[0]?.kind, 'error', 'negative Content-Length is fatal');
  const f4 = new StreamFramer();
  const two = f4.push(Buffer.from(a.toString().replace('Content-Length: 0', 'Content-Length: 0\r\nl: 3')));
  t.equal(two[0]?.kind, 'error', 'conflicting Content-Length on a stream is fatal');
});

const token = fc.stringMatching(/^[A-Za-z0-9\-.!%*_+`'~]{1,12}$/);
const userPart = fc.stringMatching(/^[A-Za-z0-9\-_.!~*'()]{1,12}$/);
const host = fc.oneof(fc.ipV4(), fc.domain());
const text = fc.string({ maxLength: 40 }).filter((s) => !/[\r\n]/.test(s));

t.test('property: serialize then parse is the identity on start line, headers and body', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom('INVITE', 'OPTIONS', 'INFO', 'BYE', 'REFER'),
      userPart,
      token,
      host,
      fc.integer({ min: 1, max: 65535 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.array(
        fc.tuple(
          fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/),
          text.map((s) => s.trim()),
        ),
        { maxLength: 5 },
      ),
      fc.uint8Array({ maxLength: 300 }),
      fc.boolean(),
      (method, user, tag, h, port, seq, extra, body, datagram) => {
        const hs = new SipHeaders();
        hs.set('Via', `SIP/2.0/UDP ${h}:${port};branch=z9hG4bK${tag}`);
        hs.set('From', `<sip:${user}@${h}>;tag=${tag}`);
        hs.set('To', `<sip:mcu@${h}:${port}>`);
        hs.set('Call-ID', `${tag}@${h}`);
        hs.set('CSeq', `${seq} ${method}`);
        for (const [n, v] of extra) hs.append(n, v);
        const req = new SipRequest(method, `sip:mcu@${h}:${port}`, hs, Buffer.from(body));
        const r = parseMessage(serialize(req), datagram);
        if (r.kind !== 'message' || r.message.kind !== 'request') return false;
        const m = r.message;
        if (m.method !== method || m.uri !== req.uri || !m.body.equals(Buffer.from(body))) return false;
        if (m.cseq?.seq !== seq || m.from?.params.tag !== tag || m.topVia?.port !== port) return false;
        for (const [n, v] of extra) if (!m.headers.getAll(n).includes(v)) return false;
        return true;
      },
    ),
    { numRuns: 500 },
  );
  const res = new SipResponse(486, 'Busy Here', new SipHeaders().set('Call-ID', 'x'));
  const r = parseMessage(serialize(res), true);
  t.ok(
    r.kind === 'message' &&
      r.message.kind === 'response' &&
      r.message.status === 486 &&
      r.message.reason === 'Busy Here',
  );
});

t.test('property: random and mutated bytes never throw out of the parser', async (t) => {
  const seed = msg(
    'INVITE sip:b@10.0.0.2 SIP/2.0',
    [...BASE.slice(0, 4), 'CSeq: 1 INVITE', 'Contact: <sip:a@10.0.0.1>'],
    'v=0\r\n',
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, datagram) => {
      parseMessage(Buffer.from(bytes), datagram);
      new StreamFramer().push(Buffer.from(bytes));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.nat(seed.length),
      fc.boolean(),
      (flips, cut, datagram) => {
        const b = Buffer.from(seed);
        for (const [i, v] of flips) b[i] = v;
        const out = parseMessage(b.subarray(0, cut), datagram);
        if (out.kind === 'message') {
          // Whatever parsed must serialize again without throwing.
          serialize(out.message);
        }
      },
    ),
    { numRuns: 3000 },
  );
  t.pass('no exception escaped');
});
