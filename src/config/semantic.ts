import { conferenceKey, MAX_ROOMS, ROOM_PLACEHOLDER, roomUris } from '../inventory/index.js';
import type { Violation } from './errors.js';

/**
 * Rules a JSON Schema cannot express: references between sections, exactly
 * one master. Runs on the raw document even when the schema check failed, so
 * one pass reports everything; every access is therefore guarded, and
 * malformed items are skipped (the schema already reported them).
 *
 * Allowed parents may form cycles (A into B for a session rooted at B, B into
 * A for one rooted at A; the master may list parents for sessions rooted
 * elsewhere): the planner builds a tree from each session's root. An endpoint
 * with no candidate MCU is a warning, not an error: it loads, but it cannot
 * join a session (the planner says why when a session asks for it).
 */

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const items = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

interface Indexed {
  readonly index: number;
  readonly item: Obj;
  readonly id: string;
}

export interface SemanticReport {
  readonly violations: Violation[];
  readonly warnings: Violation[];
}

export function semanticViolations(doc: unknown): SemanticReport {
  const out: Violation[] = [];
  const warnings: Violation[] = [];
  if (!isObj(doc)) return { violations: out, warnings };
  const add = (path: string, message: string) => out.push({ path, message });
  const warn = (path: string, message: string) => warnings.push({ path, message });

  /** Index a section by id, reporting duplicates. */
  const index = (section: string): Map<string, Indexed> => {
    const byId = new Map<string, Indexed>();
    items(doc[section]).forEach((item, i) => {
      if (!isObj(item)) return;
      const id = str(item.id);
      if (id === undefined) return;
      const first = byId.get(id);
      if (first !== undefined) {
        add(`/${section}/${i}/id`, `duplicate id "${id}" (first at /${section}/${first.index})`);
        return;
      }
      byId.set(id, { index: i, item, id });
    });
    return byId;
  };

  const levelsRaw = doc.levels === undefined ? undefined : index('levels');
  const provinces = index('provinces');
  const operators = index('operators');
  const mcus = index('mcus');
  const endpoints = index('endpoints');
  // Absent `levels` means the schema default (the 2021 four-level hierarchy).
  const levels = levelsRaw ?? new Set(['central', 'province', 'district', 'commune']);

  const ref = (
    path: string,
    value: unknown,
    known: ReadonlyMap<string, unknown> | ReadonlySet<string>,
    what: string,
  ) => {
    const v = str(value);
    if (v !== undefined && !known.has(v)) add(path, `unknown ${what} "${v}"`);
  };

  items(doc.operators).forEach((op, i) => {
    if (!isObj(op)) return;
    ref(`/operators/${i}/province`, op.province, provinces, 'province');
    if (op.kind === 'province' && op.province === undefined) {
      add(`/operators/${i}/province`, 'is required for an operator of kind "province"');
    }
  });

  // MCUs: references, the single master, duplicate conference URIs.
  let master: Indexed | undefined;
  const uriOwner = new Map<string, number>();
  items(doc.mcus).forEach((m, i) => {
    if (!isObj(m)) return;
    const p = `/mcus/${i}`;
    ref(`${p}/operator`, m.operator, operators, 'operator');
    ref(`${p}/province`, m.province, provinces, 'province');
    items(m.parents).forEach((parent, j) => {
      ref(`${p}/parents/${j}`, parent, mcus, 'MCU');
      if (parent === m.id) add(`${p}/parents/${j}`, 'an MCU cannot cascade into itself');
    });
    items(m.sip).forEach((uri, j) => {
      if (typeof uri !== 'string') return;
      const first = uriOwner.get(uri);
      if (first !== undefined && first !== i)
        add(`${p}/sip/${j}`, `SIP URI "${uri}" is already used by /mcus/${first}`);
      else uriOwner.set(uri, i);
    });
    if (m.role === 'master') {
      if (master !== undefined)
        add(`${p}/role`, `a second master (the first is /mcus/${master.index}); exactly one is allowed`);
      else if (typeof m.id === 'string') master = { index: i, item: m, id: m.id };
    }
    // The simulator challenges with the MCU's own credentials: without them there is nothing to ask for.
    if (isObj(m.sim) && m.sim.profile === 'challenging' && m.auth === undefined)
      add(`${p}/sim/profile`, "the challenging profile needs the MCU's auth (the credentials it asks for)");
  });
  if (items(doc.mcus).length > 0 && master === undefined) {
    add('/mcus', 'no MCU has role "master"; exactly one is required');
  }
  out.push(...conferenceViolations(items(doc.mcus)));

  items(doc.endpoints).forEach((e, i) => {
    if (!isObj(e)) return;
    const p = `/endpoints/${i}`;
    ref(`${p}/level`, e.level, levels, 'level');
    ref(`${p}/province`, e.province, provinces, 'province');
    const cands = items(e.mcus);
    cands.forEach((mcu, j) => {
      ref(`${p}/mcus/${j}`, mcu, mcus, 'MCU');
    });
    const connection = e.connection ?? 'direct';
    if (connection === 'relay') {
      if (cands.length > 0) add(`${p}/mcus`, 'a relay endpoint takes no MCU port: remove its candidate MCUs');
      const via = str(e.relayVia);
      if (via === undefined) add(`${p}/relayVia`, 'is required for a relay endpoint');
      else {
        const target = endpoints.get(via);
        if (target === undefined) add(`${p}/relayVia`, `unknown endpoint "${via}"`);
        else if (target.item.connection === 'relay') {
          add(`${p}/relayVia`, `endpoint "${via}" is itself relayed; relay through an endpoint on an MCU`);
        }
      }
    } else {
      if (e.relayVia !== undefined) add(`${p}/relayVia`, 'applies only to relay endpoints');
      if (Array.isArray(e.mcus) || e.mcus === undefined) {
        if (cands.length === 0) warn(`${p}/mcus`, 'endpoint has no candidate MCU: it cannot join any session');
      }
    }
    if (connection === 'via-operator') {
      const opId = str(e.operator);
      if (opId === undefined) add(`${p}/operator`, 'is required for a via-operator endpoint');
      else if (!operators.has(opId)) add(`${p}/operator`, `unknown operator "${opId}"`);
      else {
        const first = mcus.get(str(cands[0]) ?? '');
        if (first !== undefined && first.item.operator !== opId) {
          add(`${p}/mcus/0`, `a via-operator endpoint must prefer an MCU of its operator "${opId}"`);
        }
      }
    } else if (e.operator !== undefined) {
      add(`${p}/operator`, 'applies only to via-operator endpoints');
    }
  });

  apiRules(doc, provinces, operators, add);
  return { violations: out, warnings };
}

