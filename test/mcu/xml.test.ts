/**
 * The XML writer of src/mcu/xml.ts against an oracle we did not write: on
 * random documents of the object form the codecs use (attributes, text,
 * repeated and empty elements, the five characters XML escapes), `buildXml`
 * gives what fast-xml-parser's own builder gives with the options the codecs
 * used before; and what it writes parses back (XML 1.0 well-formed, the same
 * values) through fast-xml-parser's parser.
 */
import fc from 'fast-check';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import t from 'tap';
import { ATTR, buildXml, type XmlNode } from '../../src/mcu/xml.js';

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
