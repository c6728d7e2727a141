import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import { BackendUnavailableError, ConfigError, describeCause } from '../errors/index.js';
import type { Database } from './schema.js';

/** Which database a store runs on. */
export type StoreDialect = 'postgres' | 'sqlite';

/** Passed to every migration, for the rare statement that cannot be written once for both dialects. */
export interface MigrationContext {
  dialect: StoreDialect;
}

/**
 * One schema change, written once for both dialects with Kysely's schema builder and neutral types
 * (`text`, `integer`, `bigint`; timestamps as epoch milliseconds in `bigint`; JSON as `text`).
 */
export interface StoreMigration {
  /** Unique and sortable: `<yyyymmddhhmm>_<folder>_<what>`, e.g. `202611291935_store_failed_events`. */
  readonly name: string;
  up(db: Kysely<unknown>, context: MigrationContext): Promise<void>;
  /** Optional: only used by tools that migrate down; start-up never does. */
  down?(db: Kysely<unknown>, context: MigrationContext): Promise<void>;
}

const MIGRATION_NAME = /^\d{12}_[a-z][a-z0-9]*(_[a-z0-9]+)+$/;

/**
 * Checks a migration list before it runs: every name has the `<yyyymmddhhmm>_<folder>_<what>` form,
 * no name appears twice, and the list is sorted by name (the migrator runs them in name order, so a
 * list that reads in a different order would mislead). Throws {@link ConfigError} naming the migration.
 */
export function checkMigrationList(migrations: readonly StoreMigration[]): void {
  const seen = new Set<string>();
  let previous = '';
  for (const migration of migrations) {
    const name = migration.name;
    if (!MIGRATION_NAME.test(name)) {
      throw new ConfigError(`store migration "${name}": name must look like <yyyymmddhhmm>_<folder>_<what>`);
    }
    if (seen.has(name)) throw new ConfigError(`store migration "${name}" is listed twice`);
    if (name < previous) {
      throw new ConfigError(
        `store migration "${name}" is listed after "${previous}": keep the list sorted by name`,
      );
    }
    seen.add(name);
    previous = name;
  }
}

/**
 * Runs every migration of the list that the database has not run yet, and returns the names it ran
 * (empty when the schema was already current).
 *
 * Concurrency: on PostgreSQL Kysely's migrator holds an advisory lock and migrates in one
 * transaction, so a second process waits and then finds nothing to do. On SQLite the store's
 * dialect opens every transaction with `BEGIN IMMEDIATE`, which takes the write lock before the
 * migrator reads what has run; a second process waits on the busy timeout the same way.
 *
 * Migrations of different folders are independent, so one merged later with an earlier name than
 * an already-run migration still runs (Kysely's `allowUnorderedMigrations`).
 */
export async function runMigrations(
  db: Kysely<Database>,
  migrations: readonly StoreMigration[],
  context: MigrationContext & { description: string },
): Promise<string[]> {
  checkMigrationList(migrations);
  const migrationContext: MigrationContext = { dialect: context.dialect };
  const provider: MigrationProvider = {
    async getMigrations() {
      const byName: Record<string, Migration> = {};
      for (const migration of migrations) {
        const { down } = migration;
        byName[migration.name] = {
          up: (target) => migration.up(target, migrationContext),
          down: down ? (target) => down.call(migration, target, migrationContext) : undefined,
        };
      }
      return byName;
    },
  };
  const migrator = new Migrator({ db, provider, allowUnorderedMigrations: true });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((result) => result.status === 'Error')?.migrationName;
    const which = failed ? `migration "${failed}"` : 'migrations';
    throw new BackendUnavailableError(
      `store ${which} failed on ${context.description}: ${describeCause(error)}`,
      { cause: error },
    );
  }
  return results.filter((result) => result.status === 'Success').map((result) => result.migrationName);
}
