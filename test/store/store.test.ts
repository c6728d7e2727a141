import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendUnavailableError, ConfigError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/runtime/logging.js';
import {
  checkMigrationList,
  MIGRATIONS,
  type OpenStoreOptions,
  openStore,
  type Store,
  type StoreMigration,
} from '../../src/store/index.js';
import { BACKENDS, postgresBackend, postgresUrl, sqliteBackend, type TestDatabase } from './backends.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

const databases: TestDatabase[] = [];
const stores: Store[] = [];

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  await Promise.all(databases.splice(0).map((database) => database.drop()));
});

function track(store: Store): Store {
  stores.push(store);
  return store;
}

function optionsFor(database: TestDatabase, extra: Partial<OpenStoreOptions> = {}): OpenStoreOptions {
  return { databaseUrl: database.databaseUrl, dataDir: database.dataDir, logger: silentLogger(), ...extra };
}

async function tableNames(store: Store): Promise<string[]> {
  const tables = await store.db.introspection.getTables({ withInternalKyselyTables: true });
  return tables.map((table) => table.name).sort();
}

async function executedMigrations(store: Store): Promise<string[]> {
  const rows = await store.db
    .withTables<{ kysely_migration: { name: string } }>()
    .selectFrom('kysely_migration')
    .select('name')
    .orderBy('name')
    .execute();
  return rows.map((row) => row.name);
}

/** A migration that holds the migration lock for a while, to make concurrent starts overlap. */
function slowMigration(onRun: () => void, holdMs = 300): StoreMigration {
  return {
    name: '209912312359_test_slow_start',
    async up(db) {
      onRun();
      await db.schema.createTable('slow_start_marker').addColumn('id', 'integer').execute();
      await new Promise((resolve) => setTimeout(resolve, holdMs));
    },
  };
}

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts two processes that each open the store; releases both at once when both are loaded. */
async function openFromTwoProcesses(database: TestDatabase): Promise<ChildResult[]> {
  const settings = JSON.stringify({
    databaseUrl: database.databaseUrl,
    dataDir: database.dataDir,
    slowMs: 300,
  });
  const children = [0, 1].map(() =>
    spawn(process.execPath, ['--import', 'tsx', 'test/store/open-store-child.ts', settings], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  const outputs = children.map(() => ({ stdout: '', stderr: '' }));
  const ready = children.map(
    (child, i) =>
      new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk) => {
          outputs[i]!.stdout += chunk;
          if (outputs[i]!.stdout.startsWith('ready\n')) resolve();
        });
        child.stderr.on('data', (chunk) => (outputs[i]!.stderr += chunk));
        child.on('exit', () => reject(new Error(`child exited before ready: ${outputs[i]!.stderr}`)));
      }),
  );
  const exited = children.map(
    (child, i) =>
      new Promise<ChildResult>((resolve) => {
        child.on('exit', (code) => resolve({ code, ...outputs[i]! }));
      }),
  );
  await Promise.all(ready);
  for (const child of children) child.stdin.end('go\n');
  return Promise.all(exited);
}

describe.each(BACKENDS)('store on $dialect', (backend) => {
  async function freshDatabase(): Promise<TestDatabase> {
    const database = await backend.create();
    databases.push(database);
    return database;
  }

  it('creates the schema on an empty database and records each migration once', async () => {
    const database = await freshDatabase();
    const store = track(await openStore(optionsFor(database)));

    expect(store.dialect).toBe(backend.dialect);
    expect(await tableNames(store)).toEqual(
      expect.arrayContaining(['failed_events', 'kysely_migration', 'kysely_migration_lock']),
    );
    expect(await executedMigrations(store)).toEqual(MIGRATIONS.map((migration) => migration.name));
    const columns = (await store.db.introspection.getTables()).find(
      (t) => t.name === 'failed_events',
    )!.columns;
    expect(columns.map((column) => column.name)).toEqual([
      'id',
      'dlq_entry_id',
      'source_stream',
      'entry_id',
      'event_id',
      'event_type',
      'group_name',
      'consumer',
      'attempts',
      'error',
      'stack',
      'payload',
      'correlation_id',
      'deployment_id',
      'first_failed_at',
      'last_failed_at',
      'status',
      'replayed_at',
      'replay_count',
      'created_at',
      'replayed_by',
    ]);
  });

  it('does nothing when migrated a second time, in the same or another store', async () => {
    const database = await freshDatabase();
    const first = track(await openStore(optionsFor(database)));
    expect(await first.migrate()).toEqual([]);

    const second = track(await openStore(optionsFor(database)));
    expect(await second.migrate()).toEqual([]);
    expect(await executedMigrations(second)).toEqual(MIGRATIONS.map((migration) => migration.name));
  });

  it('lets two stores open the same empty database at once', async () => {
    const database = await freshDatabase();
    let runs = 0;
    const migrations = [...MIGRATIONS, slowMigration(() => runs++)];
    const opened = await Promise.all([
      openStore(optionsFor(database, { migrations })),
      openStore(optionsFor(database, { migrations })),
    ]);
    opened.forEach(track);

    expect(runs).toBe(1);
    for (const store of opened) {
      expect(await executedMigrations(store)).toEqual(migrations.map((migration) => migration.name));
      expect(await store.db.selectFrom('failed_events').selectAll().execute()).toEqual([]);
    }
  });

  it('lets two processes migrate the same empty database at once', async () => {
    const database = await freshDatabase();
    const results = await openFromTwoProcesses(database);

    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const reports = results.map(
      (result) =>
        JSON.parse(result.stdout.split('\n')[1]!) as { ranSlowMigration: boolean; failedEvents: number },
    );
    expect(reports.map((report) => report.ranSlowMigration).sort()).toEqual([false, true]);
    expect(reports.map((report) => report.failedEvents)).toEqual([0, 0]);
  });

  it('runs a migration another folder registers and reads bigint columns as numbers', async () => {
    const database = await freshDatabase();
    const widgets: StoreMigration = {
      name: '209901010000_test_widgets',
      async up(db) {
        await db.schema
          .createTable('test_widgets')
          .addColumn('id', 'text', (col) => col.primaryKey())
          .addColumn('seen_at', 'bigint', (col) => col.notNull())
          .execute();
      },
    };
    const store = track(await openStore(optionsFor(database, { migrations: [...MIGRATIONS, widgets] })));
    const db = store.db.withTables<{ test_widgets: { id: string; seen_at: number } }>();
    const later = Date.UTC(2999, 0, 1, 0, 0, 0, 123);
    await db.insertInto('test_widgets').values({ id: 'w1', seen_at: later }).execute();

    expect(await db.selectFrom('test_widgets').selectAll().execute()).toEqual([{ id: 'w1', seen_at: later }]);
  });

  it('rolls back a migration that fails halfway and names it', async () => {
    const database = await freshDatabase();
    const broken: StoreMigration = {
      name: '209901010000_test_broken',
      async up(db) {
        await db.schema.createTable('half_made').addColumn('id', 'integer').execute();
        await sql`select * from no_such_table`.execute(db);
      },
    };
    const failure = await openStore(optionsFor(database, { migrations: [...MIGRATIONS, broken] })).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(BackendUnavailableError);
    expect((failure as Error).message).toContain('store migration "209901010000_test_broken" failed');
    expect((failure as Error).message).toContain('no_such_table');

    const store = track(await openStore(optionsFor(database)));
    expect(await tableNames(store)).not.toContain('half_made');
    expect(await executedMigrations(store)).toEqual(MIGRATIONS.map((migration) => migration.name));
  });
});

