export type { ApiContext, ApiEvents, ApiRequestRecord, ApiServerEvents, SessionReports } from './context.js';
export type { ApiErrorCode } from './errors.js';
export { API_ERRORS, ApiError } from './errors.js';
export { RawReply } from './raw.js';
export type { Decision, Permission, Principal, ResourceScope, Scope } from './rbac.js';
export { authorize, formatScope, parseScope } from './rbac.js';
export type { RouteSpec } from './routes.js';
export { ROUTES } from './routes.js';
export type {
  ApiServer,
  ApiServerOptions,
  CertificateIdentity,
  ReadinessCheck,
  ReadinessResult,
} from './server.js';
export { isLoopback, startApiServer } from './server.js';
export type { TlsMaterial } from './tls.js';
export { loadOrCreateCertificate } from './tls.js';
export type { IssuedToken, TokenSpec } from './tokens.js';
export { issueToken, parseDuration, parseToken, TOKEN_ID_RE } from './tokens.js';
