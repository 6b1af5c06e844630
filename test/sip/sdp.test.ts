/**
 * SDP (RFC 4566) reader/writer and the RFC 3264 answer of a control leg. The
 * answers are checked by a checker written here from the RFC text (it does
 * not use our parser), over a table and over random valid offers.
 */
import fc from 'fast-check';
import t from 'tap';
import { answerOffer, controlLegOffer, formatSdp, parseSdp, type SessionOffer } from '../../src/sip/index.js';
import { rejectOffer } from '../../src/sip/sdp.js';
import { MCU_OFFER } from './raw-peer.js';

t.setTimeout(60_000);

/** One m-section as the checker sees it: the m= fields and its other lines. */
interface Section {
  media: string;
  port: number;
  proto: string;
  formats: string[];
  lines: string[];
}

/**
 * An independent reading of SDP, enough to check answers: the records (CRLF
 * ends, RFC 4566 5), the session lines, the m-sections.
 */
function sections(sdp: string): { session: string[]; media: Section[] } {
  if (!sdp.endsWith('\r\n')) throw new Error('the last record must end with CRLF');
  const lines = sdp.slice(0, -2).split('\r\n');
  const session: string[] = [];
  const media: Section[] = [];
  for (const l of lines) {
    if (!/^[a-z]=/.test(l)) throw new Error(`not a type=value record: ${l}`);
    if (l.startsWith('m=')) {
      const [m, port, proto, ...formats] = l.slice(2).split(' ');
      media.push({ media: m!, port: Number(port!.split('/')[0]), proto: proto!, formats, lines: [] });
    } else if (media.length > 0) media[media.length - 1]!.lines.push(l);
    else session.push(l);
  }
  return { session, media };
}

/** RFC 4566 5 and RFC 3264 6 / 6.1 / 8.2, as rules on the text of an offer and its answer. */
function checkAnswer(offerText: string, answerText: string): string[] {
  const problems: string[] = [];
  const o = sections(offerText);
  const a = sections(answerText);
  const types = a.session.map((l) => l[0]).join('');
  // v, o, s first and in that order; exactly one of each (RFC 4566 5).
  if (!types.startsWith('vos')) problems.push(`session starts ${types.slice(0, 3)}, not v o s`);
  if (a.session[0] !== 'v=0') problems.push('v= is not 0');
  const origin =
    a.session
      .find((l) => l.startsWith('o='))
      ?.slice(2)
      .split(' ') ?? [];
  if (origin.length !== 6 || !/^\d+$/.test(origin[1]!) || !/^\d+$/.test(origin[2]!) || origin[3] !== 'IN')
    problems.push(`bad o= ${origin.join(' ')}`);
  // The t= lines of the answer equal the offer's (RFC 3264 6).
  const times = (s: string[]) => s.filter((l) => l.startsWith('t=')).join('|');
  if (times(a.session) !== times(o.session)) problems.push('t= differs from the offer');
  // One m-line per offered m-line, same order and media type (RFC 3264 6).
  if (a.media.length !== o.media.length) problems.push(`${a.media.length} m-lines for ${o.media.length} offered`);
  const sessionC = a.session.some((l) => l.startsWith('c='));
  for (const [i, om] of o.media.entries()) {
    const am = a.media[i];
    if (am === undefined) break;
    if (am.media !== om.media) problems.push(`m-line ${i}: ${am.media} answers ${om.media}`);
    if (am.proto !== om.proto) problems.push(`m-line ${i}: proto ${am.proto} answers ${om.proto}`);
    if (am.formats.length === 0) problems.push(`m-line ${i}: no format`);
    // A stream disabled in the offer stays disabled (RFC 3264 8.2).
    if (om.port === 0 && am.port !== 0) problems.push(`m-line ${i}: offered with port 0, answered ${am.port}`);
    if (am.port !== 0) {
      // Accepted: formats among the offered ones (6.1), a connection address (RFC 4566 5.7).
      for (const f of am.formats)
        if (!om.formats.includes(f)) problems.push(`m-line ${i}: format ${f} was not offered`);
      if (!sessionC && !am.lines.some((l) => l.startsWith('c='))) problems.push(`m-line ${i}: no c=`);
      // A control leg sends and receives nothing.
      if (!am.lines.includes('a=inactive')) problems.push(`m-line ${i}: accepted but not inactive`);
    }
  }
  return problems;
}

