import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import mysql from 'mysql2/promise';
import { runner as runPgMigrations } from 'node-pg-migrate';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckStatus, ValidationResult } from '../../../src/events/index.js';
import { runValidation, type ValidationCheckOutcome } from '../../../src/workers/validator/index.js';
import { freePort } from './registry-harness.js';

const PG_ADMIN_URL = 'postgres://root@127.0.0.1:5432/postgres';
const MYSQL_ADMIN_URL = 'mysql://root@127.0.0.1:3306/test';
const suffix = randomUUID().slice(0, 8);
const pgDatabase = `materi_validator_${suffix}`;
const pgUrl = `postgres://root@127.0.0.1:5432/${pgDatabase}`;
const mysqlDatabase = `materi_validator_${suffix}`;
const mysqlUrl = `mysql://root@127.0.0.1:3306/${mysqlDatabase}`;
const quietKnex = { log: { warn() {}, error() {}, deprecate() {}, debug() {} } };

async function checkMigrations(
  item: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<ValidationCheckOutcome> {
  const outcome = await runValidation({ timeoutMs: 5000, migrations: [item] }, { env });
  expect(outcome.checks, outcome.message).toHaveLength(1);
  return outcome.checks[0]!;
}

/** knex migrations kept in memory, run by knex itself. */
function migrationSource(
  migrations: Record<string, (db: Knex) => Promise<void>>,
): Knex.MigrationSource<string> {
  return {
    getMigrations: async () => Object.keys(migrations),
    getMigrationName: (name) => name,
    getMigration: async (name) => ({ up: migrations[name]!, down: async () => {} }),
  };
}

const knexMigrations = {
  '20260101_create_users.js': async (db: Knex) => {
    await db.schema.createTable('users', (t) => {
      t.increments('id');
      t.string('name');
    });
  },
  '20260102_add_email.js': async (db: Knex) => {
    await db.schema.alterTable('users', (t) => {
      t.string('email');
    });
  },
};

let admin: pg.Client;
let db: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pgDatabase}`);
  db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS ${pgDatabase} WITH (FORCE)`);
  await admin?.end();
});

describe('knex on PostgreSQL (migrations run by knex)', () => {
  beforeAll(async () => {
    const knex = knexFactory({ client: 'pg', connection: pgUrl, ...quietKnex });
    try {
      await knex.migrate.latest({ migrationSource: migrationSource(knexMigrations) });
      // A migration that fails: knex rolls it back and records nothing.
      await expect(
        knex.migrate.latest({
          migrationSource: migrationSource({
            ...knexMigrations,
            '20260103_broken.js': async (k) => {
              await k.raw('ALTER TABLE no_such_table ADD COLUMN x int');
            },
          }),
        }),
      ).rejects.toThrow(/no_such_table/);
    } finally {
      await knex.destroy();
    }
  });

  it('passes when the expected latest migration is applied', async () => {
    const check = await checkMigrations(
      {
        name: 'main-db',
        tool: 'knex',
        url: '${DATABASE_URL}',
        expectedLatest: '20260102_add_email.js',
      },
      { DATABASE_URL: pgUrl },
    );
    expect(check).toMatchObject({
      name: 'migrations:main-db',
      kind: 'migrations',
      status: CheckStatus.PASSED,
    });
    expect(check.message).toBe('2 migrations applied, latest 20260102_add_email.js');
  });

  it('matches the expected migration with or without its file extension', async () => {
    const check = await checkMigrations({
      name: 'db',
      tool: 'knex',
      url: pgUrl,
      expectedLatest: '20260102_add_email',
    });
    expect(check.status).toBe(CheckStatus.PASSED);
  });

  it('notes newer migrations than the expected one but passes', async () => {
    const check = await checkMigrations({
      name: 'db',
      tool: 'knex',
      url: pgUrl,
      expectedLatest: '20260101_create_users.js',
    });
    expect(check.status).toBe(CheckStatus.PASSED);
    expect(check.message).toBe(
      '2 migrations applied, latest 20260102_add_email.js; 1 newer than 20260101_create_users.js',
    );
  });

  it('fails when the expected latest migration did not apply', async () => {
    const check = await checkMigrations({
      name: 'db',
      tool: 'knex',
      url: pgUrl,
      expectedLatest: '20260103_broken.js',
    });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe('20260103_broken.js is not applied (latest applied: 20260102_add_email.js)');
  });

  it('fails while the knex migration lock is held', async () => {
    await db.query('UPDATE knex_migrations_lock SET is_locked = 1');
    try {
      const check = await checkMigrations({ name: 'db', tool: 'knex', url: pgUrl });
      expect(check.status).toBe(CheckStatus.FAILED);
      expect(check.message).toBe(
        'knex_migrations_lock is locked (a migration is running or was interrupted)',
      );
    } finally {
      await db.query('UPDATE knex_migrations_lock SET is_locked = 0');
    }
  });

  it('fails with "table … does not exist" when the bookkeeping table is missing', async () => {
    const check = await checkMigrations({ name: 'db', tool: 'knex', url: pgUrl, table: 'other_migrations' });
    expect(check.message).toBe('table other_migrations does not exist');
  });
});

