/**
 * The one list of store migrations, in the order they run. A folder that needs tables (Shield's
 * projection, the orchestrator's saga state) writes its migrations in its own folder, e.g.
 * `src/shield/store/migrations.ts`, and adds them here:
 *
 * ```ts
 * import { shieldMigrations } from '../../shield/store/migrations.js';
 * export const MIGRATIONS = [createFailedEvents, ...shieldMigrations];
 * ```
 *
 * Names are `<yyyymmddhhmm>_<folder>_<what>`; the list must be sorted by name (`checkMigrationList`
 * enforces it), because the migrator runs pending migrations in name order. A migration is never
 * edited once released: add a new one instead.
 *
 * @module
 */

import { createBusAlerts } from '../../dlq/migrations.js';
import {
  createApprovals,
  createFreezeTables,
  createOrchestratorTables,
  createReleaseLedger,
  createSagaRows,
} from '../../orchestrator/migrations.js';
import { shieldMigrations } from '../../shield/store/migrations.js';
import type { StoreMigration } from '../migrate.js';
import { createFailedEvents } from './202611291935_store_failed_events.js';
import { addFailedEventsReplayedBy } from './202612072000_store_failed_events_replayed_by.js';

export const MIGRATIONS: readonly StoreMigration[] = [
  createFailedEvents,
  createBusAlerts,
  createOrchestratorTables,
  ...shieldMigrations,
  createReleaseLedger,
  createApprovals,
  createFreezeTables,
  addFailedEventsReplayedBy,
  createSagaRows,
];
