/**
 * The HTTP server shared by the orchestrator and Shield: auth, errors, health, metrics, OpenAPI.
 *
 * @module
 */
export {
  type Access,
  type AuthMode,
  type AuthSettings,
  actorOf,
  assertAdmin,
  assertEnvironment,
  ForbiddenError,
  type RouteAccess,
  UnauthorizedError,
} from './auth.js';
export { type ApiServerOptions, createApiServer } from './server.js';
export { SESSION_COOKIE } from './session.js';
export {
  generateTokenSecret,
  type Identity,
  parseTokensFile,
  ROLES,
  type Role,
  sha256Hex,
  TOKEN_NAME_PATTERN,
  type TokenEntry,
} from './tokens.js';
