import type { IdempotencyStore } from '../types.js';
import type { RedisClient } from './connection.js';

export interface RedisIdempotencyStoreOptions {
  /**
   * Connection for the markers. Many small commands: a connection with `enableAutoPipelining`
   * sends those of one tick together.
   */
  client: RedisClient;
  prefix: string;
  /** How long a handled event id is remembered. @defaultValue 7 days */
  windowMs?: number;
}

/**
 * Idempotency markers in Redis: `<prefix>:idempotency:<group>:<event id>` holds `running` (with
 * the lease as TTL) while a consumer handles the event, then `done` for the window.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly windowMs: number;

  constructor(private readonly options: RedisIdempotencyStoreOptions) {
    this.windowMs = options.windowMs ?? 7 * 24 * 3600_000;
  }

  private key(group: string, eventId: string): string {
    return `${this.options.prefix}:idempotency:${group}:${eventId}`;
  }

  async begin(group: string, eventId: string, leaseMs: number): Promise<'acquired' | 'done' | 'busy'> {
    const key = this.key(group, eventId);
    const set = await this.options.client.set(key, 'running', 'PX', leaseMs, 'NX');
    if (set === 'OK') return 'acquired';
    return (await this.options.client.get(key)) === 'done' ? 'done' : 'busy';
  }

  async complete(group: string, eventId: string): Promise<void> {
    await this.options.client.set(this.key(group, eventId), 'done', 'PX', this.windowMs);
  }

  async release(group: string, eventId: string): Promise<void> {
    await this.options.client.del(this.key(group, eventId));
  }
}
