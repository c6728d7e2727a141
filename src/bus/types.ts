import type { MessageInitShape } from '@bufbuild/protobuf';
import type { GenMessage } from '@bufbuild/protobuf/codegenv2';
import type { EventData, PriorityName } from '../events/catalog.js';
import type { ContentType, DeploymentEvent } from '../events/envelope.js';
import type { Logger } from '../runtime/logging.js';

/**
 * The payload accepted for an event type: the init shape of its protobuf message (plain object,
 * missing fields take their defaults).
 */
export type EventDataInit<T extends string> = string extends T
  ? Record<string, unknown>
  : MessageInitShape<GenMessage<EventData<T>>>;

/** An event to publish. Envelope fields left out are filled in by the publisher. */
export interface OutgoingEvent<T extends string = string> {
  type: T;
  data: EventDataInit<T>;
  /**
   * Correlation id. @defaultValue the correlation id of the event being handled (when published
   * from a handler), else a new UUID
   */
  correlationId?: string;
  /** Causation id. @defaultValue the id of the event being handled, else empty */
  causationId?: string;
  /** @defaultValue `data.deploymentId`, else the handled event's deployment id, else empty */
  deploymentId?: string;
  /** @defaultValue the type's default priority in the event catalog */
  priority?: PriorityName;
  /** Event id. @defaultValue a new UUID; set it only to re-publish the same event idempotently */
  id?: string;
  /** @defaultValue the publisher's content type (`application/json`) */
  contentType?: ContentType;
  /** @defaultValue the publisher's source */
  source?: string;
  /** @defaultValue now */
  time?: Date;
}

/** What a publish call stored. */
export interface PublishedEvent {
  event: DeploymentEvent;
  /** Stream key the entry was appended to. */
  stream: string;
  /** Entry id assigned by the backend (Redis stream id, e.g. `1700000000000-0`). */
  entryId: string;
}

/**
 * Appends events to their streams.
 *
 * Contract: a resolved `publish` means the entry is stored by the backend (Redis acknowledged the
 * XADD; SQLite committed the row). A rejected one throws `PublishError` naming the stream key;
 * the event may or may not have been stored, so retrying with the same `id` is safe — consumers
 * deduplicate by event id. Implementations must be safe to call concurrently.
 */
export interface Publisher {
  publish<T extends string>(event: OutgoingEvent<T>): Promise<PublishedEvent>;
  /**
   * Publishes several events in one round trip where the backend allows. Resolves when every one
   * is stored, in the order given; rejects on the first failure.
   */
  publishBatch(events: readonly OutgoingEvent[]): Promise<PublishedEvent[]>;
  /** Releases connections the publisher owns. Pending publishes finish first. */
  close(): Promise<void>;
}

/** Options for trimming a stream. */
export interface TrimOptions {
  /** Drop entries older than this many milliseconds (only those every group has acknowledged). */
  maxAgeMs?: number;
  /**
   * Keep about this many newest entries. On a stream with consumer groups the trim still never
   * goes past an entry some group has not acknowledged.
   */
  maxLen?: number;
}

/** Result of a trim. */
export interface TrimResult {
  stream: string;
  /** Entries removed. */
  removed: number;
  /** Entries kept because a consumer group has not acknowledged them yet. */
  protectedByGroups: boolean;
}

/** Where and how often an event was delivered to a consumer group. */
export interface Delivery {
  /** Stream key the entry was read from. */
  stream: string;
  /** Entry id in that stream. */
  entryId: string;
  /** Times the entry has been delivered to this group, this delivery included (Redis' counter). */
  deliveryCount: number;
  group: string;
  /** Consumer name, `<group>:<host>:<pid>:<slot>`. */
  consumer: string;
}

/** What a handler gets besides the event. */
export interface HandlerContext {
  delivery: Delivery;
  /** Logger bound to the event (event id, type, correlation id, group). */
  logger: Logger;
  /**
   * Publisher for result events. Events published through it carry the handled event's
   * correlation id and name it as their cause.
   */
  publisher: Publisher;
  /** Aborted when the consumer shuts down past its grace period or loses the entry. */
  signal: AbortSignal;
  /**
   * Tells the group this consumer is still working on the entry, so no other consumer reclaims
   * it. Long handlers (a health window of minutes) call it at least every claim-idle interval;
   * the router also renews automatically while the handler runs.
   */
  renewClaim(): Promise<void>;
}

/**
 * Handles one event. Resolving acknowledges the entry; throwing leaves it for a retry with
 * backoff; throwing an `UnrecoverableError` (or after the last allowed delivery) moves it to the
 * group's dead-letter stream. Handlers must be idempotent: delivery is at least once.
 */
export type Handler<D = unknown> = (event: DeploymentEvent<D>, context: HandlerContext) => Promise<void>;

/** Wraps a handler (decode, idempotency, metrics, logging, …). */
export type Middleware = (next: Handler) => Handler;
