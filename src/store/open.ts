import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { type Dialect, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { BackendUnavailableError, ConfigError, describeCause } from '../errors/index.js';
import { type Logger, redactUrl } from '../runtime/logging.js';
import { runMigrations, type StoreDialect, type StoreMigration } from './migrate.js';
import { MIGRATIONS } from './migrations/index.js';
import type { Database } from './schema.js';
import { cachingStatements, StoreSqliteDialect } from './sqlite-dialect.js';

/** The file name of the SQLite database inside the data dir. */
export const SQLITE_FILE_NAME = 'materi.db';

/** An open database with its schema migrated to the latest version. */
export interface Store {
  /** The query builder; every table of {@link Database} exists. */
  readonly db: Kysely<Database>;
  readonly dialect: StoreDialect;
  /** Where the data is, safe to log: the PostgreSQL URL without credentials, or the SQLite file path. */
  describe(): string;
  /**
   * Runs the migrations the database has not run yet and returns their names (empty when the
   * schema is current). {@link openStore} has already called it once.
   */
  migrate(): Promise<string[]>;
  /** Closes the connections (the pool, or the SQLite file). Safe to call twice. */
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /**
   * `postgres://` or `postgresql://` URL (the setting `MATERI_DATABASE_URL`). When absent, the store
   * is a SQLite file under {@link OpenStoreOptions.dataDir}.
   */
  databaseUrl?: string;
  /** Directory of the SQLite file, created when missing (the setting `MATERI_DATA_DIR`). */
  dataDir: string;
  logger: Logger;
  /** @defaultValue {@link MIGRATIONS}, the registry in `src/store/migrations/index.ts` */
  migrations?: readonly StoreMigration[];
  /** How long SQLite waits for another writer's lock before failing with SQLITE_BUSY. @defaultValue 5000 */
  busyTimeoutMs?: number;
  /** Most PostgreSQL connections the pool opens. @defaultValue 10 */
  poolSize?: number;
  /** How long connecting to PostgreSQL may take. @defaultValue 5000 */
  connectTimeoutMs?: number;
}

/** PostgreSQL's type id of `bigint` (int8). */
const INT8_OID = 20;

/**
 * Opens the store the options select — PostgreSQL when `databaseUrl` is given, else the SQLite file
 * `<dataDir>/materi.db` — checks that it answers, and migrates it to the latest schema. Throws
 * {@link ConfigError} for an unusable URL and {@link BackendUnavailableError} when the database cannot
 * be reached or a migration fails; neither message carries a password.
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const databaseUrl = options.databaseUrl?.trim() || undefined;
  const opened = databaseUrl ? await openPostgres(databaseUrl, options) : await openSqlite(options);
  const migrations = options.migrations ?? MIGRATIONS;
  let closed = false;
  const store: Store = {
    db: opened.db,
    dialect: opened.dialect,
    describe: () => opened.description,
    async migrate() {
      const applied = await opened.serialize(() =>
        runMigrations(opened.db, migrations, { dialect: opened.dialect, description: opened.description }),
      );
      if (applied.length > 0) {
        options.logger.info({ store: opened.description, migrations: applied }, 'store migrated');
      }
      return applied;
    },
    async close() {
      if (closed) return;
      closed = true;
      await opened.db.destroy();
    },
  };
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

interface OpenedDatabase {
  db: Kysely<Database>;
  dialect: StoreDialect;
  description: string;
  /** Runs migrations one at a time per database within this process (see `sqliteMigrationQueue`). */
  serialize<T>(work: () => Promise<T>): Promise<T>;
}

async function openPostgres(url: string, options: OpenStoreOptions): Promise<OpenedDatabase> {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new ConfigError(
      `MATERI_DATABASE_URL: must start with postgres:// or postgresql:// (got "${redactUrl(url)}")`,
    );
  }
  const description = redactUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    application_name: 'materi',
    // Timestamps (epoch ms) and counts are `bigint`; read them as numbers, as SQLite does.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary'
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that loses its connection emits 'error' on the pool; unhandled, it would end
  // the process. The next query opens a fresh connection.
  pool.on('error', (error) => {
    options.logger.warn({ store: description, err: describeCause(error) }, 'idle database connection lost');
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) as Dialect });
  try {
    await sql`select 1`.execute(db);
  } catch (cause) {
    await db.destroy().catch(() => undefined);
    throw new BackendUnavailableError(`cannot reach PostgreSQL at ${description}: ${describeCause(cause)}`, {
      cause,
    });
  }
  return { db, dialect: 'postgres', description, serialize: (work) => work() };
}

async function openSqlite(options: OpenStoreOptions): Promise<OpenedDatabase> {
  const file = path.resolve(options.dataDir, SQLITE_FILE_NAME);
  const busyTimeoutMs = Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000));
  let database: SqliteDatabase.Database | undefined;
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    database = new SqliteDatabase(file, { timeout: busyTimeoutMs });
    await configureSqlite(database, busyTimeoutMs);
  } catch (cause) {
    database?.close();
    throw new BackendUnavailableError(`cannot open SQLite database ${file}: ${describeCause(cause)}`, {
      cause,
    });
  }
  const db = new Kysely<Database>({
    dialect: new StoreSqliteDialect({ database: cachingStatements(database) }),
  });
  return {
    db,
    dialect: 'sqlite',
    description: file,
    serialize: (work) => sqliteMigrationQueue(file, work),
  };
}

const PRAGMAS = [
  'journal_mode = WAL',
  // WAL makes NORMAL durable against application crashes; only a power loss may drop the last commits.
  'synchronous = NORMAL',
  'foreign_keys = ON',
];

/**
 * Sets the connection's pragmas. Two processes turning a new file to WAL at the same moment can get
 * SQLITE_BUSY without the busy timeout being consulted (SQLite refuses to wait where waiting could
 * deadlock), so busy answers are retried here until the busy timeout has passed.
 */
async function configureSqlite(database: SqliteDatabase.Database, busyTimeoutMs: number): Promise<void> {
  database.pragma(`busy_timeout = ${busyTimeoutMs}`);
  const deadline = Date.now() + busyTimeoutMs;
  for (const pragma of PRAGMAS) {
    for (;;) {
      try {
        database.pragma(pragma);
        break;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        const busy = typeof code === 'string' && code.startsWith('SQLITE_BUSY');
        if (!busy || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
      }
    }
  }
}

const sqliteMigrations = new Map<string, Promise<unknown>>();

/**
 * better-sqlite3 waits for a lock synchronously, blocking the event loop. Two stores on the same
 * file in one process would deadlock until the busy timeout: the waiting one blocks the thread the
 * lock holder needs to finish. So migrations of one file run one after another within a process;
 * across processes the busy timeout does the waiting.
 */
function sqliteMigrationQueue<T>(file: string, work: () => Promise<T>): Promise<T> {
  const previous = sqliteMigrations.get(file) ?? Promise.resolve();
  const next = previous.then(work, work);
  const settled = next.catch(() => undefined);
  sqliteMigrations.set(file, settled);
  void settled.then(() => {
    if (sqliteMigrations.get(file) === settled) sqliteMigrations.delete(file);
  });
  return next;
}
