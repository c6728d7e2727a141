import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../../bus/redis/connection.js';

/** Answer of {@link NotificationLedger.claim}. */
export type ClaimResult = 'claimed' | 'already-sent' | 'in-progress';

/** What a finished delivery recorded: sent, or not sent on purpose (rate limit, nothing to do). */
export type CompletedOutcome = 'SENT' | 'SUPPRESSED';

/**
 * Remembers which (event id, channel) pairs have been notified, so that an event delivered again,
 * or handled by two notifier processes at once, gives one message per channel.
 *
 * Contract, for every implementation (Redis here; in memory for the embedded mode):
 * - `claim` is atomic. `claimed`: the caller alone may send now, until it calls `complete` or
 *   `release`, or until the claim expires (so a crashed process does not block the pair forever;
 *   the expiry must be longer than a send may take). `already-sent`: an outcome was recorded (SENT
 *   or SUPPRESSED) — do nothing. `in-progress`: another caller holds a live claim — do not send,
 *   and try again on a later delivery.
 * - `complete` records the outcome for a long time (far longer than the bus retries an event);
 *   it is idempotent and wins over any claim.
 * - `release` drops the caller's own claim after a failed send, so the next delivery sends again.
 *   It does nothing when the claim is no longer the caller's (it expired and someone else holds it).
 *
 * A process that crashes between sending and `complete` leaves a claim that expires, and the
 * next delivery sends again: delivery to a channel is at least once, exactly once otherwise.
 */
export interface NotificationLedger {
  claim(eventId: string, channel: string): Promise<ClaimResult>;
  complete(eventId: string, channel: string, outcome: CompletedOutcome): Promise<void>;
  release(eventId: string, channel: string): Promise<void>;
}

/** Options of {@link RedisNotificationLedger}. */
export interface RedisNotificationLedgerOptions {
  client: RedisClient;
  /** Keys are `<prefix>:ledger:<event id>:<channel>`. */
  prefix: string;
  /** How long a claim blocks others when its holder neither completes nor releases it. @defaultValue 120000 (2 min) */
  claimTtlMs?: number;
  /** How long a recorded outcome is remembered. @defaultValue 2592000000 (30 days) */
  completedTtlMs?: number;
}

const DONE = 'done:';

// Compare-and-delete: only the claim's holder may release it.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * {@link NotificationLedger} on Redis, shared by every notifier process. A claim is
 * `SET key <token> NX PX <claimTtl> GET` (one atomic command that also says who holds the key);
 * a completion overwrites it with `done:<outcome>` and a long TTL.
 */
export class RedisNotificationLedger implements NotificationLedger {
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly claimTtlMs: number;
  private readonly completedTtlMs: number;
  /** Tokens of the claims this instance holds, so that `release` only drops its own. */
  private readonly tokens = new Map<string, string>();

  constructor(options: RedisNotificationLedgerOptions) {
    this.client = options.client;
    this.prefix = options.prefix;
    this.claimTtlMs = options.claimTtlMs ?? 120_000;
    this.completedTtlMs = options.completedTtlMs ?? 30 * 24 * 3_600_000;
    for (const [name, value] of [
      ['claimTtlMs', this.claimTtlMs],
      ['completedTtlMs', this.completedTtlMs],
    ] as const) {
      if (!Number.isInteger(value) || value <= 0)
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
  }

  private key(eventId: string, channel: string): string {
    return `${this.prefix}:ledger:${eventId}:${channel}`;
  }

  async claim(eventId: string, channel: string): Promise<ClaimResult> {
    const key = this.key(eventId, channel);
    const token = `claim:${randomUUID()}`;
    const previous = (await this.client.call('SET', key, token, 'PX', this.claimTtlMs, 'NX', 'GET')) as
      | string
      | null;
    if (previous === null) {
      this.tokens.set(key, token);
      return 'claimed';
    }
    return previous.startsWith(DONE) ? 'already-sent' : 'in-progress';
  }

  async complete(eventId: string, channel: string, outcome: CompletedOutcome): Promise<void> {
    const key = this.key(eventId, channel);
    await this.client.set(key, `${DONE}${outcome}`, 'PX', this.completedTtlMs);
    this.tokens.delete(key);
  }

  async release(eventId: string, channel: string): Promise<void> {
    const key = this.key(eventId, channel);
    const token = this.tokens.get(key);
    this.tokens.delete(key);
    if (token) await this.client.eval(RELEASE, 1, key, token);
  }
}

/**
 * {@link NotificationLedger} in this process's memory: correct for a single notifier process
 * (the embedded mode), forgotten on restart.
 */
export class MemoryNotificationLedger implements NotificationLedger {
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();

  constructor(
    private readonly options: { claimTtlMs?: number; completedTtlMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private current(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry?.value;
  }

  async claim(eventId: string, channel: string): Promise<ClaimResult> {
    const key = `${eventId}:${channel}`;
    const value = this.current(key);
    if (value === undefined) {
      this.entries.set(key, { value: 'claim', expiresAt: this.now() + (this.options.claimTtlMs ?? 120_000) });
      return 'claimed';
    }
    return value.startsWith(DONE) ? 'already-sent' : 'in-progress';
  }

  async complete(eventId: string, channel: string, outcome: CompletedOutcome): Promise<void> {
    const ttl = this.options.completedTtlMs ?? 30 * 24 * 3_600_000;
    this.entries.set(`${eventId}:${channel}`, { value: `${DONE}${outcome}`, expiresAt: this.now() + ttl });
  }

  async release(eventId: string, channel: string): Promise<void> {
    const key = `${eventId}:${channel}`;
    if (this.current(key) === 'claim') this.entries.delete(key);
  }
}
