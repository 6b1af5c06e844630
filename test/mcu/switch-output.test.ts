/**
 * `switchOutput`, the chair's one-round-trip switch: one MSML request with
 * the output's layout and every region's source, and the keyframe request
 * (RFC 5168) sent right behind it without waiting for its answer. Against a
 * hand-driven MCU (which answers only once both requests are in, so a driver
 * that waited would hang) and against a simulated MCU (which carries the
 * operations out in order and stops at the first that fails).
 */
import t from 'tap';
import {
  buildResult,
  createSipMsmlDriver,
  type McuDriver,
  MEDIA_CONTROL_CONTENT_TYPE,
  MSML_CONTENT_TYPE,
  parseMsmlRequest,
} from '../../src/mcu/index.js';
import { createSimMcu } from '../../src/sim/index.js';
import { createUserAgent, type IncomingRequest, type UserAgent } from '../../src/sip/index.js';
import { FAST, HOST, handMcu, okInfo, type Tap, until } from './hand-mcu.js';

t.setTimeout(60_000);

const A = 'sip:a@endpoints.invalid';
const B = 'sip:b@endpoints.invalid';
const CHAIR = 'sip:chair@endpoints.invalid';

async function controller(t: Tap): Promise<UserAgent> {
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: HOST, port: 0 }], timers: FAST });
  t.teardown(() => ua.close());
  return ua;
}

function driverFor(t: Tap, ua: UserAgent, uri: string): McuDriver {
  const d = createSipMsmlDriver({ ua, mcu: { id: 'hand', uri }, requestTimeoutMs: 3_000, healthIntervalMs: 60_000 });
  t.teardown(() => d.close());
  return d;
}

const isKeyframe = (r: IncomingRequest) => r.message.contentType === MEDIA_CONTROL_CONTENT_TYPE;

t.test('one MSML request and the keyframe request behind it, both in flight at once', async (t) => {
  const held: IncomingRequest[] = [];
  let paired = false;
  const mcu = await handMcu(t, {
    // Nothing of the first switch is answered before both requests are in: a driver that waited for the
    // switch's answer hangs here.
    info: (req) => {
      held.push(req);
      if (held.length < 2 && !paired) return;
      paired = true;
      for (const r of held.splice(0)) {
        if (isKeyframe(r)) r.respond(200);
        else okInfo(r);
      }
    },
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri);
  await d.connect();
  const timing = await d.switchOutput(CHAIR, 'pip', [A, CHAIR]);
  const infos = mcu.requests.filter((r) => r.method === 'INFO');
  t.equal(infos.length, 2, 'two INFOs');
  t.equal(infos[0]!.message.contentType, MSML_CONTENT_TYPE, 'the switch first');
  t.ok(isKeyframe(infos[1]!), 'then the keyframe request');
  t.ok(infos[0]!.message.cseq!.seq < infos[1]!.message.cseq!.seq, 'in CSeq order');
  t.same(
    parseMsmlRequest(infos[0]!.message.body),
    [
      { op: 'layout', output: CHAIR, layout: 'pip' },
      { op: 'show', output: CHAIR, region: 1, source: A },
      { op: 'show', output: CHAIR, region: 2, source: CHAIR },
    ],
    'layout, then what each region shows, in one request',
  );
  t.ok(timing.switchedMs >= 0 && timing.keyframeMs !== null && timing.keyframeMs >= 0, 'timings reported');

  const before = mcu.count('INFO');
  const noKey = await d.switchOutput(A, 'single', [B], { keyframe: false });
  t.equal(mcu.count('INFO') - before, 1, 'keyframe: false sends the switch alone');
  t.equal(noKey.keyframeMs, null);
});

t.test('a keyframe request answered before the switch is asked again after it', async (t) => {
  let first: IncomingRequest | undefined;
  const mcu = await handMcu(t, {
    info: (req) => {
      if (isKeyframe(req)) {
        req.respond(200);
        if (first !== undefined) okInfo(first);
        first = undefined;
        return;
      }
      // The switch is held until the keyframe request is answered: as if it had been lost and sent again.
      first = req;
    },
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri);
  await d.connect();
  await d.switchOutput(A, 'single', [B]);
  const kinds = mcu.requests.filter((r) => r.method === 'INFO').map((r) => (isKeyframe(r) ? 'keyframe' : 'switch'));
  t.same(kinds, ['switch', 'keyframe', 'keyframe'], 'the keyframe asked once more, after the switch');
});

t.test('refusals are coded: an MSML error, a bad layout or too many sources', async (t) => {
  const mcu = await handMcu(t, {
    info: (req) =>
      isKeyframe(req)
        ? req.respond(200)
        : req.respond(200, {
            contentType: MSML_CONTENT_TYPE,
            body: buildResult({ response: 404, description: 'unknown source' }),
          }),
  });
  const ua = await controller(t);
  const d = driverFor(t, ua, mcu.uri);
  await d.connect();
  await t.rejects(d.switchOutput(A, 'single', [B]), { code: 'MCU_ERR_REJECTED', details: { msmlResponse: 404 } });
  await t.rejects(d.switchOutput(A, 'single', [B, A]), { code: 'MCU_ERR_INVALID_ARGUMENT' });
  await t.rejects(d.switchOutput(A, 'nine' as 'single', [B]), { code: 'MCU_ERR_INVALID_ARGUMENT' });
});

t.test('a simulated MCU carries the switch out in order and counts the keyframe after it', async (t) => {
  const m = await createSimMcu({
    id: 'm',
    uri: 'sip:conf@127.0.0.1:0',
    ports: 8,
    tcp: false,
    infoDelayMs: 20,
    timers: FAST,
  });
  t.teardown(() => m.close());
  for (const e of [A, B, CHAIR]) m.join(e);
  const ua = await controller(t);
  const d = driverFor(t, ua, m.uri);
  await d.connect();
  const out = () => m.display()[0]!.outputs.get(CHAIR);
  await d.switchOutput(CHAIR, 'pip', [A, CHAIR]);
  t.match(out(), { layout: 'pip', regions: [A, CHAIR], keyframes: 1 }, 'the chair sees A with itself inset');
  await d.switchOutput(CHAIR, 'single', [B]);
  t.match(out(), { layout: 'single', regions: [B], keyframes: 2 });
  // The second source is unknown: the first operations are carried out, the rest is not, the answer is 404.
  await t.rejects(d.switchOutput(CHAIR, '2x2', [A, 'sip:nobody@endpoints.invalid', B]), {
    code: 'MCU_ERR_REJECTED',
    details: { msmlResponse: 404 },
  });
  t.match(out(), { layout: '2x2', regions: [A, null, null, null] }, 'carried out up to the failing operation');
  await until('the keyframe request of the failed switch to be answered too', () => out()?.keyframes === 3);
});
