import type { SqlConnection, SqlDialect } from './database.js';

/** Migration tools whose bookkeeping table the validator reads. */
export const MIGRATION_TOOLS = ['knex', 'node-pg-migrate', 'prisma', 'flyway', 'custom'] as const;
export type MigrationTool = (typeof MIGRATION_TOOLS)[number];

/** Bookkeeping table of each tool, as the tool creates it by default. */
export const DEFAULT_MIGRATION_TABLES: Record<Exclude<MigrationTool, 'custom'>, string> = {
  knex: 'knex_migrations',
  'node-pg-migrate': 'pgmigrations',
  prisma: '_prisma_migrations',
  flyway: 'flyway_schema_history',
};

/** One row of a bookkeeping table, in the order the tool applied them. */
export interface MigrationRecord {
  /** The name the tool shows (file name, Prisma folder name, Flyway version). */
  name: string;
  /** Other names that identify it (Flyway: script and description). */
  aliases: string[];
  applied: boolean;
  /** Why the migration counts as failed; undefined when it did not fail. */
  failure?: string;
}

/** What a bookkeeping table says. */
export interface MigrationState {
  records: MigrationRecord[];
  /** A reason the tool is mid-run (a held lock), when there is one. */
  inProgress?: string;
}

/** Thrown when the bookkeeping table is absent. */
export class MissingTableError extends Error {
  constructor(readonly table: string) {
    super(`table ${table} does not exist`);
    this.name = 'MissingTableError';
  }
}

/** Validates a (possibly schema-qualified) table name before it is put in SQL. */
export const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$/;

export function quoteTable(table: string, dialect: SqlDialect): string {
  const quote = dialect === 'postgres' ? '"' : '`';
  return table
    .split('.')
    .map((part) => `${quote}${part}${quote}`)
    .join('.');
}

/**
 * Reads the bookkeeping table of a tool. `table` is the table name (validated with
 * {@link TABLE_NAME}); `query` is the SQL of the `custom` tool. Throws
 * {@link MissingTableError} when the table does not exist.
 */
export async function readMigrationState(
  connection: SqlConnection,
  tool: MigrationTool,
  table: string,
  query?: string,
): Promise<MigrationState> {
  const from = quoteTable(table, connection.dialect);
  const select = (sql: string) => selectOrMissing(connection, sql, table);
  switch (tool) {
    case 'knex': {
      const rows = await select(`SELECT id, name FROM ${from} ORDER BY id`);
      const lockTable = `${table}_lock`;
      // knex holds is_locked = 1 while migrating and releases it even when a migration fails;
      // a lock still held means a migration is running or its process died mid-run.
      const locks = await selectOrMissing(
        connection,
        `SELECT is_locked FROM ${quoteTable(lockTable, connection.dialect)}`,
        lockTable,
      ).catch((error: unknown) => {
        if (error instanceof MissingTableError) return [];
        throw error;
      });
      return {
        records: rows.map((row) => ({ name: String(row.name), aliases: [], applied: true })),
        inProgress: locks.some((row) => truthy(row.is_locked))
          ? `${lockTable} is locked (a migration is running or was interrupted)`
          : undefined,
      };
    }
    case 'node-pg-migrate': {
      const rows = await select(`SELECT id, name FROM ${from} ORDER BY run_on, id`);
      return { records: rows.map((row) => ({ name: String(row.name), aliases: [], applied: true })) };
    }
    case 'prisma': {
      const rows = await select(
        `SELECT migration_name, finished_at, rolled_back_at, logs FROM ${from} ORDER BY started_at, migration_name`,
      );
      return {
        records: rows.map((row) => {
          const finished = row.finished_at !== null && row.finished_at !== undefined;
          const rolledBack = row.rolled_back_at !== null && row.rolled_back_at !== undefined;
          const logs = typeof row.logs === 'string' && row.logs.trim() !== '' ? row.logs : undefined;
          let failure: string | undefined;
          // `prisma migrate resolve --rolled-back` sets rolled_back_at: the failure is resolved.
          if (!finished && !rolledBack) {
            failure = logs ? `failed: ${firstLine(logs)}` : 'started but never finished';
          }
          return { name: String(row.migration_name), aliases: [], applied: finished && !rolledBack, failure };
        }),
      };
    }
    case 'flyway': {
      const rows = await select(
        `SELECT installed_rank, version, description, script, success FROM ${from} ORDER BY installed_rank`,
      );
      return {
        records: rows.map((row) => {
          const version = row.version === null || row.version === undefined ? undefined : String(row.version);
          const description = String(row.description ?? '');
          const script = String(row.script ?? '');
          const ok = truthy(row.success);
          return {
            name: version ?? script,
            aliases: [script, description].filter((alias) => alias !== ''),
            // Repeatable migrations (no version) do not move the schema version.
            applied: ok && version !== undefined,
            failure: ok ? undefined : `failed (${description || script})`,
          };
        }),
      };
    }
    case 'custom': {
      // The query names its own tables; the driver's error says which one is missing.
      const rows = await connection.query(query!);
      return {
        records: rows.map((row, index) => {
          if (row.name === undefined || row.name === null) {
            throw new Error(`custom query row ${index + 1} has no "name" column`);
          }
          const failed = row.failed !== undefined && truthy(row.failed);
          return {
            name: String(row.name),
            aliases: [],
            applied: row.applied === undefined ? !failed : truthy(row.applied),
            failure: failed ? 'failed' : undefined,
          };
        }),
      };
    }
  }
}

async function selectOrMissing(
  connection: SqlConnection,
  sql: string,
  table: string,
): Promise<Record<string, unknown>[]> {
  try {
    return await connection.query(sql);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // 42P01 undefined_table (PostgreSQL); ER_NO_SUCH_TABLE 1146 (MySQL, MariaDB).
    if (code === '42P01' || code === 'ER_NO_SUCH_TABLE') throw new MissingTableError(table);
    throw error;
  }
}

/** Booleans arrive as true/false (pg), 1/0 (mysql2) or text from custom queries. */
function truthy(value: unknown): boolean {
  if (typeof value === 'string') return ['1', 't', 'true', 'yes', 'y'].includes(value.trim().toLowerCase());
  if (typeof value === 'bigint') return value !== 0n;
  return value === true || (typeof value === 'number' && value !== 0);
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0]!.trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/** Whether a record is the migration named `expected` (file extensions are ignored). */
export function isMigrationNamed(record: MigrationRecord, expected: string): boolean {
  const wanted = stripExtension(expected);
  return [record.name, ...record.aliases].some(
    (name) => name === expected || stripExtension(name) === wanted,
  );
}

function stripExtension(name: string): string {
  return name.replace(/\.(c|m)?(js|ts)$|\.sql$/i, '');
}