const offer = (body: string, contentType = 'application/sdp'): SessionOffer => ({
  contentType,
  body: Buffer.from(body),
});

t.test('parseSdp reads the example of RFC 4566 5', async (t) => {
  const text = [
    'v=0',
    'o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5',
    's=SDP Seminar',
    'i=A Seminar on the session description protocol',
    'u=http://www.example.com/seminars/sdp.pdf',
    'e=j.doe@example.com (Jane Doe)',
    'c=IN IP4 224.2.17.12/127',
    't=2873397496 2873404696',
    'a=recvonly',
    'm=audio 49170 RTP/AVP 0',
    'm=video 51372 RTP/AVP 99',
    'a=rtpmap:99 h263-1998/90000',
    '',
  ].join('\r\n');
  const sd = parseSdp(text);
  t.equal(sd.origin.sessionId, '2890844526');
  t.equal(sd.origin.address, '10.47.16.5');
  t.equal(sd.sessionName, 'SDP Seminar');
  t.same(sd.connection, { netType: 'IN', addrType: 'IP4', address: '224.2.17.12/127' });
  t.same(sd.timing, [{ start: '2873397496', stop: '2873404696', repeats: [] }]);
  t.same(sd.attributes, [{ name: 'recvonly' }]);
  t.same(
    sd.media.map((m) => [m.media, m.port, m.proto, m.formats]),
    [
      ['audio', 49170, 'RTP/AVP', ['0']],
      ['video', 51372, 'RTP/AVP', ['99']],
    ],
  );
  t.same(sd.media[1]!.attributes, [{ name: 'rtpmap', value: '99 h263-1998/90000' }]);
  t.equal(formatSdp(sd), text, 'written back byte for byte');
  t.equal(parseSdp(text.replace(/\r\n/g, '\n')).media.length, 2, 'records ending in a bare LF are tolerated');
});

t.test('malformed SDP throws SIP_ERR_SDP with the line', async (t) => {
  const good = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 9 RTP/AVP 0'];
  const variant = (i: number, line: string | undefined) => {
    const l = [...good];
    if (line === undefined) l.splice(i, 1);
    else l[i] = line;
    return `${l.join('\r\n')}\r\n`;
  };
  const cases: Array<[string, string, number]> = [
    ['empty', '', 1],
    ['v=1', variant(0, 'v=1'), 1],
    ['no v= first', variant(0, undefined), 1],
    ['o= with five fields', variant(1, 'o=- 1 1 IN IP4'), 2],
    ['o= with a non-numeric id', variant(1, 'o=- x 1 IN IP4 127.0.0.1'), 2],
    ['empty s=', variant(2, 's='), 3],
    ['no s=', variant(2, undefined), 5],
    ['bad c=', variant(3, 'c=IN IP4'), 4],
    ['no t=', variant(4, undefined), 5],
    ['t= not numeric', variant(4, 't=now later'), 5],
    ['m= without format', variant(5, 'm=audio 9 RTP/AVP'), 6],
    ['m= port too large', variant(5, 'm=audio 70000 RTP/AVP 0'), 6],
    ['m= port not a number', variant(5, 'm=audio nine RTP/AVP 0'), 6],
    ['unknown type', `${good.join('\r\n')}\r\nx=1\r\n`, 7],
    ['a line without =', `${good.join('\r\n')}\r\ngarbage\r\n`, 7],
    ['an empty line inside', `${good.slice(0, 3).join('\r\n')}\r\n\r\n${good.slice(3).join('\r\n')}\r\n`, 4],
    ['out of order (c= after t=)', variant(4, 't=0 0\r\nc=IN IP4 127.0.0.1'), 6],
    ['s= twice', variant(2, 's=-\r\ns=again'), 4],
    ['no c= for a stream in use', variant(3, undefined), 5],
    ['a= without a name', `${good.join('\r\n')}\r\na=:x\r\n`, 7],
  ];
  for (const [name, text, line] of cases) {
    t.throws(() => parseSdp(text), { code: 'SIP_ERR_SDP', details: { line } }, name);
  }
  t.throws(
    () => answerOffer(offer(MCU_OFFER, 'application/msml+xml'), { host: '127.0.0.1' }),
    { code: 'SIP_ERR_SDP' },
    'an offer that is not SDP',
  );
  t.throws(
    () => answerOffer(offer('v=0\r\n'), { host: '127.0.0.1' }),
    { code: 'SIP_ERR_SDP' },
    'an offer without o=, s=, t=',
  );
  t.throws(
    () => controlLegOffer({ host: '127.0.0.1\r\nm=audio' }),
    { code: 'SIP_ERR_INVALID_ARGUMENT' },
    'a host that would inject a line',
  );
});

