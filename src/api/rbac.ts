/**
 * Authorisation (Decision 1594 I.5: access rights per operator role) as one
 * pure function: plain data in, a decision out. The routes resolve the target
 * (MCU, endpoint, session) to the operators and provinces it belongs to; this
 * function never looks anything up.
 */
import type { ApiRole } from '../store/index.js';

/** What an operator's token is limited to: one operator (VNPT, Viettel, the central department) or one province. */
export type Scope =
  | { readonly kind: 'operator'; readonly id: string }
  | { readonly kind: 'province'; readonly id: string };

export interface Principal {
  /** Token id or certificate fingerprint: what the audit records as the actor. */
  readonly id: string;
  readonly name: string;
  readonly role: ApiRole;
  readonly scope?: Scope;
  /** The scope is an operator of kind `central` (Cục BĐTW): the chair of a national session is theirs. */
  readonly central: boolean;
  readonly via: 'token' | 'certificate';
}

/**
 * What a route needs: `read` (any role), `plan` (a dry run: any role),
 * `audit` (operators and admins read the audit trail), `command` (change
 * state in the target's scope), `chair` (command a chair: national sessions
 * only for central operators), `admin`.
 */
export type Permission = 'read' | 'plan' | 'audit' | 'command' | 'chair' | 'admin';

/** The operators and provinces a target belongs to, and whether it is a national session's. */
export interface ResourceScope {
  readonly operators: readonly string[];
  readonly provinces: readonly string[];
  readonly national: boolean;
}

export type Decision =
  | { readonly allow: true }
  | { readonly allow: false; readonly code: 'API_ERR_FORBIDDEN' | 'API_ERR_OUT_OF_SCOPE'; readonly reason: string };

const ALLOW: Decision = { allow: true };
const deny = (code: 'API_ERR_FORBIDDEN' | 'API_ERR_OUT_OF_SCOPE', reason: string): Decision => ({
  allow: false,
  code,
  reason,
});

/** Whether `principal` may do what `permission` names on `resource` (undefined: the target is not known yet). */
export function authorize(principal: Principal, permission: Permission, resource?: ResourceScope): Decision {
  if (permission === 'read' || permission === 'plan') return ALLOW;
  if (principal.role === 'admin') return ALLOW;
  if (permission === 'admin') return deny('API_ERR_FORBIDDEN', `role ${principal.role} cannot administer`);
  if (principal.role !== 'operator') return deny('API_ERR_FORBIDDEN', `role ${principal.role} is read-only`);
  if (permission === 'audit') return ALLOW;
  const scope = principal.scope;
  // An operator token without a scope commands nothing: scopes are required at creation, so fail closed.
  if (scope === undefined) return deny('API_ERR_OUT_OF_SCOPE', 'operator token without a scope');
  // Only the route's own checks know the target; without it, let the route resolve it first.
  if (resource === undefined) return ALLOW;
  if (permission === 'chair' && resource.national && !principal.central) {
    return deny('API_ERR_OUT_OF_SCOPE', 'the chair of a national session belongs to central-department operators');
  }
  const mine = scope.kind === 'operator' ? resource.operators : resource.provinces;
  if (mine.includes(scope.id)) return ALLOW;
  return deny('API_ERR_OUT_OF_SCOPE', `target is outside ${scope.kind} ${scope.id}`);
}

/** "operator:vnpt" / "province:quang-binh" to a Scope; undefined when malformed. */
export function parseScope(text: string): Scope | undefined {
  const m = /^(operator|province):([a-z0-9][a-z0-9._-]{0,63})$/.exec(text);
  if (m === null) return undefined;
  return { kind: m[1] as 'operator' | 'province', id: m[2]! };
}

export const formatScope = (s: Scope): string => `${s.kind}:${s.id}`;
