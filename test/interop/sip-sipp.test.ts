/**
 * SIPp (Debian package sip-tester) against our stack: SIPp as UAC calling our
 * UAS and as UAS answering our UAC, over UDP (with SIPp dropping 10% of what
 * it receives, so retransmissions are exercised) and TCP, with INFO,
 * in-dialog OPTIONS, re-INVITE and BYE.
 */
import t from 'tap';
import { createUserAgent, type Dialog, type UserAgent } from '../../src/sip/index.js';
import { until } from '../sip/raw-peer.js';
import { freePort, have, scenario, sipp, sippArgs, tempDir, waitBound } from './sip-peers.js';

t.setTimeout(120_000);

const SDP = 'v=0\r\no=ctl 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';
const MSML = '<msml version="1.1"><modifyconference id="conf1"/></msml>';

/** Our UAS acting as an MCU: counts what it saw. */
function actAsMcu(ua: UserAgent) {
  const seen = { invites: 0, info: 0, options: 0, reinvites: 0, byes: 0, routed: 0 };
  ua.on('invite', (inv) => {
    seen.invites++;
    inv.accept({ body: SDP }).then(
      (d: Dialog) => {
        if (d.routeSet.length > 0) seen.routed++;
        d.on('request', (req) => {
          if (req.method === 'INFO') {
            seen.info++;
            req.respond(200, { contentType: 'application/msml+xml', body: '<result response="200"/>' });
          } else if (req.method === 'OPTIONS') {
            seen.options++;
            req.respond(200);
          } else if (req.method === 'INVITE') {
            seen.reinvites++;
            req.respond(200, { body: SDP });
          } else req.respond(501);
        });
        d.on('terminated', (why) => {
          if (why === 'bye-received') seen.byes++;
        });
      },
      () => {},
    );
  });
  return seen;
}

/** One control call from our UAC: INVITE, INFO, OPTIONS, re-INVITE, BYE. */
async function controlCall(ua: UserAgent, uri: string): Promise<Dialog> {
  const d = await ua.invite(uri, { body: SDP });
  const info = await d.request('INFO', { contentType: 'application/msml+xml', body: MSML });
  if (!info.body.toString().includes('response="200"')) throw new Error('bad INFO answer');
  await d.request('OPTIONS');
  await d.reinvite();
  await d.bye();
  return d;
}

if (!have('sipp')) {
  t.plan(0, 'sipp is not installed (Debian package sip-tester): skipping SIPp interop tests');
} else {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());

  for (const transport of ['udp', 'tcp'] as const) {
    t.test(`SIPp UAC calls our UAS over ${transport}${transport === 'udp' ? ' with 10% loss' : ''}`, async (t) => {
      const port = await freePort();
      const ua = await createUserAgent({ listen: [{ transport, host: '127.0.0.1', port }], user: 'mcu' });
      t.teardown(() => ua.close());
      const seen = actAsMcu(ua);
      const calls = transport === 'udp' ? 30 : 15;
      const file = scenario(tmp.dir, 'ctl-uac', { lossy: transport === 'udp', tcp: transport === 'tcp' });
      const sippPort = await freePort();
      const run = sipp(
        tmp.dir,
        sippArgs({
          scenario: file,
          port: sippPort,
          call: { service: 'mcu', target: `127.0.0.1:${port}` },
          calls,
          rate: 20,
          limit: 10,
          transport,
        }),
        90_000,
      );
      const r = await run.done;
      t.equal(r.code, 0, `sipp exit status (${r.stderr.slice(0, 500)})`);
      t.equal(r.successful, calls, 'every call succeeded');
      t.equal(r.failed, 0);
      t.equal(seen.invites, calls);
      t.equal(seen.info, calls, 'one INFO per call reached the handler (retransmissions absorbed)');
      t.equal(seen.options, calls);
      t.equal(seen.reinvites, calls);
      t.ok(await until(() => seen.byes === calls), 'every BYE reached us');
      t.equal(ua.stats.dialogs, 0, 'no dialog left');
      // 7 requests per call without loss; SIPp retransmits the ones whose answer it dropped.
      if (transport === 'udp')
        t.ok(ua.stats.received > 7 * calls, `retransmissions absorbed (${ua.stats.received} received)`);
    });

    t.test(`our UAC calls a SIPp UAS over ${transport}${transport === 'udp' ? ' with 10% loss' : ''}`, async (t) => {
      const ua = await createUserAgent({ listen: [{ transport, host: '127.0.0.1', port: 0 }], user: 'ctl' });
      t.teardown(() => ua.close());
      const calls = transport === 'udp' ? 20 : 10;
      const sippPort = await freePort();
      const file = scenario(tmp.dir, 'mcu-uas', { lossy: transport === 'udp' });
      const run = sipp(tmp.dir, sippArgs({ scenario: file, port: sippPort, calls, transport }), 90_000);
      t.ok(await waitBound(sippPort, transport), 'SIPp is listening');
      const uri = `sip:mcu@127.0.0.1:${sippPort}${transport === 'tcp' ? ';transport=tcp' : ''}`;
      let ok = 0;
      const errors: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          while (next < calls) {
            next++;
            try {
              const d = await controlCall(ua, uri);
              if (d.state === 'terminated') ok++;
            } catch (err) {
              errors.push(String(err));
            }
          }
        }),
      );
      t.same(errors, [], 'no call failed on our side');
      t.equal(ok, calls);
      // 5 requests and 2 ACKs per call without loss; our timers resent what SIPp dropped.
      if (transport === 'udp') t.ok(ua.stats.sent > 7 * calls, `retransmissions sent (${ua.stats.sent} sent)`);
      const r = await run.done;
      t.equal(r.code, 0, `sipp exit status (${r.stderr.slice(0, 500)})`);
      t.equal(r.successful, calls);
      t.equal(r.failed, 0);
    });
  }

  t.test('SIPp pings our UAS with out-of-dialog OPTIONS', async (t) => {
    const ua = await createUserAgent({ listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], user: 'mcu' });
    t.teardown(() => ua.close());
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const file = join(tmp.dir, 'options.xml');
    writeFileSync(
      file,
      `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options-ping">
  <send retrans="500"><![CDATA[
OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:ctl@[local_ip]:[local_port]>;tag=[pid]O[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`,
    );
    const r = await sipp(
      tmp.dir,
      sippArgs({
        scenario: file,
        port: await freePort(),
        call: { service: 'mcu', target: `127.0.0.1:${ua.listening[0]!.port}` },
        calls: 10,
        rate: 50,
      }),
      30_000,
    ).done;
    t.equal(r.code, 0);
    t.equal(r.successful, 10);
  });
}
