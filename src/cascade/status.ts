/**
 * The cascade's progress as the daemon last recorded it in the store, for
 * `cascaded cascade status` (another process than the daemon) and, later,
 * the REST API.
 */
import type { Plan } from '../planner/index.js';
import type { LinkStateRecord, Store } from '../store/index.js';
import { CascadeError } from './errors.js';
import type { LinkStateName } from './reconcile.js';

export interface SessionStatus {
  readonly sessionId: string;
  readonly title: string;
  /** live, ending or ended. */
  readonly state: string;
  readonly root: string;
  readonly planVersion: number;
  readonly selection: string | null;
  readonly counts: Readonly<Record<LinkStateName, number>>;
  /** Every link of the plan, as last observed (a link the daemon has not reported yet is `planned`). */
  readonly links: readonly LinkStateRecord[];
}

/** Every live session's status, or one session's (CASCADE_ERR_NOT_FOUND when unknown). */
export async function cascadeStatus(store: Store, sessionId?: string): Promise<SessionStatus[]> {
  const heads =
    sessionId === undefined
      ? await store.listCascades()
      : (await store.listCascades({ states: ['live', 'ending', 'ended'], limit: 10_000 })).filter(
          (h) => h.sessionId === sessionId,
        );
  if (sessionId !== undefined && heads.length === 0)
    throw new CascadeError('CASCADE_ERR_NOT_FOUND', `no session ${sessionId}`);
  const out: SessionStatus[] = [];
  for (const h of heads) {
    const rows = await store.listLinkStates(h.sessionId);
    // Every MCU of the plan but the root has a link: when rows are missing, the plan says which.
    let links: LinkStateRecord[] = rows;
    if (rows.length < Object.keys(h.usage).length - 1) {
      const plan = (await store.getCascade(h.sessionId))?.plan as Plan | undefined;
      const known = new Set(rows.map((r) => r.child));
      const missing = Object.entries(plan?.links ?? {})
        .filter(([child]) => !known.has(child))
        .map(([child, parent]) => ({ child, parent, state: 'planned', detail: null, since: h.createdAt, attempts: 0 }));
      links = [...rows, ...missing].sort((a, b) => (a.child < b.child ? -1 : a.child > b.child ? 1 : 0));
    }
    const counts: Record<LinkStateName, number> = { planned: 0, dialing: 0, up: 0, failed: 0 };
    for (const l of links) if (l.state in counts) counts[l.state as LinkStateName]++;
    out.push({
      sessionId: h.sessionId,
      title: h.title,
      state: h.state,
      root: h.root,
      planVersion: h.planVersion,
      selection: h.selection,
      counts,
      links,
    });
  }
  return out;
}
