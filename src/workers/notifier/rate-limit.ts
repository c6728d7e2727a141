import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../../bus/redis/connection.js';

/** How many messages a channel may take per window. */
export interface RateLimit {
  /** Messages allowed in any window. */
  perChannel: number;
  /** Length of the sliding window, in milliseconds. */
  windowMs: number;
}

/**
 * A sliding-window rate limit per channel, shared by every notifier process. `take` records a
 * message and answers true while fewer than `perChannel` messages were recorded in the last
 * `windowMs`; otherwise it records nothing and answers false.
 */
export interface RateLimiter {
  take(channel: string, limit: RateLimit): Promise<boolean>;
}

// A sliding window log: one sorted-set member per message, scored by Redis' own clock so every
// process agrees on the window. Atomic, so concurrent takers never exceed the limit together.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 1
end
return 0`;

/** {@link RateLimiter} on Redis: a sorted set per channel, `<prefix>:ratelimit:<channel>`. */
export class RedisRateLimiter implements RateLimiter {
  constructor(private readonly options: { client: RedisClient; prefix: string }) {}

  async take(channel: string, limit: RateLimit): Promise<boolean> {
    const key = `${this.options.prefix}:ratelimit:${channel}`;
    const taken = await this.options.client.eval(
      TAKE,
      1,
      key,
      limit.perChannel,
      limit.windowMs,
      randomUUID(),
    );
    return taken === 1;
  }
}

/** {@link RateLimiter} in this process's memory (one notifier process). */
export class MemoryRateLimiter implements RateLimiter {
  private readonly sent = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  async take(channel: string, limit: RateLimit): Promise<boolean> {
    const now = this.now();
    const recent = (this.sent.get(channel) ?? []).filter((t) => t > now - limit.windowMs);
    const allowed = recent.length < limit.perChannel;
    if (allowed) recent.push(now);
    this.sent.set(channel, recent);
    return allowed;
  }
}