const SIP_URI = /^sips?:[^\s]+$/;

/**
 * `mcus[].conferences`: one form (a template over a range of rooms, or a
 * list), a template with `{room}` giving SIP URIs, a sane range, and no room
 * URI claimed by two MCUs (as a room or as an MCU's own `sip` URI). A clash
 * between two MCUs is reported once, at its first room, so overlapping
 * ranges do not flood the report.
 */
function conferenceViolations(list: unknown[]): Violation[] {
  const out: Violation[] = [];
  const owner = new Map<string, number>();
  list.forEach((m, i) => {
    if (isObj(m)) for (const uri of items(m.sip)) if (typeof uri === 'string') owner.set(conferenceKey(uri), i);
  });
  list.forEach((m, i) => {
    if (!isObj(m) || !isObj(m.conferences)) return;
    const c = m.conferences;
    const p = `/mcus/${i}/conferences`;
    const before = out.length;
    const add = (path: string, message: string) => out.push({ path: `${p}${path}`, message });
    const hasTemplate = c.template !== undefined;
    const hasRooms = c.rooms !== undefined;
    if (c.uris !== undefined && (hasTemplate || hasRooms))
      add('', 'give either a template with rooms, or uris, not both');
    else if (c.uris === undefined && !hasTemplate && !hasRooms) add('', 'needs a template with rooms, or uris');
    else if (hasTemplate && !hasRooms) add('/rooms', 'is required with a template');
    else if (hasRooms && !hasTemplate) add('/template', 'is required with rooms');
    if (typeof c.template === 'string') {
      if (!c.template.includes(ROOM_PLACEHOLDER))
        add('/template', `must contain ${ROOM_PLACEHOLDER} where the room number goes`);
      else if (!SIP_URI.test(c.template.replaceAll(ROOM_PLACEHOLDER, '1')))
        add('/template', 'must give a SIP URI (sip: or sips:, no spaces) once the room number is in');
    }
    if (isObj(c.rooms) && typeof c.rooms.from === 'number' && typeof c.rooms.to === 'number') {
      const { from, to } = c.rooms;
      if (from > to) add('/rooms', `from (${from}) is after to (${to})`);
      else if (to - from + 1 > MAX_ROOMS) add('/rooms', `${to - from + 1} rooms: at most ${MAX_ROOMS} per MCU`);
    }
    if (out.length > before || (c.uris !== undefined && !Array.isArray(c.uris))) return;
    const rooms =
      c.uris !== undefined
        ? items(c.uris).map((u, k) => ({ uri: u, path: `${p}/uris/${k}` }))
        : typeof c.template === 'string' && isObj(c.rooms) && typeof c.rooms.from === 'number'
          ? roomUris({ template: c.template, rooms: c.rooms as { from: number; to: number } }).map((uri) => ({
              uri,
              path: `${p}/template`,
            }))
          : [];
    const reported = new Set<number>();
    for (const { uri, path } of rooms) {
      if (typeof uri !== 'string') continue;
      const key = conferenceKey(uri);
      const first = owner.get(key);
      if (first === undefined) owner.set(key, i);
      else if (first !== i && !reported.has(first)) {
        reported.add(first);
        out.push({ path, message: `conference URI "${uri}" is already used by /mcus/${first}` });
      }
    }
  });
  return out;
}

