import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { BackendUnavailableError, describeCause } from '../../errors/index.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { SCHEMA, SCHEMA_VERSION } from './schema.js';

type Statement = SqliteDatabase.Statement;

/** Options of {@link SqliteBusDatabase}. */
export interface SqliteBusDatabaseOptions {
  /**
   * `NORMAL`: with WAL, a commit survives a crash of the process (what at-least-once needs) but the
   * last transactions may be lost on a power cut or kernel panic. `FULL` also survives those, at
   * the price of an fsync per commit. @defaultValue `NORMAL`
   */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * WAL pages after which a commit copies the log back into the database file (a checkpoint, with an
   * fsync of each file under either `synchronous` setting). Every ack and marker rewrites a few
   * pages, so SQLite's default of 1000 means dozens of fsyncs a second under load; fewer, larger
   * checkpoints keep the event loop free. The WAL file is truncated back to 64 MiB after each.
   * @defaultValue 10000 (about 40 MiB)
   */
  walAutocheckpointPages?: number;
  /** How long a writer waits for another process' write lock before failing (SQLITE_BUSY). @defaultValue 5000 */
  busyTimeoutMs?: number;
  /**
   * How often the file is checked for entries written by other processes (other connections), in
   * ms. Entries written through this connection wake subscriptions at once. @defaultValue 100
   */
  pollIntervalMs?: number;
  logger?: Logger;
}

/** Where a stream is registered for subscribers to discover it. */
export type StreamRegistration =
  /** The stream of an event type (the publisher's registry). */
  | { prefix: string; type: string }
  /** The dead-letter stream of a consumer group (read by the dead-letter recorder). */
  | { prefix: string; deadLetterGroup: string };

/** An entry to append: stream key and flat fields, and how to register the stream if it is new. */
export interface EntryToAppend {
  stream: string;
  fields: Record<string, string>;
  registry?: StreamRegistration;
}

/** Where an appended entry went. */
export interface AppendedEntry {
  stream: string;
  seq: number;
  entryId: string;
}

interface QueuedWrite {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * One connection to the embedded bus file, shared by the publisher, subscriber and idempotency store
 * of an {@link openSqliteBus} instance. better-sqlite3 is synchronous, so every method runs to
 * completion without interleaving; transactions are kept short and handlers never run inside one.
 *
 * Two things make it fast without a busy loop:
 * - small writes (acks, idempotency markers, single publishes) issued in the same event-loop tick
 *   are committed together in one transaction ({@link write});
 * - an in-process notifier: appends through this connection wake the subscriptions at once, and a
 *   cheap poll (`PRAGMA data_version`) notices what other processes wrote.
 */
export class SqliteBusDatabase {
  readonly path: string;
  readonly db: SqliteDatabase.Database;
  readonly synchronous: 'NORMAL' | 'FULL';
  /** Highest entry seq known to exist (committed). Subscriptions read when it passes their cursor. */
  latestSeq = 0;
  /** Changes when event streams are registered, so pattern subscriptions look for new streams. */
  registryVersion = 0;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly statements = new Map<string, Statement>();
  private readonly listeners = new Set<() => void>();
  private readonly inTransaction: SqliteDatabase.Transaction<(fn: () => unknown) => unknown>;
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private dataVersion = 0;
  private registryCount = 0;
  /** Highest seq appended by the transaction in progress; published to listeners after commit. */
  private appendedSeq = 0;
  private registryChanged = false;
  /** Event streams known to be registered in the file (registration is idempotent but not free). */
  private readonly registered = new Set<string>();
  /** Registered by the transaction in progress; known only once it commits. */
  private pendingRegistrations: string[] = [];
  private closed = false;

