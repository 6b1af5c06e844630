import { McuError } from './errors.js';

/** The standard screen layouts an output can take, by the names technicians use. */
export const LAYOUT_NAMES = ['single', '1+1', '2x2', '1+5', '1+7', '3x3', 'pip'] as const;
export type LayoutName = (typeof LAYOUT_NAMES)[number];

/**
 * A region of an MSML `videolayout` (RFC 5707 7.6.1): position as a share of
 * the root window (percent) and size as a fraction of it.
 */
export interface Region {
  /** 1-based, in reading order; MSML `display=` names it. */
  readonly id: number;
  readonly left: number;
  readonly top: number;
  /** '1', '1/2', '1/3', '2/3', '1/4', '3/4'. */
  readonly size: string;
}

function grid(n: number): Region[] {
  const out: Region[] = [];
  const share = 100 / n;
  for (let r = 0; r < n; r++)
    for (let c = 0; c < n; c++)
      out.push({ id: r * n + c + 1, left: Math.round(c * share), top: Math.round(r * share), size: `1/${n}` });
  return out;
}

/** One large picture in the top-left and small ones around it on a `cells` x `cells` grid. */
function onePlus(cells: number): Region[] {
  const out: Region[] = [{ id: 1, left: 0, top: 0, size: `${cells - 1}/${cells}` }];
  const share = 100 / cells;
  for (let r = 0; r < cells - 1; r++)
    out.push({
      id: out.length + 1,
      left: Math.round((cells - 1) * share),
      top: Math.round(r * share),
      size: `1/${cells}`,
    });
  for (let c = cells - 1; c >= 0; c--)
    out.push({
      id: out.length + 1,
      left: Math.round(c * share),
      top: Math.round((cells - 1) * share),
      size: `1/${cells}`,
    });
  return out;
}

const GEOMETRY: Record<LayoutName, readonly Region[]> = {
  single: [{ id: 1, left: 0, top: 0, size: '1' }],
  '1+1': [
    { id: 1, left: 0, top: 25, size: '1/2' },
    { id: 2, left: 50, top: 25, size: '1/2' },
  ],
  '2x2': grid(2),
  '1+5': onePlus(3),
  '1+7': onePlus(4),
  '3x3': grid(3),
  // Picture in picture: one source full-screen, a second in a quarter-size inset at the bottom right over it
  // (MSML regions may overlap, RFC 5707 7.6.1). The chair's screen uses it for "the speaker large, the chair small".
  pip: [
    { id: 1, left: 0, top: 0, size: '1' },
    { id: 2, left: 75, top: 75, size: '1/4' },
  ],
};

export function isLayoutName(x: unknown): x is LayoutName {
  return typeof x === 'string' && (LAYOUT_NAMES as readonly string[]).includes(x);
}

export function layoutRegions(layout: LayoutName): readonly Region[] {
  const g = GEOMETRY[layout];
  if (g === undefined) throw new McuError('MCU_ERR_INVALID_ARGUMENT', `unknown layout ${String(layout)}`);
  return g;
}

/** The layout whose geometry matches a list of regions, or undefined. */
export function layoutOf(regions: readonly Region[]): LayoutName | undefined {
  return LAYOUT_NAMES.find((name) => {
    const g = GEOMETRY[name];
    return (
      g.length === regions.length &&
      g.every((r, i) => {
        const o = regions[i]!;
        return o.id === r.id && o.left === r.left && o.top === r.top && o.size === r.size;
      })
    );
  });
}
