/**
 * The XML bodies of the sip-msml driver: every MSML body it can build
 * validates against src/mcu/msml/msml-subset.xsd with a real validator
 * (libxml2 compiled to WebAssembly, npm xmllint-wasm), and parses back to the
 * same command; RFC 4575 conference-info round-trips full, partial and deleted
 * users with versions; malformed or hostile XML is a coded MCU_ERR_PROTOCOL.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import t from 'tap';
import { validateXML } from 'xmllint-wasm';
import {
  buildConferenceInfo,
  buildMsml,
  buildPictureFastUpdate,
  buildResult,
  buildSwitch,
  type ConferenceInfo,
  LAYOUT_NAMES,
  type LayoutName,
  layoutRegions,
  type MsmlCommand,
  parseConferenceInfo,
  parseMsml,
  parseMsmlRequest,
  parsePictureFastUpdate,
  parseResult,
} from '../../src/mcu/index.js';

t.setTimeout(60_000);

const schemaFile = (name: string) => ({
  fileName: name,
  contents: readFileSync(fileURLToPath(new URL(`../../../src/mcu/msml/${name}`, import.meta.url)), 'utf8'),
});
const MSML_XSD = schemaFile('msml-subset.xsd');
const MEDIA_XSD = schemaFile('media-control.xsd');

const canonical = (o: object) => JSON.stringify(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

/**
 * One validator run for groups of documents (each run starts a WebAssembly worker and compiles libxml2: about a
 * second of CPU, so a test validates what it can in one run), and each group's errors, told apart by the file
 * each error names (`unattributed` holds any that names none).
 */
async function validateGroups(groups: Record<string, readonly string[]>, schema = MSML_XSD) {
  const xml = Object.entries(groups).flatMap(([g, docs]) =>
    docs.map((contents, i) => ({ fileName: `${g}-${i}.xml`, contents })),
  );
  const r = await validateXML({ xml, schema: [schema] });
  const errors: Record<string, string[]> = { unattributed: [] };
  for (const g of Object.keys(groups)) errors[g] = [];
  for (const e of r.errors) {
    const file = e.loc?.fileName ?? /^(\S+\.xml) /.exec(e.message)?.[1];
    const group = file === undefined ? undefined : errors[file.slice(0, file.lastIndexOf('-'))];
    (group ?? errors.unattributed!).push(e.message);
  }
  return { valid: r.valid, errors };
}

const uri = fc
  .tuple(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,15}$/), fc.stringMatching(/^[a-z0-9.-]{1,20}$/), fc.nat(65535))
  .map(([u, h, p]) => `sip:${u}@${h}:${p}`);
const command: fc.Arbitrary<MsmlCommand> = fc.oneof(
  fc.record({ op: fc.constant('layout' as const), output: uri, layout: fc.constantFrom(...LAYOUT_NAMES) }),
  fc.record({ op: fc.constant('show' as const), output: uri, region: fc.integer({ min: 1, max: 16 }), source: uri }),
  fc.record({ op: fc.constant('audio' as const), source: uri, muted: fc.boolean() }),
);

