import type { ContentType } from '../../events/envelope.js';
import { DEFAULT_STREAM_PREFIX, replayStreamKey } from '../../events/streams.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import type { TrimOptions, TrimResult } from '../types.js';
import { SqliteBusDatabase, type SqliteBusDatabaseOptions } from './database.js';
import { SqliteIdempotencyStore } from './idempotency.js';
import {
  type ConsumerInfo,
  consumerInfo,
  type GroupInfo,
  groupInfo,
  type PendingEntry,
  pendingCount,
  pendingEntries,
  type RangeOptions,
  readRange,
  type StoredEntry,
  type StreamInfo,
  streamInfo,
  trimStream,
} from './inspect.js';
import { SqliteInspector } from './inspector.js';
import { SqlitePublisher } from './publisher.js';
import { SqliteSubscriber, type SqliteSubscriberOptions } from './subscriber.js';

/** Options of {@link openSqliteBus}. */
export interface SqliteBusOptions extends SqliteBusDatabaseOptions {
  /** Stream prefix (`MATERI_STREAM_PREFIX`). @defaultValue `materi:events:deployment` */
  prefix?: string;
  /** `source` of events the publisher writes, e.g. `materi/cli`. @defaultValue `materi` */
  source?: string;
  /** @defaultValue `application/json` */
  contentType?: ContentType;
  logger?: Logger;
  /** How long the idempotency store remembers a handled event id. @defaultValue 7 days */
  idempotencyWindowMs?: number;
  /** How often processes beat (see `startHeartbeat`); a consumer is dead after 3 missed beats. @defaultValue 5000 */
  heartbeatIntervalMs?: number;
  /** Defaults of the subscribers made by {@link SqliteBus.subscriber}. */
  subscriber?: Omit<SqliteSubscriberOptions, 'database' | 'prefix' | 'logger'>;
}

/**
 * The embedded event bus: one SQLite file (WAL) that several processes of one machine may share.
 * Everything shares one connection; entries published through it wake its subscriptions at once,
 * entries of other processes are noticed by a poll every `pollIntervalMs`.
 */
export class SqliteBus {
  readonly kind = 'embedded' as const;
  readonly prefix: string;
  readonly database: SqliteBusDatabase;
  readonly publisher: SqlitePublisher;
  readonly idempotency: SqliteIdempotencyStore;
  /** Group, consumer and heartbeat state for `materi workers`, alerts and metrics. */
  readonly inspector: SqliteInspector;
  private readonly logger: Logger;
  private readonly subscriberDefaults: SqliteBusOptions['subscriber'];
  private readonly subscribers = new Set<SqliteSubscriber>();

  /** Use {@link openSqliteBus}. */
  constructor(database: SqliteBusDatabase, options: SqliteBusOptions = {}) {
    this.database = database;
    this.prefix = options.prefix ?? DEFAULT_STREAM_PREFIX;
    this.logger = options.logger ?? silentLogger();
    this.subscriberDefaults = options.subscriber;
    this.publisher = new SqlitePublisher({
      database,
      prefix: this.prefix,
      source: options.source,
      contentType: options.contentType,
      logger: this.logger,
    });
    this.idempotency = new SqliteIdempotencyStore({ database, windowMs: options.idempotencyWindowMs });
    this.inspector = new SqliteInspector({
      database,
      prefix: this.prefix,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
    });
  }

  /** The file, safe to log. */
  get path(): string {
    return this.database.path;
  }

  describe(): string {
    return `sqlite:${this.database.path}`;
  }

  /** A subscriber on this bus' connection; closed with the bus. */
  subscriber(options: Omit<SqliteSubscriberOptions, 'database' | 'prefix'> = {}): SqliteSubscriber {
    const subscriber = new SqliteSubscriber({
      logger: this.logger,
      ...this.subscriberDefaults,
      ...options,
      database: this.database,
      prefix: this.prefix,
    });
    this.subscribers.add(subscriber);
    return subscriber;
  }

  /** Consumer groups with their pending entries and lag (entries not yet delivered). */
  groups(filter: { stream?: string; group?: string } = {}): GroupInfo[] {
    return groupInfo(this.database, filter);
  }

  /** Consumers of a group with their pending entries and idle time. */
  consumers(group: string): ConsumerInfo[] {
    return consumerInfo(this.database, group);
  }

  /** Pending entries of a group, oldest first. */
  pending(options: { group: string; stream?: string; consumer?: string; limit?: number }): PendingEntry[] {
    return pendingEntries(this.database, options);
  }

  /** How many entries of a stream a group has not acknowledged. */
  pendingCount(stream: string, group: string): number {
    return pendingCount(this.database, stream, group);
  }

  /** Entries of a stream (any key: an event stream, `<prefix>:dlq:<group>`, `<prefix>:replay:<group>`). */
  range(stream: string, options?: RangeOptions): StoredEntry[] {
    return readRange(this.database, stream, options);
  }

  /** Streams in the file (only the event streams registered under `prefix`, when given). */
  streams(prefix?: string): StreamInfo[] {
    return streamInfo(this.database, prefix);
  }

  /**
   * Appends raw fields to any stream, as a third party would (no validation, no registration),
   * e.g. a replay to `<prefix>:replay:<group>`. Resolves with the entry id once committed.
   */
  async append(stream: string, fields: Record<string, string>): Promise<string> {
    const [appended] = await this.database.write(() =>
      this.database.immediate(() => this.database.append([{ stream, fields }])),
    );
    return appended!.entryId;
  }

  /**
   * Delivers a dead-lettered entry again to one group only: appends it to the group's replay stream
   * (`<prefix>:replay:<group>`), naming the original, as a new entry whose deliveries start from one.
   * Resolves with the new entry id.
   */
  replay(
    group: string,
    fields: Record<string, string>,
    original: { stream: string; entryId: string },
  ): Promise<string> {
    return this.append(replayStreamKey(this.prefix, group), {
      ...fields,
      replay_of_stream: original.stream,
      replay_of_entry: original.entryId,
    });
  }

  /** Trims any stream without removing entries a group has not acknowledged. */
  trim(stream: string, options: TrimOptions): Promise<TrimResult> {
    return trimStream(this.database, stream, options);
  }

  /**
   * Closes the subscribers made here (see {@link Subscription.close}), commits pending writes and
   * closes the file. Safe to call twice.
   */
  async close(graceMs?: number): Promise<void> {
    if (this.database.isClosed) return;
    await Promise.all([...this.subscribers].map((s) => s.close(graceMs)));
    await this.database.close();
  }
}

/**
 * Opens the embedded event bus in the SQLite file at `path` (e.g. `.materi/bus.db`; the directory is
 * created), in WAL mode, creating its tables when missing. Throws `BackendUnavailableError` naming
 * the path when the file cannot be opened.
 *
 * @example
 * const bus = await openSqliteBus('.materi/bus.db', { source: 'materi/cli', logger });
 * await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId } });
 * const router = new Router({ subscriber: bus.subscriber(), publisher: bus.publisher, … });
 */
export async function openSqliteBus(path: string, options: SqliteBusOptions = {}): Promise<SqliteBus> {
  const database = SqliteBusDatabase.open(path, options);
  return new SqliteBus(database, options);
}
