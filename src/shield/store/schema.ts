import type { ColumnType, Generated } from 'kysely';
import type { EpochMs } from '../../store/schema.js';

/**
 * The event log (`shield_events`): every event Shield has seen, once. `seq` is the order in which
 * events were logged; it is the id of SSE messages and the resume point of `Last-Event-ID`.
 */
export interface ShieldEventsTable {
  seq: Generated<number>;
  /** Event id (UUID); unique, so logging the same event twice keeps one row. */
  event_id: ColumnType<string, string, never>;
  type: string;
  /** Empty for events that belong to no deployment (bus alerts). */
  deployment_id: string;
  correlation_id: string;
  causation_id: string;
  priority: string;
  source: string;
  /** Publication time of the event. */
  time: EpochMs;
  /** Stream key and entry id the event was first logged from. */
  stream: string;
  entry_id: string;
  /** The payload in the proto3 JSON mapping, as JSON text. */
  data: string;
  logged_at: EpochMs;
}

/** One row per deployment: the searchable columns and the whole record as JSON. */
export interface ShieldDeploymentsTable {
  id: ColumnType<string, string, never>;
  project: string;
  version: string;
  environment: string;
  strategy: string;
  status: string;
  phase: string;
  correlation_id: string;
  started_at: EpochMs | null;
  finished_at: EpochMs | null;
  /** Sort key of the history (newest first): start time, else the earliest event's time. */
  sort_at: EpochMs;
  /** Time of the latest event of the deployment. */
  updated_at: EpochMs;
  /** The `UnifiedDeployment` record as JSON text. */
  record: string;
  /**
   * Bumped by every write of the record or of the events it is folded from: the update takes the
   * row lock that serializes them, and a fold state cached at revision r is current at r + 1
   * (after this writer's own bump). A new row starts at a random revision.
   */
  revision: Generated<number>;
  /**
   * The fold state the record was computed from (`saveFoldState`, JSON, with the service index
   * written), or null: then the next event folds all the deployment's events again.
   */
  fold_state: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Which services each deployment covered, for `GET /api/deployments?service=`. */
export interface ShieldDeploymentServicesTable {
  deployment_id: string;
  service: string;
  environment: string;
  sort_at: EpochMs;
}

/** Shield's tables, merged into the store's `Database`. */
export interface ShieldTables {
  shield_events: ShieldEventsTable;
  shield_deployments: ShieldDeploymentsTable;
  shield_deployment_services: ShieldDeploymentServicesTable;
}
