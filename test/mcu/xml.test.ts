/**
 * The XML codecs of src/mcu/xml.ts against an oracle we did not write, fast-xml-parser, on random documents of
 * the object form the codecs use (attributes, text, repeated and empty elements, the five characters XML
 * escapes):
 * - `buildXml` gives what fast-xml-parser's own builder gives with the options the codecs used before; and
 *   what it writes parses back (XML 1.0 well-formed, the same values) through fast-xml-parser's parser;
 * - `parseXml` gives what fast-xml-parser's parser gives with the options the codecs used before, on those
 *   documents written with what real bodies carry besides (namespace prefixes and declarations, comments,
 *   CDATA, white space between elements, CRLF line ends);
 * - on those documents damaged at random, whatever `parseXml` accepts fast-xml-parser's validator accepts too,
 *   and it reads the same: the parser is never more lenient than the validator the codecs used before.
 */
import fc from 'fast-check';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import t from 'tap';
import { isCascadedError } from '../../src/core/index.js';
import { ATTR, buildXml, parseXml, type XmlNode } from '../../src/mcu/xml.js';

t.setTimeout(60_000);

const oracle = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  suppressEmptyNode: true,
  format: false,
  processEntities: true,
});
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: ATTR, parseTagValue: false });
const PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n';

const name = fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/);
// Text with the characters XML escapes, and plain runs (both the escaping and the fast path are exercised).
const value = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'b', ' ', '&', '<', '>', '"', "'", 'é', '1'), maxLength: 12 }),
  fc.stringMatching(/^[a-z0-9:@.]{1,20}$/),
);
const attrs = fc
  .dictionary(name, value, { maxKeys: 3 })
  .map((d) => Object.fromEntries(Object.entries(d).map(([k, v]) => [`${ATTR}${k}`, v])));
const { node } = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    value,
    fc.constant(''),
    fc.tuple(attrs, fc.dictionary(name, tie('node'), { maxKeys: 3 })).map(([a, c]) => ({ ...a, ...c }) as XmlNode),
    fc
      .tuple(
        attrs,
        value.filter((v) => v !== ''),
      )
      .map(([a, text]) => ({ ...a, '#text': text }) as XmlNode),
    fc
      .array(fc.oneof(value, fc.tuple(attrs, fc.dictionary(name, tie('node'), { maxKeys: 2 }))), {
        minLength: 1,
        maxLength: 3,
      })
      .map((items) => items.map((i) => (Array.isArray(i) ? { ...i[0], ...i[1] } : i))),
  ),
}));
const doc = fc.tuple(name, node).map(([root, v]) => ({ [root]: v }) as XmlNode);

t.test('buildXml writes what fast-xml-parser builder writes, for every document of the object form', async (t) => {
  fc.assert(
    fc.property(doc, (d) => {
      t.equal(buildXml(d), `${PROLOG}${oracle.build(d) as string}`);
    }),
    { numRuns: 3_000 },
  );
});

t.test('what buildXml writes is well-formed and reads back to the same attribute and text values', async (t) => {
  const d = {
    msml: {
      [`${ATTR}version`]: '1.1',
      modifystream: [
        { [`${ATTR}id1`]: 'conn:sip:a&b@x', stream: { [`${ATTR}display`]: '1' } },
        { [`${ATTR}id1`]: `conn:sip:"<'>"@y`, stream: '' },
      ],
      note: 'x < y & "z"',
    },
  };
  const xml = buildXml(d);
  t.equal(XMLValidator.validate(xml), true);
  t.notMatch(xml, /sip:a&b/, 'the ampersand is escaped');
  const back = parser.parse(xml) as { msml: { modifystream: XmlNode[]; note: string } };
  t.equal(back.msml.modifystream[0]![`${ATTR}id1`], 'conn:sip:a&b@x');
  t.equal(back.msml.modifystream[1]![`${ATTR}id1`], `conn:sip:"<'>"@y`);
  t.equal(back.msml.note, 'x < y & "z"');
});

/** fast-xml-parser as the codecs configured it until session 11. */
const before = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  parseAttributeValue: false,
  parseTagValue: false,
  removeNSPrefix: true,
  processEntities: true,
  htmlEntities: false,
  isArray: (name) => ['region', 'user', 'endpoint', 'media', 'entry', 'modifystream', 'stream'].includes(name),
});
/** Key order aside (the form is read by key). */
const canon = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );

/** One root element (an array at the top writes the element several times: not a document). */
const oneRoot = doc.filter((d) => !Array.isArray(Object.values(d)[0]));

/** A document of the object form written as a peer might: prefixes, comments, CDATA, white space, CRLF. */
interface Style {
  readonly prefix: boolean;
  readonly comments: boolean;
  readonly cdata: boolean;
  readonly indent: string;
  readonly crlf: boolean;
}
const escaped = (v: string) =>
  v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
