import type { DependencyProbe } from '../probe.js';
import { httpProbe } from './http.js';
import { mysqlProbe } from './mysql.js';
import { postgresProbe } from './postgres.js';
import { redisProbe } from './redis.js';
import { tcpProbe } from './tcp.js';

export { httpProbe, mysqlProbe, postgresProbe, redisProbe, tcpProbe };

/** The dependency types the checker knows by default: http, tcp, postgres, redis, mysql. */
export const DEFAULT_DEPENDENCY_PROBES: readonly DependencyProbe[] = Object.freeze([
  httpProbe,
  tcpProbe,
  postgresProbe,
  redisProbe,
  mysqlProbe,
]);
