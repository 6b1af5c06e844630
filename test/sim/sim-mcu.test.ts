/**
 * One simulated MCU on its own: participants calling in over SIP, capacity
 * (486 or 503), a call it ends while the far end calls again, coded errors
 * for bad use, and close semantics.
 */
import t from 'tap';
import { createSimMcu } from '../../src/sim/index.js';
import { createUserAgent, parseUri } from '../../src/sip/index.js';
import { waitFor } from './helpers.js';
import { type RawMessage, request, response, type UdpPeer, udpPeer } from './raw-sip.js';

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

t.test(
  'a call the MCU ends leaves at its BYE: a new call of the same far end, made before the BYE is answered, stays',
  async (t) => {
    // Under loss a BYE is answered a retransmission (RFC 3261 17.1.2, Timer E) or more later, and the far end (a
    // cascade manager healing the link) may call again meanwhile. The old dialog ended when the BYE was sent (RFC
    // 3261 15.1.1): its late answer must not take the new call with it. The far end is a raw SIP peer written in
    // this test, which holds the BYE unanswered until its new call is up.
    const peers = { link: await udpPeer('127.0.0.1'), endpoint: await udpPeer('127.0.0.1') };
    t.teardown(() => Promise.all([peers.link.close(), peers.endpoint.close()]));
    const entityOf = (p: UdpPeer) => `sip:raw@127.0.0.1:${p.local.port}`;
    // The link's peer is a conference focus of the network (as the simulator's network tells its MCUs).
    const m = await createSimMcu({
      id: 'm',
      uri: 'sip:conf@127.0.0.1:0',
      ports: 4,
      tcp: false,
      isFocus: (e) => e === entityOf(peers.link),
    });
    t.teardown(() => m.close());
    const port = parseUri(m.uri)!.port!;
    const toTag = (r: RawMessage) => /;tag=([^;>\s]+)/.exec(r.header('To') ?? '')?.[1];
    const call = async (p: UdpPeer, callId: string) => {
      const spec = {
        uri: `sip:conf@127.0.0.1:${port}`,
        transport: 'UDP' as const,
        local: p.local,
        callId,
        cseq: 1,
        fromTag: `from-${callId}`,
      };
      p.send(request({ ...spec, method: 'INVITE', contentType: 'application/sdp', body: SDP }), port);
      const ok = await p.inbox.next(
        (r) => r.status !== undefined && r.status >= 200 && r.header('Call-ID') === callId,
        10_000,
        `the answer to INVITE ${callId}`,
      );
      t.equal(ok.status, 200, `${callId} answered 200`);
      p.send(request({ ...spec, method: 'ACK', toTag: toTag(ok)! }), port);
      await waitFor(`${callId} in the room`, () => m.participants.get(entityOf(p))?.callId === callId);
    };

    for (const [kind, end] of [
      ['link', () => m.dropLink(entityOf(peers.link))],
      ['endpoint', () => m.dropCall(entityOf(peers.endpoint))],
    ] as const) {
      const p = peers[kind];
      const entity = entityOf(p);
      const first = `${kind}-old`;
      const second = `${kind}-new`;
      await call(p, first);
      t.equal(m.participants.get(entity)?.kind, kind);
      const ending = end();
      const bye = await p.inbox.next(
        (r) => r.method === 'BYE' && r.status === undefined && r.header('Call-ID') === first,
        10_000,
        `the BYE of ${first}`,
      );
      t.notOk(m.participants.has(entity), `${kind}: gone from the room when the BYE is sent`);
      await call(p, second);
      // Now the old BYE is answered (its retransmissions too, whichever the MCU reads first).
      p.inbox.listen((r) => {
        if (r.method === 'BYE' && r.status === undefined && r.header('Call-ID') === first)
          p.send(response(r, 200, 'OK'), port);
      });
      p.send(response(bye, 200, 'OK'), port);
      await ending;
      t.match(
        m.participants.get(entity),
        { kind, status: 'connected', callId: second },
        `${kind}: the new call is still in the room once the old BYE is answered`,
      );
      t.notOk(
        p.inbox.all.some((r) => r.method === 'BYE' && r.header('Call-ID') === second),
        `${kind}: the new call was not hung up`,
      );
      // The new call ends as well, its BYE answered at once.
      p.inbox.listen((r) => {
        if (r.method === 'BYE' && r.status === undefined && r.header('Call-ID') === second)
          p.send(response(r, 200, 'OK'), port);
      });
      await end();
      t.notOk(m.participants.has(entity));
    }
  },
);

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
