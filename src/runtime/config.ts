import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { DEFAULT_STREAM_PREFIX } from '../events/streams.js';
import { COMPONENTS, type ComponentName } from './components.js';
import { localServerUrl } from './listen.js';
import { redactUrl } from './logging.js';

/**
 * Settings read from the environment. Every setting has one name and one default, here; see
 * docs/configuration.md.
 */
export interface Settings {
  /** `MATERI_REDIS_URL`: set → Redis Streams; unset → the embedded backend. */
  redisUrl?: string;
  /** `MATERI_REDIS_CLUSTER`: `true` → the URL lists seed nodes of a Redis Cluster (comma separated). */
  redisCluster: boolean;
  /** `MATERI_DATABASE_URL`: set → PostgreSQL; unset → SQLite under the data dir. */
  databaseUrl?: string;
  /** `MATERI_DATA_DIR` @defaultValue `.materi` */
  dataDir: string;
  /** `MATERI_STREAM_PREFIX` @defaultValue `materi:events:deployment` */
  streamPrefix: string;
  /** `MATERI_PORT` @defaultValue 4600 */
  port: number;
  /**
   * `MATERI_HOST`: the address the HTTP server (API, dashboard, `/metrics`) listens on. A
   * non-loopback address needs a token (`MATERI_API_TOKEN` or `MATERI_TOKENS_FILE`).
   * @defaultValue `127.0.0.1`
   */
  host: string;
  /**
   * `MATERI_API_URL` @defaultValue `http://<MATERI_HOST>:<port>`, through 127.0.0.1 (or [::1]) when
   * the host is `0.0.0.0` (or `::`)
   */
  apiUrl: string;
  /** `MATERI_API_TOKEN`: operator token for writes. */
  apiToken?: string;
  /** `MATERI_VIEWER_TOKEN`: when set, reads need it (or the operator token). */
  viewerToken?: string;
  /** `MATERI_TOKENS_FILE`: named tokens (SHA-256 hashes) with roles, YAML (`materi token create`). */
  tokensFile?: string;
  /** `MATERI_LOG_LEVEL` @defaultValue `info` */
  logLevel: string;
  /** `MATERI_NOTIFIER_CONFIG`: the notifier's settings file (channels, routes). */
  notifierConfig?: string;
  /** `MATERI_FREEZE_FILE`: freeze windows for every plan (YAML), read at each deploy request. */
  freezeFile?: string;
  /** `MATERI_CLAIM_IDLE_MS`: a pending entry idle this long is taken from its (dead) consumer. @defaultValue 30000 */
  claimIdleMs: number;
  /** `MATERI_LEASE_MS`: an orchestrator that has not renewed its lease this long loses its deployments. @defaultValue 15000 */
  leaseMs: number;
  /**
   * `MATERI_STREAM_RETENTION_MS`: event stream entries older than this are trimmed (never ones a
   * group has not acknowledged; Shield keeps the full event log). 0 keeps everything.
   * @defaultValue 604800000 (7 days)
   */
  streamRetentionMs: number;
  /**
   * `MATERI_SHUTDOWN_TIMEOUT_MS`: on SIGTERM or SIGINT, `materi up` and `materi worker` stop reading
   * and give work in flight this long to finish; what is unfinished stays pending for another
   * consumer to reclaim. @defaultValue 10000
   */
  shutdownTimeoutMs: number;
  /**
   * `MATERI_CONCURRENCY`: messages each component handles at once in this process, e.g.
   * `validator=32,health-monitor=200`; a component not named keeps its default (`WORKER_DEFAULTS`
   * in src/runtime/stack.ts). `--concurrency` of `materi worker` wins over it.
   */
  concurrency: Partial<Record<ComponentName, number>>;
}

