/**
 * The HTTP server shared by the orchestrator and Shield: auth, errors, health, metrics, OpenAPI.
 *
 * @module
 */
export {
  type Access,
  type AuthMode,
  type AuthSettings,
  authMode,
  ForbiddenError,
  UnauthorizedError,
} from './auth.js';
export { type ApiServerOptions, createApiServer } from './server.js';
