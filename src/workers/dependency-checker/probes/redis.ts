import { Redis } from 'ioredis';
import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { redactUrl } from '../../../runtime/logging.js';
import { findReferences } from '../../../runtime/references.js';
import { defineDependencyProbe, dependencySettings, ProbeFailure } from '../probe.js';

const SCHEME = /^rediss?:\/\//i;

const redisItem = z
  .strictObject({
    type: z.literal('redis'),
    ...dependencySettings,
    /** redis:// or rediss:// URL; usually a `${NAME}` reference. */
    url: z.string().min(1),
  })
  .superRefine((item, context) => {
    if (findReferences(item.url).length === 0 && !SCHEME.test(item.url)) {
      context.addIssue({ code: 'custom', path: ['url'], message: 'must start with redis:// or rediss://' });
    }
  });

export type RedisDependency = z.infer<typeof redisItem>;

/** `redis`: connects with ioredis (no reconnects, no retries) and sends PING. */
export const redisProbe = defineDependencyProbe<RedisDependency>({
  type: 'redis',
  item: redisItem,
  async probe(item, context) {
    const url = context.resolve(item.url);
    if (!SCHEME.test(url))
      throw new ProbeFailure('url must start with redis:// or rediss://', { retryable: false });
    // The checker does its own retries; ioredis' reconnect loop would hide a dead server.
    const client = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      reconnectOnError: () => false,
      enableOfflineQueue: false,
      connectTimeout: context.timeoutMs,
      commandTimeout: context.timeoutMs,
      connectionName: 'materi-dependency-checker',
    });
    // With reconnects off, connect() rejects with "Connection is closed."; the cause
    // (ECONNREFUSED, WRONGPASS, …) only arrives as an 'error' event.
    let lastError: unknown;
    client.on('error', (error) => {
      lastError = error;
    });
    const abort = () => client.disconnect();
    context.signal.addEventListener('abort', abort, { once: true });
    try {
      try {
        await client.connect();
      } catch (error) {
        throw new ProbeFailure(`cannot connect to ${redactUrl(url)}: ${describeCause(lastError ?? error)}`);
      }
      let reply: string;
      try {
        reply = await client.ping();
      } catch (error) {
        throw new ProbeFailure(`PING failed on ${redactUrl(url)}: ${describeCause(error)}`);
      }
      if (reply !== 'PONG') return { healthy: false, message: `PING answered "${reply.slice(0, 40)}"` };
      return { healthy: true, message: 'PING answered PONG' };
    } finally {
      context.signal.removeEventListener('abort', abort);
      client.disconnect();
    }
  },
});
