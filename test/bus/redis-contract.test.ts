import type { Redis } from 'ioredis';
import { createRedisClient } from '../../src/bus/redis/connection.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';
import { busContract } from './contract.js';
import { redisHarness } from './redis-harness.js';

busContract('Redis Streams', async () =>
  redisHarness(createRedisClient({ url: TEST_REDIS_URL }), uniquePrefix('contract'), (client, prefix) =>
    deletePrefix(client as Redis, prefix),
  ),
);
