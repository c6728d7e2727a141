import { sql } from 'kysely';
import type { StoreMigration } from '../migrate.js';

/** The dead-letter records (`failed_events`), written by the dead-letter consumer of every group. */
export const createFailedEvents: StoreMigration = {
  name: '202611291935_store_failed_events',
  async up(db) {
    await db.schema
      .createTable('failed_events')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('dlq_entry_id', 'text', (col) => col.notNull())
      .addColumn('source_stream', 'text', (col) => col.notNull())
      .addColumn('entry_id', 'text', (col) => col.notNull())
      .addColumn('event_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('event_type', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('group_name', 'text', (col) => col.notNull())
      .addColumn('consumer', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('attempts', 'integer', (col) => col.notNull())
      .addColumn('error', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('stack', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('payload', 'text', (col) => col.notNull())
      .addColumn('correlation_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('deployment_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('first_failed_at', 'bigint', (col) => col.notNull())
      .addColumn('last_failed_at', 'bigint', (col) => col.notNull())
      .addColumn('status', 'text', (col) => col.notNull())
      .addColumn('replayed_at', 'bigint')
      .addColumn('replay_count', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('created_at', 'bigint', (col) => col.notNull())
      // Recording is an upsert on this key, so a dead letter delivered twice stays one row.
      .addUniqueConstraint('failed_events_entry_unique', ['group_name', 'source_stream', 'entry_id'])
      .addCheckConstraint('failed_events_status_check', sql`status in ('dead', 'replayed', 'purged')`)
      .execute();
    // `list` and `depth` filter by status (and group) and read newest first.
    await db.schema
      .createIndex('failed_events_status_idx')
      .on('failed_events')
      .columns(['status', 'last_failed_at'])
      .execute();
    await db.schema
      .createIndex('failed_events_group_status_idx')
      .on('failed_events')
      .columns(['group_name', 'status', 'last_failed_at'])
      .execute();
    await db.schema
      .createIndex('failed_events_deployment_idx')
      .on('failed_events')
      .column('deployment_id')
      .execute();
  },
  async down(db) {
    await db.schema.dropTable('failed_events').execute();
  },
};