const CONCURRENCY_ITEM = new RegExp(`^(${COMPONENTS.join('|')})=([1-9][0-9]*)$`);

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const schema = z.object({
  MATERI_REDIS_URL: optionalText.pipe(
    z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .optional(),
  ),
  MATERI_REDIS_CLUSTER: z.enum(['true', 'false', '1', '0', '']).optional(),
  MATERI_DATABASE_URL: optionalText.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
      .optional(),
  ),
  MATERI_DATA_DIR: optionalText,
  MATERI_STREAM_PREFIX: optionalText.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9:_-]+$/, 'may hold only letters, digits, ":", "_" and "-"')
      .optional(),
  ),
  MATERI_PORT: optionalText.pipe(z.coerce.number<string | undefined>().int().min(0).max(65535).optional()),
  MATERI_API_URL: optionalText.pipe(z.url().optional()),
  MATERI_HOST: optionalText.pipe(
    z
      .string()
      .regex(/^[0-9A-Za-z.:_-]+$/, 'must be an IP address or a host name, e.g. 0.0.0.0 or ::')
      .optional(),
  ),
  MATERI_API_TOKEN: optionalText,
  MATERI_TOKENS_FILE: optionalText,
  MATERI_VIEWER_TOKEN: optionalText,
  MATERI_NOTIFIER_CONFIG: optionalText,
  MATERI_FREEZE_FILE: optionalText,
  MATERI_CLAIM_IDLE_MS: optionalText.pipe(z.coerce.number<string | undefined>().int().min(100).optional()),
  MATERI_LEASE_MS: optionalText.pipe(z.coerce.number<string | undefined>().int().min(100).optional()),
  MATERI_STREAM_RETENTION_MS: optionalText.pipe(
    z.coerce.number<string | undefined>().int().min(0).optional(),
  ),
  MATERI_SHUTDOWN_TIMEOUT_MS: optionalText.pipe(
    z.coerce.number<string | undefined>().int().min(0).optional(),
  ),
  MATERI_CONCURRENCY: optionalText.pipe(
    z
      .string()
      .refine(
        (v) => v.split(',').every((item) => CONCURRENCY_ITEM.test(item.trim())),
        `must list <component>=<positive integer>, comma separated (components: ${COMPONENTS.join(', ')})`,
      )
      .optional(),
  ),
  MATERI_LOG_LEVEL: optionalText.pipe(
    z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).optional(),
  ),
});

/** Reads the settings from an environment. Throws {@link ConfigError} naming the variable. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    throw new ConfigError(`${name}: ${issue.message} (got "${maskSetting(name, env[name])}")`);
  }
  const v = parsed.data;
  const port = v.MATERI_PORT ?? 4600;
  return {
    redisUrl: v.MATERI_REDIS_URL,
    redisCluster: v.MATERI_REDIS_CLUSTER === 'true' || v.MATERI_REDIS_CLUSTER === '1',
    databaseUrl: v.MATERI_DATABASE_URL,
    dataDir: v.MATERI_DATA_DIR ?? '.materi',
    streamPrefix: v.MATERI_STREAM_PREFIX ?? DEFAULT_STREAM_PREFIX,
    port,
    apiUrl: v.MATERI_API_URL ?? localServerUrl(v.MATERI_HOST ?? '127.0.0.1', port),
    apiToken: v.MATERI_API_TOKEN,
    viewerToken: v.MATERI_VIEWER_TOKEN,
    tokensFile: v.MATERI_TOKENS_FILE,
    host: v.MATERI_HOST ?? '127.0.0.1',
    logLevel: v.MATERI_LOG_LEVEL ?? 'info',
    notifierConfig: v.MATERI_NOTIFIER_CONFIG,
    freezeFile: v.MATERI_FREEZE_FILE,
    claimIdleMs: v.MATERI_CLAIM_IDLE_MS ?? 30_000,
    leaseMs: v.MATERI_LEASE_MS ?? 15_000,
    streamRetentionMs: v.MATERI_STREAM_RETENTION_MS ?? 7 * 86_400_000,
    shutdownTimeoutMs: v.MATERI_SHUTDOWN_TIMEOUT_MS ?? 10_000,
    concurrency: Object.fromEntries(
      (v.MATERI_CONCURRENCY ?? '')
        .split(',')
        .filter((item) => item.trim() !== '')
        .map((item) => {
          const [, name, count] = CONCURRENCY_ITEM.exec(item.trim())!;
          return [name, Number(count)];
        }),
    ),
  };
}

function maskSetting(name: string, value: string | undefined): string {
  if (value === undefined) return '';
  if (name.endsWith('TOKEN')) return '***';
  return name.endsWith('URL') ? redactUrl(value) : value;
}
