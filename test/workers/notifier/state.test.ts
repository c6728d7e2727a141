import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type IncidentStore,
  MemoryIncidentStore,
  MemoryNotificationLedger,
  MemoryRateLimiter,
  type NotificationLedger,
  type RateLimiter,
  RedisIncidentStore,
  RedisNotificationLedger,
  RedisRateLimiter,
} from '../../../src/workers/notifier/index.js';
import { deletePrefix, testRedis, uniquePrefix } from '../../support/redis.js';

let redis: Redis;
const prefixes: string[] = [];

beforeAll(() => {
  redis = testRedis();
});
afterEach(async () => {
  for (const prefix of prefixes.splice(0)) await deletePrefix(redis, prefix);
});
afterAll(async () => {
  await redis.quit();
});

function prefix(): string {
  const p = uniquePrefix('notifier-state');
  prefixes.push(p);
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Backend {
  name: string;
  /** Several ledgers over one shared store, as several notifier processes would have. */
  ledgers(count: number, options?: { claimTtlMs?: number }): NotificationLedger[];
  rateLimiter(): RateLimiter;
  incidents(): IncidentStore;
}

const backends: Backend[] = [
  {
    name: 'Redis',
    ledgers(count, options) {
      const p = prefix();
      return Array.from(
        { length: count },
        () => new RedisNotificationLedger({ client: redis, prefix: p, ...options }),
      );
    },
    rateLimiter: () => new RedisRateLimiter({ client: redis, prefix: prefix() }),
    incidents: () => new RedisIncidentStore({ client: redis, prefix: prefix() }),
  },
  {
    name: 'memory',
    ledgers(count, options) {
      const one = new MemoryNotificationLedger(options);
      return Array.from({ length: count }, () => one);
    },
    rateLimiter: () => new MemoryRateLimiter(),
    incidents: () => new MemoryIncidentStore(),
  },
];

for (const backend of backends) {
  describe(`${backend.name} notification ledger`, () => {
    it('lets exactly one of many concurrent claimers send', async () => {
      const ledgers = backend.ledgers(8);
      const answers = await Promise.all(ledgers.map((l) => l.claim('event-1', 'deploys')));
      expect(answers.filter((a) => a === 'claimed')).toHaveLength(1);
      expect(answers.filter((a) => a === 'in-progress')).toHaveLength(7);
    });

    it('answers already-sent after completion, for SENT and SUPPRESSED alike', async () => {
      const [a, b] = backend.ledgers(2);
      expect(await a!.claim('event-1', 'deploys')).toBe('claimed');
      await a!.complete('event-1', 'deploys', 'SENT');
      expect(await b!.claim('event-1', 'deploys')).toBe('already-sent');
      expect(await a!.claim('event-1', 'deploys')).toBe('already-sent');
      expect(await a!.claim('event-1', 'team')).toBe('claimed');
      await a!.complete('event-1', 'team', 'SUPPRESSED');
      expect(await b!.claim('event-1', 'team')).toBe('already-sent');
    });

    it('lets the next delivery claim again after a release', async () => {
      const [a, b] = backend.ledgers(2);
      expect(await a!.claim('event-2', 'pager')).toBe('claimed');
      expect(await b!.claim('event-2', 'pager')).toBe('in-progress');
      await a!.release('event-2', 'pager');
      expect(await b!.claim('event-2', 'pager')).toBe('claimed');
    });

    it('frees a claim whose holder vanished once the claim expires', async () => {
      const [a, b] = backend.ledgers(2, { claimTtlMs: 80 });
      expect(await a!.claim('event-3', 'am')).toBe('claimed');
      expect(await b!.claim('event-3', 'am')).toBe('in-progress');
      await sleep(150);
      expect(await b!.claim('event-3', 'am')).toBe('claimed');
    });
  });

  describe(`${backend.name} rate limiter`, () => {
    it('allows perChannel messages per window, per channel, then again once the window slides', async () => {
      const limiter = backend.rateLimiter();
      const limit = { perChannel: 3, windowMs: 300 };
      const first = await Promise.all(Array.from({ length: 5 }, () => limiter.take('deploys', limit)));
      expect(first.filter(Boolean)).toHaveLength(3);
      expect(await limiter.take('team', limit)).toBe(true);
      expect(await limiter.take('deploys', limit)).toBe(false);
      await sleep(350);
      expect(await limiter.take('deploys', limit)).toBe(true);
    });
  });

  describe(`${backend.name} incident store`, () => {
    it('keeps the first record of a key and closes only the keys given', async () => {
      const store = backend.incidents();
      const incident = (key: string, eventId: string) => ({
        key,
        component: key.split(':').at(-1)!,
        labels: { service: key.split(':').at(-1)! },
        startsAt: '2026-01-01T00:00:00.000Z',
        eventId,
      });
      await store.open('pager', 'materi:production', [
        incident('materi:materi:production:api', 'e1'),
        incident('materi:materi:production:web', 'e1'),
      ]);
      await store.open('pager', 'materi:production', [incident('materi:materi:production:api', 'e2')]);
      await store.open('pager', 'materi:staging', [incident('materi:materi:staging:api', 'e3')]);
      const open = await store.list('pager', 'materi:production');
      expect(open.map((o) => [o.key, o.eventId]).sort()).toEqual([
        ['materi:materi:production:api', 'e1'],
        ['materi:materi:production:web', 'e1'],
      ]);
      expect(await store.list('am', 'materi:production')).toEqual([]);
      await store.close('pager', 'materi:production', ['materi:materi:production:api']);
      expect((await store.list('pager', 'materi:production')).map((o) => o.key)).toEqual([
        'materi:materi:production:web',
      ]);
      expect(await store.list('pager', 'materi:staging')).toHaveLength(1);
    });
  });
}

describe('Redis notifier keys', () => {
  it('does not let a late holder release a claim someone else now holds', async () => {
    const p = prefix();
    const [a, b] = [0, 1].map(
      () => new RedisNotificationLedger({ client: redis, prefix: p, claimTtlMs: 80 }),
    );
    expect(await a!.claim('event-4', 'am')).toBe('claimed');
    await sleep(150);
    expect(await b!.claim('event-4', 'am')).toBe('claimed');
    await a!.release('event-4', 'am');
    expect(await a!.claim('event-4', 'am')).toBe('in-progress');
  });

  it('keeps the ledger and rate limit under the prefix given, with TTLs', async () => {
    const p = prefix();
    const ledger = new RedisNotificationLedger({ client: redis, prefix: p, completedTtlMs: 60_000 });
    await ledger.claim('e1', 'deploys');
    expect(await redis.pttl(`${p}:ledger:e1:deploys`)).toBeGreaterThan(100_000);
    await ledger.complete('e1', 'deploys', 'SENT');
    expect(await redis.get(`${p}:ledger:e1:deploys`)).toBe('done:SENT');
    const ttl = await redis.pttl(`${p}:ledger:e1:deploys`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await new RedisRateLimiter({ client: redis, prefix: p }).take('deploys', {
      perChannel: 2,
      windowMs: 5000,
    });
    expect(await redis.zcard(`${p}:ratelimit:deploys`)).toBe(1);
    expect(await redis.pttl(`${p}:ratelimit:deploys`)).toBeGreaterThan(0);
  });
});
