/**
 * Shield: the projection of every event into deployment records and an event log, history, the
 * HTTP API with live updates over SSE, and the web dashboard. See docs/shield.md.
 *
 * @module
 */

export {
  type EmbeddedStreams,
  type EventStreamReader,
  embeddedStreamReader,
  redisStreamReader,
  type StreamEntry,
  streamReaderFor,
} from '../bus/stream-reader.js';
export { DASHBOARD_CSP, defaultWebRoot } from './api/dashboard.js';
export { registerShieldRoutes, registerWorkersRoute, type ShieldRoutesOptions } from './api/routes.js';
export { registerShieldCommands } from './cli.js';
export { type EventOrigin, type LoggedEvent, payloadOf } from './event-log.js';
export {
  createShieldProjection,
  SHIELD_GROUP,
  type ShieldChangeListener,
  ShieldFeed,
  type ShieldProjectionOptions,
  type ShieldRegistrationOptions,
  shieldProjectionRegistration,
} from './projection.js';
export {
  type RebuildShieldOptions,
  type RebuildShieldResult,
  rebuildShield,
  recomputeShieldRecords,
} from './rebuild.js';
export * from './record.js';
export { shieldMigrations } from './store/migrations.js';
export type { ShieldTables } from './store/schema.js';
export {
  type AppliedEvent,
  type DeploymentFilter,
  type EventFilter,
  type Page,
  ShieldStore,
  type ShieldStoreOptions,
} from './store/shield-store.js';
