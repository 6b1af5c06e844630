import t from 'tap';
import { parseConfig } from '../../src/config/index.js';
import { conferenceKey, conferenceUris } from '../../src/inventory/index.js';
import { baseConfig, toYaml } from '../config/fixtures.js';

t.test('conferenceUris: a template over a range, a list, or the first sip URI', async (t) => {
  const o = baseConfig();
  o.mcus[0].conferences = { template: 'sip:{room}@127.0.0.2:5060', rooms: { from: 7001, to: 7003 } };
  o.mcus[1].conferences = { uris: ['sip:room-b@127.0.0.3', 'sip:room-a@127.0.0.3'] };
  o.mcus[2].sip = ['sip:conf@127.0.0.4', 'sip:conf@10.0.0.4'];
  const { inventory } = parseConfig(toYaml(o));
  const [master, nb, vnpt] = inventory.mcus;
  t.same(conferenceUris(master!), ['sip:7001@127.0.0.2:5060', 'sip:7002@127.0.0.2:5060', 'sip:7003@127.0.0.2:5060']);
  t.same(conferenceUris(nb!), ['sip:room-b@127.0.0.3', 'sip:room-a@127.0.0.3'], 'a list keeps its order');
  t.same(conferenceUris(vnpt!), ['sip:conf@127.0.0.4'], 'absent: one conference, the first sip URI');
  t.same(
    conferenceUris({
      sip: ['sip:{room}-{room}@h'],
      conferences: { template: 'sip:{room}-{room}@h', rooms: { from: 1, to: 1 } },
    }),
    ['sip:1-1@h'],
  );
  t.ok(Object.isFrozen(master!.conferences), 'frozen with the rest of the config');
});

t.test('conferenceKey: one room, several spellings', async (t) => {
  t.equal(conferenceKey('sip:7001@Host.Example:5060;transport=udp'), conferenceKey('sip:7001@host.example'));
  t.equal(conferenceKey('sips:a@h:5061'), conferenceKey('sips:a@h'));
  t.not(conferenceKey('sip:a@h:5070'), conferenceKey('sip:a@h'));
  t.not(conferenceKey('sip:A@h'), conferenceKey('sip:a@h'), 'the user part is case-sensitive (RFC 3261 19.1.4)');
  t.equal(conferenceKey('sip:[::1]:5060'), conferenceKey('sip:[::1]'));
});