t.test('every MSML body the driver builds validates against the subset schema and parses back', async (t) => {
  const fixed: MsmlCommand[] = [
    ...LAYOUT_NAMES.map((layout) => ({ op: 'layout' as const, output: 'sip:chair@endpoints.invalid', layout })),
    { op: 'show', output: 'sip:conf@127.0.1.1:5060', region: 1, source: 'sip:x&y@endpoints.invalid' },
    { op: 'audio', source: 'sip:a@endpoints.invalid', muted: true },
    { op: 'audio', source: 'sip:a@endpoints.invalid', muted: false },
  ];
  const fixedBodies = fixed.map(buildMsml);
  const samples = fc.sample(command, { numRuns: 200, seed: 5707 });
  const bodies = samples.map(buildMsml);
  const results = [{ response: 200 }, { response: 404, description: 'unknown <output>' }];
  const resultBodies = results.map(buildResult);
  const msml = await validateGroups({ fixed: fixedBodies, generated: bodies, result: resultBodies });
  t.same(msml.errors.fixed, [], `${fixed.length} fixed bodies valid`);
  fixed.forEach((cmd, i) => {
    t.same(parseMsml(fixedBodies[i]!), cmd, `${cmd.op} round trip`);
  });
  t.same(msml.errors.generated, [], `${samples.length} generated bodies valid`);
  t.same(msml.errors.result, [], 'result bodies valid');
  t.same(msml.errors.unattributed, []);
  t.equal(msml.valid, true);
  const roundTripped = samples.filter((cmd, i) => canonical(parseMsml(bodies[i]!)) === canonical(cmd));
  t.equal(roundTripped.length, samples.length, 'and parsed back to the same commands');
  results.forEach((r, i) => {
    t.same(parseResult(resultBodies[i]!), r);
  });
  const pfu = buildPictureFastUpdate('sip:chair@endpoints.invalid');
  t.same(
    await validateGroups({ pfu: [pfu] }, MEDIA_XSD),
    { valid: true, errors: { unattributed: [], pfu: [] } },
    'picture fast update matches RFC 5168',
  );
  t.same(parsePictureFastUpdate(pfu), { output: 'sip:chair@endpoints.invalid' });
});

t.test("bodies remembered by what they say: never another switch's, past the memo's bound too", async (t) => {
  // Pairs of switches whose sources run together once joined (two sources, and one source holding both with a
  // line break between), and more switches than the memo keeps (4,096), each built twice.
  const many = Array.from({ length: 5_000 }, (_, i) => {
    const k = i - (i % 2);
    return {
      output: `sip:out-${k % 7}@m`,
      layout: '2x2' as LayoutName,
      sources: i % 2 === 0 ? [`sip:a-${k}@x`, `sip:b-${k}@x`] : [`sip:a-${k}@x\nsip:b-${k}@x`],
    };
  });
  const first = many.map(buildSwitch);
  const again = many.map(buildSwitch);
  t.equal(new Set(first).size, many.length, 'a body of its own for every switch');
  t.equal(
    again.filter((b, i) => b === first[i]).length,
    many.length,
    'the same body again, after the memo was emptied on the way',
  );
  const sample = many.filter((_, i) => i % 50 === 0);
  t.equal(
    sample.filter(
      (sw) =>
        canonical(parseMsmlRequest(buildSwitch(sw)).map(canonical)) ===
        canonical(
          [
            { op: 'layout', output: sw.output, layout: sw.layout },
            ...sw.sources.map((source, k) => ({ op: 'show', output: sw.output, region: k + 1, source })),
          ].map(canonical),
        ),
    ).length,
    sample.length,
    'and it says what the switch does',
  );
  const outputs = Array.from({ length: 5_000 }, (_, i) => `sip:screen-${i}@m`);
  const requests = outputs.map(buildPictureFastUpdate);
  t.equal(new Set(requests).size, outputs.length, 'a picture fast update of its own for every output');
  t.equal(outputs.map(buildPictureFastUpdate).filter((b, i) => b === requests[i]).length, outputs.length);
  t.equal(
    outputs.filter((o, i) => i % 50 === 0 && parsePictureFastUpdate(buildPictureFastUpdate(o)).output === o).length,
    outputs.length / 50,
    'each naming its own output',
  );
});

