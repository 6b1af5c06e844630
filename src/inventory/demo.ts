import { seededRandom } from '../core/index.js';

/**
 * The embedded default network: a deterministic, seeded generator of the
 * national 2021 network (63 provinces, 705 districts, 10,599 communes) as
 * config YAML, written to config/demo.yaml by `npm run gen:demo`.
 *
 * Province names are the real 63 of 2021; district and commune counts per
 * province are drawn from the seed (their totals match the national figures,
 * the per-province split does not claim to be the real one).
 *
 * Capacities are chosen so that the optimal plan needs second-level cascades:
 * the four largest provinces have a provincial MCU too small for all their
 * endpoints and a second MCU that may cascade only into the provincial one.
 * All three connection models are present: most provinces connect directly,
 * some through a VNPT or Viettel MCU, and a few relay remote communes from
 * the province endpoint through an AV matrix.
 */

export const DEMO_SEED = 1594;
export const DISTRICTS = 705;
export const COMMUNES = 10_599;

/** [id, name, region] of the 63 provinces and centrally-run cities of 2021. */
const PROVINCES: readonly (readonly [string, string, Region])[] = [
  ['ha-noi', 'Hà Nội', 'north'],
  ['ha-giang', 'Hà Giang', 'north'],
  ['cao-bang', 'Cao Bằng', 'north'],
  ['bac-kan', 'Bắc Kạn', 'north'],
  ['tuyen-quang', 'Tuyên Quang', 'north'],
  ['lao-cai', 'Lào Cai', 'north'],
  ['dien-bien', 'Điện Biên', 'north'],
  ['lai-chau', 'Lai Châu', 'north'],
  ['son-la', 'Sơn La', 'north'],
  ['yen-bai', 'Yên Bái', 'north'],
  ['hoa-binh', 'Hòa Bình', 'north'],
  ['thai-nguyen', 'Thái Nguyên', 'north'],
  ['lang-son', 'Lạng Sơn', 'north'],
  ['quang-ninh', 'Quảng Ninh', 'north'],
  ['bac-giang', 'Bắc Giang', 'north'],
  ['phu-tho', 'Phú Thọ', 'north'],
  ['vinh-phuc', 'Vĩnh Phúc', 'north'],
  ['bac-ninh', 'Bắc Ninh', 'north'],
  ['hai-duong', 'Hải Dương', 'north'],
  ['hai-phong', 'Hải Phòng', 'north'],
  ['hung-yen', 'Hưng Yên', 'north'],
  ['thai-binh', 'Thái Bình', 'north'],
  ['ha-nam', 'Hà Nam', 'north'],
  ['nam-dinh', 'Nam Định', 'north'],
  ['ninh-binh', 'Ninh Bình', 'north'],
  ['thanh-hoa', 'Thanh Hóa', 'central'],
  ['nghe-an', 'Nghệ An', 'central'],
  ['ha-tinh', 'Hà Tĩnh', 'central'],
  ['quang-binh', 'Quảng Bình', 'central'],
  ['quang-tri', 'Quảng Trị', 'central'],
  ['thua-thien-hue', 'Thừa Thiên Huế', 'central'],
  ['da-nang', 'Đà Nẵng', 'central'],
  ['quang-nam', 'Quảng Nam', 'central'],
  ['quang-ngai', 'Quảng Ngãi', 'central'],
  ['binh-dinh', 'Bình Định', 'central'],
  ['phu-yen', 'Phú Yên', 'central'],
  ['khanh-hoa', 'Khánh Hòa', 'central'],
  ['ninh-thuan', 'Ninh Thuận', 'central'],
  ['binh-thuan', 'Bình Thuận', 'central'],
  ['kon-tum', 'Kon Tum', 'central'],
  ['gia-lai', 'Gia Lai', 'central'],
  ['dak-lak', 'Đắk Lắk', 'central'],
  ['dak-nong', 'Đắk Nông', 'central'],
  ['lam-dong', 'Lâm Đồng', 'central'],
  ['binh-phuoc', 'Bình Phước', 'south'],
  ['tay-ninh', 'Tây Ninh', 'south'],
  ['binh-duong', 'Bình Dương', 'south'],
  ['dong-nai', 'Đồng Nai', 'south'],
  ['ba-ria-vung-tau', 'Bà Rịa - Vũng Tàu', 'south'],
  ['ho-chi-minh', 'TP Hồ Chí Minh', 'south'],
  ['long-an', 'Long An', 'south'],
  ['tien-giang', 'Tiền Giang', 'south'],
  ['ben-tre', 'Bến Tre', 'south'],
  ['tra-vinh', 'Trà Vinh', 'south'],
  ['vinh-long', 'Vĩnh Long', 'south'],
  ['dong-thap', 'Đồng Tháp', 'south'],
  ['an-giang', 'An Giang', 'south'],
  ['kien-giang', 'Kiên Giang', 'south'],
  ['can-tho', 'Cần Thơ', 'south'],
  ['hau-giang', 'Hậu Giang', 'south'],
  ['soc-trang', 'Sóc Trăng', 'south'],
  ['bac-lieu', 'Bạc Liêu', 'south'],
  ['ca-mau', 'Cà Mau', 'south'],
];

