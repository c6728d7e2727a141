import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { StoreDialect } from '../../src/store/index.js';

/** The PostgreSQL server the tests create their databases on (trust auth, user root). */
export const TEST_POSTGRES_URL =
  process.env.MATERI_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

/** An empty database of its own for one test file or test; `drop` removes it and its files. */
export interface TestDatabase {
  /** What `openStore` needs to open it. */
  databaseUrl?: string;
  dataDir: string;
  drop(): Promise<void>;
}

/** One store backend the shared suites run against. */
export interface TestBackend {
  dialect: StoreDialect;
  /** A new, empty database. */
  create(): Promise<TestDatabase>;
}

async function adminQuery(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** The URL of a database on the test server, optionally with a password (ignored by trust auth). */
export function postgresUrl(database: string, password?: string): string {
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${database}`;
  if (password !== undefined) url.password = password;
  return url.toString();
}

export const postgresBackend: TestBackend = {
  dialect: 'postgres',
  async create() {
    const name = `materi_test_${randomBytes(6).toString('hex')}`;
    const dataDir = await mkdtemp(path.join(tmpdir(), 'materi-store-'));
    await adminQuery(`CREATE DATABASE ${name}`);
    return {
      databaseUrl: postgresUrl(name),
      dataDir,
      async drop() {
        await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
};

export const sqliteBackend: TestBackend = {
  dialect: 'sqlite',
  async create() {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'materi-store-'));
    return {
      dataDir,
      async drop() {
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
};

/** Every backend; suites run `describe.each(BACKENDS)`. */
export const BACKENDS: readonly TestBackend[] = [postgresBackend, sqliteBackend];
