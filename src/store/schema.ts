import type { ColumnType, Generated } from 'kysely';
import type { ShieldTables } from '../shield/store/schema.js';

/**
 * A point in time as stored: milliseconds since the Unix epoch (UTC), in a `bigint` column.
 * Chosen over ISO text because it compares and sorts as a number on both dialects and round-trips
 * a JavaScript `Date` exactly.
 */
export type EpochMs = number;

/** What a dead-letter record is now. */
export type FailedEventStatus = 'dead' | 'replayed' | 'purged';

/** The `failed_events` table: one row per (group, source stream, entry) that was dead-lettered. */
export interface FailedEventsTable {
  /** Short stable id derived from group, source stream and entry id (see `failedEventId`). */
  id: ColumnType<string, string, never>;
  /** Id of the entry on the dead-letter stream `<prefix>:dlq:<group>` that reported the latest failure. */
  dlq_entry_id: string;
  source_stream: ColumnType<string, string, never>;
  entry_id: ColumnType<string, string, never>;
  /** Event id (`id` field of the entry); empty when the entry carried none. */
  event_id: string;
  /** Event type (`type` field of the entry); empty when the entry carried none. */
  event_type: string;
  group_name: ColumnType<string, string, never>;
  consumer: string;
  attempts: number;
  error: string;
  stack: string;
  /** The original entry fields as a JSON object of strings. */
  payload: string;
  correlation_id: string;
  deployment_id: string;
  first_failed_at: EpochMs;
  last_failed_at: EpochMs;
  status: FailedEventStatus;
  replayed_at: EpochMs | null;
  replayed_by: string | null;
  replay_count: Generated<number>;
  created_at: ColumnType<EpochMs, EpochMs, never>;
}

/**
 * Every table the store holds, as Kysely sees it. A folder that registers migrations in
 * `src/store/migrations/index.ts` adds its table types here too, so `store.db` knows them.
 */
/** The `bus_alerts` table: whether each bus alert is firing for each group (see src/dlq/alerts.ts). */
export interface BusAlertsTable {
  alert: string;
  group_name: string;
  /** 1 while firing, 0 otherwise (an integer on both dialects). */
  firing: number;
  value: number;
  changed_at: EpochMs;
}

/** The orchestrator's saga rows (see src/orchestrator/migrations.ts). */
export interface OrchestratorDeploymentsTable {
  id: string;
  project: string;
  environment: string;
  version: string;
  previous_version: string | null;
  correlation_id: string;
  status: string;
  phase: string;
  plan_text: string;
  plan_source: string;
  plan_base_dir: string;
  /** JSON object of the `--var` values. */
  vars: string;
  /**
   * JSON of the saga state without its stages and published events (gates, approvals, failure,
   * rollback, warnings): those live one row each in `orchestrator_saga_stages` and
   * `orchestrator_saga_events`, so a step writes O(1) rows whatever the plan's size.
   */
  state: string;
  triggered_by: string;
  owner: string | null;
  lease_until: EpochMs;
  cancel_requested: number;
  cancel_rollback: number;
  cancelled_by: string | null;
  reason: string | null;
  created_at: EpochMs;
  updated_at: EpochMs;
  finished_at: EpochMs | null;
  /** `deploy`, or `rollback` for an environment rollback to an earlier release (`version`). */
  kind: Generated<string>;
  /** JSON `{window, reason, by}` when it was started with `--override-freeze` inside a freeze; null otherwise. */
  freeze_override: ColumnType<string | null, string | null | undefined, string | null>;
}

/** One stage of a deployment's saga state (see src/orchestrator/saga-rows.ts). */
export interface OrchestratorSagaStagesTable {
  deployment_id: string;
  stage: string;
  /** Order of the stage in the state (the order it started). */
  position: number;
  /** JSON of the StageState. */
  state: string;
}

/** One event a deployment's saga published, in order (append-only). */
export interface OrchestratorSagaEventsTable {
  deployment_id: string;
  seq: number;
  /** JSON of the PublishedRecord. */
  record: string;
}

export interface OrchestratorGateResultsTable {
  request_event_id: string;
  deployment_id: string;
  event_id: string;
  type: string;
  payload: string;
  received_at: EpochMs;
}

export interface OrchestratorEnvLocksTable {
  project: string;
  environment: string;
  deployment_id: string;
  acquired_at: EpochMs;
}

/** The answer to a deployment's wait for a person (an approval or a pause), one per gate. */
export interface OrchestratorApprovalsTable {
  deployment_id: string;
  /** `environment`, `stage:<name>` or `health`. */
  gate: string;
  /** `APPROVED`, `REJECTED` or `EXPIRED`. */
  outcome: string;
  /** Who answered; empty when it expired. */
  answered_by: string;
  comment: string;
  answered_at: EpochMs;
}

export interface OrchestratorReleasesTable {
  project: string;
  environment: string;
  service: string;
  version: string;
  deployment_id: string;
  deployed_at: EpochMs;
}

/**
 * The release ledger: what runs in each (project, environment), written in the same transaction
 * as the final state of the deployment that put it there (see src/orchestrator/ledger.ts).
 */
export interface OrchestratorLedgerTable {
  project: string;
  environment: string;
  version: string;
  deployment_id: string;
  /** `deploy` or `rollback`. */
  kind: string;
  triggered_by: string;
  since: EpochMs;
}

/** Every release an environment ever had, one row per time a version became current. */
export interface OrchestratorLedgerHistoryTable {
  id: Generated<number>;
  project: string;
  environment: string;
  version: string;
  deployment_id: string;
  kind: string;
  triggered_by: string;
  since: EpochMs;
  /** When the next release replaced it; null while current. */
  until: EpochMs | null;
}

/** Open and resolved incidents that stop the line (see src/orchestrator/incidents.ts). */
export interface OrchestratorIncidentsTable {
  /** `<project>:<environment>:<deployment id>`. */
  key: string;
  project: string;
  environment: string;
  deployment_id: string;
  /** The event that opened it. */
  event_id: string;
  event_type: string;
  /** One line, the notifier's headline and reason. */
  summary: string;
  opened_at: EpochMs;
  resolved_at: EpochMs | null;
  /** The deployment whose success resolved it. */
  resolved_by: string | null;
}

export interface Database extends ShieldTables {
  orchestrator_deployments: OrchestratorDeploymentsTable;
  orchestrator_saga_stages: OrchestratorSagaStagesTable;
  orchestrator_saga_events: OrchestratorSagaEventsTable;
  orchestrator_gate_results: OrchestratorGateResultsTable;
  orchestrator_env_locks: OrchestratorEnvLocksTable;
  orchestrator_releases: OrchestratorReleasesTable;
  orchestrator_incidents: OrchestratorIncidentsTable;
  orchestrator_approvals: OrchestratorApprovalsTable;
  orchestrator_ledger: OrchestratorLedgerTable;
  orchestrator_ledger_history: OrchestratorLedgerHistoryTable;
  bus_alerts: BusAlertsTable;
  failed_events: FailedEventsTable;
}
