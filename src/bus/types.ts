import type { MessageInitShape } from '@bufbuild/protobuf';
import type { GenMessage } from '@bufbuild/protobuf/codegenv2';
import type { Level } from 'pino';
import type { EventData, PriorityName } from '../events/catalog.js';
import type { ContentType, DeploymentEvent } from '../events/envelope.js';
import type { Logger } from '../runtime/logging.js';
import type { BackoffSettings } from './backoff.js';

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
   * Whether `logger` writes at `level`. Cheaper than asking the logger: the router builds the
   * bound logger on first use, and most events are handled without logging anything.
   */
  isLevelEnabled(level: Level): boolean;
  /**
   * Acknowledges the entry only once `task` has succeeded, without holding the handler's slot
   * meanwhile; if it fails, the entry stays pending and is delivered again. For work that must
   * be durable before the ack, such as recording the event as handled (idempotency).
   */
  deferAck(task: Promise<void>): void;
  /**
   * Publisher for result events. Events published through it carry the handled event's
   * correlation id and name it as their cause.
   */
  publisher: Publisher;
  /** Aborted when the consumer shuts down past its grace period. */
  signal: AbortSignal;
  /**
   * Tells the group this consumer is still working on the entry, so no other consumer reclaims
   * it. The subscription also renews the claims of its entries in flight every third of the
   * claim-idle time; a handler calls it to say so explicitly (a health window of minutes does).
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

/** An entry as a subscriber delivers it to the router, before decoding. */
export interface ReceivedMessage extends Delivery {
  /** The entry's fields as stored. */
  fields: Record<string, string>;
  /** Handling priority from the entry (NORMAL when missing or unreadable). */
  priority: PriorityName;
  /** Resets the entry's idle time so no other consumer reclaims it. */
  renewClaim(): Promise<void>;
  /** Aborted when the consumer stops past its grace period. */
  signal: AbortSignal;
}

/**
 * What the router decided about a message:
 * - `ack`: handled (or deliberately skipped); acknowledge it — once `after` has succeeded, when given.
 * - `retry`: failed; deliver it again after a backoff (dead-lettered once deliveries run out).
 * - `dead-letter`: failed in a way retrying cannot fix; move it to the dead-letter stream now.
 */
export type Disposition =
  | { kind: 'ack'; after?: Promise<void> }
  | { kind: 'retry'; error: unknown }
  | { kind: 'dead-letter'; error: unknown; reason: 'unrecoverable' | 'decode' | 'max-deliveries' };

/** Settings of one subscription (one consumer group reading some event types). */
export interface SubscriptionOptions {
  group: string;
  /** Event types or patterns (`deployment:stage:*:completed`, `**` for all); new streams are discovered. */
  types: readonly string[];
  /** Messages handled at once by this process. @defaultValue 1 */
  concurrency?: number;
  /** Deliveries before a failing message is dead-lettered. @defaultValue 5 */
  maxDeliveries?: number;
  /** Retry delays (by delivery count). @defaultValue 1 s doubling to 60 s, ±20 % jitter */
  backoff?: Partial<BackoffSettings>;
  /**
   * A pending message idle this long is taken over from its consumer (presumed dead).
   * Handlers renew their claim automatically at a third of it. @defaultValue 30000
   */
  claimIdleMs?: number;
  /** Where a new group starts reading. @defaultValue `beginning` (never miss an event) */
  startFrom?: 'beginning' | 'latest';
  /** Consumer name suffix (the slot). @defaultValue 0 */
  slot?: number;
  /**
   * What `types` name: event types (`events`), or consumer groups whose dead-letter streams to
   * read (`dead-letters`, used by the dead-letter recorder; patterns match group names).
   * @defaultValue `events`
   */
  source?: 'events' | 'dead-letters';
}

/** Observes what a subscription does, for metrics and tests. Every callback is optional. */
export interface SubscriptionObserver {
  received?(message: ReceivedMessage): void;
  acked?(message: ReceivedMessage, durationMs: number): void;
  retried?(message: ReceivedMessage, error: unknown): void;
  deadLettered?(message: ReceivedMessage, error: unknown, reason: string): void;
  reclaimed?(group: string, stream: string, count: number): void;
  /** Entries found deleted or trimmed while reclaiming: acknowledged and counted, never retried. */
  vanished?(group: string, stream: string, count: number): void;
  error?(error: unknown, where: string): void;
}

/** A running subscription. */
export interface Subscription {
  readonly group: string;
  readonly consumer: string;
  /** Messages being handled now. */
  readonly inFlight: number;
  /**
   * Stops reading, waits for messages in flight up to `graceMs`, then aborts the rest (they stay
   * pending and are reclaimed by another consumer). Resolves when everything is released.
   */
  close(graceMs?: number): Promise<void>;
}

/** The process function a subscription calls for every message. Must not throw. */
export type ProcessMessage = (message: ReceivedMessage) => Promise<Disposition>;

