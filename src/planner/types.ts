/**
 * The planner's public data: plain, JSON-serialisable objects in and out.
 * Records are keyed by id with keys in sorted order, so the JSON of a plan is
 * stable byte for byte for the same input.
 */

/** Who takes part in a session. */
export interface Session {
  /** Endpoint ids (order and duplicates do not matter). */
  readonly endpoints: readonly string[];
  /** The chair endpoint: placed on the root, added to the session if absent. */
  readonly chair?: string;
  /** The root MCU of the cascade (default: the inventory's master). */
  readonly root?: string;
}

/** Ports and cascade ports of one MCU held by other live sessions. */
export interface HeldCapacity {
  readonly ports?: number;
  readonly cascadePorts?: number;
}

/** Something that tells the time in monotonic milliseconds (core's `Clock` fits). */
export interface PlanClock {
  now(): number;
}

export interface PlanOptions {
  /** MCUs that are down or withdrawn: the plan must not use them. */
  readonly unavailableMcus?: readonly string[];
  /** MCU id -> capacity other live sessions hold there: the plan fits in what is left. */
  readonly reserved?: Readonly<Record<string, HeldCapacity>>;
  /**
   * Time budget in milliseconds (default 5,000 for `plan`, 1,000 for `replan`). When it runs out
   * before the optimum is proven, the best plan found is returned with `optimal: false`.
   */
  readonly budgetMs?: number;
  /** The clock the budget is measured on (default: `performance.now`). */
  readonly clock?: PlanClock;
}

/**
 * A lexicographic lower bound on the objective: no plan compares better. For a re-plan the
 * change counts come right after `maxDepth` (docs/planner.md); `unplaced` (re-plans under a
 * shortage) comes before everything.
 */
export interface ObjectiveBound {
  readonly unplaced?: number;
  readonly maxDepth: number;
  readonly relinkedMcus?: number;
  readonly movedEndpoints?: number;
  readonly atMaxDepth: number;
  readonly depthSum: number;
  readonly preferenceSum: number;
  readonly links: number;
}

/** How much searching a plan took: node and flow counts, and whether a re-plan kept the previous plan. */
export interface SearchStats {
  readonly nodes: number;
  readonly flows: number;
  /** `kept`: the previous plan minus what left was proven optimal; `shallower`: it was offered and beaten. */
  readonly shortcut: 'none' | 'kept' | 'shallower';
  /** Whether the time budget ran out before the search finished. */
  readonly budgetExhausted: boolean;
}

/** The lexicographic objective, most important first (docs/planner.md). */
export interface Objective {
  /** 1. The largest cascade depth of any endpoint (0: on the root). */
  readonly maxDepth: number;
  /** 2a. Endpoints at that depth (relay endpoints included). */
  readonly atMaxDepth: number;
  /** 2b. Sum of the depths of all endpoints. */
  readonly depthSum: number;
  /** 3. Sum over MCU-connected endpoints of the chosen MCU's position in the endpoint's candidate list (0 = first). */
  readonly preferenceSum: number;
  /** 4. Cascade links (used MCUs other than the root). */
  readonly links: number;
  /**
   * 5. The fullest MCU taking part, as used/capacity ports (`used` counts the ports other sessions
   * hold there too): its utilisation is minimised.
   */
  readonly maxUtilisation: { readonly mcu: string; readonly used: number; readonly ports: number };
}

export interface McuUsage {
  readonly id: string;
  /** Parent MCU (null for the root). */
  readonly parent: string | null;
  readonly depth: number;
  /** Endpoints on this MCU, sorted. */
  readonly endpoints: readonly string[];
  /** Child MCUs cascaded into this one, sorted. */
  readonly children: readonly string[];
  /** Ports this session uses (endpoints + child links + the link to the parent), held by other sessions, and the capacity. */
  readonly ports: { readonly used: number; readonly held: number; readonly capacity: number };
  readonly cascadePorts: { readonly used: number; readonly held: number; readonly capacity: number };
}

