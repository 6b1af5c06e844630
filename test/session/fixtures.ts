/**
 * The network of the session tests: a master and two provinces (Vietnamese
 * names, so the report's UTF-8 is exercised), a commune MCU under Ninh Bình,
 * and endpoints at every level with their provinces, so selectors and units
 * have something to resolve.
 *
 *   m (master: chair)
 *   ├── nb (Ninh Bình: ubnd-nb, nb-room) ── nb2 (nb-h1, nb-x1, nb-x2)
 *   └── qb (Quảng Bình: qb-room, qb-x1, qb-x2; 3 ports: one session's room, commune and link fill it)
 */
import { type NetEndpoint, type NetMcu, networkConfig } from '../cascade/helpers.js';

export const MCUS: readonly NetMcu[] = [
  { id: 'm', rooms: 4, ports: 40, cascadePorts: 8 },
  { id: 'nb', parents: ['m'], rooms: 4 },
  { id: 'qb', parents: ['m'], rooms: 4, ports: 3 },
  { id: 'nb2', parents: ['nb'], rooms: 4 },
];

export const ENDPOINTS: readonly (NetEndpoint & { province?: string; name?: string })[] = [
  { id: 'chair', level: 'central', mcus: ['m'], name: 'Phòng họp Chính phủ' },
  { id: 'ubnd-nb', level: 'province', mcus: ['nb'], province: 'ninh-binh', name: 'UBND tỉnh Ninh Bình' },
  { id: 'nb-room', level: 'province', mcus: ['nb'], province: 'ninh-binh', name: 'Sở TT&TT Ninh Bình' },
  { id: 'nb-h1', level: 'district', mcus: ['nb2'], province: 'ninh-binh', name: 'Huyện Hoa Lư' },
  { id: 'nb-x1', level: 'commune', mcus: ['nb2'], province: 'ninh-binh', name: 'Xã Ninh Hải' },
  { id: 'nb-x2', level: 'commune', mcus: ['nb2'], province: 'ninh-binh', name: 'Xã Trường Yên' },
  { id: 'qb-room', level: 'province', mcus: ['qb'], province: 'quang-binh', name: 'UBND tỉnh Quảng Bình' },
  { id: 'qb-x1', level: 'commune', mcus: ['qb'], province: 'quang-binh', name: 'Xã Quảng Phú' },
  { id: 'qb-x2', level: 'commune', mcus: ['qb'], province: 'quang-binh', name: 'Xã Sơn Trạch' },
];

/** The config (JSON, YAML's superset) of the network at `base` (127.A.B.). */
export function sessionNetwork(base: string, daemon: Record<string, unknown> = {}): Record<string, unknown> {
  const cfg = networkConfig(base, MCUS, ENDPOINTS, daemon);
  cfg.provinces = [
    { id: 'ninh-binh', name: 'Ninh Bình' },
    { id: 'quang-binh', name: 'Quảng Bình' },
  ];
  const province: Record<string, string> = { nb: 'ninh-binh', qb: 'quang-binh', nb2: 'ninh-binh' };
  for (const m of cfg.mcus as Record<string, unknown>[])
    if (province[m.id as string] !== undefined) m.province = province[m.id as string];
  const byId = new Map(ENDPOINTS.map((e) => [e.id, e]));
  for (const e of cfg.endpoints as Record<string, unknown>[]) {
    const src = byId.get(e.id as string)!;
    if (src.province !== undefined) e.province = src.province;
    if (src.name !== undefined) e.name = src.name;
  }
  return cfg;
}

/** Wall time of the tests' fake clocks: 7 December 2026, 06:00 UTC (13:00 in Hà Nội). */
export const BASE = Date.UTC(2026, 11, 7, 6, 0);
export const at = (ms: number) => new Date(BASE + ms).toISOString();

/**
 * The planned national session of the tests: the Government's chair, province rooms by selector and id,
 * one Quảng Bình commune; it fills MCU qb.
 */
export const nationalRequest = (o: Record<string, unknown> = {}) => ({
  id: 'national',
  kind: 'planned' as const,
  title: 'Hội nghị trực tuyến toàn quốc về chuyển đổi số',
  requester: 'Văn phòng Chính phủ',
  chair: 'chair',
  startsAt: at(3 * 3_600_000),
  endsAt: at(4 * 3_600_000),
  rehearsalAt: at(1 * 3_600_000),
  endpoints: [{ level: 'province', province: 'quang-binh' }, 'nb-room', 'qb-x1'],
  script: [{ endpoint: 'qb-room', topic: 'Báo cáo của tỉnh Quảng Bình' }, { endpoint: 'nb-room' }],
  ...o,
});

/** The ad-hoc provincial session: rooted at Ninh Bình's MCU, every commune of the province and a district. */
export const provincialRequest = (o: Record<string, unknown> = {}) => ({
  id: 'nb-adhoc',
  kind: 'adhoc' as const,
  title: 'Họp khẩn Ban chỉ đạo phòng chống thiên tai tỉnh Ninh Bình',
  requester: 'UBND tỉnh Ninh Bình',
  root: 'nb',
  chair: 'ubnd-nb',
  startsAt: at(3 * 3_600_000 + 15 * 60_000),
  endsAt: at(3 * 3_600_000 + 45 * 60_000),
  endpoints: [{ province: 'ninh-binh', level: 'commune' }, 'nb-h1'],
  script: [{ endpoint: 'nb-x1' }, { endpoint: 'nb-h1', topic: 'Huyện Hoa Lư báo cáo' }],
  ...o,
});
