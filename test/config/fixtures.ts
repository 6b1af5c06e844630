import { stringify } from 'yaml';

/** Test cases mutate the fixture freely, deep inside: a precise type would only get in the way. */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Mutable = Record<string, any>;

/** A small valid 4-level inventory, as a plain object to mutate per test case. */
export function baseConfig(): Mutable {
  return {
    version: 1,
    daemon: { logLevel: 'warn', stateDir: '/tmp/cascaded-test' },
    provinces: [
      { id: 'ninh-binh', name: 'Ninh Bình' },
      { id: 'quang-binh', name: 'Quảng Bình' },
    ],
    operators: [
      { id: 'cuc', name: 'Cục BĐTW', kind: 'central' },
      { id: 'nb', name: 'Sở TT&TT Ninh Bình', kind: 'province', province: 'ninh-binh' },
      { id: 'vnpt', name: 'VNPT', kind: 'telco' },
    ],
    mcus: [
      {
        id: 'master',
        name: 'Master',
        operator: 'cuc',
        role: 'master',
        sip: ['sip:conf@127.0.0.2'],
        capacity: { ports: 50, cascadePorts: 5 },
      },
      {
        id: 'nb',
        name: 'Ninh Bình',
        operator: 'nb',
        role: 'slave',
        sip: ['sip:conf@127.0.0.3'],
        capacity: { ports: 20, cascadePorts: 1 },
        parents: ['master'],
      },
      {
        id: 'qb-vnpt-1',
        name: 'VNPT QB',
        operator: 'vnpt',
        role: 'slave',
        sip: ['sip:conf@127.0.0.4'],
        capacity: { ports: 20 },
        parents: ['master', 'nb'],
      },
    ],
    endpoints: [
      { id: 'chair', name: 'Chair', level: 'central', mcus: ['master'] },
      { id: 'nb-ubnd', name: 'UBND NB', level: 'province', province: 'ninh-binh', mcus: ['master', 'nb'] },
      { id: 'nb-h1', name: 'Huyện 1', level: 'district', province: 'ninh-binh', mcus: ['nb'] },
      { id: 'nb-h1-x1', name: 'Xã 1', level: 'commune', province: 'ninh-binh', mcus: ['nb', 'qb-vnpt-1'] },
      {
        id: 'qb-x1',
        name: 'QB xã 1',
        level: 'commune',
        province: 'quang-binh',
        connection: 'via-operator',
        operator: 'vnpt',
        mcus: ['qb-vnpt-1'],
      },
      { id: 'nb-x9', name: 'Xã xa', level: 'commune', province: 'ninh-binh', connection: 'relay', relayVia: 'nb-ubnd' },
    ],
  };
}

export const toYaml = (o: unknown) => stringify(o);
