/**
 * One simulated MCU on its own: participants calling in over SIP, capacity
 * (486 or 503), coded errors for bad use, and close semantics.
 */
import t from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { createUserAgent } from '../../src/sip/index.js';
import { waitFor } from './helpers.js';

t.setTimeout(30_000);

const SDP =
  'v=0\r\no=ep 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=application 9 UDP/BFCP *\r\n';

t.test('a SIP endpoint calls in, takes a port, and leaves with BYE; a full MCU answers its busy status', async (t) => {
  const m = await createSimMcu({ id: 'm', uri: 'sip:conf@127.0.0.1:0', ports: 2, busyStatus: 503, tcp: false });
  t.teardown(() => m.close());
  const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'room7' });
  t.teardown(() => ua.close());
  const call = await ua.invite(m.uri, { contentType: 'application/sdp', body: SDP });
  const entity = ua.contactUri('udp');
  // The MCU counts the participant once our ACK arrives.
  await waitFor('the participant', () => m.participants.has(entity));
  t.match(m.participants.get(entity), { kind: 'endpoint', status: 'connected', callId: call.callId });
  const mLines = call.remoteBody
    .toString()
    .split('\r\n')
    .filter((l) => l.startsWith('m='));
  t.same(
    mLines.map((l) => l.split(' ').slice(0, 2)),
    [
      ['m=audio', '49170'],
      ['m=video', '49172'],
      ['m=application', '0'],
    ],
    'one m= line per offered one, in order; audio and video taken, the rest refused with port 0 (RFC 3264 6)',
  );
  m.join('sip:other@endpoints.invalid');
  t.throws(() => m.join('sip:third@endpoints.invalid'), { code: 'SIM_ERR_FULL' });
  const other = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'late' });
  t.teardown(() => other.close());
  await t.rejects(other.invite(m.uri, { contentType: 'application/sdp', body: SDP }), {
    code: 'SIP_ERR_RESPONSE',
    sipStatus: 503,
  });
  await call.bye();
  await waitFor('the port to be freed', () => !m.participants.has(entity));
  t.notOk(m.participants.has(entity), 'BYE frees the port');
  t.equal((await ua.request('OPTIONS', m.uri)).status, 200, 'OPTIONS out of dialog');
  t.equal((await ua.request('MESSAGE', m.uri, { contentType: 'text/plain', body: 'x' })).status, 405);
});

t.test('bad arguments and use after close are coded errors; close is idempotent', async (t) => {
  await t.rejects(createSimMcu({ id: 'x', uri: 'tel:+84123', ports: 1 }), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  await t.rejects(createSimMcu({ id: 'x', uri: 'sip:conf@127.0.0.1:0', ports: 0 }), {
    code: 'SIM_ERR_INVALID_ARGUMENT',
  });
  const m = await createSimMcu({ id: 'm', uri: 'sip:conf@127.0.0.1:0', ports: 1 });
  t.throws(() => m.setImpairment({ loss: 1.5 }), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  t.throws(() => m.setFaults({ infoStatus: 200 }), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  t.throws(() => m.setProcessingDelay(-1), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  t.throws(() => m.setInfoDelay(-1), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  await t.rejects(createSimMcu({ id: 'x', uri: 'sip:conf@127.0.0.1:0', ports: 1, profile: 'challenging' }), {
    code: 'SIM_ERR_INVALID_ARGUMENT',
  });
  t.throws(() => m.join('not a uri'), { code: 'SIM_ERR_INVALID_ARGUMENT' });
  await t.rejects(m.dropLink('sip:conf@127.0.0.9:5060'), { code: 'SIM_ERR_UNKNOWN_PARTICIPANT' });
  await Promise.all([m.close(), m.close()]);
  t.throws(() => m.join('sip:a@endpoints.invalid'), { code: 'SIM_ERR_CLOSED' });
  t.throws(() => m.restart(), { code: 'SIM_ERR_CLOSED' });
});