function write(name: string, v: unknown, st: Style, depth: number, out: string[]): void {
  if (v === undefined) return;
  if (Array.isArray(v)) {
    for (const item of v) write(name, item, st, depth, out);
    return;
  }
  const nl = st.indent === '' ? '' : `${st.crlf ? '\r\n' : '\n'}${st.indent.repeat(depth)}`;
  const tag = st.prefix ? `p:${name}` : name;
  if (v === null || v === '') {
    out.push(`${nl}<${tag}/>`);
    return;
  }
  // CDATA for text without its end marker, or escaped text.
  const text = (x: string) => (st.cdata && !x.includes(']]>') && x.trim() === x ? `<![CDATA[${x}]]>` : escaped(x));
  if (typeof v !== 'object') {
    out.push(`${nl}<${tag}>${text(String(v))}</${tag}>`);
    return;
  }
  let open = `${nl}<${tag}${depth === 0 && st.prefix ? ' xmlns:p="urn:x"' : ''}`;
  const inner: string[] = [];
  for (const [k, c] of Object.entries(v as XmlNode)) {
    if (k.startsWith(ATTR)) open += ` ${st.prefix ? 'p:' : ''}${k.slice(ATTR.length)}="${escaped(String(c))}"`;
    else if (k === '#text') inner.push(text(String(c)));
    else write(k, c, st, depth + 1, inner);
  }
  if (st.comments) inner.push('<!-- a comment -->');
  out.push(inner.length === 0 ? `${open}/>` : `${open}>${inner.join('')}${nl}</${tag}>`);
}
const style = fc.record({
  prefix: fc.boolean(),
  comments: fc.boolean(),
  cdata: fc.boolean(),
  indent: fc.constantFrom('', '  ', '\t'),
  crlf: fc.boolean(),
});
const repeated = fc.constantFrom('user', 'endpoint', 'media', 'entry', 'region', 'stream');
const written = fc
  .tuple(fc.oneof(name, repeated), node, style, fc.boolean())
  .filter(([, v]) => !Array.isArray(v))
  .map(([root, v, st, prolog]) => {
    const out: string[] = [];
    write(root, v, st, 0, out);
    return `${prolog ? PROLOG : ''}${out.join('').trimStart()}`;
  });

t.test('parseXml reads what fast-xml-parser reads, for every document of the object form', async (t) => {
  let checked = 0;
  fc.assert(
    // One assertion for the lot (fast-check names the smallest document that fails).
    fc.property(fc.oneof(oneRoot.map(buildXml), written), (xml) => {
      checked++;
      return XMLValidator.validate(xml) === true && canon(parseXml(xml, 'test')) === canon(before.parse(xml));
    }),
    { numRuns: 3_000 },
  );
  t.equal(checked, 3_000, 'every document well-formed and read alike');
});

t.test('damaged at random: what parseXml accepts, the validator accepts and reads alike', async (t) => {
  let refused = 0;
  let accepted = 0;
  fc.assert(
    fc.property(
      written,
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.constantFrom('<', '>', '/', '"', "'", '=', '&', ';', ' ', 'a', '!', '-', '?', ':', '', ''),
        ),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
      (xml, edits) => {
        let damaged = xml;
        for (const [at, c] of edits) {
          const k = at % (damaged.length + 1);
          // Replace one character (or delete it: ''), or insert where the document ends.
          damaged = damaged.slice(0, k) + c + damaged.slice(k + 1);
        }
        let ours: unknown;
        try {
          ours = parseXml(damaged, 'test');
        } catch (err) {
          if (!isCascadedError(err) || err.code !== 'MCU_ERR_PROTOCOL') throw err;
          refused++;
          return;
        }
        accepted++;
        return XMLValidator.validate(damaged) === true && canon(ours) === canon(before.parse(damaged));
      },
    ),
    { numRuns: 3_000 },
  );
  t.ok(refused > 0 && accepted > 0, `both outcomes exercised (${refused} refused, ${accepted} accepted)`);
});

t.test('parseXml refuses what XML 1.0 does not allow, with the line', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /no root element/],
    ['<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', /document type declarations are not accepted/],
    ['<a>', /tag a is not closed/],
    ['<a></b>', /closing tag b where a was open/],
    ['<a x="1" x="2"/>', /attribute x is repeated/],
    ['<a x=1/>', /not quoted/],
    ['<a x="1"y="2"/>', /separated by white space/],
    ['<a>&foo;</a>', /undeclared entity &foo;/],
    ['<a>AT&T</a>', /'&' that starts no reference/],
    ['<a x="<"/>', /'<' in its value/],
    ['<a/><b/>', /more than one root element/],
    ['<a/>text', /text outside the root element/],
    ['<a><?pi x?></a>', /processing instructions are not accepted/],
    ['<a><!-- open</a>', /comment is not closed/],
    ['<?xml version="1.0">x?><a/>', /malformed XML declaration/],
    ['<a><constructor/></a>', /element name constructor not accepted/],
    ['<a __proto__="1"/>', /attribute name __proto__ not accepted/],
    ['<a>\n<b>\n</a>', /closing tag a where b was open, line 3/],
    [`${'<a>'.repeat(101)}${'</a>'.repeat(101)}`, /nested deeper than 100/],
  ];
  for (const [xml, why] of bad) {
    try {
      parseXml(xml, 'test');
      t.fail(`accepted: ${JSON.stringify(xml)}`);
    } catch (err) {
      t.ok(isCascadedError(err) && err.code === 'MCU_ERR_PROTOCOL', `coded: ${JSON.stringify(xml)}`);
      t.match((err as Error).message, why, JSON.stringify(xml));
    }
  }
  t.same(parseXml('<a>&#65;&#x42;&lt;</a>', 'test'), { a: 'AB<' }, 'character references are read (XML 1.0 4.1)');
});
