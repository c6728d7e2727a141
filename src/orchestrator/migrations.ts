import type { StoreMigration } from '../store/migrate.js';

/**
 * The orchestrator's durable state: one row per deployment (the saga), the results that workers
 * sent for its gates, the per-environment locks and the last successful version per service.
 */
export const createOrchestratorTables: StoreMigration = {
  name: '202611292010_orchestrator_saga',
  async up(db) {
    await db.schema
      .createTable('orchestrator_deployments')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('project', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull())
      .addColumn('version', 'text', (col) => col.notNull())
      .addColumn('previous_version', 'text')
      .addColumn('correlation_id', 'text', (col) => col.notNull())
      .addColumn('status', 'text', (col) => col.notNull())
      .addColumn('phase', 'text', (col) => col.notNull())
      .addColumn('plan_text', 'text', (col) => col.notNull())
      .addColumn('plan_source', 'text', (col) => col.notNull())
      .addColumn('plan_base_dir', 'text', (col) => col.notNull())
      .addColumn('vars', 'text', (col) => col.notNull())
      .addColumn('state', 'text', (col) => col.notNull())
      .addColumn('triggered_by', 'text', (col) => col.notNull())
      .addColumn('owner', 'text')
      .addColumn('lease_until', 'bigint', (col) => col.notNull().defaultTo(0))
      .addColumn('cancel_requested', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('cancel_rollback', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('cancelled_by', 'text')
      .addColumn('reason', 'text')
      .addColumn('created_at', 'bigint', (col) => col.notNull())
      .addColumn('updated_at', 'bigint', (col) => col.notNull())
      .addColumn('finished_at', 'bigint')
      .execute();
    await db.schema
      .createIndex('orchestrator_deployments_status_idx')
      .on('orchestrator_deployments')
      .columns(['status', 'lease_until'])
      .execute();
    await db.schema
      .createTable('orchestrator_gate_results')
      .addColumn('request_event_id', 'text', (col) => col.primaryKey())
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('event_id', 'text', (col) => col.notNull())
      .addColumn('type', 'text', (col) => col.notNull())
      .addColumn('payload', 'text', (col) => col.notNull())
      .addColumn('received_at', 'bigint', (col) => col.notNull())
      .execute();
    await db.schema
      .createTable('orchestrator_env_locks')
      .addColumn('project', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull())
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('acquired_at', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('orchestrator_env_locks_pk', ['project', 'environment'])
      .execute();
    await db.schema
      .createTable('orchestrator_releases')
      .addColumn('project', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull())
      .addColumn('service', 'text', (col) => col.notNull())
      .addColumn('version', 'text', (col) => col.notNull())
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('deployed_at', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('orchestrator_releases_pk', ['project', 'environment', 'service'])
      .execute();
  },
  async down(db) {
    for (const table of [
      'orchestrator_releases',
      'orchestrator_env_locks',
      'orchestrator_gate_results',
      'orchestrator_deployments',
    ]) {
      await db.schema.dropTable(table).execute();
    }
  },
};
