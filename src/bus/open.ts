import { BackendUnavailableError } from '../errors/index.js';
import type { Settings } from '../runtime/config.js';
import type { Logger } from '../runtime/logging.js';
import { createRedisClient, describeRedis, type RedisClient } from './redis/connection.js';
import { RedisPublisher } from './redis/publisher.js';
import type { Publisher } from './types.js';

/** An open connection to the event bus chosen by the settings. */
export interface EventBus {
  /** `redis` or `embedded`. */
  kind: 'redis' | 'embedded';
  /** Where it is, with credentials removed, e.g. `redis://127.0.0.1:6379/`. */
  description: string;
  prefix: string;
  publisher: Publisher;
  /** The Redis command connection, when the backend is Redis (for inspection commands). */
  redis?: RedisClient;
  close(): Promise<void>;
}

export interface OpenBusOptions {
  logger: Logger;
  /** `source` of published events, e.g. `materi/cli`. */
  source: string;
}

/**
 * Opens the event bus the settings select: Redis Streams when `MATERI_REDIS_URL` is set.
 * Checks the connection before returning so callers fail fast with a clear message.
 */
export async function openEventBus(settings: Settings, options: OpenBusOptions): Promise<EventBus> {
  // Until the embedded backend exists, an unset MATERI_REDIS_URL means the local Redis.
  const url = settings.redisUrl ?? 'redis://127.0.0.1:6379';
  const connection = { url, cluster: settings.redisCluster, connectionName: `materi:${options.source}` };
  const redis = createRedisClient(connection);
  const description = describeRedis(connection);
  try {
    await redis.ping();
  } catch (cause) {
    redis.disconnect();
    throw new BackendUnavailableError(`cannot reach Redis at ${description}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const publisher = new RedisPublisher({
    client: redis,
    prefix: settings.streamPrefix,
    source: options.source,
    logger: options.logger,
  });
  return {
    kind: 'redis',
    description,
    prefix: settings.streamPrefix,
    publisher,
    redis,
    async close() {
      await publisher.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
