export type { AuditRowContent } from './audit-chain.js';
export { AUDIT_GENESIS, auditRowHash } from './audit-chain.js';
export type { StoreErrorCode } from './errors.js';
export { STORE_ERRORS, StoreError } from './errors.js';
export type { Migration } from './migrations.js';
export { MIGRATIONS } from './migrations.js';
export type { SqliteStoreOptions } from './sqlite.js';
export { openSqliteStore } from './sqlite.js';
export type * from './types.js';