describe('node-pg-migrate (migrations run by node-pg-migrate)', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'materi-pgm-'));
    await writeFile(
      join(dir, '1767225600000_create-orders.cjs'),
      "exports.up = (pgm) => { pgm.createTable('orders', { id: 'id', total: 'integer' }); };\n",
    );
    await writeFile(
      join(dir, '1767312000000_add-status.cjs'),
      "exports.up = (pgm) => { pgm.addColumn('orders', { status: { type: 'text' } }); };\n",
    );
    await runPgMigrations({
      databaseUrl: pgUrl,
      dir,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      log: () => {},
      checkOrder: true,
    });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes when the expected latest migration is applied', async () => {
    const check = await checkMigrations({
      name: 'orders',
      tool: 'node-pg-migrate',
      url: pgUrl,
      expectedLatest: '1767312000000_add-status',
    });
    expect(check.status).toBe(CheckStatus.PASSED);
    expect(check.message).toBe('2 migrations applied, latest 1767312000000_add-status');
  });

  it('fails when the expected migration is not applied', async () => {
    const check = await checkMigrations({
      name: 'orders',
      tool: 'node-pg-migrate',
      url: pgUrl,
      expectedLatest: '1767398400000_add-index',
    });
    expect(check.message).toBe(
      '1767398400000_add-index is not applied (latest applied: 1767312000000_add-status)',
    );
  });
});

describe('Prisma bookkeeping table', () => {
  const create = (schema: string) => `
    CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}."_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    );`;
  const row = (schema: string, name: string, minute: number, extra: string) =>
    `INSERT INTO ${schema}."_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, rolled_back_at, logs, applied_steps_count)
     VALUES ('${randomUUID()}', 'abc', '${name}', '2026-01-01T00:${minute}:00Z', ${extra});`;

  beforeAll(async () => {
    await db.query(create('prisma_ok'));
    await db.query(row('prisma_ok', '20260101000000_init', 10, `'2026-01-01T00:10:01Z', NULL, NULL, 1`));
    await db.query(row('prisma_ok', '20260102000000_add_posts', 11, `'2026-01-01T00:11:01Z', NULL, NULL, 1`));
    // A failure that was resolved with `prisma migrate resolve --rolled-back`, then re-applied.
    await db.query(
      row(
        'prisma_ok',
        '20260103000000_add_tags',
        12,
        `NULL, '2026-01-01T00:12:30Z', 'ERROR: relation exists', 0`,
      ),
    );
    await db.query(row('prisma_ok', '20260103000000_add_tags', 13, `'2026-01-01T00:13:01Z', NULL, NULL, 1`));

    await db.query(create('prisma_failed'));
    await db.query(row('prisma_failed', '20260101000000_init', 10, `'2026-01-01T00:10:01Z', NULL, NULL, 1`));
    await db.query(
      row(
        'prisma_failed',
        '20260102000000_add_posts',
        11,
        `NULL, NULL, E'Database error code: 42P07\\nrelation "posts" already exists', 0`,
      ),
    );
  });

  it('passes when the expected migration finished and resolved failures are ignored', async () => {
    const check = await checkMigrations({
      name: 'app',
      tool: 'prisma',
      url: pgUrl,
      table: 'prisma_ok._prisma_migrations',
      expectedLatest: '20260103000000_add_tags',
    });
    expect(check.status, check.message).toBe(CheckStatus.PASSED);
    expect(check.message).toBe('3 migrations applied, latest 20260103000000_add_tags');
  });

  it('fails naming a migration that failed, with the first line of its logs', async () => {
    const check = await checkMigrations({
      name: 'app',
      tool: 'prisma',
      url: pgUrl,
      table: 'prisma_failed._prisma_migrations',
      expectedLatest: '20260102000000_add_posts',
    });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe(
      '20260102000000_add_posts is not applied (latest applied: 20260101000000_init); ' +
        '20260102000000_add_posts failed: Database error code: 42P07',
    );
  });
});