t.test('controlLegOffer: audio and video, inactive, valid o=/c=/t=', async (t) => {
  const o = controlLegOffer({ host: '10.0.0.7' });
  t.equal(o.contentType, 'application/sdp');
  const { session, media } = sections(o.body);
  t.equal(session[0], 'v=0');
  t.match(session[1], /^o=cascaded (\d+) \1 IN IP4 10\.0\.0\.7$/);
  t.ok(session.includes('c=IN IP4 10.0.0.7'));
  t.ok(session.includes('t=0 0'));
  t.same(
    media.map((m) => m.media),
    ['audio', 'video'],
  );
  for (const m of media) {
    t.ok(m.port > 0, `${m.media} port nonzero (0 would reject it)`);
    t.ok(m.lines.includes('a=inactive'), `${m.media} inactive`);
  }
  t.equal(parseSdp(o.body).media.length, 2, 'our reader accepts it');
  t.match(controlLegOffer({ host: '::1' }).body, /c=IN IP6 ::1\r\n/);
  t.same(checkAnswer(o.body, answerOffer(offer(o.body), { host: '127.0.0.1' }).body), [], 'answerable by ourselves');
});

t.test('answerOffer: an MCU offer with audio, video, BFCP and a disabled stream', async (t) => {
  const withDisabled = `${MCU_OFFER}m=video 0 RTP/AVP 31\r\n`;
  const a = answerOffer(offer(withDisabled), { host: '127.0.0.2' });
  t.equal(a.contentType, 'application/sdp');
  t.same(checkAnswer(withDisabled, a.body), []);
  const { media } = sections(a.body);
  t.same(
    media.map((m) => `${m.media} ${m.port === 0 ? 0 : 'open'} ${m.formats.join(',')}`),
    ['audio open 8', 'video open 97', 'application 0 *', 'video 0 31'],
    'audio and video take the first offered format; BFCP and the disabled stream get port 0',
  );
  t.ok(media[1]!.lines.includes('a=rtpmap:97 H264/90000'), 'the dynamic payload type keeps its rtpmap');
  t.ok(media[1]!.lines.includes('a=fmtp:97 profile-level-id=42e01f;packetization-mode=1'), 'and its fmtp');
  t.notOk(
    media[1]!.lines.some((l) => l.includes(':98 ')),
    'formats not chosen are not described',
  );
  const r = rejectOffer(offer(MCU_OFFER), { host: '127.0.0.2' });
  t.same(
    sections(r.body).media.map((m) => m.port),
    [0, 0, 0],
    'the rejection answer refuses every stream',
  );
  t.same(checkAnswer(MCU_OFFER, r.body), []);
  // The checker itself catches what a wrong answer does.
  const dropped = a.body.replace(/m=application[\s\S]*?(?=m=video 0)/, '');
  t.match(checkAnswer(withDisabled, dropped).join(), /3 m-lines for 4 offered/, 'checker: a missing m-line');
  t.match(
    checkAnswer(withDisabled, a.body.replace('m=audio 9 RTP/AVP 8', 'm=audio 9 RTP/AVP 18')).join(),
    /format 18 was not offered/,
    'checker: a format not offered',
  );
  t.match(
    checkAnswer(withDisabled, a.body.replace('m=video 0 RTP/AVP 31', 'm=video 9 RTP/AVP 31')).join(),
    /offered with port 0/,
    'checker: a disabled stream re-opened',
  );
});

