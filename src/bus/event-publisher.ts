import { stageEventType } from '../events/catalog.js';
import type { EventDataInit, OutgoingEvent, PublishedEvent, Publisher } from './types.js';

/** Envelope settings a caller may give with a typed publish. */
export type PublishMeta = Omit<OutgoingEvent, 'type' | 'data'>;

/**
 * The seed's typed publishing methods, one per event, over any {@link Publisher} backend.
 * Each takes the event's payload (protobuf init shape, lowerCamelCase fields) and optional
 * envelope settings (correlation id, priority, …).
 *
 * @example
 * await events.publishDeploymentStarted(
 *   { deploymentId, version: 'v1.4.2', environment: 'production', strategy: 'rolling', services: ['api'] },
 *   { correlationId },
 * );
 */
export class DeploymentEventPublisher {
  constructor(readonly publisher: Publisher) {}

  publishDeploymentStarted(
    data: EventDataInit<'deployment:started'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'deployment:started', data });
  }

  publishStageStarted(
    data: EventDataInit<'deployment:stage:x:started'> & { stage: string },
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: stageEventType(data.stage, 'started'), data });
  }

  publishStageCompleted(
    data: EventDataInit<'deployment:stage:x:completed'> & { stage: string },
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: stageEventType(data.stage, 'completed'), data });
  }

  publishDeploymentCompleted(
    data: EventDataInit<'deployment:completed'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'deployment:completed', data });
  }

  publishDeploymentFailed(
    data: EventDataInit<'deployment:failed'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'deployment:failed', data });
  }

  publishRollbackInitiated(
    data: EventDataInit<'rollback:initiated'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'rollback:initiated', data });
  }

  publishRollbackCompleted(
    data: EventDataInit<'rollback:completed'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'rollback:completed', data });
  }

  publishValidationStarted(
    data: EventDataInit<'validation:started'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'validation:started', data });
  }

  publishValidationCompleted(
    data: EventDataInit<'validation:completed'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'validation:completed', data });
  }

  publishDependencyCheckStarted(
    data: EventDataInit<'dependency:check:started'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'dependency:check:started', data });
  }

  publishDependencyCheckCompleted(
    data: EventDataInit<'dependency:check:completed'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'dependency:check:completed', data });
  }

  publishHealthCheckStarted(
    data: EventDataInit<'health:check:started'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'health:check:started', data });
  }

  publishHealthCheckCompleted(
    data: EventDataInit<'health:check:completed'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'health:check:completed', data });
  }

  publishNotificationSent(
    data: EventDataInit<'notification:sent'>,
    meta?: PublishMeta,
  ): Promise<PublishedEvent> {
    return this.publisher.publish({ ...meta, type: 'notification:sent', data });
  }

  /** Any event of the catalog. */
  publish<T extends string>(event: OutgoingEvent<T>): Promise<PublishedEvent> {
    return this.publisher.publish(event);
  }
}
