import mysql from 'mysql2/promise';
import pg from 'pg';
import { describeCause } from '../../../errors/index.js';
import { redactUrl } from '../../../runtime/logging.js';
import { CheckFailure } from '../check.js';

export type SqlDialect = 'postgres' | 'mysql';

/** A connection that runs read queries and returns rows as plain objects. */
export interface SqlConnection {
  readonly dialect: SqlDialect;
  query(sql: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** The SQL dialect of a connection URL, or undefined when the scheme is not supported. */
export function dialectOf(url: string): SqlDialect | undefined {
  if (/^postgres(ql)?:\/\//i.test(url)) return 'postgres';
  if (/^(mysql|mariadb):\/\//i.test(url)) return 'mysql';
  return undefined;
}

/**
 * Opens a connection to PostgreSQL (pg) or MySQL/MariaDB (mysql2) with connect and statement
 * time limits. The connection is destroyed when `signal` aborts, so a stuck server cannot keep a
 * timed-out check alive. Failures name the URL with its credentials removed.
 */
export async function openSqlConnection(
  url: string,
  settings: { timeoutMs: number; signal: AbortSignal },
): Promise<SqlConnection> {
  const dialect = dialectOf(url);
  if (!dialect) {
    throw new CheckFailure(
      `${redactUrl(url)}: unsupported database URL scheme (use postgres://, postgresql://, mysql:// or mariadb://)`,
    );
  }
  const where = redactUrl(url);
  const connection =
    dialect === 'postgres' ? await openPostgres(url, settings) : await openMysql(url, settings);
  return {
    dialect,
    query: (sql) =>
      connection.query(sql).catch((error: unknown) => {
        throw Object.assign(new Error(`${where}: ${describeCause(error)}`, { cause: error }), {
          code: (error as { code?: unknown }).code,
        });
      }),
    close: connection.close,
  };
}

async function openPostgres(
  url: string,
  { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
): Promise<Pick<SqlConnection, 'query' | 'close'>> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs,
    application_name: 'materi-validator',
  });
  // A dropped connection emits 'error' on the client; the pending query rejects anyway.
  client.on('error', () => {});
  const abort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', abort, { once: true });
  try {
    await client.connect();
  } catch (error) {
    signal.removeEventListener('abort', abort);
    await client.end().catch(() => {});
    throw new CheckFailure(`cannot connect to ${redactUrl(url)}: ${describeCause(error)}`);
  }
  return {
    query: async (sql) => (await client.query(sql)).rows as Record<string, unknown>[],
    close: async () => {
      signal.removeEventListener('abort', abort);
      await client.end().catch(() => {});
    },
  };
}

async function openMysql(
  url: string,
  { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
): Promise<Pick<SqlConnection, 'query' | 'close'>> {
  let connection: mysql.Connection;
  try {
    connection = await mysql.createConnection({
      uri: url.replace(/^mariadb:/i, 'mysql:'),
      connectTimeout: timeoutMs,
    });
  } catch (error) {
    throw new CheckFailure(`cannot connect to ${redactUrl(url)}: ${describeCause(error)}`);
  }
  connection.on('error', () => {});
  const abort = () => connection.destroy();
  signal.addEventListener('abort', abort, { once: true });
  return {
    query: async (sql) => {
      const [rows] = await connection.query({ sql, timeout: timeoutMs });
      return rows as Record<string, unknown>[];
    },
    close: async () => {
      signal.removeEventListener('abort', abort);
      await connection.end().catch(() => connection.destroy());
    },
  };
}
