/**
 * The network of the session tests: a master and two provinces (Vietnamese
 * names, so the report's UTF-8 is exercised), a commune MCU under Ninh Bình,
 * and endpoints at every level with their provinces, so selectors and units
 * have something to resolve.
 *
 *   m (master: chair)
 *   ├── nb (Ninh Bình: ubnd-nb, nb-room) ── nb2 (nb-h1, nb-x1, nb-x2)
 *   └── qb (Quảng Bình: qb-room, qb-x1, qb-x2; 4 ports)
 */
import { type NetEndpoint, type NetMcu, networkConfig } from '../cascade/helpers.js';

export const MCUS: readonly NetMcu[] = [
  { id: 'm', rooms: 4, ports: 40, cascadePorts: 8 },
  { id: 'nb', parents: ['m'], rooms: 4 },
  { id: 'qb', parents: ['m'], rooms: 4, ports: 4 },
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
