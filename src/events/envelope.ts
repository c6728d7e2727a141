import type { PriorityName } from './catalog.js';

/** How the payload in the `data` field is encoded. */
export type ContentType = 'application/json' | 'application/protobuf';

export const CONTENT_TYPES: readonly ContentType[] = ['application/json', 'application/protobuf'];

/**
 * A decoded deployment event: the envelope fields of a stream entry and its typed payload.
 * `data` is the protobuf message of the type (see the event catalog).
 */
export interface DeploymentEvent<D = unknown> {
  /** Event id (UUID). Consumers deduplicate by it. */
  id: string;
  /** Event type, e.g. `deployment:started`. */
  type: string;
  /** Component that published it, e.g. `materi/orchestrator`. */
  source: string;
  /** Publication time (UTC, millisecond precision). */
  time: Date;
  /** Shared by every event of one deployment run. */
  correlationId: string;
  /** Id of the event that caused this one; empty for the first event of a flow. */
  causationId: string;
  /** Deployment the event belongs to; empty for bus alerts. */
  deploymentId: string;
  priority: PriorityName;
  /** Fully qualified protobuf message name of `data`. */
  schema: string;
  contentType: ContentType;
  data: D;
}