describe('store on postgres', () => {
  it('describes itself without the password', async () => {
    const database = await postgresBackend.create();
    databases.push(database);
    const name = new URL(database.databaseUrl!).pathname.slice(1);
    const store = track(
      await openStore({
        databaseUrl: postgresUrl(name, 's3cret-pw'),
        dataDir: database.dataDir,
        logger: silentLogger(),
      }),
    );
    expect(store.describe()).toContain(`127.0.0.1:5432/${name}`);
    expect(store.describe()).not.toContain('s3cret-pw');
  });

  it('fails with a clear error, without the password, when the server cannot be reached', async () => {
    const failure = await openStore({
      databaseUrl: 'postgres://root:s3cret-pw@127.0.0.1:1/materi',
      dataDir: '.materi-unused',
      logger: silentLogger(),
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BackendUnavailableError);
    expect((failure as Error).message).toMatch(
      /^cannot reach PostgreSQL at postgres:\/\/.*127\.0\.0\.1:1\/materi: /,
    );
    expect((failure as Error).message).toContain('ECONNREFUSED');
    expect((failure as Error).message).not.toContain('s3cret-pw');
  });

  it('rejects a database URL that is not PostgreSQL', async () => {
    const failure = await openStore({
      databaseUrl: 'mysql://root:s3cret-pw@127.0.0.1/materi',
      dataDir: '.materi-unused',
      logger: silentLogger(),
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toContain('must start with postgres://');
    expect((failure as Error).message).not.toContain('s3cret-pw');
  });
});

describe('store on sqlite', () => {
  it('keeps materi.db under the data dir in WAL mode with foreign keys and a busy timeout', async () => {
    const database = await sqliteBackend.create();
    databases.push(database);
    const dataDir = path.join(database.dataDir, 'nested', 'dir');
    const store = track(await openStore({ dataDir, logger: silentLogger(), busyTimeoutMs: 1234 }));

    expect(store.describe()).toBe(path.join(dataDir, 'materi.db'));
    const pragma = async (name: string) =>
      Object.values((await sql.raw(`pragma ${name}`).execute(store.db)).rows[0] as object)[0];
    expect(await pragma('journal_mode')).toBe('wal');
    expect(await pragma('foreign_keys')).toBe(1);
    expect(await pragma('busy_timeout')).toBe(1234);
  });

  it('fails with a clear error naming the file when the data dir cannot be created', async () => {
    const database = await sqliteBackend.create();
    databases.push(database);
    const blocker = path.join(database.dataDir, 'a-file');
    await import('node:fs/promises').then((fs) => fs.writeFile(blocker, 'not a directory'));
    const failure = await openStore({ dataDir: blocker, logger: silentLogger() }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(BackendUnavailableError);
    expect((failure as Error).message).toContain(
      `cannot open SQLite database ${path.join(blocker, 'materi.db')}`,
    );
  });
});

describe('migration list', () => {
  const noop = async () => undefined;

  it('accepts the registered migrations', () => {
    expect(() => checkMigrationList(MIGRATIONS)).not.toThrow();
  });

  it('rejects a name without the <yyyymmddhhmm>_<folder>_<what> form', () => {
    expect(() => checkMigrationList([{ name: 'add_widgets', up: noop }])).toThrow(
      'store migration "add_widgets": name must look like <yyyymmddhhmm>_<folder>_<what>',
    );
  });

  it('rejects a name listed twice', () => {
    const twice = { name: '202701010000_shield_deployments', up: noop };
    expect(() => checkMigrationList([twice, twice])).toThrow(
      'store migration "202701010000_shield_deployments" is listed twice',
    );
  });

  it('rejects a list that is not sorted by name', () => {
    expect(() =>
      checkMigrationList([
        { name: '202701010000_shield_deployments', up: noop },
        { name: '202612010000_orchestrator_sagas', up: noop },
      ]),
    ).toThrow(ConfigError);
  });
});
