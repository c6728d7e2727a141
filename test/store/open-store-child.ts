/**
 * Opens a store in a process of its own, for the test that two processes migrate one database at
 * once. Usage: `node --import tsx open-store-child.ts '<json {databaseUrl?, dataDir, slowMs}>'`.
 * Prints `ready` once loaded, waits for a line on stdin (so both processes start together), opens
 * the store with one extra slow migration, and prints `{"ranSlowMigration": bool, "failedEvents": n}`.
 */
import { silentLogger } from '../../src/runtime/logging.js';
import { MIGRATIONS, openStore, type StoreMigration } from '../../src/store/index.js';

const settings = JSON.parse(process.argv[2] ?? '{}') as {
  databaseUrl?: string;
  dataDir: string;
  slowMs: number;
};
let ranSlowMigration = false;
const slowMigration: StoreMigration = {
  name: '209912312359_test_slow_start',
  async up(db) {
    ranSlowMigration = true;
    await db.schema.createTable('slow_start_marker').addColumn('id', 'integer').execute();
    // Holds the migration lock long enough that the other process has to wait for it.
    await new Promise((resolve) => setTimeout(resolve, settings.slowMs));
  },
};

process.stdout.write('ready\n');
process.stdin.once('data', async () => {
  process.stdin.pause();
  const store = await openStore({
    databaseUrl: settings.databaseUrl,
    dataDir: settings.dataDir,
    logger: silentLogger(),
    migrations: [...MIGRATIONS, slowMigration],
  });
  const { count } = await store.db
    .selectFrom('failed_events')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  await store.close();
  process.stdout.write(`${JSON.stringify({ ranSlowMigration, failedEvents: Number(count) })}\n`);
});
