/**
 * XML codecs: every body the drivers and the simulator exchange is built
 * from objects and parsed back to objects (fast-xml-parser), never assembled
 * or picked apart with string operations. Malformed input is a coded
 * MCU_ERR_PROTOCOL, so a hostile peer cannot throw out of a SIP handler.
 *
 * Objects are written out by `buildXml` below rather than by fast-xml-parser's
 * builder: a chair command builds several bodies on the hot path, and the
 * builder's generic walk cost about 0.15 ms a body (a national command's
 * profile, issue 11). Same object form, same output (test/mcu/xml.test.ts
 * holds it to the builder's on random documents).
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { McuError } from './errors.js';

export const ATTR = '@_';

/** Elements that may repeat: always parsed as arrays, so a single child and many look alike. */
const REPEATED = new Set(['region', 'user', 'endpoint', 'media', 'entry', 'modifystream', 'stream']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  parseAttributeValue: false,
  parseTagValue: false,
  removeNSPrefix: true,
  // Entities are limited to the XML built-ins: a body is never allowed to declare its own.
  processEntities: true,
  htmlEntities: false,
  isArray: (name) => REPEATED.has(name),
});

export type XmlNode = Record<string, unknown>;

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};
const SPECIAL = /[&<>"']/g;
const ANY_SPECIAL = /[&<>"']/;
/** Character data and attribute values: the five predefined entities (XML 1.0 section 4.6). */
const escapeXml = (s: string) => (ANY_SPECIAL.test(s) ? s.replace(SPECIAL, (c) => ESCAPES[c]!) : s);

/**
 * One element from its object form: keys `@_name` are attributes, `#text`
 * its text, other keys child elements (an array: the element repeated); a
 * string, number or boolean is text; '' or null an empty element, written
 * `<name/>`; undefined leaves the element out.
 */
function element(name: string, v: unknown, out: string[]): void {
  if (v === undefined) return;
  if (Array.isArray(v)) {
    for (const item of v) element(name, item, out);
    return;
  }
  if (v === null || v === '') {
    out.push(`<${name}/>`);
    return;
  }
  if (typeof v !== 'object') {
    out.push(`<${name}>${escapeXml(String(v))}</${name}>`);
    return;
  }
  let open = `<${name}`;
  const inner: string[] = [];
  for (const [k, c] of Object.entries(v as XmlNode)) {
    if (k.startsWith(ATTR)) {
      if (c !== undefined) open += ` ${k.slice(ATTR.length)}="${escapeXml(String(c))}"`;
    } else if (k === '#text') {
      if (c !== undefined && c !== null && c !== '') inner.push(escapeXml(String(c)));
    } else element(k, c, inner);
  }
  out.push(inner.length === 0 ? `${open}/>` : `${open}>${inner.join('')}</${name}>`);
}

export function buildXml(root: XmlNode): string {
  const out = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  for (const [name, v] of Object.entries(root)) element(name, v, out);
  return out.join('');
}

/** Memos of bodies built (by what they say) hold at most this many: emptied when full, no bookkeeping on a hit. */
const MEMO_MAX = 4_096;

/** Keep a body built under `key` in a memo of bodies (bounded: MEMO_MAX). */
export function remember(memo: Map<string, string>, key: string, body: string): void {
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, body);
}

export function parseXml(body: string | Buffer, what: string): XmlNode {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.includes('<!DOCTYPE') || text.includes('<!ENTITY'))
    throw new McuError('MCU_ERR_PROTOCOL', `${what}: document type declarations are not accepted`);
  const valid = XMLValidator.validate(text);
  if (valid !== true)
    throw new McuError('MCU_ERR_PROTOCOL', `${what}: malformed XML (${valid.err.msg}, line ${valid.err.line})`, {
      details: { line: valid.err.line, col: valid.err.col },
    });
  return parser.parse(text) as XmlNode;
}

/** A child element as an object (attributes only, or empty). */
export function child(node: unknown, name: string): XmlNode | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const v = (node as XmlNode)[name];
  if (Array.isArray(v)) return (v[0] as XmlNode | '') === '' ? {} : (v[0] as XmlNode);
  if (v === '') return {};
  return v !== null && typeof v === 'object' ? (v as XmlNode) : undefined;
}

export function children(node: unknown, name: string): XmlNode[] {
  if (node === null || typeof node !== 'object') return [];
  const v = (node as XmlNode)[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (x !== null && typeof x === 'object' ? (x as XmlNode) : {}));
}

export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[ATTR + name];
  return typeof v === 'string' ? v : undefined;
}

/** The text content of a child element. */
export function text(node: unknown, name: string): string | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const v = (node as XmlNode)[name];
  const one = Array.isArray(v) ? v[0] : v;
  if (typeof one === 'string') return one;
  if (one !== null && typeof one === 'object' && typeof (one as XmlNode)['#text'] === 'string')
    return (one as XmlNode)['#text'] as string;
  return undefined;
}
