/**
 * The embedded event bus on SQLite: the Publisher / Subscriber / IdempotencyStore contracts of the
 * Redis backend, in one WAL file that the processes of one machine share. See docs/backends.md.
 *
 * @module
 */
export {
  type AppendedEntry,
  type EntryToAppend,
  SqliteBusDatabase,
  type SqliteBusDatabaseOptions,
  type StreamRegistration,
} from './database.js';
export { SqliteIdempotencyStore, type SqliteIdempotencyStoreOptions } from './idempotency.js';
export type {
  ConsumerInfo,
  GroupInfo,
  PendingEntry,
  RangeOptions,
  StoredEntry,
  StreamInfo,
} from './inspect.js';
export { SqliteInspector, type SqliteInspectorOptions } from './inspector.js';
export { openSqliteBus, SqliteBus, type SqliteBusOptions } from './open.js';
export { SqlitePublisher, type SqlitePublisherOptions } from './publisher.js';
export { SqliteSubscriber, type SqliteSubscriberOptions } from './subscriber.js';
