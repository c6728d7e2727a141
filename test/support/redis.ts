import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis the tests talk to (the machine's own, or REDIS_URL / MATERI_TEST_REDIS_URL). */
export const TEST_REDIS_URL = process.env.MATERI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A stream prefix no other test uses, so runs never collide. */
export function uniquePrefix(name = 'test'): string {
  return `materi-test:${name}:${randomUUID().slice(0, 8)}`;
}

export function testRedis(): Redis {
  return new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: false });
}

/** Deletes every key under the prefix (only keys this test created). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** Polls `check` until it returns a truthy value or the timeout passes. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `condition not met within ${timeoutMs} ms${lastError ? `: ${(lastError as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