type Region = 'north' | 'central' | 'south';
const REGION_NAMES: Record<Region, string> = { north: 'miền Bắc', central: 'miền Trung', south: 'miền Nam' };

/** Provinces whose provincial MCU is too small: a second MCU cascades under it (depth 2). */
const SPLIT = new Set(['ha-noi', 'thanh-hoa', 'nghe-an', 'ho-chi-minh']);
/** Provinces whose districts and communes are served by a telecom operator's MCU. */
const VIA_OPERATOR: Readonly<Record<string, 'vnpt' | 'viettel'>> = {
  'bac-kan': 'vnpt',
  'tuyen-quang': 'viettel',
  'hoa-binh': 'vnpt',
  'ha-nam': 'viettel',
  'quang-tri': 'vnpt',
  'phu-yen': 'viettel',
  'kon-tum': 'vnpt',
  'dak-nong': 'viettel',
  'hau-giang': 'vnpt',
  'bac-lieu': 'viettel',
  'tra-vinh': 'vnpt',
};
/** Mountain provinces that relay part of their communes from the province room through an AV matrix. */
const RELAY = new Set(['dien-bien', 'lai-chau', 'ha-giang']);
const RELAY_SHARE = 0.3;

/**
 * How the MCU simulator plays some MCUs (docs/sim.md): most are `full`; a few of each quirk real MCUs
 * have, spread over provincial, second-level and operator MCUs.
 */
const SIM_PROFILES: Readonly<Record<string, 'no-conference-events' | 'full-state-only' | 'challenging'>> = {
  'lao-cai': 'no-conference-events',
  'quang-ngai': 'no-conference-events',
  'ben-tre': 'no-conference-events',
  'vnpt-central': 'no-conference-events',
  'bac-ninh': 'full-state-only',
  'khanh-hoa': 'full-state-only',
  'an-giang': 'full-state-only',
  'ha-noi-2': 'full-state-only',
  'hai-phong': 'challenging',
  'da-nang': 'challenging',
  'can-tho': 'challenging',
  'viettel-south': 'challenging',
};
/**
 * Meeting rooms of every demo MCU, one per live session (`conferences`): room numbers as users of the MCU's
 * address, the numbering many MCUs use for their virtual meeting rooms. 32 is more sessions than one MCU
 * takes part in at once even for the operator MCUs serving 11 provinces.
 */
const ROOMS = { from: 8001, to: 8032 } as const;

/** The domain of the demo endpoints' SIP URIs (the simulator's, docs/sim.md). */
const ENDPOINT_DOMAIN = 'endpoints.invalid';

/** The committed demo secret the challenging MCUs ask for (relative to the working directory, like every path). */
export const DEMO_SECRET_FILE = 'config/demo-secrets/mcu.secret';