describe('Flyway bookkeeping table', () => {
  const create = (schema: string) => `
    CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.flyway_schema_history (
      installed_rank INT NOT NULL PRIMARY KEY,
      version VARCHAR(50),
      description VARCHAR(200) NOT NULL,
      type VARCHAR(20) NOT NULL,
      script VARCHAR(1000) NOT NULL,
      checksum INT,
      installed_by VARCHAR(100) NOT NULL,
      installed_on TIMESTAMP NOT NULL DEFAULT now(),
      execution_time INT NOT NULL,
      success BOOLEAN NOT NULL
    );`;
  const row = (
    schema: string,
    rank: number,
    version: string | null,
    description: string,
    script: string,
    ok: boolean,
  ) =>
    `INSERT INTO ${schema}.flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
     VALUES (${rank}, ${version === null ? 'NULL' : `'${version}'`}, '${description}', 'SQL', '${script}', 1, 'root', 5, ${ok});`;

  beforeAll(async () => {
    await db.query(create('flyway_ok'));
    await db.query(row('flyway_ok', 1, '1', 'init', 'V1__init.sql', true));
    await db.query(row('flyway_ok', 2, '1.1', 'add users', 'V1_1__add_users.sql', true));
    await db.query(row('flyway_ok', 3, null, 'views', 'R__views.sql', true));
    await db.query(create('flyway_failed'));
    await db.query(row('flyway_failed', 1, '1', 'init', 'V1__init.sql', true));
    await db.query(row('flyway_failed', 2, '1.1', 'add users', 'V1_1__add_users.sql', false));
  });

  it('passes when the expected version is applied, by version or by script', async () => {
    const byVersion = await checkMigrations({
      name: 'ledger',
      tool: 'flyway',
      url: pgUrl,
      table: 'flyway_ok.flyway_schema_history',
      expectedLatest: '1.1',
    });
    expect(byVersion.status).toBe(CheckStatus.PASSED);
    expect(byVersion.message).toBe('2 migrations applied, latest 1.1');
    const byScript = await checkMigrations({
      name: 'ledger',
      tool: 'flyway',
      url: pgUrl,
      table: 'flyway_ok.flyway_schema_history',
      expectedLatest: 'V1_1__add_users.sql',
    });
    expect(byScript.status).toBe(CheckStatus.PASSED);
  });

  it('fails when a migration has success = false', async () => {
    const check = await checkMigrations({
      name: 'ledger',
      tool: 'flyway',
      url: pgUrl,
      table: 'flyway_failed.flyway_schema_history',
    });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe('1.1 failed (add users)');
  });
});

