/**
 * A dial the MCU accepted must show in the MCU's roster. Here the MCU (hand-driven, test/mcu/hand-mcu.ts)
 * answers every REFER with a final sipfrag 200 and seats the participant, but its conference notifications
 * never say so (a lost notification, for good): only its full state, sent when the subscription is
 * refreshed, lists the participant. The manager must not dial again and again on the strength of the 200
 * (it once did, silently, 300 times in a minute): it waits for the roster, then asks for the full state
 * (CASCADE_ERR_UNCONFIRMED, logged, retried with backoff), and finds the participant there.
 */
import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import type { IncomingRequest, ServerSubscription } from '../../src/sip/index.js';
import { handMcu } from '../mcu/hand-mcu.js';
import { networkConfig, startParts, until } from './helpers.js';

t.setTimeout(60_000);

t.test(
  'a dial accepted but missing from the roster: the full roster is asked for, the dial not repeated',
  async (t) => {
    let version = 1;
    let refreshes = 0;
    const mcu = await handMcu(t, {
      subscribe: (sub) => {
        sub.accept({ ...mcu.fullState(version), expires: 600 }).then(
          (s: ServerSubscription) => {
            // RFC 4575 4.1: a refresh is answered with the full state (here the only place the participants show).
            s.on('refreshed', () => {
              refreshes++;
              s.notify(mcu.fullState(++version)).catch(() => {});
            });
          },
          () => {},
        );
      },
      refer: (ref) => {
        const uri = ref.referTo.uri.raw.replace(/^<|>$/g, '');
        ref.accept().then(
          (n) => {
            if (!mcu.users.includes(uri)) mcu.users.push(uri);
            return n.done(200, 'OK');
          },
          () => {},
        );
      },
    });
    const config = networkConfig(
      '127.0.0.',
      [{ id: 'm' }],
      [
        { id: 'chair', level: 'central', mcus: ['m'] },
        { id: 'e1', mcus: ['m'] },
      ],
    ) as { mcus: { sip: string[]; sim?: unknown }[] };
    config.mcus[0]!.sip = [mcu.uri];
    delete config.mcus[0]!.sim;
    const inv = parseConfig(JSON.stringify(config)).inventory;
    const parts = await startParts(inv, t.testdir());
    t.teardown(() => parts.close());
    const head = await parts.manager.admit({ endpoints: 'all', chair: 'chair' });
    const roster = () => parts.pool.drivers.get('m')!.roster;
    const listed = (id: string) => roster().get(`sip:${id}@endpoints.invalid`)?.status === 'connected';
    await until('both endpoints in the roster', () => listed('chair') && listed('e1'));
    const refers = (id: string) =>
      mcu.requests.filter(
        (r: IncomingRequest) => r.method === 'REFER' && (r.message.headers.get('refer-to') ?? '').includes(`${id}@`),
      ).length;
    t.ok(
      refers('chair') >= 1 && refers('chair') <= 3,
      `the chair dialled ${refers('chair')} times, not again and again`,
    );
    t.ok(refers('e1') >= 1 && refers('e1') <= 3, `e1 dialled ${refers('e1')} times`);
    t.ok(refreshes >= 1, 'the full roster was asked for (a subscription refresh)');
    await until('the endpoints counted in', () => parts.manager.progress(head.sessionId)[0]?.endpoints.in === 2);
    t.pass('the session has its endpoints');
  },
);
