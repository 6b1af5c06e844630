/**
 * XML codecs on fast-xml-parser: every body the drivers and the simulator
 * exchange is built from objects and parsed back to objects, never assembled
 * or picked apart with string operations. Malformed input is a coded
 * MCU_ERR_PROTOCOL, so a hostile peer cannot throw out of a SIP handler.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
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

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  suppressEmptyNode: true,
  format: false,
  processEntities: true,
});

export type XmlNode = Record<string, unknown>;

export function buildXml(root: XmlNode): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build(root) as string}`;
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
