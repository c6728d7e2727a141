import type { Subscriber, Subscription, SubscriptionObserver } from '../bus/types.js';
import type { Logger } from '../runtime/logging.js';
import type { FailedEventStore } from '../store/index.js';
import { deadLetterRecordFromFields } from './records.js';

/** Consumer group of the recorder that turns dead-letter entries into `failed_events` rows. */
export const DEAD_LETTER_RECORDER_GROUP = 'materi-dlq-recorder';

export interface DeadLetterRecorderOptions {
  subscriber: Subscriber;
  failedEvents: FailedEventStore;
  logger: Logger;
  observer?: SubscriptionObserver;
  /** @defaultValue 30000 */
  claimIdleMs?: number;
}

/**
 * Reads every group's dead-letter stream through its own consumer group and records each entry
 * as a `failed_events` row, acknowledging only after the row is written. A process killed
 * between the dead-letter write and the row insert leaves the entry pending, so the row is
 * written on redelivery; recording is an idempotent upsert.
 */
export function startDeadLetterRecorder(options: DeadLetterRecorderOptions): Promise<Subscription> {
  return options.subscriber.subscribe(
    {
      group: DEAD_LETTER_RECORDER_GROUP,
      source: 'dead-letters',
      types: ['*'],
      concurrency: 4,
      claimIdleMs: options.claimIdleMs,
      // Never give up on a record: when the database is down, keep retrying (backoff up to a minute).
      maxDeliveries: Number.MAX_SAFE_INTEGER,
    },
    async (message) => {
      if (message.fields.group === DEAD_LETTER_RECORDER_GROUP) return { kind: 'ack' };
      try {
        const record = deadLetterRecordFromFields(message.entryId, message.fields);
        const row = await options.failedEvents.record(record);
        options.logger.info(
          {
            failed_event: row.id,
            group: row.group,
            type: row.eventType,
            attempts: row.attempts,
            error: row.error,
          },
          'dead-lettered event recorded',
        );
        return { kind: 'ack' };
      } catch (error) {
        options.logger.warn({ err: error }, 'recording a dead-lettered event failed; will retry');
        return { kind: 'retry', error };
      }
    },
    options.observer,
  );
}
