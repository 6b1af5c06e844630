export type { ApiErrorCode } from './errors.js';
export { API_ERRORS, ApiError } from './errors.js';
export type { ApiServer, ApiServerOptions, ReadinessCheck, ReadinessResult } from './server.js';
export { startApiServer } from './server.js';
export type { TlsMaterial } from './tls.js';
export { loadOrCreateCertificate } from './tls.js';
