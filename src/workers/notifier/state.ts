import type { RedisClient } from '../../bus/redis/connection.js';
import {
  type DeploymentFactsStore,
  MemoryDeploymentFactsStore,
  RedisDeploymentFactsStore,
} from './deployment-facts.js';
import { type IncidentStore, MemoryIncidentStore, RedisIncidentStore } from './incidents.js';
import { MemoryNotificationLedger, type NotificationLedger, RedisNotificationLedger } from './ledger.js';
import { MemoryRateLimiter, type RateLimiter, RedisRateLimiter } from './rate-limit.js';

/** Everything the notifier remembers between events. Shared by every notifier process on Redis. */
export interface NotifierState {
  ledger: NotificationLedger;
  rateLimiter: RateLimiter;
  incidents: IncidentStore;
  facts: DeploymentFactsStore;
}

/** Where the notifier keeps its state in Redis. */
export interface RedisNotifierStateOptions {
  client: RedisClient;
  /** Every key starts with it. @defaultValue `materi:notifier` */
  prefix?: string;
  /** See {@link RedisNotificationLedgerOptions.claimTtlMs}. @defaultValue 120000 */
  claimTtlMs?: number;
  /** See {@link RedisNotificationLedgerOptions.completedTtlMs}. @defaultValue 30 days */
  completedTtlMs?: number;
}

export const DEFAULT_NOTIFIER_PREFIX = 'materi:notifier';

/**
 * The notifier's state on Redis. Keys: `<prefix>:ledger:<event>:<channel>`,
 * `<prefix>:ratelimit:<channel>`, `<prefix>:incidents:<channel>:<scope>`, `<prefix>:deployment:<id>`.
 */
export function createRedisNotifierState(options: RedisNotifierStateOptions): NotifierState {
  const prefix = options.prefix ?? DEFAULT_NOTIFIER_PREFIX;
  const client = options.client;
  return {
    ledger: new RedisNotificationLedger({
      client,
      prefix,
      claimTtlMs: options.claimTtlMs,
      completedTtlMs: options.completedTtlMs,
    }),
    rateLimiter: new RedisRateLimiter({ client, prefix }),
    incidents: new RedisIncidentStore({ client, prefix }),
    facts: new RedisDeploymentFactsStore({ client, prefix }),
  };
}

/** The notifier's state in this process's memory: for a single notifier process; lost on restart. */
export function createMemoryNotifierState(): NotifierState {
  return {
    ledger: new MemoryNotificationLedger(),
    rateLimiter: new MemoryRateLimiter(),
    incidents: new MemoryIncidentStore(),
    facts: new MemoryDeploymentFactsStore(),
  };
}
