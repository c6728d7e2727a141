import { PublishError } from '../../errors/index.js';
import { encodeEntry } from '../../events/codec.js';
import type { ContentType } from '../../events/envelope.js';
import { DEFAULT_STREAM_PREFIX, streamKey, streamRegistryKey } from '../../events/streams.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { type BackoffSettings, backoffDelay, sleep } from '../backoff.js';
import { prepareEvent } from '../outgoing.js';
import type { OutgoingEvent, PublishedEvent, Publisher, TrimOptions, TrimResult } from '../types.js';
import {
  execPipelined,
  isTransientRedisError,
  type PipelineCommand,
  type RedisClient,
} from './connection.js';
import { trimStream } from './trim.js';

/** Commands per pipeline of a large batch (see {@link RedisPublisher.publishBatch}). */
const PIPELINE_CHUNK = 100;

/** A pipeline of a batch already written: where its commands start, and its replies. */
interface Chunk {
  from: number;
  reply: Promise<unknown[]>;
}

/** Options of {@link RedisPublisher}. */
export interface RedisPublisherOptions {
  /** Command connection. The publisher does not close it unless `ownsClient` is true. */
  client: RedisClient;
  /** @defaultValue false */
  ownsClient?: boolean;
  /** @defaultValue `materi:events:deployment` */
  prefix?: string;
  /** `source` of the events. @defaultValue `materi` */
  source?: string;
  /** @defaultValue `application/json` */
  contentType?: ContentType;
  logger?: Logger;
  /**
   * Cap every stream at about this many entries on each XADD (`MAXLEN ~`). Only for streams that
   * no consumer group reads: MAXLEN does not know about groups. Use {@link RedisPublisher.trim}
   * for streams with groups. @defaultValue no cap
   */
  maxLenApprox?: number;
  /** Retries of transient connection errors. @defaultValue 4 attempts, 100 ms base, 2 s max */
  retry?: { attempts: number } & Partial<BackoffSettings>;
}

/** Publishes events to Redis Streams, one stream per event type (`<prefix>:<type>`). */
export class RedisPublisher implements Publisher {
  readonly prefix: string;
  private readonly client: RedisClient;
  private readonly options: RedisPublisherOptions;
  private readonly logger: Logger;
  private readonly defaults: { source: string; contentType: ContentType };
  private readonly retry: { attempts: number } & BackoffSettings;
  /** Types already added to the stream registry by this process. */
  private readonly registered = new Set<string>();

  constructor(options: RedisPublisherOptions) {
    this.options = options;
    this.client = options.client;
    this.prefix = options.prefix ?? DEFAULT_STREAM_PREFIX;
    this.logger = options.logger ?? silentLogger();
    this.defaults = {
      source: options.source ?? 'materi',
      contentType: options.contentType ?? 'application/json',
    };
    this.retry = { attempts: 4, baseMs: 100, maxMs: 2000, jitter: 0.2, ...options.retry };
    if (
      options.maxLenApprox !== undefined &&
      !(Number.isInteger(options.maxLenApprox) && options.maxLenApprox > 0)
    ) {
      throw new RangeError(`maxLenApprox must be a positive integer, got ${options.maxLenApprox}`);
    }
  }

  async publish<T extends string>(input: OutgoingEvent<T>): Promise<PublishedEvent> {
    const [published] = await this.publishBatch([input]);
    return published!;
  }

