/** Middleware for the router: `type Middleware = (next: Handler) => Handler`. */
export { EventBusyError, type IdempotencyOptions, idempotency } from './idempotency.js';
export { logging } from './logging.js';
export { timeout } from './timeout.js';