const CENTRAL_ENDPOINTS: readonly (readonly [string, string])[] = [
  ['vpcp-chair', 'Phòng họp Chính phủ (chủ trì)'],
  ['vpcp-ttg', 'Phòng họp Thủ tướng'],
  ['vpcp-ptt-1', 'Phòng họp Phó Thủ tướng 1'],
  ['vpcp-ptt-2', 'Phòng họp Phó Thủ tướng 2'],
  ['vpcp-ptt-3', 'Phòng họp Phó Thủ tướng 3'],
  ['vpcp-ptt-4', 'Phòng họp Phó Thủ tướng 4'],
  ['vpcp-ttdl', 'Trung tâm Tin học Văn phòng Chính phủ'],
  ['bo-qp', 'Bộ Quốc phòng'],
  ['bo-ca', 'Bộ Công an'],
  ['bo-ng', 'Bộ Ngoại giao'],
  ['bo-nv', 'Bộ Nội vụ'],
  ['bo-tp', 'Bộ Tư pháp'],
  ['bo-khdt', 'Bộ Kế hoạch và Đầu tư'],
  ['bo-tc', 'Bộ Tài chính'],
  ['bo-ct', 'Bộ Công Thương'],
  ['bo-nnptnt', 'Bộ Nông nghiệp và Phát triển nông thôn'],
  ['bo-gtvt', 'Bộ Giao thông vận tải'],
  ['bo-xd', 'Bộ Xây dựng'],
  ['bo-tnmt', 'Bộ Tài nguyên và Môi trường'],
  ['bo-tttt', 'Bộ Thông tin và Truyền thông'],
  ['bo-ldtbxh', 'Bộ Lao động - Thương binh và Xã hội'],
  ['bo-vhttdl', 'Bộ Văn hóa, Thể thao và Du lịch'],
  ['bo-khcn', 'Bộ Khoa học và Công nghệ'],
  ['bo-gddt', 'Bộ Giáo dục và Đào tạo'],
  ['bo-yt', 'Bộ Y tế'],
  ['ubdt', 'Ủy ban Dân tộc'],
  ['nhnn', 'Ngân hàng Nhà nước Việt Nam'],
  ['ttcp', 'Thanh tra Chính phủ'],
  ['cuc-bdtw', 'Cục Bưu điện Trung ương'],
  ['ttxvn', 'Thông tấn xã Việt Nam'],
  ['vtv', 'Đài Truyền hình Việt Nam'],
];

const VCS = [
  'Polycom RealPresence Group 500',
  'Cisco Webex Room Kit',
  'Huawei TE40',
  'Yealink VC800',
  'Huawei BOX 600',
  'Polycom Studio X50',
];
const PROVINCE_MCU_VENDORS = ['Polycom RMX 2000', 'Huawei VP9660', 'Cisco MCU 5300', 'ZTE ZXV10 M900'];

/** Split `total` into `weights.length` positive integers proportional to the weights (largest remainder). */
function apportion(total: number, weights: readonly number[], min = 1): number[] {
  const free = total - min * weights.length;
  const sum = weights.reduce((a, b) => a + b, 0);
  const raw = weights.map((w) => (w / sum) * free);
  const out = raw.map((r) => min + Math.floor(r));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = raw.map((r, i) => [r - Math.floor(r), i] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) out[order[k]![1]]! += 1;
  return out;
}

const roundUp = (n: number, step: number) => Math.ceil(n / step) * step;
const q = (s: string) => JSON.stringify(s);

interface Built {
  lines: string[];
}