  /**
   * Every event is checked and encoded before anything is written, so a bad one fails the batch
   * with nothing stored. A large batch then goes out in pipelines of {@link PIPELINE_CHUNK}
   * commands, each written as soon as the client has built it: Redis appends one while the next
   * is being built.
   */
  async publishBatch(inputs: readonly OutgoingEvent[]): Promise<PublishedEvent[]> {
    const commands: PipelineCommand[] = [];
    const published: PublishedEvent[] = [];
    const xadds: number[] = [];
    const newTypes = new Set<string>();
    const cap = this.options.maxLenApprox;
    for (const input of inputs) {
      const { event, spec } = prepareEvent(input, this.defaults);
      const stream = streamKey(this.prefix, event.type);
      if (!this.registered.has(event.type) && !newTypes.has(event.type)) {
        newTypes.add(event.type);
        commands.push(['sadd', streamRegistryKey(this.prefix), event.type]);
      }
      const xadd = cap ? ['xadd', stream, 'MAXLEN', '~', String(cap), '*'] : ['xadd', stream, '*'];
      encodeEntry(event, spec, xadd);
      xadds.push(commands.length);
      commands.push(xadd as PipelineCommand);
      published.push({ event, stream, entryId: '' });
    }
    const chunks: Chunk[] = [];
    for (let from = 0; from < commands.length; from += PIPELINE_CHUNK) {
      chunks.push(this.sendChunk(commands, from));
    }
    const replies = await this.collect(commands, chunks, published[0]?.stream ?? this.prefix);
    for (const type of newTypes) {
      this.registered.add(type);
      // Subscribers reading a pattern of types learn of the stream at once (see RedisSubscriber).
      // Best effort: a user without Pub/Sub rights still publishes; subscribers then poll.
      this.client.publish(streamRegistryKey(this.prefix), type).catch(() => {});
    }
    const debug = this.logger.isLevelEnabled('debug');
    for (const [i, p] of published.entries()) {
      p.entryId = replies[xadds[i]!] as string;
      if (debug) {
        this.logger.debug(
          {
            event_id: p.event.id,
            type: p.event.type,
            stream: p.stream,
            entry_id: p.entryId,
            correlation_id: p.event.correlationId,
          },
          'event published',
        );
      }
    }
    return published;
  }

  /**
   * Trims the stream of an event type. Never removes an entry that a consumer group has not
   * acknowledged (pending or not yet delivered): the cut is bounded by the oldest pending or
   * last-delivered id of every group (XTRIM MINID).
   */
  trim(type: string, options: TrimOptions): Promise<TrimResult> {
    return trimStream(this.client, streamKey(this.prefix, type), options);
  }

  async close(): Promise<void> {
    if (this.options.ownsClient) await this.client.quit().catch(() => this.client.disconnect());
  }

  private sendChunk(commands: PipelineCommand[], from: number): Chunk {
    const reply = execPipelined(this.client, commands.slice(from, from + PIPELINE_CHUNK));
    // Observed at once: a chunk may fail while later ones are still being built.
    reply.catch(() => {});
    return { from, reply };
  }

  /**
   * The replies of every chunk, in order. From the first chunk that failed on, the commands are
   * sent again in one pipeline (retrying transient errors), so entries keep the batch's order;
   * an entry of a later chunk that had been stored is then stored twice, with the same event id,
   * which consumers deduplicate.
   */
  private async collect(commands: PipelineCommand[], chunks: Chunk[], stream: string): Promise<unknown[]> {
    const replies: unknown[] = [];
    for (const chunk of chunks) {
      try {
        replies.push(...(await chunk.reply));
      } catch (error) {
        replies.push(...(await this.send(commands.slice(chunk.from), stream, error)));
        return replies;
      }
    }
    return replies;
  }

  /** Sends commands after a first attempt failed with `failure`, retrying transient errors. */
  private async send(commands: PipelineCommand[], stream: string, failure: unknown): Promise<unknown[]> {
    let error = failure;
    for (let attempt = 1; ; attempt++) {
      if (!isTransientRedisError(error) || attempt >= this.retry.attempts) {
        this.logger.error({ stream, err: error, attempts: attempt }, 'publish failed');
        throw new PublishError(stream, error);
      }
      const delay = backoffDelay(attempt, this.retry);
      this.logger.warn({ stream, attempt, delay_ms: delay, err: error }, 'publish failed, retrying');
      await sleep(delay);
      try {
        return await execPipelined(this.client, commands);
      } catch (next) {
        error = next;
      }
    }
  }
}
