import { ConfigError } from '../errors/index.js';
import { fieldsToRecord } from '../events/codec.js';
import { streamKey, streamRegistryKey } from '../events/streams.js';
import type { EventBus } from './open.js';
import type { RedisClient } from './redis/connection.js';

/** One stream entry as stored. */
export interface StreamEntry {
  stream: string;
  entryId: string;
  fields: Record<string, string>;
}

/**
 * Reads the event streams directly, outside any consumer group and without changing them (no
 * acks, no group cursors): what a rebuild needs to replay history.
 */
export interface EventStreamReader {
  /** Event types that have a stream, from the registry the publishers maintain. */
  types(): Promise<string[]>;
  /** Entries of a type's stream after `after` (exclusive; from the start when absent), oldest first. */
  read(type: string, after: string | undefined, count: number): Promise<StreamEntry[]>;
}

/** Reads Redis streams with SMEMBERS on the registry and XRANGE (read-only commands). */
export function redisStreamReader(redis: RedisClient, prefix: string): EventStreamReader {
  return {
    async types() {
      return (await redis.smembers(streamRegistryKey(prefix))).sort();
    },
    async read(type, after, count) {
      const key = streamKey(prefix, type);
      const entries = (await redis.xrange(
        key,
        after === undefined ? '-' : `(${after}`,
        '+',
        'COUNT',
        count,
      )) as [string, string[]][];
      return entries.map(([entryId, fields]) => ({ stream: key, entryId, fields: fieldsToRecord(fields) }));
    },
  };
}

/** What the embedded (SQLite) bus offers for reading its streams (`SqliteBus` has both methods). */
export interface EmbeddedStreams {
  prefix: string;
  streams(prefix?: string): { stream: string; type: string | undefined }[];
  range(
    stream: string,
    options?: { after?: string; count?: number },
  ): { stream: string; entryId: string; fields: Record<string, string> }[];
}

/** Reads an embedded bus' streams (its registry of event streams and ranges of entries). */
export function embeddedStreamReader(bus: EmbeddedStreams): EventStreamReader {
  return {
    async types() {
      return bus
        .streams(bus.prefix)
        .map((s) => s.type)
        .filter((t): t is string => t !== undefined)
        .sort();
    },
    async read(type, after, count) {
      const key = streamKey(bus.prefix, type);
      return bus
        .range(key, { ...(after === undefined ? {} : { after }), count })
        .map((e) => ({ stream: key, entryId: e.entryId, fields: e.fields }));
    },
  };
}

/**
 * The stream reader of an open bus: Redis through its command connection, the embedded bus
 * through its SQLite file (`bus.embedded`). Throws {@link ConfigError} when the bus has neither.
 */
export function streamReaderFor(
  bus: Pick<EventBus, 'kind' | 'prefix' | 'redis' | 'embedded'>,
): EventStreamReader {
  if (bus.redis) return redisStreamReader(bus.redis, bus.prefix);
  if (bus.embedded) return embeddedStreamReader(bus.embedded);
  throw new ConfigError(`the ${bus.kind} event bus offers no way to read its streams`);
}