/** Random valid offers, written as text from the RFC 4566 grammar (not with our writer). */
const token = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);
const mediaLine = fc.record({
  media: fc.constantFrom('audio', 'video', 'application', 'text', 'message', 'image'),
  port: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 65_535 })),
  proto: fc.constantFrom('RTP/AVP', 'RTP/AVPF', 'RTP/SAVP', 'UDP/TLS/RTP/SAVPF', 'TCP/BFCP', 'udp', 'TCP/MSRP'),
  formats: fc.array(fc.oneof(fc.integer({ min: 0, max: 127 }).map(String), token, fc.constant('*')), {
    minLength: 1,
    maxLength: 5,
  }),
  direction: fc.constantFrom('sendrecv', 'sendonly', 'recvonly', 'inactive', undefined),
  ownC: fc.boolean(),
  rtpmap: fc.boolean(),
});
const offerText = fc
  .record({
    id: fc.bigInt({ min: 0n, max: 2n ** 64n }),
    version: fc.bigInt({ min: 0n, max: 2n ** 64n }),
    ip6: fc.boolean(),
    sessionC: fc.boolean(),
    times: fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 3 }),
    media: fc.array(mediaLine, { minLength: 0, maxLength: 6 }),
    name: fc.stringMatching(/^[ -~]{1,20}$/),
  })
  .map((o) => {
    const addr = o.ip6 ? 'IN IP6 ::1' : 'IN IP4 192.0.2.1';
    const l = ['v=0', `o=- ${o.id} ${o.version} ${addr}`, `s=${o.name}`];
    if (o.sessionC) l.push(`c=${addr}`);
    for (const [a, b] of o.times) l.push(`t=${a} ${b}`);
    for (const m of o.media) {
      l.push(`m=${m.media} ${m.port} ${m.proto} ${m.formats.join(' ')}`);
      if (m.ownC || !o.sessionC) l.push(`c=${addr}`);
      if (m.rtpmap && /^\d+$/.test(m.formats[0]!)) l.push(`a=rtpmap:${m.formats[0]} X/90000`);
      if (m.direction !== undefined) l.push(`a=${m.direction}`);
    }
    return `${l.join('\r\n')}\r\n`;
  });

t.test('property: the answer to any valid offer is a valid answer with as many m-lines', async (t) => {
  fc.assert(
    fc.property(offerText, fc.constantFrom('127.0.0.1', '::1', '10.1.2.3'), (text, host) => {
      const a = answerOffer(offer(text), { host });
      const problems = checkAnswer(text, a.body);
      if (problems.length > 0) throw new Error(`${problems.join('; ')}\n--- offer\n${text}--- answer\n${a.body}`);
      parseSdp(a.body);
      const r = rejectOffer(offer(text), { host });
      if (sections(r.body).media.some((m) => m.port !== 0)) throw new Error('rejection opened a stream');
    }),
    { numRuns: 500 },
  );
  t.pass('500 offers answered');
});

t.test('property: parseSdp and formatSdp round-trip valid descriptions', async (t) => {
  fc.assert(
    fc.property(offerText, (text) => formatSdp(parseSdp(text)) === text),
    { numRuns: 300 },
  );
  t.pass('300 descriptions written back unchanged');
});

t.test('property: garbage never escapes as anything but SIP_ERR_SDP', async (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), offerText, fc.nat(), (junk, text, at) => {
      const mutated = text.slice(0, at % (text.length + 1)) + junk + text.slice(at % (text.length + 1));
      try {
        parseSdp(mutated);
      } catch (err) {
        if ((err as { code?: string }).code !== 'SIP_ERR_SDP') throw err;
      }
    }),
    { numRuns: 500 },
  );
  t.pass('no other exception');
});
