/**
 * A REFER with `method=BYE` (RFC 4579 5.6) hangs up the call its participant
 * had when the REFER arrived. Its outcome waits for the answer to the "100
 * Trying" NOTIFY (RFC 3515 2.4.4), which under loss comes seconds later; a
 * cascade manager that gave the REFER up may meanwhile have dialled the same
 * entity again, and that new call must stay. The controller is a raw SIP peer
 * (test/sim/raw-sip.ts) that holds the 200 to the 100 Trying NOTIFY back
 * while the same entity comes back into the room as a new call.
 */
import t from 'tap';
import { createSimMcu, type SimMcu } from '../../src/sim/index.js';
import { parseUri } from '../../src/sip/index.js';
import { waitFor } from './helpers.js';
import { type RawMessage, type RequestSpec, request, response, type UdpPeer, udpPeer } from './raw-sip.js';

t.setTimeout(30_000);

const FAST = { t1: 50, t2: 400, t4: 500 }; // ms: short SIP timers keep failure paths quick
const HOST = '127.0.0.1';
// An MSML client's control leg: an offer whose every stream is inactive, answered in the 200.
const NO_MEDIA = ['v=0', 'o=raw 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0']
  .concat(['audio', 'video'].flatMap((m) => [`m=${m} 9 RTP/AVP 0`, 'a=inactive']))
  .concat([''])
  .join('\r\n');

const toTag = (r: RawMessage) => /;tag=([^;>\s]+)/.exec(r.header('To') ?? '')?.[1];

/** A control dialog from the raw peer to `room`; sends requests in it and waits for their final responses. */
async function controlDialog(p: UdpPeer, m: SimMcu, room: string) {
  const port = parseUri(m.uri)!.port!;
  const spec = { uri: m.roomUri(room), transport: 'UDP' as const, local: p.local, callId: `control-${room}` };
  const send = (method: string, cseq: number, extra: Partial<RequestSpec> = {}) => {
    p.send(request({ ...spec, ...extra, method, cseq }), port);
    return p.inbox.next(
      (r) => r.status !== undefined && r.status >= 200 && r.header('CSeq') === `${cseq} ${method}`,
      10_000,
      `the answer to ${method} ${cseq}`,
    );
  };
  const ok = await send('INVITE', 1, { contentType: 'application/sdp', body: NO_MEDIA });
  const tag = toTag(ok)!;
  p.send(request({ ...spec, method: 'ACK', cseq: 1, toTag: tag }), port);
  await waitFor('the control dialog', () => m.conferences.get(m.roomUri(room))?.controlDialogs === 1);
  return {
    port,
    callId: spec.callId,
    refer: (cseq: number, target: string) =>
      send('REFER', cseq, {
        toTag: tag,
        extra: [`Refer-To: <${target};method=BYE>`, `Referred-By: <sip:raw@${HOST}>`],
      }),
  };
}

t.test(
  'REFER method=BYE hangs up the call the room had when it arrived, not a new call of that entity made before its 100 Trying NOTIFY is answered',
  async (t) => {
    const m = await createSimMcu({
      id: 'm',
      uri: `sip:conf@${HOST}:0`,
      ports: 4,
      rooms: ['8001'],
      tcp: false,
      infoDelayMs: 0,
      timers: FAST,
    });
    t.teardown(() => m.close());
    const p = await udpPeer(HOST);
    t.teardown(() => p.close());
    const control = await controlDialog(p, m, '8001');
    const room = m.roomUri('8001');
    const a = 'sip:a@endpoints.invalid';
    const notifyOf = (cseq: number, final: boolean) => (msg: RawMessage) =>
      msg.method === 'NOTIFY' &&
      msg.status === undefined &&
      msg.header('Call-ID') === control.callId &&
      /^refer;id=(\d+)$/.exec(msg.header('Event') ?? '')?.[1] === `${cseq}` &&
      /terminated/.test(msg.header('Subscription-State') ?? '') === final;
    // A subscriber answers every NOTIFY (RFC 6665 4.1.3), retransmissions too; the first REFER's 100 Trying is
    // held back while `holding`, as when its 200 is lost and only a retransmission's gets through.
    let holding = true;
    p.inbox.listen((msg) => {
      if (holding && notifyOf(2, false)(msg)) return;
      if (msg.method === 'NOTIFY' && msg.status === undefined) p.send(response(msg, 200, 'OK'), control.port);
    });

    m.join(a, 'A', '8001');
    t.equal((await control.refer(2, a)).status, 202, 'accepted');
    const trying = await p.inbox.next(notifyOf(2, false), 10_000, 'the 100 Trying NOTIFY');
    t.match(trying.body, /^SIP\/2\.0 100 /, 'the implicit subscription starts (RFC 3515 2.4.5)');
    // Its answer is late: meanwhile the call ends on its own and the same entity is dialled in again.
    await m.dropCall(a, '8001');
    t.equal(m.locate(a), undefined, 'the old call is gone');
    m.join(a, 'A', '8001');
    const fresh = m.conferences.get(room)?.participants.get(a);
    t.match(fresh, { status: 'connected' }, 'a new call of the same entity in the room');
    holding = false;
    p.send(response(trying, 200, 'OK'), control.port);

    const fin = await p.inbox.next(notifyOf(2, true), 10_000, 'the final NOTIFY of the first REFER');
    t.match(fin.body, /^SIP\/2\.0 200 /, 'the call it named is gone: 200');
    t.equal(m.locate(a), room, 'the new call is still in the room');
    t.equal(m.conferences.get(room)?.participants.get(a), fresh, 'the very call that came in after the REFER');
    t.notOk(m.conferences.get(m.uri)?.participants.has(a), 'and not sent to the lobby as well');

    // Answered at once, a REFER takes the call it finds; once it is gone, another REFER finds none.
    t.equal((await control.refer(3, a)).status, 202);
    t.match((await p.inbox.next(notifyOf(3, true))).body, /^SIP\/2\.0 200 /);
    t.equal(m.locate(a), m.uri, 'hung up: back in the lobby, idle');
    t.equal((await control.refer(4, a)).status, 202);
    t.match((await p.inbox.next(notifyOf(4, true))).body, /^SIP\/2\.0 404 /, 'not in the room: 404');
  },
);
