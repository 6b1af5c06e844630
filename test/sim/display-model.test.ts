/**
 * The display model as a pure function, on hand-built states: the cases a
 * live network rarely produces (a loop of links, a link whose other end is
 * unknown, a region showing someone who left).
 */
import t from 'tap';
import {
  type ConferenceDisplayState,
  DisplayModel,
  type OutputState,
  type ParticipantState,
} from '../../src/sim/index.js';

const mcu = (
  id: string,
  participants: Record<string, ParticipantState>,
  outputs: Record<string, OutputState> = {},
  on = id,
): ConferenceDisplayState => ({
  id,
  mcu: on,
  participants: new Map(Object.entries(participants)),
  outputs: new Map(Object.entries(outputs)),
});
const ep = (audioMuted = false): ParticipantState => ({ kind: 'endpoint', audioMuted });
const link = (callId: string, audioMuted = false): ParticipantState => ({ kind: 'link', audioMuted, callId });
const out = (layout: OutputState['layout'], regions: (string | null)[]): OutputState => ({
  layout,
  regions,
  keyframes: 0,
});

t.test('a loop of links (A shows B, B shows A) ends instead of recursing forever', async (t) => {
  const m = new DisplayModel([
    mcu('A', { e1: ep(), B: link('c1') }, { e1: out('single', ['B']), B: out('single', ['B']) }),
    mcu('B', { e2: ep(), A: link('c1') }, { A: out('single', ['A']) }),
  ]);
  const v = m.endpointView('e1')!;
  t.equal(v.mcu, 'A');
  t.match(v.screen.regions[0], { source: 'B', via: { mcu: 'B', output: 'A', regions: [{ source: 'A' }] } });
  t.same(v.hears, ['e2']);
});

t.test('unknown peers, departed sources and empty regions', async (t) => {
  const m = new DisplayModel([
    mcu('A', { e1: ep(), e2: ep(true), X: link('nowhere') }, { e1: out('2x2', ['X', 'gone', null, 'e2']) }),
  ]);
  const v = m.endpointView('e1')!;
  t.same(
    v.screen.regions.map((r) => r.source),
    ['X', null, null, 'e2'],
    'a participant that left shows as an empty region',
  );
  t.equal(v.screen.regions[0]!.via, undefined, 'a link with no known other end is shown as the link itself');
  t.same(v.sees, ['X', 'e2']);
  t.same(v.hears, [], 'muted e2 and an unresolved link carry no sound');
  t.equal(m.endpointView('nobody'), undefined);
  t.same(m.screen('A', 'e2'), {
    mcu: 'A',
    conference: 'A',
    output: 'e2',
    layout: 'single',
    regions: [{ region: 1, source: null }],
  });
});

t.test(
  'conferences of one MCU: an endpoint sees and hears only its own; a link joins one room of each MCU',
  async (t) => {
    const m = new DisplayModel([
      mcu('M/lobby', { idle: ep() }, {}, 'M'),
      mcu('M/8001', { e1: ep(), 'P/8001': link('c1') }, { e1: out('single', ['P/8001']) }, 'M'),
      mcu('M/8002', { e2: ep(), 'Q/8001': link('c2') }, { e2: out('single', ['Q/8001']) }, 'M'),
      mcu('P/8001', { p1: ep(), 'M/8001': link('c1') }, { 'M/8001': out('single', ['p1']) }, 'P'),
      mcu('Q/8001', { q1: ep(), 'M/8002': link('c2') }, { 'M/8002': out('single', ['q1']) }, 'Q'),
    ]);
    const v1 = m.endpointView('e1')!;
    t.equal(v1.mcu, 'M');
    t.equal(v1.conference, 'M/8001');
    t.same(v1.sees, ['p1'], 'room 8001 shows what P sends over its link');
    t.same(v1.hears, ['p1'], 'and hears only its own session');
    t.same(m.endpointView('e2')!.sees, ['q1']);
    t.same(m.endpointView('e2')!.hears, ['q1']);
    t.same(m.endpointView('idle')!.hears, [], 'the lobby hears no session');
    t.same(m.endpointView('p1')!.hears, ['e1'], 'P hears room 8001 of M, not room 8002');
    t.match(m.screen('P/8001', 'M/8001'), { mcu: 'P', conference: 'P/8001', regions: [{ source: 'p1' }] });
  },
);