/** The demo network as config YAML text. Same seed, same bytes. */
export function generateDemoYaml(seed = DEMO_SEED): string {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

  // Districts per province between 5 and ~30, the big provinces larger; communes per district ~15.
  const districtWeights = PROVINCES.map(([id]) => (SPLIT.has(id) ? 3 : 1) * (0.6 + rnd()));
  const districts = apportion(DISTRICTS, districtWeights, 5);
  const districtCommuneWeights = districts.flatMap((n) => Array.from({ length: n }, () => 0.5 + rnd()));
  const communesPerDistrict = apportion(COMMUNES, districtCommuneWeights, 3);

  const out: Built = { lines: [] };
  const w = (s: string) => out.lines.push(s);

  w('# GENERATED by `npm run gen:demo` (src/inventory/demo.ts, seed ' + seed + '): do not edit by hand.');
  w('# The simulated national network of 2021: 63 provinces, 705 districts, 10,599 communes.');
  w('# Every MCU listens on its own loopback address (127.0.1.N) so the simulator can run them all;');
  w(
    `# its lobby conference is sip:conf@ that address, its rooms for sessions ${ROOMS.from}..${ROOMS.to} (conferences).`,
  );
  w(`# MCUs with a sim profile behave like real MCUs that lack a feature or ask for credentials (docs/sim.md);`);
  w(`# the challenging ones use the DEMO secret ${DEMO_SECRET_FILE}: never a real one.`);
  w('version: 1');
  w('');
  w('daemon:');
  w('  logLevel: info');
  w('  api: { host: 127.0.0.1, port: 8443 }');
  w('  sip:');
  w('    listen: [ { transport: udp, host: 127.0.0.1, port: 5060 } ]');
  w("  # The session report shows the calls' packet loss, jitter and bitrate the MCUs report (docs/mcu.md).");
  w('  mcu: { qualityReports: true }');
  w('');
  w('levels:');
  w('  - { id: central, name: "Trung ương" }');
  w('  - { id: province, name: "Tỉnh/Thành phố" }');
  w('  - { id: district, name: "Quận/Huyện" }');
  w('  - { id: commune, name: "Xã/Phường/Thị trấn" }');
  w('');
  w('provinces:');
  for (const [id, name] of PROVINCES) w(`  - { id: ${id}, name: ${q(name)} }`);
  w('');
  w('operators:');
  w('  - { id: cuc-bdtw, name: "Cục Bưu điện Trung ương", kind: central }');
  w('  - { id: vnpt, name: "VNPT", kind: telco }');
  w('  - { id: viettel, name: "Viettel", kind: telco }');
  for (const [id, name] of PROVINCES)
    w(`  - { id: ${id}-stttt, name: ${q(`Sở TT&TT ${name}`)}, kind: province, province: ${id} }`);

  // Endpoint counts per province first: MCU capacities follow from them.
  let d = 0;
  const perProvince = PROVINCES.map(([id], p) => {
    const counts = communesPerDistrict.slice(d, d + districts[p]!);
    d += districts[p]!;
    return { id, districts: districts[p]!, communes: counts };
  });

  let host = 0;
  const mcu = (
    id: string,
    name: string,
    operator: string,
    role: 'master' | 'slave',
    vendor: string,
    ports: number,
    cascadePorts: number,
    parents: readonly string[],
    province?: string,
  ) => {
    host++;
    w(`  - id: ${id}`);
    w(`    name: ${q(name)}`);
    w(`    operator: ${operator}`);
    w(`    role: ${role}`);
    if (province !== undefined) w(`    province: ${province}`);
    w(`    sip: [ "sip:conf@127.0.1.${host}:5060" ]`);
    w(
      `    conferences: { template: "sip:{room}@127.0.1.${host}:5060", rooms: { from: ${ROOMS.from}, to: ${ROOMS.to} } }`,
    );
    w(`    h323: 127.0.1.${host}:1720`);
    w(`    vendor: ${q(vendor)}`);
    w(`    capacity: { ports: ${ports}, cascadePorts: ${cascadePorts} }`);
    if (parents.length > 0) w(`    parents: [ ${parents.join(', ')} ]`);
    const profile = SIM_PROFILES[id];
    if (profile === 'challenging') w(`    auth: { username: cascaded, passwordFile: ${DEMO_SECRET_FILE} }`);
    if (profile !== undefined) w(`    sim: { profile: ${profile} }`);
  };

  w('');
  w('mcus:');
  // The master takes the central rooms, the 63 province rooms and one link per slave, with headroom.
  const telcoIds = (['vnpt', 'viettel'] as const).flatMap((op) =>
    (['north', 'central', 'south'] as const).map((r) => ({ op, region: r, id: `${op}-${r}` })),
  );
  mcu('master', 'MCU Trung ương (Cục BĐTW)', 'cuc-bdtw', 'master', 'Cisco TelePresence Server 8710', 260, 80, []);
  for (const [p, [id, name]] of PROVINCES.entries()) {
    const n = perProvince[p]!.districts + perProvince[p]!.communes.reduce((a, b) => a + b, 0);
    const vendor = pick(PROVINCE_MCU_VENDORS);
    if (SPLIT.has(id)) {
      // Too small for all its rooms: about 60% fit, the rest spill to the second MCU under it.
      mcu(id, `MCU ${name}`, `${id}-stttt`, 'slave', vendor, roundUp(n * 0.6, 10), 2, ['master'], id);
      mcu(`${id}-2`, `MCU ${name} (cụm 2)`, `${id}-stttt`, 'slave', vendor, roundUp(n * 0.55, 10), 0, [id], id);
    } else if (VIA_OPERATOR[id] !== undefined) {
      // The operator serves the districts and communes; the provincial MCU is a small fallback.
      mcu(id, `MCU ${name}`, `${id}-stttt`, 'slave', vendor, roundUp(n * 0.25, 10), 1, ['master'], id);
    } else {
      mcu(id, `MCU ${name}`, `${id}-stttt`, 'slave', vendor, roundUp(n * 1.1 + 4, 10), 1, ['master'], id);
    }
  }
  for (const t of telcoIds) {
    const served = PROVINCES.filter(([id, , r]) => r === t.region && VIA_OPERATOR[id] === t.op);
    const n = served.reduce((acc, [id]) => {
      const pp = perProvince.find((x) => x.id === id)!;
      return acc + pp.districts + pp.communes.reduce((a, b) => a + b, 0);
    }, 0);
    const operatorName = t.op === 'vnpt' ? 'VNPT' : 'Viettel';
    mcu(
      t.id,
      `MCU ${operatorName} ${REGION_NAMES[t.region]}`,
      t.op,
      'slave',
      'Huawei VP9660',
      roundUp(n * 1.15 + 20, 10),
      4,
      ['master'],
    );
  }

  w('');
  w('endpoints:');
  const ep = (fields: string) => w(`  - { ${fields} }`);
  // Where MCUs dial each room (the cascade manager dials the session's endpoints into its rooms): the domain
  // the simulator knows its endpoints by (RFC 6761 .invalid: it resolves nowhere, the rooms are simulated).
  // Relayed rooms have none: the AV matrix carries them.
  const sip = (id: string) => `sip: "sip:${id}@${ENDPOINT_DOMAIN}"`;
  for (const [id, name] of CENTRAL_ENDPOINTS) {
    ep(`id: ${id}, name: ${q(name)}, level: central, mcus: [ master ], vcs: ${q(pick(VCS))}, ${sip(id)}`);
  }
  for (const [p, [pid, pname, region]] of PROVINCES.entries()) {
    const pp = perProvince[p]!;
    const provinceEp = `${pid}-ubnd`;
    ep(
      `id: ${provinceEp}, name: ${q(`UBND ${pname}`)}, level: province, province: ${pid}, mcus: [ master, ${pid} ], vcs: ${q(pick(VCS))}, ${sip(provinceEp)}`,
    );
    const operator = VIA_OPERATOR[pid];
    const cands = operator
      ? `connection: via-operator, operator: ${operator}, mcus: [ ${operator}-${region}, ${pid} ]`
      : SPLIT.has(pid)
        ? `mcus: [ ${pid}, ${pid}-2 ]`
        : `mcus: [ ${pid} ]`;
    for (let k = 1; k <= pp.districts; k++) {
      const did = `${pid}-h${String(k).padStart(2, '0')}`;
      ep(
        `id: ${did}, name: ${q(`${pname} - huyện ${k}`)}, level: district, province: ${pid}, ${cands}, vcs: ${q(pick(VCS))}, ${sip(did)}`,
      );
      for (let c = 1; c <= pp.communes[k - 1]!; c++) {
        const cid = `${did}-x${String(c).padStart(2, '0')}`;
        const cname = q(`${pname} - huyện ${k} - xã ${c}`);
        if (RELAY.has(pid) && rnd() < RELAY_SHARE) {
          ep(
            `id: ${cid}, name: ${cname}, level: commune, province: ${pid}, connection: relay, relayVia: ${provinceEp}`,
          );
        } else {
          ep(
            `id: ${cid}, name: ${cname}, level: commune, province: ${pid}, ${cands}, vcs: ${q(pick(VCS))}, ${sip(cid)}`,
          );
        }
      }
    }
  }
  return `${out.lines.join('\n')}\n`;
}
