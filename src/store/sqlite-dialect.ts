import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  SqliteAdapter,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  type SqliteStatement,
} from 'kysely';

/**
 * Opens transactions with `BEGIN IMMEDIATE`. A plain `BEGIN` takes the write lock only at the first
 * write; in WAL mode a transaction that read first and then finds another writer has committed
 * fails with SQLITE_BUSY at once, without waiting on the busy timeout. Taking the lock up front
 * makes concurrent writers (two processes migrating at start, two projectors) wait their turn.
 */
class ImmediateTransactionSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/** SQLite runs DDL inside transactions, so a migration that fails leaves no half-made schema. */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/** Kysely's SQLite dialect with immediate transactions and transactional migrations. */
export class StoreSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateTransactionSqliteDriver(this.#config);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/**
 * The database with a cache of prepared statements: Kysely's SQLite driver prepares every query
 * again, which costs more than running most of the store's queries. Compiled queries repeat
 * (values are parameters), so the most recent `size` statements are kept, least recently used
 * dropped first. better-sqlite3 prepares a statement again by itself after a schema change.
 * Kysely's `stream()` would iterate a statement while another query reuses it; the store never
 * streams (use a database without the cache for that).
 */
export function cachingStatements(database: SqliteDatabase, size = 500): SqliteDatabase {
  const statements = new Map<string, SqliteStatement>();
  return {
    close: () => {
      statements.clear();
      database.close();
    },
    prepare(sql) {
      let statement = statements.get(sql);
      if (statement) statements.delete(sql);
      else {
        statement = database.prepare(sql);
        if (statements.size >= size) statements.delete(statements.keys().next().value!);
      }
      statements.set(sql, statement);
      return statement;
    },
  };
}