t.test("an output's switch is one request: its layout, then each region's source, in that order", async (t) => {
  const switches = fc.sample(
    fc.constantFrom(...LAYOUT_NAMES).chain((layout) =>
      fc.record({
        output: uri,
        layout: fc.constant(layout),
        sources: fc.array(uri, { maxLength: layoutRegions(layout).length }),
      }),
    ),
    { numRuns: 100, seed: 11 },
  );
  const bodies = switches.map(buildSwitch);
  const twoLayouts =
    '<msml version="1.1"><modifyconference id="conf:main"><videolayout type="text/msml-basic-layout" id="conn:sip:a@b"><root size="CIF"/><region id="1" left="0%" top="0%" relativesize="1"/></videolayout></modifyconference><modifyconference id="conf:main"><videolayout type="text/msml-basic-layout" id="conn:sip:a@b"><root size="CIF"/><region id="1" left="0%" top="0%" relativesize="1"/></videolayout></modifyconference></msml>';
  const r = await validateGroups({ switch: bodies, twoLayouts: [twoLayouts] });
  t.same(r.errors.switch, [], `${switches.length} switch bodies valid`);
  t.same(r.errors.unattributed, []);
  const parsed = switches.filter(
    (sw, i) =>
      canonical(parseMsmlRequest(bodies[i]!).map(canonical)) ===
      canonical(
        [
          { op: 'layout', output: sw.output, layout: sw.layout },
          ...sw.sources.map((source, k) => ({ op: 'show', output: sw.output, region: k + 1, source })),
        ].map(canonical),
      ),
  );
  t.equal(parsed.length, switches.length, 'and parse back to the operations in order');
  t.throws(() => parseMsml(bodies.find((_, i) => switches[i]!.sources.length > 0)!), { code: 'MCU_ERR_PROTOCOL' });
  t.equal(
    switches.filter((sw, i) => buildSwitch({ ...sw, sources: [...sw.sources] }) === bodies[i]).length,
    switches.length,
    'the same switch again: the same body (remembered, issue 11)',
  );
  t.throws(() => parseMsmlRequest(twoLayouts), { code: 'MCU_ERR_PROTOCOL' }, 'one layout per request');
  t.ok(r.errors.twoLayouts!.length > 0 && !r.valid, 'and the schema says so too');
});

t.test('the validator is real: bodies outside the subset are refused', async (t) => {
  const cases: Array<[string, string]> = [
    ['<msml version="1.0"><result response="200"/></msml>', 'wrong version'],
    ['<msml version="1.1"><destroyconference id="conf:main"/></msml>', 'element outside the subset'],
    [
      '<msml version="1.1"><modifystream id1="conn:sip:a@b" id2="conn:sip:c@d"><stream media="text" dir="from-id1"/></modifystream></msml>',
      'bad media',
    ],
    [
      '<msml version="1.1"><modifystream id1="sip:a@b" id2="conf:main"><stream media="audio" dir="from-id1"/></modifystream></msml>',
      'id1 not a connection id',
    ],
    [
      '<msml version="1.1"><modifyconference id="conf:main"><videolayout type="text/msml-basic-layout" id="conn:x"><root size="CIF"/><region id="1" left="150%" top="0%" relativesize="1"/></videolayout></modifyconference></msml>',
      'left beyond 100%',
    ],
  ];
  const r = await validateXML({
    xml: cases.map(([contents], i) => ({ fileName: `bad-${i}.xml`, contents })),
    schema: [MSML_XSD],
  });
  t.equal(r.valid, false);
  cases.forEach(([, why], i) => {
    t.ok(
      r.errors.some((e) => e.loc?.fileName === `bad-${i}.xml`),
      `${why}: refused, with a reason`,
    );
  });
});

t.test('MSML parsing refuses what the simulator must not execute', async (t) => {
  const bad = [
    'not xml at all <',
    '<msml version="1.1"></msml>',
    '<?xml version="1.0"?><!DOCTYPE msml [<!ENTITY x "y">]><msml version="1.1"/>',
    '<msml version="1.1"><modifystream id1="conn:sip:a@b" id2="conn:sip:c@d"><stream media="video" dir="from-id1" display="0"/></modifystream></msml>',
    '<msml version="1.1"><modifyconference id="conf:main"><videolayout id="conn:x"><root size="CIF"/><region id="1" left="0%" top="0%" relativesize="1/3"/></videolayout></modifyconference></msml>',
    '<msml version="1.1"><modifystream id1="conn:sip:a@b" id2="conf:main"><stream media="audio" dir="from-id1"><gain amt="-3"/></stream></modifystream></msml>',
  ];
  for (const b of bad) t.throws(() => parseMsml(b), { code: 'MCU_ERR_PROTOCOL' }, b.slice(0, 60));
  t.throws(() => parseResult('<msml version="1.1"/>'), { code: 'MCU_ERR_PROTOCOL' });
  t.throws(() => parsePictureFastUpdate('<media_control/>'), { code: 'MCU_ERR_PROTOCOL' });
});

