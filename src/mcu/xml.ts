/**
 * XML codecs: every body the drivers and the simulator exchange is built
 * from objects and parsed back to objects, never assembled or picked apart
 * with string operations. Malformed input is a coded MCU_ERR_PROTOCOL, so a
 * hostile peer cannot throw out of a SIP handler.
 *
 * Both directions are small code of our own in fast-xml-parser's object form
 * (the codecs used it until sessions 6 and 11), held to it on random documents
 * by test/mcu/xml.test.ts: its builder's generic walk cost about 0.15 ms a
 * body on the chair's hot path (issue 11), and its validator and parser, two
 * passes, about 45 µs per roster entry of a conference notification, 2.5 ms
 * for the national master's full roster and a tenth of the daemon's CPU in a
 * national dial (issue 10). The parser here is one pass, about ten times
 * faster.
 */
import { McuError } from './errors.js';

export const ATTR = '@_';

/** Elements that may repeat: always parsed as arrays, so a single child and many look alike. */
const REPEATED = new Set(['region', 'user', 'endpoint', 'media', 'entry', 'modifystream', 'stream']);

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

/** Elements nested deeper than this are refused (fast-xml-parser's bound too): no MCU body comes close. */
const MAX_DEPTH = 100;

/** Names an object must not be given as keys (prototype pollution, or hiding what every object has). */
const RESERVED = new Set(Object.getOwnPropertyNames(Object.prototype));

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** XML 1.0 names (section 2.3), ASCII exactly; any character beyond ASCII is taken as a name character. */
const isNameStart = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || c >= 0xc0;
const isNameChar = (c: number) => isNameStart(c) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 0xb7;
const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/** One element being read: its attributes, children and text, in the object form. */
interface Open {
  readonly raw: string;
  readonly name: string;
  readonly node: XmlNode;
  /** Child elements or attributes seen: the element is an object, not a string. */
  complex: boolean;
  text: string | undefined;
}

class Reader {
  i = 0;
  constructor(
    readonly s: string,
    readonly what: string,
  ) {}

  fail(msg: string, at = this.i): never {
    let line = 1;
    let col = 1;
    for (let k = 0; k < at && k < this.s.length; k++) {
      if (this.s.charCodeAt(k) === 10) {
        line++;
        col = 1;
      } else col++;
    }
    throw new McuError('MCU_ERR_PROTOCOL', `${this.what}: malformed XML (${msg}, line ${line})`, {
      details: { line, col },
    });
  }

  /** Past `end`, which must follow (`what` names the construct for the error). */
  past(end: string, what: string): number {
    const k = this.s.indexOf(end, this.i);
    if (k < 0) this.fail(`${what} is not closed`);
    return k;
  }

  name(): string {
    const s = this.s;
    const start = this.i;
    if (!isNameStart(s.charCodeAt(start))) this.fail('a name expected');
    let k = start + 1;
    while (k < s.length && isNameChar(s.charCodeAt(k))) k++;
    this.i = k;
    return s.slice(start, k);
  }

  spaces(): boolean {
    const start = this.i;
    while (this.i < this.s.length && isSpace(this.s.charCodeAt(this.i))) this.i++;
    return this.i > start;
  }

