import pg from 'pg';
import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { redactUrl } from '../../../runtime/logging.js';
import { findReferences } from '../../../runtime/references.js';
import { defineDependencyProbe, dependencySettings, ProbeFailure } from '../probe.js';

const SCHEME = /^postgres(ql)?:\/\//i;

const postgresItem = z
  .strictObject({
    type: z.literal('postgres'),
    ...dependencySettings,
    /** postgres:// or postgresql:// connection string; usually a `${NAME}` reference. */
    url: z.string().min(1),
  })
  .superRefine((item, context) => {
    if (findReferences(item.url).length === 0 && !SCHEME.test(item.url)) {
      context.addIssue({
        code: 'custom',
        path: ['url'],
        message: 'must start with postgres:// or postgresql://',
      });
    }
  });

export type PostgresDependency = z.infer<typeof postgresItem>;

/** `postgres`: connects with pg and runs `SELECT 1`. */
export const postgresProbe = defineDependencyProbe<PostgresDependency>({
  type: 'postgres',
  item: postgresItem,
  async probe(item, context) {
    const url = context.resolve(item.url);
    if (!SCHEME.test(url))
      throw new ProbeFailure('url must start with postgres:// or postgresql://', { retryable: false });
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: context.timeoutMs,
      query_timeout: context.timeoutMs,
      statement_timeout: context.timeoutMs,
      application_name: 'materi-dependency-checker',
    });
    // A connection dropped mid-check emits 'error'; the pending call rejects anyway.
    client.on('error', () => {});
    const abort = () => void client.end().catch(() => {});
    context.signal.addEventListener('abort', abort, { once: true });
    try {
      try {
        await client.connect();
      } catch (error) {
        throw new ProbeFailure(`cannot connect to ${redactUrl(url)}: ${describeCause(error)}`);
      }
      try {
        await client.query('SELECT 1');
      } catch (error) {
        throw new ProbeFailure(`SELECT 1 failed on ${redactUrl(url)}: ${describeCause(error)}`);
      }
      return { healthy: true, message: 'SELECT 1 succeeded' };
    } finally {
      context.signal.removeEventListener('abort', abort);
      await client.end().catch(() => {});
    }
  },
});
