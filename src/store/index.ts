/**
 * The store: one Kysely interface over PostgreSQL (`MATERI_DATABASE_URL`) or a SQLite file under
 * `MATERI_DATA_DIR`, migrated at open, and the repositories on it. See docs/storage.md.
 *
 * @module
 */
export {
  type DeadLetterRecord,
  type FailedEvent,
  FailedEventStore,
  type FailedEventStoreOptions,
  failedEventId,
  type ListFailedEventsOptions,
  type PurgeFailedEventsOptions,
} from './failed-events.js';
export {
  checkMigrationList,
  type MigrationContext,
  type StoreDialect,
  type StoreMigration,
} from './migrate.js';
export { MIGRATIONS } from './migrations/index.js';
export { type OpenStoreOptions, openStore, SQLITE_FILE_NAME, type Store } from './open.js';
export type { Database, EpochMs, FailedEventStatus, FailedEventsTable } from './schema.js';