/** Plain HTTP only on loopback (Decision 1594 I.5: encrypted remote control); mTLS scopes name real units. */
function apiRules(
  doc: Obj,
  provinces: ReadonlyMap<string, Indexed>,
  operators: ReadonlyMap<string, Indexed>,
  add: (path: string, message: string) => void,
): void {
  const api = isObj(doc.daemon) && isObj(doc.daemon.api) ? doc.daemon.api : undefined;
  if (api === undefined) return;
  const host = str(api.host) ?? '127.0.0.1';
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (api.plainHttp === true && !loopback) {
    add('/daemon/api/plainHttp', `plain HTTP is only allowed on a loopback host, not ${host}: use HTTPS`);
  }
  if (api.plainHttp === true && api.tls !== undefined) add('/daemon/api/tls', 'plainHttp serves no certificate');
  const certs = isObj(api.clientCertificates) ? api.clientCertificates : undefined;
  items(certs?.identities).forEach((ident, i) => {
    if (!isObj(ident)) return;
    const scope = str(ident.scope);
    const path = `/daemon/api/clientCertificates/identities/${i}/scope`;
    if (ident.role === 'operator' && scope === undefined) add(path, 'an operator identity needs a scope');
    if (ident.role !== 'operator' && scope !== undefined) add(path, 'only an operator identity takes a scope');
    const m = scope === undefined ? null : /^(operator|province):(.+)$/.exec(scope);
    if (m === null) return;
    const known = m[1] === 'operator' ? operators : provinces;
    if (!known.has(m[2]!)) add(path, `unknown ${m[1]} "${m[2]}"`);
  });
}