describe('custom query', () => {
  beforeAll(async () => {
    await db.query(`CREATE TABLE schema_versions (name text, applied boolean, failed boolean, position int);
      INSERT INTO schema_versions VALUES ('001_base', true, false, 1), ('002_accounts', true, false, 2), ('003_ledger', false, true, 3);`);
  });

  it('reads name, applied and failed from the query and fails on a failed row', async () => {
    const check = await checkMigrations({
      name: 'custom',
      tool: 'custom',
      url: pgUrl,
      query: 'SELECT name, applied, failed FROM schema_versions ORDER BY position',
      expectedLatest: '002_accounts',
    });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe('003_ledger failed');
  });

  it('passes when the query shows the expected migration applied and none failed', async () => {
    const check = await checkMigrations({
      name: 'custom',
      tool: 'custom',
      url: pgUrl,
      query: 'SELECT name, applied FROM schema_versions WHERE position < 3 ORDER BY position',
      expectedLatest: '002_accounts',
    });
    expect(check.message).toBe('2 migrations applied, latest 002_accounts');
  });
});

describe('knex on MariaDB (mysql2)', () => {
  beforeAll(async () => {
    const root = await mysql.createConnection({ uri: MYSQL_ADMIN_URL });
    await root.query(`CREATE DATABASE ${mysqlDatabase}`);
    await root.end();
    const knex = knexFactory({ client: 'mysql2', connection: mysqlUrl, ...quietKnex });
    try {
      await knex.migrate.latest({ migrationSource: migrationSource(knexMigrations) });
    } finally {
      await knex.destroy();
    }
  });
  afterAll(async () => {
    const root = await mysql.createConnection({ uri: MYSQL_ADMIN_URL });
    await root.query(`DROP DATABASE IF EXISTS ${mysqlDatabase}`);
    await root.end();
  });

  it('passes when the expected latest migration is applied', async () => {
    const check = await checkMigrations({
      name: 'orders-db',
      tool: 'knex',
      url: mysqlUrl,
      expectedLatest: '20260102_add_email.js',
    });
    expect(check.status, check.message).toBe(CheckStatus.PASSED);
    expect(check.message).toBe('2 migrations applied, latest 20260102_add_email.js');
  });

  it('fails with "table … does not exist" for a tool whose table is absent', async () => {
    const check = await checkMigrations({ name: 'orders-db', tool: 'flyway', url: mysqlUrl });
    expect(check.message).toBe('table flyway_schema_history does not exist');
  });
});

describe('connection problems', () => {
  it('fails without putting the password of the URL in the message', async () => {
    const port = await freePort();
    const secretUrl = `postgres://root:pg-very-secret-pw@127.0.0.1:${port}/app`;
    const outcome = await runValidation(
      { migrations: [{ name: 'db', tool: 'knex', url: '${DATABASE_URL}' }] },
      { env: { DATABASE_URL: secretUrl } },
    );
    expect(outcome.result).toBe(ValidationResult.FAILED);
    const message = outcome.checks[0]!.message;
    expect(message).toMatch(
      /^cannot connect to postgres:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:\d+\/app: .*ECONNREFUSED/,
    );
    expect(JSON.stringify(outcome)).not.toContain('pg-very-secret-pw');
  });

  it('fails naming the database URL variable when it is not set', async () => {
    const check = await checkMigrations({ name: 'db', tool: 'knex', url: '${DATABASE_URL}' });
    expect(check.message).toBe('${DATABASE_URL} is not set');
  });

  it('rejects a spec with a custom tool but no query, naming the field', async () => {
    const outcome = await runValidation({ migrations: [{ name: 'db', tool: 'custom', url: pgUrl }] });
    expect(outcome.message).toBe(
      'invalid validation spec: migrations[0].query: is required when tool is "custom"',
    );
  });

  it('rejects an unknown tool and an unsupported literal URL scheme', async () => {
    const tool = await runValidation({ migrations: [{ name: 'db', tool: 'liquibase', url: pgUrl }] });
    expect(tool.message).toMatch(/^invalid validation spec: migrations\[0\]\.tool: /);
    const scheme = await runValidation({ migrations: [{ name: 'db', tool: 'knex', url: 'sqlite:///x.db' }] });
    expect(scheme.message).toBe(
      'invalid validation spec: migrations[0].url: must start with postgres://, postgresql://, mysql:// or mariadb://',
    );
  });
});
