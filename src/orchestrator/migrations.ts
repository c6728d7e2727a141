import type { Kysely } from 'kysely';
import type { Database } from '../store/index.js';
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

/**
 * The release ledger: the current release of every (project, environment) and every release it
 * had, and the kind of a deployment (`deploy`, or `rollback` to an earlier release). Filled from
 * the per-service releases recorded before it (the newest release of each environment).
 */
export const createReleaseLedger: StoreMigration = {
  name: '202612071845_orchestrator_release_ledger',
  async up(db, { dialect }) {
    await db.schema
      .alterTable('orchestrator_deployments')
      .addColumn('kind', 'text', (col) => col.notNull().defaultTo('deploy'))
      .execute();
    await db.schema
      .createTable('orchestrator_ledger')
      .addColumn('project', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull())
      .addColumn('version', 'text', (col) => col.notNull())
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('kind', 'text', (col) => col.notNull())
      .addColumn('triggered_by', 'text', (col) => col.notNull())
      .addColumn('since', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('orchestrator_ledger_pk', ['project', 'environment'])
      .execute();
    let history = db.schema.createTable('orchestrator_ledger_history');
    history =
      dialect === 'postgres'
        ? history.addColumn('id', 'bigserial', (col) => col.primaryKey())
        : history.addColumn('id', 'integer', (col) => col.primaryKey().autoIncrement());
    await history
      .addColumn('project', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull())
      .addColumn('version', 'text', (col) => col.notNull())
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('kind', 'text', (col) => col.notNull())
      .addColumn('triggered_by', 'text', (col) => col.notNull())
      .addColumn('since', 'bigint', (col) => col.notNull())
      .addColumn('until', 'bigint')
      .execute();
    await db.schema
      .createIndex('orchestrator_ledger_history_env_idx')
      .on('orchestrator_ledger_history')
      .columns(['project', 'environment', 'since'])
      .execute();
    // The newest per-service release of each environment becomes its current release.
    const typed = db as unknown as Kysely<Database>;
    const releases = await typed
      .selectFrom('orchestrator_releases')
      .selectAll()
      .orderBy('deployed_at', 'desc')
      .execute();
    const seen = new Set<string>();
    for (const release of releases) {
      const key = `${release.project}\u0000${release.environment}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const row = {
        project: release.project,
        environment: release.environment,
        version: release.version,
        deployment_id: release.deployment_id,
        kind: 'deploy',
        triggered_by: '',
        since: Number(release.deployed_at),
      };
      await typed.insertInto('orchestrator_ledger').values(row).execute();
      await typed
        .insertInto('orchestrator_ledger_history')
        .values({ ...row, until: null })
        .execute();
    }
  },
  async down(db) {
    await db.schema.dropTable('orchestrator_ledger_history').execute();
    await db.schema.dropTable('orchestrator_ledger').execute();
    await db.schema.alterTable('orchestrator_deployments').dropColumn('kind').execute();
  },
};

/**
 * The answers to approvals: written by whoever answers (the API may run in another process than
 * the saga, which polls this table), one row per deployment and gate. The first answer wins: an
 * expiry is written here too, so a late approval cannot race it.
 */
export const createApprovals: StoreMigration = {
  name: '202612071900_orchestrator_approvals',
  async up(db) {
    await db.schema
      .createTable('orchestrator_approvals')
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('gate', 'text', (col) => col.notNull())
      .addColumn('outcome', 'text', (col) => col.notNull())
      .addColumn('answered_by', 'text', (col) => col.notNull())
      .addColumn('comment', 'text', (col) => col.notNull())
      .addColumn('answered_at', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('orchestrator_approvals_pk', ['deployment_id', 'gate'])
      .execute();
  },
  async down(db) {
    await db.schema.dropTable('orchestrator_approvals').execute();
  },
};

/**
 * Freezes: the override a deployment was started with (`freeze_override`, JSON `{window, reason,
 * by}`, null when none), and the open incidents that stop the line (see src/orchestrator/incidents.ts).
 */
export const createFreezeTables: StoreMigration = {
  name: '202612071900_orchestrator_freeze',
  async up(db) {
    await db.schema.alterTable('orchestrator_deployments').addColumn('freeze_override', 'text').execute();
    await db.schema
      .createTable('orchestrator_incidents')
      .addColumn('key', 'text', (col) => col.primaryKey())
      .addColumn('project', 'text', (col) => col.notNull())
      .addColumn('environment', 'text', (col) => col.notNull())
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('event_id', 'text', (col) => col.notNull())
      .addColumn('event_type', 'text', (col) => col.notNull())
      .addColumn('summary', 'text', (col) => col.notNull())
      .addColumn('opened_at', 'bigint', (col) => col.notNull())
      .addColumn('resolved_at', 'bigint')
      .addColumn('resolved_by', 'text')
      .execute();
    await db.schema
      .createIndex('orchestrator_incidents_env_idx')
      .on('orchestrator_incidents')
      .columns(['project', 'environment', 'resolved_at'])
      .execute();
  },
  async down(db) {
    await db.schema.dropTable('orchestrator_incidents').execute();
    await db.schema.alterTable('orchestrator_deployments').dropColumn('freeze_override').execute();
  },
};

/**
 * The saga state in rows (see src/orchestrator/saga-rows.ts): one per stage, one per published
 * event, so that a step writes O(1) rows whatever the plan's size instead of rewriting the whole
 * state. Moves the stages and events of existing deployments out of their `state` JSON.
 */
export const createSagaRows: StoreMigration = {
  name: '202612072100_orchestrator_saga_rows',
  async up(db) {
    await db.schema
      .createTable('orchestrator_saga_stages')
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('stage', 'text', (col) => col.notNull())
      .addColumn('position', 'integer', (col) => col.notNull())
      .addColumn('state', 'text', (col) => col.notNull())
      .addPrimaryKeyConstraint('orchestrator_saga_stages_pk', ['deployment_id', 'stage'])
      .execute();
    await db.schema
      .createTable('orchestrator_saga_events')
      .addColumn('deployment_id', 'text', (col) => col.notNull())
      .addColumn('seq', 'integer', (col) => col.notNull())
      .addColumn('record', 'text', (col) => col.notNull())
      .addPrimaryKeyConstraint('orchestrator_saga_events_pk', ['deployment_id', 'seq'])
      .execute();
    const typed = db as unknown as Kysely<Database>;
    let after = '';
    for (;;) {
      const rows = await typed
        .selectFrom('orchestrator_deployments')
        .select(['id', 'state'])
        .where('id', '>', after)
        .orderBy('id')
        .limit(200)
        .execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        const {
          stages = {},
          events = [],
          ...core
        } = JSON.parse(row.state) as {
          stages?: Record<string, unknown>;
          events?: unknown[];
        };
        const stageRows = Object.entries(stages).map(([stage, state], position) => ({
          deployment_id: row.id,
          stage,
          position,
          state: JSON.stringify(state),
        }));
        const eventRows = events.map((event, seq) => ({
          deployment_id: row.id,
          seq,
          record: JSON.stringify(event),
        }));
        for (let i = 0; i < stageRows.length; i += 200)
          await typed
            .insertInto('orchestrator_saga_stages')
            .values(stageRows.slice(i, i + 200))
            .execute();
        for (let i = 0; i < eventRows.length; i += 200)
          await typed
            .insertInto('orchestrator_saga_events')
            .values(eventRows.slice(i, i + 200))
            .execute();
        await typed
          .updateTable('orchestrator_deployments')
          .set({ state: JSON.stringify(core) })
          .where('id', '=', row.id)
          .execute();
      }
      after = rows[rows.length - 1]!.id;
    }
  },
  async down(db) {
    await db.schema.dropTable('orchestrator_saga_events').execute();
    await db.schema.dropTable('orchestrator_saga_stages').execute();
  },
};