/** What a re-plan changed relative to the previous plan. */
export interface PlanChanges {
  /** MCUs that kept taking part but now cascade into a different parent, sorted. */
  readonly relinkedMcus: readonly string[];
  /** MCUs that left the cascade (lost, or no longer needed), sorted. */
  readonly droppedMcus: readonly string[];
  /** MCUs newly cascaded, sorted. */
  readonly addedMcus: readonly string[];
  /** Endpoints present before and after that moved to another MCU, sorted. */
  readonly movedEndpoints: readonly string[];
  /**
   * Endpoints that had to leave the session, sorted: none of their candidate MCUs can be reached
   * any more, or the capacity left does not fit everyone (the re-plan places as many as it can);
   * relay endpoints relayed through them leave too. `reasons` says why.
   */
  readonly droppedEndpoints: readonly string[];
  readonly reasons: readonly InfeasibilityReason[];
}

export interface Plan {
  /** The root MCU of the cascade (depth 0), where the chair sits. */
  readonly root: string;
  readonly chair: string | null;
  /** Every endpoint in the session, sorted (including those added for relays and the chair). */
  readonly endpoints: readonly string[];
  /** Endpoints added because a relay endpoint in the session is relayed through them. */
  readonly addedForRelay: readonly string[];
  readonly unavailableMcus: readonly string[];
  /** The capacity other sessions held when this plan was made (MCUs with none left out). */
  readonly reserved: Readonly<Record<string, { readonly ports: number; readonly cascadePorts: number }>>;
  /** MCU-connected endpoint -> its MCU. */
  readonly assignments: Readonly<Record<string, string>>;
  /** Relay endpoint -> the endpoint it is relayed through (it takes no MCU port). */
  readonly relays: Readonly<Record<string, string>>;
  /** Every endpoint -> its cascade depth (0: on the root). */
  readonly depths: Readonly<Record<string, number>>;
  /** The cascade tree: child MCU -> parent MCU. */
  readonly links: Readonly<Record<string, string>>;
  /** MCUs in the plan, the root first, then by depth and id. */
  readonly mcus: readonly McuUsage[];
  /** Available MCUs the plan leaves out, sorted. */
  readonly unusedMcus: readonly string[];
  readonly objective: Objective;
  /** Whether the objective is proven optimal; false when the time budget ran out first. */
  readonly optimal: boolean;
  /** The best proven lower bound (equal to the objective's tiers when optimal). */
  readonly bound: ObjectiveBound;
  readonly search: SearchStats;
  /** Set by `replan`. */
  readonly changes?: PlanChanges;
}

/** A change to a live session, for `replan`. */
export interface SessionChange {
  readonly addEndpoints?: readonly string[];
  readonly removeEndpoints?: readonly string[];
  /** MCUs lost (down): they join the plan's unavailable MCUs. */
  readonly lostMcus?: readonly string[];
  /** MCUs back in service. */
  readonly restoredMcus?: readonly string[];
}

/** One actionable reason in the `details.reasons` of PLAN_ERR_INFEASIBLE. */
export type InfeasibilityReason =
  | {
      /** Every candidate MCU of these endpoints is unavailable or has no cascade path to the root. */
      readonly kind: 'no-reachable-candidate';
      readonly endpoints: readonly string[];
      readonly candidates: readonly { readonly mcu: string; readonly why: 'unavailable' | 'no-path-to-root' }[];
      readonly message: string;
    }
  | {
      /** The session's root MCU is unavailable. */
      readonly kind: 'root-unavailable';
      readonly mcu: string;
      readonly message: string;
    }
  | {
      /** This MCU is a candidate of session endpoints but cannot reach the root through available parents. */
      readonly kind: 'no-path-to-root';
      readonly mcu: string;
      readonly endpoints: readonly string[];
      readonly message: string;
    }
  | {
      /** These MCUs together lack `short` ports for the endpoints (and links) that can only use them. */
      readonly kind: 'ports-short';
      readonly mcus: readonly string[];
      readonly short: number;
      readonly endpoints: readonly string[];
      readonly message: string;
    }
  | {
      /** These MCUs together lack `short` cascade ports for the child MCUs that can only cascade into them. */
      readonly kind: 'cascade-ports-short';
      readonly mcus: readonly string[];
      readonly short: number;
      readonly children: readonly string[];
      readonly message: string;
    }
  | {
      /** Ports and cascade ports suffice in total, but no cascade tree fits them (links use ports at both ends). */
      readonly kind: 'no-tree';
      readonly mcus: readonly string[];
      readonly message: string;
    };
