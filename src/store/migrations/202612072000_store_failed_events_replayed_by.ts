import type { StoreMigration } from '../migrate.js';

/** Who replayed a dead letter last (the token's name through the API, the user through the CLI). */
export const addFailedEventsReplayedBy: StoreMigration = {
  name: '202612072000_store_failed_events_replayed_by',
  async up(db) {
    await db.schema.alterTable('failed_events').addColumn('replayed_by', 'text').execute();
  },
  async down(db) {
    await db.schema.alterTable('failed_events').dropColumn('replayed_by').execute();
  },
};
