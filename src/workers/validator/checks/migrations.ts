import { z } from 'zod';
import { findReferences } from '../../../runtime/references.js';
import { CheckFailure, checkItemSettings, defineValidationCheck } from '../check.js';
import { dialectOf, openSqlConnection } from '../migrations/database.js';
import {
  DEFAULT_MIGRATION_TABLES,
  isMigrationNamed,
  MIGRATION_TOOLS,
  MissingTableError,
  readMigrationState,
  TABLE_NAME,
} from '../migrations/tools.js';

const migrationsItem = z
  .strictObject({
    /** Names the result (`migrations:<name>`). */
    name: z.string().min(1),
    tool: z.enum(MIGRATION_TOOLS),
    /** postgres(ql)://, mysql:// or mariadb:// URL; usually a `${NAME}` reference. */
    url: z.string().min(1),
    /** The migration that must be applied (file name, Prisma folder, Flyway version or script). */
    expectedLatest: z.string().min(1).optional(),
    /**
     * Bookkeeping table, optionally schema-qualified (not used by `custom`).
     * @defaultValue the tool's default table
     */
    table: z.string().regex(TABLE_NAME, 'must be a table name, optionally schema-qualified').optional(),
    /** `custom` only: SQL returning rows with `name`, `applied` and optionally `failed`. */
    query: z.string().min(1).optional(),
    ...checkItemSettings,
  })
  .superRefine((item, context) => {
    if (item.tool === 'custom' && !item.query) {
      context.addIssue({ code: 'custom', path: ['query'], message: 'is required when tool is "custom"' });
    }
    if (item.tool !== 'custom' && item.query) {
      context.addIssue({ code: 'custom', path: ['query'], message: 'is only used when tool is "custom"' });
    }
    if (item.tool === 'custom' && item.table) {
      context.addIssue({ code: 'custom', path: ['table'], message: 'is not used when tool is "custom"' });
    }
    if (
      item.tool === 'node-pg-migrate' &&
      findReferences(item.url).length === 0 &&
      dialectOf(item.url) === 'mysql'
    ) {
      context.addIssue({ code: 'custom', path: ['url'], message: 'node-pg-migrate only runs on PostgreSQL' });
    }
    if (findReferences(item.url).length === 0 && !dialectOf(item.url)) {
      context.addIssue({
        code: 'custom',
        path: ['url'],
        message: 'must start with postgres://, postgresql://, mysql:// or mariadb://',
      });
    }
  });

export type MigrationsCheckItem = z.infer<typeof migrationsItem>;

/**
 * `migrations`: the database has the expected latest migration applied and none failed,
 * according to the bookkeeping table of the named tool.
 */
export const migrationsCheck = defineValidationCheck<MigrationsCheckItem>({
  key: 'migrations',
  kind: 'migrations',
  item: migrationsItem,
  name: (item) => `migrations:${item.name}`,
  async run(item, context) {
    const table = item.table ?? (item.tool === 'custom' ? '' : DEFAULT_MIGRATION_TABLES[item.tool]);
    const connection = await openSqlConnection(context.resolve(item.url), {
      timeoutMs: context.timeoutMs,
      signal: context.signal,
    });
    let state: Awaited<ReturnType<typeof readMigrationState>>;
    try {
      state = await readMigrationState(connection, item.tool, table, item.query);
    } catch (error) {
      if (error instanceof MissingTableError) throw new CheckFailure(error.message);
      throw error;
    } finally {
      await connection.close();
    }

    const applied = state.records.filter((record) => record.applied);
    const latest = applied.at(-1);
    const problems: string[] = [];
    if (state.inProgress) problems.push(state.inProgress);
    const failed = state.records.filter((record) => record.failure !== undefined);
    if (failed.length > 0) {
      problems.push(failed.map((record) => `${record.name} ${record.failure}`).join(', '));
    }
    let newer = 0;
    if (item.expectedLatest) {
      const index = applied.findIndex((record) => isMigrationNamed(record, item.expectedLatest!));
      if (index < 0) {
        problems.unshift(
          `${item.expectedLatest} is not applied (latest applied: ${latest ? latest.name : 'none'})`,
        );
      } else {
        newer = applied.length - 1 - index;
      }
    }
    if (problems.length > 0) return { passed: false, message: problems.join('; ') };
    const summary = latest
      ? `${applied.length} migration${applied.length === 1 ? '' : 's'} applied, latest ${latest.name}`
      : 'no migrations applied';
    // A newer schema than the release expects is normal during expand/contract changes.
    const note = newer > 0 ? `; ${newer} newer than ${item.expectedLatest}` : '';
    return { passed: true, message: `${summary}${note}` };
  },
});