  private constructor(path: string, db: SqliteDatabase.Database, options: SqliteBusDatabaseOptions) {
    this.path = path;
    this.db = db;
    this.synchronous = options.synchronous ?? 'NORMAL';
    this.logger = options.logger ?? silentLogger();
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.inTransaction = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Opens (creating when missing) the bus file and its schema. Throws {@link BackendUnavailableError}
   * naming the path when the file cannot be opened or was written by a newer schema.
   */
  static open(path: string, options: SqliteBusDatabaseOptions = {}): SqliteBusDatabase {
    validateOptions(options);
    const file = path === ':memory:' ? path : resolve(path);
    let db: SqliteDatabase.Database | undefined;
    try {
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      db = new SqliteDatabase(file);
      // busy_timeout first: switching to WAL and creating tables wait for other processes' locks.
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (file !== ':memory:' && String(mode).toLowerCase() !== 'wal') {
        throw new Error(`the file system does not support WAL mode (journal_mode is ${mode})`);
      }
      db.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`);
      db.pragma(`wal_autocheckpoint = ${options.walAutocheckpointPages ?? 10_000}`);
      db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      const database = new SqliteBusDatabase(file, db, options);
      database.createSchema();
      return database;
    } catch (cause) {
      db?.close();
      if (cause instanceof BackendUnavailableError) throw cause;
      throw new BackendUnavailableError(
        `cannot open the embedded event bus at ${file}: ${describeCause(cause)}`,
        { cause },
      );
    }
  }

  private createSchema(): void {
    this.immediate(() => {
      this.db.exec(SCHEMA);
      const version = this.scalar('SELECT value FROM bus_meta WHERE key = ?').get('schema_version') as
        | string
        | undefined;
      if (version !== undefined && Number(version) > SCHEMA_VERSION) {
        throw new BackendUnavailableError(
          `the embedded event bus at ${this.path} has schema version ${version}; this Materi knows ${SCHEMA_VERSION} — upgrade Materi`,
        );
      }
      this.statement('INSERT OR REPLACE INTO bus_meta (key, value) VALUES (?, ?)').run(
        'schema_version',
        String(SCHEMA_VERSION),
      );
    });
    this.latestSeq = this.currentSeq();
    this.registryCount = this.countRegistry();
    this.dataVersion = this.db.pragma('data_version', { simple: true }) as number;
  }

  /** A prepared statement, prepared once per connection. */
  statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** A prepared statement that returns the first column of its rows (better-sqlite3's pluck mode). */
  scalar(sql: string): Statement {
    const key = `\u0001${sql}`;
    let statement = this.statements.get(key);
    if (!statement) {
      statement = this.db.prepare(sql).pluck();
      this.statements.set(key, statement);
    }
    return statement;
  }

  /**
   * Runs `fn` now in a write transaction (`BEGIN IMMEDIATE`: the write lock is taken up front, so
   * two processes never deadlock upgrading a read). Inside another transaction it becomes a
   * savepoint: all of `fn` or nothing. Listeners hear of appended entries after the commit.
   */
  immediate<T>(fn: () => T): T {
    const nested = this.db.inTransaction;
    const appendedBefore = this.appendedSeq;
    const registrationsBefore = this.pendingRegistrations.length;
    const registryChangedBefore = this.registryChanged;
    let result: T;
    try {
      result = (nested ? this.inTransaction(fn) : this.inTransaction.immediate(fn)) as T;
    } catch (error) {
      // Rolled back: forget what it appended. A rolled-back seq is handed out again, so announcing
      // it would make subscriptions believe they had already seen the next real entry.
      this.appendedSeq = appendedBefore;
      this.pendingRegistrations.length = registrationsBefore;
      this.registryChanged = registryChangedBefore;
      throw error;
    }
    if (!nested) this.afterCommit();
    return result;
  }

  /**
   * Queues a small synchronous write; every write queued in the same event-loop tick is committed
   * in one transaction (a group commit), which is what makes per-message acks and idempotency
   * markers cheap. Resolves with `op`'s result once committed; rejects with its error (the other
   * writes still commit) or with the transaction's. An `op` that writes more than once must wrap
   * its statements in {@link immediate} so that it applies whole or not at all.
   */
  write<T>(op: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`the embedded event bus at ${this.path} is closed`));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushWrites());
      }
    });
  }

  /** Resolves when every write queued so far is committed. */
  async flush(): Promise<void> {
    if (this.queue.length === 0) return;
    await this.write(() => undefined).catch(() => {});
  }

  private flushWrites(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const outcomes: { ok: boolean; value: unknown }[] = new Array(batch.length);
    try {
      this.immediate(() => {
        for (let i = 0; i < batch.length; i++) {
          try {
            outcomes[i] = { ok: true, value: batch[i]!.op() };
          } catch (error) {
            // SQLite rolls the whole transaction back by itself on some errors (disk full, I/O);
            // the writes after it must not run outside a transaction, so the batch fails as one.
            if (!this.db.inTransaction) throw error;
            outcomes[i] = { ok: false, value: error };
          }
        }
      });
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i]!;
      if (outcome.ok) batch[i]!.resolve(outcome.value);
      else batch[i]!.reject(outcome.value);
    }
  }

  /**
   * Appends entries with Redis-like ids (`<ms>-<n>`, increasing within each stream even when the
   * clock steps back). Must run inside a transaction ({@link immediate} or {@link write}).
   */
  append(entries: readonly EntryToAppend[]): AppendedEntry[] {
    const now = Date.now();
    const perStream = new Map<string, { count: number; next: number; ms: number }>();
    for (const entry of entries) {
      const known = perStream.get(entry.stream);
      if (known) known.count++;
      else perStream.set(entry.stream, { count: 1, next: 0, ms: 0 });
      if (entry.registry) this.register(entry.stream, entry.registry, now);
    }
    // One UPDATE … RETURNING per stream reserves the ids of the whole batch; the SET expressions all
    // see the old row, so last_n is computed from the old last_ms.
    const reserve = this.statement(
      `UPDATE bus_streams
          SET last_n = CASE WHEN @now > last_ms THEN @count - 1 ELSE last_n + @count END,
              last_ms = max(last_ms, @now)
        WHERE stream = @stream
        RETURNING last_ms, last_n`,
    );
    const create = this.statement(
      'INSERT OR IGNORE INTO bus_streams (stream, last_ms, last_n, created_ms) VALUES (?, -1, -1, ?)',
    );
    for (const [stream, state] of perStream) {
      let row = reserve.get({ now, count: state.count, stream }) as
        | { last_ms: number; last_n: number }
        | undefined;
      if (!row) {
        create.run(stream, now);
        row = reserve.get({ now, count: state.count, stream }) as { last_ms: number; last_n: number };
      }
      state.ms = row.last_ms;
      state.next = row.last_n - state.count + 1;
    }
    const insert = this.statement(
      'INSERT INTO bus_entries (stream, entry_id, fields, created_ms) VALUES (?, ?, ?, ?)',
    );
    const appended: AppendedEntry[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const state = perStream.get(entry.stream)!;
      const entryId = `${state.ms}-${state.next++}`;
      const seq = Number(
        insert.run(entry.stream, entryId, JSON.stringify(entry.fields), state.ms).lastInsertRowid,
      );
      appended[i] = { stream: entry.stream, seq, entryId };
      if (seq > this.appendedSeq) this.appendedSeq = seq;
    }
    return appended;
  }

  private register(stream: string, registration: StreamRegistration, now: number): void {
    if (this.registered.has(stream)) return;
    const type = 'type' in registration ? registration.type : null;
    const deadLetterGroup = 'deadLetterGroup' in registration ? registration.deadLetterGroup : null;
    const changes = this.statement(
      `INSERT INTO bus_streams (stream, prefix, type, dead_letter_group, last_ms, last_n, created_ms)
       VALUES (?, ?, ?, ?, -1, -1, ?)
       ON CONFLICT (stream) DO UPDATE SET prefix = excluded.prefix,
         type = coalesce(bus_streams.type, excluded.type),
         dead_letter_group = coalesce(bus_streams.dead_letter_group, excluded.dead_letter_group)
       WHERE (bus_streams.type IS NULL AND excluded.type IS NOT NULL)
          OR (bus_streams.dead_letter_group IS NULL AND excluded.dead_letter_group IS NOT NULL)`,
    ).run(stream, registration.prefix, type, deadLetterGroup, now).changes;
    if (changes > 0) this.registryChanged = true;
    this.pendingRegistrations.push(stream);
  }

  private afterCommit(): void {
    for (const stream of this.pendingRegistrations) this.registered.add(stream);
    this.pendingRegistrations = [];
    let notify = false;
    if (this.appendedSeq > this.latestSeq) {
      this.latestSeq = this.appendedSeq;
      notify = true;
    }
    this.appendedSeq = 0;
    if (this.registryChanged) {
      this.registryChanged = false;
      this.registryCount = this.countRegistry();
      this.registryVersion++;
      notify = true;
    }
    if (notify) this.notify();
  }

  /** The highest seq ever handed out (entries may have been trimmed since). */
  currentSeq(): number {
    return (
      (this.scalar("SELECT seq FROM sqlite_sequence WHERE name = 'bus_entries'").get() as
        | number
        | undefined) ?? 0
    );
  }

  private countRegistry(): number {
    return this.scalar(
      'SELECT count(*) FROM bus_streams WHERE type IS NOT NULL OR dead_letter_group IS NOT NULL',
    ).get() as number;
  }

  /**
   * Calls `listener` whenever new entries or newly registered streams may be there. While anyone
   * listens, the file is polled every `pollIntervalMs` for writes of other processes. Returns the
   * function that stops listening.
   */
  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.pollTimer && !this.closed) {
      this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
      this.pollTimer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.pollTimer) {
        clearInterval(this.pollTimer);
        this.pollTimer = undefined;
      }
    };
  }

  /**
   * `PRAGMA data_version` changes only when another connection committed, so an idle poll costs one
   * pragma and no table access.
   */
  private poll(): void {
    if (this.closed) return;
    try {
      const version = this.db.pragma('data_version', { simple: true }) as number;
      if (version === this.dataVersion) return;
      this.dataVersion = version;
      let notify = false;
      const seq = this.currentSeq();
      if (seq > this.latestSeq) {
        this.latestSeq = seq;
        notify = true;
      }
      const registered = this.countRegistry();
      if (registered !== this.registryCount) {
        this.registryCount = registered;
        this.registryVersion++;
        notify = true;
      }
      if (notify) this.notify();
    } catch (error) {
      this.logger.warn({ err: error, path: this.path }, 'polling the embedded event bus failed');
    }
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Commits queued writes and closes the connection. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.listeners.clear();
    this.db.close();
  }
}

function validateOptions(options: SqliteBusDatabaseOptions): void {
  if (options.synchronous !== undefined && !['NORMAL', 'FULL'].includes(options.synchronous)) {
    throw new RangeError(`synchronous must be NORMAL or FULL, got ${String(options.synchronous)}`);
  }
  for (const name of ['busyTimeoutMs', 'pollIntervalMs', 'walAutocheckpointPages'] as const) {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
  }
}

/**
 * Entry fields as stored. A row someone wrote by hand that is not a JSON object of strings comes
 * back as `{ raw: <text> }`, so it is dead-lettered as undecodable instead of stopping the reader.
 */
export function parseFields(text: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { raw: text };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { raw: text };
  const fields = parsed as Record<string, unknown>;
  for (const key in fields) {
    const value = fields[key];
    if (typeof value !== 'string')
      fields[key] = typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return fields as Record<string, string>;
}