/**
 * Reads streams through consumer groups.
 *
 * Contract: delivery is at least once. A message is acknowledged only after `process` resolves
 * with `ack`; a process crash leaves it pending and another consumer reclaims it after
 * `claimIdleMs`. Retries are counted by the backend's own delivery counter, so they survive
 * restarts. Dead-lettering writes the message to `<prefix>:dlq:<group>` together with its ack.
 */
export interface Subscriber {
  readonly prefix: string;
  subscribe(
    options: SubscriptionOptions,
    process: ProcessMessage,
    observer?: SubscriptionObserver,
  ): Promise<Subscription>;
  /** Closes every subscription (see {@link Subscription.close}) and the subscriber's connections. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Who holds an idempotency lease: the consumer and the stream entry it was delivered. A group's
 * pending list gives an entry to one consumer at a time, so a lease held for the same entry by
 * another consumer belongs to one that lost the entry (it was reclaimed from a dead or stalled
 * consumer) and is taken over at once.
 */
export interface LeaseHolder {
  consumer: string;
  stream: string;
  entryId: string;
}

/** A lease some consumer holds on an event id: its consumer and the marker that proves it. */
export interface HeldLease {
  consumer: string;
  /** The stored marker, for a compare-and-set {@link IdempotencyStore.takeOver}. */
  marker: string;
}

/**
 * Remembers which event ids a group has handled, for the idempotency middleware. Shared by every
 * process of a group (Redis or the embedded database).
 */
export interface IdempotencyStore {
  /**
   * Tries to take an event for handling. `acquired` also when the lease is held for the same
   * stream entry by another consumer (the entry was reclaimed from it). `done`: handled before
   * (skip and ack); `busy`: another consumer is handling the same event id from another entry (a
   * duplicate) right now (retry later). Without a holder the lease is anonymous: it is only freed
   * by `release` or by expiring.
   */
  begin(
    group: string,
    eventId: string,
    leaseMs: number,
    holder?: LeaseHolder,
  ): Promise<'acquired' | 'done' | 'busy'>;
  /** Records success; the id is remembered for the idempotency window. */
  complete(group: string, eventId: string): Promise<void>;
  /**
   * Gives the lease back after a failure, so a retry may take it. With a holder, only a lease that
   * holder still holds is given back (another consumer may have taken it over meanwhile).
   */
  release(group: string, eventId: string, holder?: LeaseHolder): Promise<void>;
  /** The running lease on an event id, when one is held by a named consumer. */
  heldBy(group: string, eventId: string): Promise<HeldLease | undefined>;
  /**
   * Takes a lease over from a consumer that is gone, if `marker` is still the stored one
   * (compare-and-set). Resolves whether it was taken.
   */
  takeOver(
    group: string,
    eventId: string,
    marker: string,
    holder: LeaseHolder,
    leaseMs: number,
  ): Promise<boolean>;
}

/** A consumer of a group as the backend sees it, joined with its process' heartbeat. */
export interface ConsumerStatus {
  /** `<group>:<host>:<pid>:<slot>`, or `<group>@retry` for entries waiting for a retry. */
  name: string;
  /** Entries delivered to it and not yet acknowledged. */
  pending: number;
  /** Milliseconds since it last read or claimed. */
  idleMs: number;
  host?: string;
  pid?: number;
  /** Last heartbeat of its process. */
  lastHeartbeat?: Date;
  /** `alive`: its process sends heartbeats; `dead`: it stopped (its entries will be reclaimed); `retry`: the retry parking slot. */
  state: 'alive' | 'dead' | 'retry';
}

/** One stream read by a group. */
export interface StreamGroupStatus {
  stream: string;
  /** Entries not yet delivered to the group (null when the backend cannot tell). */
  lag: number | null;
  pending: number;
  /** Age of the oldest unacknowledged entry, from its publication time. */
  oldestPendingAgeMs: number | null;
}

/** The state of one consumer group across all the streams it reads. */
export interface GroupStatus {
  group: string;
  streams: StreamGroupStatus[];
  lag: number;
  pending: number;
  oldestPendingAgeMs: number | null;
  consumers: ConsumerStatus[];
  /** Entries in the group's dead-letter stream. */
  deadLettered: number;
}

/** A process that consumes, as its heartbeat describes it. */
export interface ProcessHeartbeat {
  host: string;
  pid: number;
  /** What runs in it: `up`, `worker validator`, … */
  role: string;
  groups: string[];
  startedAt: Date;
  beatAt: Date;
}

/** Reads the state of consumer groups and worker processes from a backend. */
export interface BusInspector {
  groups(): Promise<GroupStatus[]>;
  heartbeats(): Promise<ProcessHeartbeat[]>;
  /** Records that this process is alive (called periodically) — or, with `stopped`, that it left. */
  beat(heartbeat: ProcessHeartbeat, stopped?: boolean): Promise<void>;
}