t.test(
  'MCU answers parsed again from memory read the same as parsed afresh; a refusal is never remembered',
  async (t) => {
    // More distinct answers than are kept, twice over: each reads its own value, kept or evicted.
    const answers = Array.from({ length: 80 }, (_, i) => ({ response: 200 + (i % 7), description: `d${i} <&>` }));
    for (let round = 0; round < 2; round++)
      for (const r of answers) t.same(parseResult(buildResult(r)), r, `round ${round}: ${r.description}`);
    const ok = buildResult({ response: 200 });
    t.same(parseResult(Buffer.from(ok)), { response: 200 }, 'a Buffer body reads as its text');
    t.ok(Object.isFrozen(parseResult(ok)), 'a remembered answer cannot be changed by a caller');
    for (let i = 0; i < 2; i++)
      t.throws(
        () => parseResult('<msml version="1.1"><result/></msml>'),
        { code: 'MCU_ERR_PROTOCOL' },
        `refused ${i + 1}`,
      );
  },
);

t.test('RFC 4575 conference-info: full and partial documents, versions, deleted users, links', async (t) => {
  const full: ConferenceInfo = {
    entity: 'sip:conf@127.0.1.1:5060',
    version: 1,
    state: 'full',
    displayText: 'MCU Trung ương',
    users: [
      {
        entity: 'sip:chair@endpoints.invalid',
        state: 'full',
        kind: 'endpoint',
        status: 'connected',
        audioMuted: false,
        displayText: 'Phòng họp & điều hành',
      },
      {
        entity: 'sip:conf@127.0.1.2:5060',
        state: 'full',
        kind: 'link',
        status: 'connected',
        audioMuted: true,
        callId: 'abc@1',
      },
    ],
  };
  const body = buildConferenceInfo(full);
  t.match(body, /xmlns="urn:ietf:params:xml:ns:conference-info"/);
  t.same(parseConferenceInfo(body), full);
  const partial: ConferenceInfo = {
    entity: full.entity,
    version: 2,
    state: 'partial',
    users: [
      {
        entity: 'sip:chair@endpoints.invalid',
        state: 'deleted',
        kind: 'endpoint',
        status: 'disconnected',
        audioMuted: false,
      },
      { entity: 'sip:conf@127.0.1.3:5060', state: 'full', kind: 'link', status: 'dialing-out', audioMuted: false },
    ],
  };
  const parsed = parseConferenceInfo(buildConferenceInfo(partial));
  t.equal(parsed.version, 2);
  t.equal(parsed.state, 'partial');
  t.same(
    parsed.users.map((u) => [u.entity, u.state, u.kind, u.status]),
    [
      ['sip:chair@endpoints.invalid', 'deleted', 'endpoint', 'connected'],
      ['sip:conf@127.0.1.3:5060', 'full', 'link', 'dialing-out'],
    ],
  );
  t.same(parseConferenceInfo(buildConferenceInfo({ ...full, users: [] })).users, [], 'an empty conference');
  t.throws(
    () => parseConferenceInfo('<conference-info entity="x" state="full"/>'),
    { code: 'MCU_ERR_PROTOCOL' },
    'no version',
  );
  t.throws(() => parseConferenceInfo('<conference-info entity="x" version="1" state="weird"/>'), {
    code: 'MCU_ERR_PROTOCOL',
  });
  t.throws(() => parseConferenceInfo('<users/>'), { code: 'MCU_ERR_PROTOCOL' });
});
