import mysql from 'mysql2/promise';
import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { redactUrl } from '../../../runtime/logging.js';
import { findReferences } from '../../../runtime/references.js';
import { defineDependencyProbe, dependencySettings, ProbeFailure } from '../probe.js';

const SCHEME = /^(mysql|mariadb):\/\//i;

const mysqlItem = z
  .strictObject({
    type: z.literal('mysql'),
    ...dependencySettings,
    /** mysql:// (or mariadb://) URL; usually a `${NAME}` reference. */
    url: z.string().min(1),
  })
  .superRefine((item, context) => {
    if (findReferences(item.url).length === 0 && !SCHEME.test(item.url)) {
      context.addIssue({ code: 'custom', path: ['url'], message: 'must start with mysql:// or mariadb://' });
    }
  });

export type MysqlDependency = z.infer<typeof mysqlItem>;

/** `mysql`: connects with mysql2 and runs `SELECT 1` (MySQL and MariaDB). */
export const mysqlProbe = defineDependencyProbe<MysqlDependency>({
  type: 'mysql',
  item: mysqlItem,
  async probe(item, context) {
    const url = context.resolve(item.url);
    if (!SCHEME.test(url))
      throw new ProbeFailure('url must start with mysql:// or mariadb://', { retryable: false });
    let connection: mysql.Connection;
    try {
      connection = await mysql.createConnection({
        uri: url.replace(/^mariadb:/i, 'mysql:'),
        connectTimeout: context.timeoutMs,
      });
    } catch (error) {
      throw new ProbeFailure(`cannot connect to ${redactUrl(url)}: ${describeCause(error)}`);
    }
    connection.on('error', () => {});
    const abort = () => connection.destroy();
    context.signal.addEventListener('abort', abort, { once: true });
    try {
      await connection.query({ sql: 'SELECT 1', timeout: context.timeoutMs });
      return { healthy: true, message: 'SELECT 1 succeeded' };
    } catch (error) {
      throw new ProbeFailure(`SELECT 1 failed on ${redactUrl(url)}: ${describeCause(error)}`);
    } finally {
      context.signal.removeEventListener('abort', abort);
      await connection.end().catch(() => connection.destroy());
    }
  },
});
