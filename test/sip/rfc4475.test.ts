/**
 * RFC 4475 torture messages, read in place from ../shared/vectors/rfc4475
 * (byte-exact; index.tsv gives each verdict). Parser level here, and the
 * transaction/application level over a real UDP socket to a user agent.
 */
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { unescapeUri } from '../../src/sip/grammar.js';
import { createUserAgent } from '../../src/sip/index.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parser.js';

t.setTimeout(30_000);

const dir = fileURLToPath(new URL('../../../../shared/vectors/rfc4475/', import.meta.url));
if (!existsSync(`${dir}index.tsv`)) {
  // A fresh clone elsewhere may lack ../shared; CI always has it, so there its absence is a failure.
  if (process.env.CI === 'true') t.fail(`RFC 4475 vectors not found at ${dir} (../shared is absent) and CI=true`);
  else t.plan(0, `RFC 4475 vectors not found at ${dir} (../shared is absent): skipping`);
} else {
  const rows = readFileSync(`${dir}index.tsv`, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t') as [string, string, string, string]);
  const load = (name: string) => readFileSync(`${dir}${name}.dat`);

  t.test('index lists the 49 messages', async (t) => {
    t.equal(rows.length, 49);
  });

  t.test('every invalid message is rejected by the parser with a code, never thrown', async (t) => {
    for (const [name, , verdict] of rows) {
      if (verdict !== 'invalid') continue;
      const r = parseMessage(load(name), true);
      t.equal(r.kind, 'error', `${name} rejected`);
      if (r.kind === 'error') t.match(r.error.code, /^SIP_ERR_(PARSE|VERSION)$/, `${name}: ${r.error.message}`);
    }
  });

  t.test('every other message parses (datagram framing)', async (t) => {
    for (const [name, , verdict] of rows) {
      if (verdict === 'invalid') continue;
      const r = parseMessage(load(name), true);
      t.equal(r.kind, 'message', `${name} (${verdict}) parses`);
    }
  });

  const msg = (name: string) => {
    const r = parseMessage(load(name), true);
    if (r.kind !== 'message') throw new Error(`${name} did not parse`);
    return r.message;
  };
  const req = (name: string) => msg(name) as SipRequest;

  t.test('valid messages parse to the expected fields', async (t) => {
    const w = req('wsinv');
    t.equal(w.method, 'INVITE');
    t.equal(w.headers.get('max-forwards'), '0068');
    t.equal(w.cseq?.seq, 9);
    t.equal(w.cseq?.method, 'INVITE');
    t.equal(w.via?.length, 3, 'three Via values across folded lines');
    t.equal(w.via?.[0]?.branch, '390skdjuw');
    t.equal(w.via?.[1]?.transport, 'TCP');
    t.equal(w.via?.[2]?.branch, 'z9hG4bK30239');
    t.equal(w.to?.params.tag, '1918181833n');
    t.equal(w.from?.params.tag, '98asjd8');
    t.equal(w.from?.displayName, '"J Rosenberg \\\\\\""');
    t.equal(w.headers.get('subject'), '', 'empty Subject');
    t.equal(w.headers.get('newfangledheader'), 'newfangled value continued newfangled value', 'folding');
    t.equal(w.body.length, 150);
    t.equal(w.contact?.[0]?.params.q, '0.33');

    const im = req('intmeth');
    t.equal(im.method, "!interesting-Method0123456789_*+`.%indeed'~");
    t.match(im.to?.displayName, /NUL:\\\u0000/);
    t.equal(im.requestUri?.host, 'example.com');

    const e1 = req('esc01');
    t.equal(e1.requestUri?.user, 'sips:user@example.com', 'escapes decoded in the user');
    t.equal(e1.from?.uri.user, 'I have spaces');
    t.equal(e1.contact?.[0]?.uri.params.name, 'value%41', 'unescaped exactly once');
    t.ok('lr' in (e1.contact?.[0]?.uri.params ?? {}), '%6C%72 is the parameter lr');

    const en = req('escnull');
    t.equal(en.contact?.length, 2, 'two bindings');
    t.equal(en.to?.uri.user, 'null-\u0000-null', 'the escaped NUL does not truncate');
    t.same(
      en.contact?.map((c) => c.uri.user),
      ['\u0000', '\u0000\u0000'],
    );

    const e2 = req('esc02');
    t.equal(e2.method, 'RE%47IST%45R', 'not REGISTER');
    t.equal(e2.headers.count('contact'), 2, 'C%6Fntact is another header');
    t.equal(e2.headers.get('c%6fntact'), '<sip:alias2@host2.example.com>');

    t.equal(req('lwsdisp').from?.displayName, 'caller');
    const lr = req('longreq');
    t.equal(lr.via?.length, 34);
    t.ok((lr.to?.displayName?.length ?? 0) > 100, 'very long display name');

    const db = req('dblreq');
    t.equal(db.method, 'REGISTER');
    t.equal(db.body.length, 0, 'bytes after Content-Length 0 ignored');

    const su = req('semiuri');
    t.equal(su.requestUri?.user, 'user;par=u@example.net', 'semicolon belongs to the user');
    t.same(Object.keys(su.requestUri?.params ?? {}), []);
    t.equal(su.headers.list('accept').length, 6);

    t.same(
      req('transports').via?.map((v) => v.transport),
      ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP'],
    );
    const mp = req('mpart01');
    t.equal(mp.body.length, 553, 'binary body framed by Content-Length');
    t.same(mp.body, load('mpart01').subarray(load('mpart01').length - 553), 'kept byte for byte');

    const ur = msg('unreason') as SipResponse;
    t.equal(ur.status, 200);
    t.match(ur.reason, /^= 2\*\*3 \* 5\*\*2 но сто девяносто девять/);
    const nr = msg('noreason') as SipResponse;
    t.equal(nr.status, 100);
    t.equal(nr.reason, '');

    t.equal(req('zeromf').headers.get('max-forwards'), '0');
    const c1 = req('cparam01');
    t.equal(c1.contact?.[0]?.params.unknownparam, null, 'header parameter, not URI parameter');
    t.same(Object.keys(c1.contact?.[0]?.uri.params ?? {}), []);
    const c2 = req('cparam02');
    t.ok('unknownparam' in (c2.contact?.[0]?.uri.params ?? {}), 'URI parameter');
    t.same(Object.keys(c2.contact?.[0]?.params ?? {}), []);
    const re = req('regescrt');
    t.equal(re.contact?.[0]?.uri.headers?.Route, '<sip:sip.example.com>', 'escaped Route kept in the URI');
    t.equal(unescapeUri('%3Csip:x%3E'), '<sip:x>');
    const ra = req('regaut01');
    t.match(ra.headers.get('authorization'), /^NoOneKnowsThisScheme/);
    const old = req('inv2543');
    t.equal(old.via?.[0]?.branch, undefined);
    t.equal(
      old.body.length,
      load('inv2543').length - load('inv2543').indexOf('\r\n\r\n') - 4,
      'body to the end of the datagram',
    );
  });

  // Expected answers of our user agent (an endpoint, not a proxy or registrar) over UDP.
  const expected: Record<string, number | null> = {
    // invalid: 400 when the request can still be answered, 505 for the version; responses dropped
    badinv01: 400,
    clerr: 400,
    ncl: 400,
    scalar02: 400,
    scalarlg: null,
    quotbal: 400,
    ltgtruri: 400,
    lwsruri: 400,
    lwsstart: 400,
    trws: 400,
    escruri: 400,
    baddate: 400,
    regbadct: 400,
    badaspec: 400,
    baddn: 400,
    badvers: 505,
    mismatch01: 400,
    mismatch02: 400,
    bigcode: null,
    // valid-but-reject-at-transaction / application
    badbranch: 400,
    insuf: 400,
    unkscm: 416,
    novelsc: 416,
    unksm2: 405,
    bext01: 420,
    invut: 415,
    multi01: 400,
    mcl01: 400,
    bcast: null,
    sdp01: 406,
    // valid: an endpoint's normal answers (501 unknown method, 405 REGISTER at a non-registrar)
    intmeth: 501,
    esc02: 501,
    escnull: 405,
    dblreq: 405,
    mpart01: 415,
    regaut01: 405,
    cparam01: 405,
    cparam02: 405,
    regescrt: 405,
    semiuri: 200,
    transports: 200,
    lwsdisp: 200,
    zeromf: 200,
    unreason: null,
    noreason: null,
    longreq: 480,
    wsinv: 481,
    esc01: 480,
    inv2543: 480,
  };

  t.test('each message sent to a user agent over UDP gets the answer the RFC names', async (t) => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    t.teardown(() => sock.close());
    let malformed = 0;
    for (const [name] of rows) {
      const want = expected[name];
      t.not(want, undefined, `${name} has an expectation`);
      // A fresh user agent per message: the RFC reuses branches across messages, which would match as retransmissions.
      const ua = await createUserAgent({
        listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
        forceRport: true,
        accept: ['application/sdp', 'text/plain'],
      });
      // The vector, then a valid OPTIONS from the same socket: the user agent handles datagrams in order, so
      // when the OPTIONS is answered, any answer to the vector has come before it (no wait for silence).
      const port = ua.listening[0]!.port;
      const probeId = `probe-${name}`;
      const answer = new Promise<string | null | undefined>((resolve) => {
        let first: string | null = null;
        const timer = setTimeout(() => done(undefined), 3_000);
        const done = (v: string | null | undefined) => {
          clearTimeout(timer);
          sock.off('message', onMsg);
          resolve(v);
        };
        const onMsg = (b: Buffer) => {
          const text = b.toString('latin1');
          if (text.includes(`\r\nCall-ID: ${probeId}\r\n`)) done(first);
          else if (first === null && !text.startsWith('SIP/2.0 100')) first = text.split('\r\n', 1)[0]!;
        };
        sock.on('message', onMsg);
      });
      sock.send(load(name), port, '127.0.0.1');
      sock.send(
        [
          `OPTIONS sip:probe@127.0.0.1:${port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bK${probeId}`,
          'Max-Forwards: 70',
          `From: <sip:probe@127.0.0.1>;tag=${probeId}`,
          `To: <sip:probe@127.0.0.1:${port}>`,
          `Call-ID: ${probeId}`,
          'CSeq: 1 OPTIONS',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
        port,
        '127.0.0.1',
      );
      const got = await answer;
      t.not(got, undefined, `${name}: the probe after it was answered`);
      malformed += ua.stats.malformed;
      await ua.close();
      if (want === null) t.equal(got, null, `${name}: dropped`);
      else t.match(got, new RegExp(`^SIP/2\\.0 ${want} `), `${name}: ${want}`);
    }
    t.equal(malformed, 19, 'each invalid message counted as malformed');
  });
}