  /** Character data with its references replaced: the five predefined entities and numeric references. */
  decode(raw: string, at: number): string {
    let amp = raw.indexOf('&');
    if (amp < 0) return raw;
    let out = '';
    let from = 0;
    while (amp >= 0) {
      const semi = raw.indexOf(';', amp + 1);
      if (semi < 0) this.fail("'&' that starts no reference", at + amp);
      const ref = raw.slice(amp + 1, semi);
      let ch: string | undefined;
      if (ref.startsWith('#')) {
        const code = /^#x[0-9a-fA-F]{1,6}$/.test(ref)
          ? Number.parseInt(ref.slice(2), 16)
          : /^#[0-9]{1,7}$/.test(ref)
            ? Number.parseInt(ref.slice(1), 10)
            : Number.NaN;
        if (Number.isNaN(code) || code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
          this.fail(`bad character reference &${ref};`, at + amp);
        ch = String.fromCodePoint(code);
      } else ch = PREDEFINED[ref];
      if (ch === undefined) this.fail(`undeclared entity &${ref};`, at + amp);
      out += raw.slice(from, amp) + ch;
      from = semi + 1;
      amp = raw.indexOf('&', from);
    }
    return out + raw.slice(from);
  }
}

/** Without its namespace prefix (`removeNSPrefix`): `p:n` is `n`; a name of more colons keeps the rest. */
const local = (name: string) => {
  const k = name.indexOf(':');
  return k < 0 ? name : name.slice(k + 1);
};

function add(parent: Open, name: string, value: unknown, r: Reader): void {
  if (name === '' || RESERVED.has(name)) r.fail(`element name ${name} not accepted`);
  parent.complex = true;
  const node = parent.node;
  const had = node[name];
  if (had === undefined) node[name] = REPEATED.has(name) ? [value] : value;
  else if (Array.isArray(had)) had.push(value);
  else node[name] = [had, value];
}

/** An element's attributes, up to `>` or `/>`; returns whether it closed itself. */
function attributes(r: Reader, el: Open): boolean {
  const s = r.s;
  const seen = new Set<string>();
  for (;;) {
    const spaced = r.spaces();
    const c = s.charCodeAt(r.i);
    if (c === 62) {
      r.i++;
      return false;
    }
    if (c === 47) {
      if (s.charCodeAt(r.i + 1) !== 62) r.fail("'/' not followed by '>'");
      r.i += 2;
      return true;
    }
    if (Number.isNaN(c)) r.fail(`tag ${el.raw} is not closed`);
    if (!spaced) r.fail('attributes must be separated by white space');
    const raw = r.name();
    if (seen.has(raw)) r.fail(`attribute ${raw} is repeated`);
    seen.add(raw);
    r.spaces();
    if (s.charCodeAt(r.i) !== 61) r.fail(`attribute ${raw} without a value`);
    r.i++;
    r.spaces();
    const q = s.charCodeAt(r.i);
    if (q !== 34 && q !== 39) r.fail(`attribute ${raw}: value not quoted`);
    const start = r.i + 1;
    const end = s.indexOf(q === 34 ? '"' : "'", start);
    if (end < 0) r.fail(`attribute ${raw}: value not closed`);
    const v = s.slice(start, end);
    if (v.includes('<')) r.fail(`attribute ${raw}: '<' in its value`, start);
    r.i = end + 1;
    // Namespace declarations go, like namespace prefixes (`removeNSPrefix`).
    if (raw === 'xmlns' || raw.startsWith('xmlns:')) continue;
    const parts = raw.split(':');
    const name = parts.length === 2 ? parts[1]! : raw;
    if (name === '' || RESERVED.has(name)) r.fail(`attribute name ${raw} not accepted`);
    el.node[ATTR + name] = r.decode(v.trim(), start);
    el.complex = true;
  }
}

/** The object an element stands for once closed: a string when it has text alone, '' when empty. */
function closed(el: Open): unknown {
  if (!el.complex) return el.text ?? '';
  if (el.text) el.node['#text'] = el.text;
  return el.node;
}

/**
 * XML 1.0 to the object form (what fast-xml-parser gives with the options the codecs used, held to it on random
 * documents by test/mcu/xml.test.ts): elements by their local name, attributes `@_name` (namespace declarations
 * left out), values trimmed, text `#text` beside children and attributes, else the element's value itself;
 * elements of `REPEATED` always arrays. Well-formedness is checked in the same single pass; the prolog may hold
 * the XML declaration (given as `?xml`) and comments, never a document type, nor other processing instructions.
 */
function parseDocument(text: string, what: string): XmlNode {
  const s = text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
  const r = new Reader(s, what);
  if (s.charCodeAt(0) === 0xfeff) r.i = 1;
  const top: Open = { raw: '', name: '', node: {}, complex: false, text: undefined };
  const stack: Open[] = [top];
  let roots = 0;
  let pending = '';
  let pendingAt = 0;
  for (;;) {
    const lt = s.indexOf('<', r.i);
    const el = stack.at(-1)!;
    // Character data up to the next markup; a comment does not end it.
    const end = lt < 0 ? s.length : lt;
    if (end > r.i) {
      if (pending === '') pendingAt = r.i;
      pending += s.slice(r.i, end);
    }
    const comment = lt >= 0 && s.startsWith('!--', lt + 1);
    if (!comment && pending !== '') {
      // Trimmed, its references replaced, joined to the element's text.
      const trimmed = pending.trim();
      if (trimmed !== '') {
        if (el === top) r.fail('text outside the root element', pendingAt);
        el.text = (el.text ?? '') + r.decode(trimmed, pendingAt + pending.indexOf(trimmed[0]!));
      }
      pending = '';
    }
    if (lt < 0) break;
    r.i = lt + 1;
    const c = s.charCodeAt(r.i);
    if (c === 33) {
      if (comment) {
        r.i += 3;
        r.i = r.past('-->', 'comment') + 3;
      } else if (s.startsWith('![CDATA[', r.i)) {
        if (el === top) r.fail('CDATA outside the root element');
        r.i += 8;
        const close = r.past(']]>', 'CDATA section');
        el.text = (el.text ?? '') + s.slice(r.i, close);
        r.i = close + 3;
      } else r.fail('document type declarations are not accepted');
    } else if (c === 63) {
      if (lt !== (s.charCodeAt(0) === 0xfeff ? 1 : 0) || !/^\?xml[ \t\n]/.test(s.slice(r.i, r.i + 5)))
        r.fail('processing instructions are not accepted, but the XML declaration first');
      r.i += 4;
      const decl: Open = { raw: '?xml', name: '?xml', node: {}, complex: false, text: undefined };
      const close = r.past('?>', 'XML declaration');
      // The declaration's pseudo-attributes, read as attributes up to its `?>`.
      const inner = new Reader(`${s.slice(r.i, close)}>`, what);
      if (attributes(inner, decl) || inner.i !== inner.s.length) r.fail('malformed XML declaration');
      top.node['?xml'] = decl.complex ? decl.node : '';
      r.i = close + 2;
    } else if (c === 47) {
      r.i++;
      const raw = r.name();
      r.spaces();
      if (s.charCodeAt(r.i) !== 62) r.fail(`closing tag ${raw} is not closed`);
      r.i++;
      if (el === top) r.fail(`closing tag ${raw} that was not opened`, lt);
      if (raw !== el.raw) r.fail(`closing tag ${raw} where ${el.raw} was open`, lt);
      stack.pop();
      add(stack.at(-1)!, el.name, closed(el), r);
    } else {
      const raw = r.name();
      if (el === top && roots++ > 0) r.fail('more than one root element', lt);
      if (stack.length > MAX_DEPTH) r.fail(`elements nested deeper than ${MAX_DEPTH}`, lt);
      const child: Open = { raw, name: local(raw), node: {}, complex: false, text: undefined };
      if (attributes(r, child)) add(el, child.name, closed(child), r);
      else stack.push(child);
    }
  }
  if (stack.length > 1) r.fail(`tag ${stack.at(-1)!.raw} is not closed`);
  if (roots === 0) r.fail('no root element');
  return top.node;
}

export function parseXml(body: string | Buffer, what: string): XmlNode {
  // A document type declaration (and any entity it would declare) is refused by the parser's one pass.
  return parseDocument(typeof body === 'string' ? body : body.toString('utf8'), what);
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
