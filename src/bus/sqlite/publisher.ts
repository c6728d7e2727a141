import { PublishError } from '../../errors/index.js';
import { encodeEntry, fieldsToRecord } from '../../events/codec.js';
import type { ContentType } from '../../events/envelope.js';
import { DEFAULT_STREAM_PREFIX, streamKey } from '../../events/streams.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { prepareEvent } from '../outgoing.js';
import type { OutgoingEvent, PublishedEvent, Publisher, TrimOptions, TrimResult } from '../types.js';
import type { EntryToAppend, SqliteBusDatabase } from './database.js';
import { trimStream } from './inspect.js';

/** Options of {@link SqlitePublisher}. */
export interface SqlitePublisherOptions {
  /** The bus connection. Not closed by the publisher unless `ownsDatabase` is true. */
  database: SqliteBusDatabase;
  /** @defaultValue false */
  ownsDatabase?: boolean;
  /** @defaultValue `materi:events:deployment` */
  prefix?: string;
  /** `source` of the events. @defaultValue `materi` */
  source?: string;
  /** @defaultValue `application/json` */
  contentType?: ContentType;
  logger?: Logger;
}

/**
 * Publishes events to the embedded bus, one stream per event type (`<prefix>:<type>`), with the
 * same entry fields as the Redis publisher. A publish resolves once its transaction committed;
 * publishes issued in the same tick share one commit. Streams are registered for discovery in the
 * same transaction as their first entry.
 */
export class SqlitePublisher implements Publisher {
  readonly prefix: string;
  private readonly database: SqliteBusDatabase;
  private readonly logger: Logger;
  private readonly defaults: { source: string; contentType: ContentType };

  constructor(private readonly options: SqlitePublisherOptions) {
    this.database = options.database;
    this.prefix = options.prefix ?? DEFAULT_STREAM_PREFIX;
    this.logger = options.logger ?? silentLogger();
    this.defaults = {
      source: options.source ?? 'materi',
      contentType: options.contentType ?? 'application/json',
    };
  }

  async publish<T extends string>(input: OutgoingEvent<T>): Promise<PublishedEvent> {
    const [published] = await this.publishBatch([input]);
    return published!;
  }

  async publishBatch(inputs: readonly OutgoingEvent[]): Promise<PublishedEvent[]> {
    if (inputs.length === 0) return [];
    const prepared = inputs.map((input) => {
      const { event, spec } = prepareEvent(input, this.defaults);
      return { event, stream: streamKey(this.prefix, event.type), fields: encodeEntry(event, spec) };
    });
    const entries: EntryToAppend[] = prepared.map((p) => ({
      stream: p.stream,
      fields: fieldsToRecord(p.fields),
      registry: { prefix: this.prefix, type: p.event.type },
    }));
    let appended: { entryId: string }[];
    try {
      // immediate(): inside the shared commit, the batch is a savepoint — stored whole or not at all.
      appended = await this.database.write(() =>
        this.database.immediate(() => this.database.append(entries)),
      );
    } catch (error) {
      const stream = prepared[0]!.stream;
      this.logger.error({ stream, err: error }, 'publish failed');
      throw new PublishError(stream, error);
    }
    const debug = this.logger.isLevelEnabled('debug');
    return prepared.map((p, i) => {
      const entryId = appended[i]!.entryId;
      if (debug) {
        this.logger.debug(
          {
            event_id: p.event.id,
            type: p.event.type,
            stream: p.stream,
            entry_id: entryId,
            correlation_id: p.event.correlationId,
          },
          'event published',
        );
      }
      return { event: p.event, stream: p.stream, entryId };
    });
  }

  /**
   * Trims the stream of an event type. Never removes an entry that a consumer group has not
   * acknowledged (pending, parked for a retry, or not yet delivered), like the Redis publisher.
   */
  trim(type: string, options: TrimOptions): Promise<TrimResult> {
    return trimStream(this.database, streamKey(this.prefix, type), options);
  }

  /** Waits for publishes in progress to commit; closes the file when the publisher owns it. */
  async close(): Promise<void> {
    if (this.database.isClosed) return;
    await this.database.flush();
    if (this.options.ownsDatabase) await this.database.close();
  }
}
