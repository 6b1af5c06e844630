/**
 * What the planner's tests and its benchmark share, written independently of
 * the planner: the exhaustive and ILP oracles and the seeded generator of
 * national-scale instances. Nothing in src/ imports it (`highs` is a dev
 * dependency).
 */
export type { Held, OracleObjective } from './exhaustive.js';
export { compareObjectives, exhaustive, sessionMembers } from './exhaustive.js';
export type { IlpResult } from './ilp.js';
export { cpuMs, ilpOptimum } from './ilp.js';
export type { NationalInstance, NationalOptions } from './national.js';
export { fingerprint, nationalInstance, VERDICT_OPTIONS } from './national.js';
