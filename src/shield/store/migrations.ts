import type { StoreMigration } from '../../store/migrate.js';

/** Shield's projection: the event log, the deployment records and their services. */
export const createShieldProjection: StoreMigration = {
  name: '202612011200_shield_projection',
  async up(db, { dialect }) {
    let events = db.schema.createTable('shield_events');
    // A sequence that only grows: the order events were logged in, and the SSE resume point.
    events =
      dialect === 'postgres'
        ? events.addColumn('seq', 'bigserial', (col) => col.primaryKey())
        : events.addColumn('seq', 'integer', (col) => col.primaryKey().autoIncrement());
    await events
      .addColumn('event_id', 'text', (col) => col.notNull().unique())
      .addColumn('type', 'text', (col) => col.notNull())
      .addColumn('deployment_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('correlation_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('causation_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('priority', 'text', (col) => col.notNull())
      .addColumn('source', 'text', (col) => col.notNull())
      .addColumn('time', 'bigint', (col) => col.notNull())
      .addColumn('stream', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('entry_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('data', 'text', (col) => col.notNull())
      .addColumn('logged_at', 'bigint', (col) => col.notNull())
      .execute();
    for (const [name, columns] of [
      ['shield_events_deployment_idx', ['deployment_id', 'time']],
      ['shield_events_correlation_idx', ['correlation_id', 'time']],
      ['shield_events_type_idx', ['type', 'time']],
      ['shield_events_time_idx', ['time', 'seq']],
    ] as const) {
      await db.schema
        .createIndex(name)
        .on('shield_events')
        .columns([...columns])
        .execute();
    }

    await db.schema
      .createTable('shield_deployments')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('project', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('version', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('environment', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('strategy', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('status', 'text', (col) => col.notNull())
      .addColumn('phase', 'text', (col) => col.notNull())
      .addColumn('correlation_id', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('started_at', 'bigint')
      .addColumn('finished_at', 'bigint')
      .addColumn('sort_at', 'bigint', (col) => col.notNull())
      .addColumn('updated_at', 'bigint', (col) => col.notNull())
      .addColumn('record', 'text', (col) => col.notNull())
      .addColumn('revision', 'integer', (col) => col.notNull().defaultTo(0))
      .execute();
    for (const [name, columns] of [
      ['shield_deployments_sort_idx', ['sort_at', 'id']],
      ['shield_deployments_environment_idx', ['environment', 'sort_at']],
      ['shield_deployments_status_idx', ['status', 'sort_at']],
      ['shield_deployments_project_idx', ['project', 'sort_at']],
      ['shield_deployments_version_idx', ['version', 'sort_at']],
    ] as const) {
      await db.schema
        .createIndex(name)
        .on('shield_deployments')
        .columns([...columns])
        .execute();
    }

    await db.schema
      .createTable('shield_deployment_services')
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('service', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull().defaultTo(''))
      .addColumn('sort_at', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('shield_deployment_services_pk', ['deployment_id', 'service'])
      .execute();
    await db.schema
      .createIndex('shield_deployment_services_service_idx')
      .on('shield_deployment_services')
      .columns(['service', 'environment', 'sort_at'])
      .execute();
  },
  async down(db) {
    await db.schema.dropTable('shield_deployment_services').execute();
    await db.schema.dropTable('shield_deployments').execute();
    await db.schema.dropTable('shield_events').execute();
  },
};

/**
 * The fold state beside each record (`fold_state`, JSON): the live projection folds a new event
 * into it instead of folding all the deployment's events again. Null until the next recompute
 * writes it (rows of before, or rows whose events were logged without folding them).
 */
export const addShieldFoldState: StoreMigration = {
  name: '202612071800_shield_fold_state',
  async up(db) {
    await db.schema.alterTable('shield_deployments').addColumn('fold_state', 'text').execute();
  },
  async down(db) {
    await db.schema.alterTable('shield_deployments').dropColumn('fold_state').execute();
  },
};

/** Shield's migrations, in name order, for the registry in `src/store/migrations/index.ts`. */
export const shieldMigrations: readonly StoreMigration[] = [createShieldProjection, addShieldFoldState];
