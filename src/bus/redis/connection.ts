import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../../runtime/logging.js';

export type RedisClient = Redis | Cluster;

/** How to reach Redis. */
export interface RedisConnectionSettings {
  /**
   * `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. With `cluster`, a comma
   * separated list of seed nodes (`redis://h1:7000,redis://h2:7001`).
   */
  url: string;
  /** Connect to a Redis Cluster. @defaultValue false */
  cluster?: boolean;
  /** Shown in CLIENT LIST, e.g. `materi:publisher`. */
  connectionName?: string;
  /** @defaultValue 3000 */
  connectTimeoutMs?: number;
  /**
   * Send the commands of one event-loop tick as one pipeline. Only for connections that carry
   * many small independent commands from many callers; never for blocking reads. (The
   * idempotency store batches its own calls per tick and does not need it.)
   * @defaultValue false
   */
  autoPipelining?: boolean;
}

function nodeOptions(url: string): RedisOptions & { host: string; port: number } {
  const parsed = new URL(url);
  const options: RedisOptions & { host: string; port: number } = {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: Number(parsed.port || 6379),
  };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  const db = parsed.pathname.replace('/', '');
  if (db) options.db = Number(db);
  if (parsed.protocol === 'rediss:') options.tls = { servername: options.host };
  return options;
}

/**
 * Opens a Redis connection for ordinary commands. Commands fail fast while Redis is unreachable
 * (one reconnect attempt, then an error) instead of queueing forever; callers retry with backoff.
 */
export function createRedisClient(settings: RedisConnectionSettings): RedisClient {
  const common: RedisOptions = {
    connectionName: settings.connectionName,
    connectTimeout: settings.connectTimeoutMs ?? 3000,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: settings.autoPipelining ?? false,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
  };
  const client = settings.cluster
    ? createCluster(settings, common)
    : new Redis({ ...nodeOptions(settings.url), ...common });
  // Connection errors surface as failed commands (and are retried there); without a listener
  // ioredis would also print each one as an "unhandled error event".
  client.on('error', () => {});
  return client;
}

function createCluster(settings: RedisConnectionSettings, common: RedisOptions): Cluster {
  const seeds = settings.url.split(',').map((u) => nodeOptions(u.trim()));
  const first = seeds[0]!;
  return new Cluster(
    seeds.map((s) => ({ host: s.host, port: s.port })),
    {
      redisOptions: { ...common, username: first.username, password: first.password, tls: first.tls },
      enableOfflineQueue: true,
      enableAutoPipelining: common.enableAutoPipelining,
      scaleReads: 'master',
      clusterRetryStrategy: (times) => Math.min(100 * 2 ** times, 2000),
      // While a failed master's replica is being promoted, the other nodes keep redirecting its
      // slots to the dead master. Without a pause, ioredis spends its 16 redirections within
      // milliseconds; 100 ms apiece lets one command ride out about 2-3 s of failover.
      retryDelayOnMoved: 100,
    },
  );
}

/** The URL with credentials removed, for logs and start-up banners. */
export function describeRedis(settings: RedisConnectionSettings): string {
  return settings.url
    .split(',')
    .map((u) => redactUrl(u.trim()))
    .join(',');
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * A connection of its own for one reader (a subscription's stream reads), with the settings of
 * `client`: never shared with other commands and never auto-pipelined, so a hung read can be
 * cut off by disconnecting it without touching anyone else's commands. On a cluster that is a
 * second cluster client (one connection per node).
 */
export function openReaderConnection(client: RedisClient, connectionName: string): RedisClient {
  if (!isCluster(client)) return client.duplicate({ connectionName, enableAutoPipelining: false });
  return client.duplicate([], {
    redisOptions: { ...client.options.redisOptions, connectionName },
    enableAutoPipelining: false,
  });
}

/** One command of a pipeline: name and arguments; the first argument is the key. */
export type PipelineCommand = [name: string, key: string, ...args: (string | number)[]];

/** The outcome of one pipelined command: its error, or its reply. */
export type PipelineOutcome = [error: Error | null, reply: unknown];

/**
 * Sends commands in as few round trips as possible and returns each command's reply in order.
 * On a standalone Redis that is one pipeline; on a cluster, one pipeline per hash slot (a
 * cluster pipeline may not span slots). Throws the first command error.
 */
export async function execPipelined(
  client: RedisClient,
  commands: readonly PipelineCommand[],
): Promise<unknown[]> {
  if (commands.length === 0) return [];
  if (commands.length === 1) {
    const [name, ...args] = commands[0]!;
    return [await client.call(name, ...args)];
  }
  const outcomes = await execPipelinedSettled(client, commands);
  const failed = outcomes.find(([error]) => error);
  if (failed) throw failed[0];
  return outcomes.map(([, reply]) => reply);
}

/**
 * Like {@link execPipelined}, but returns each command's error or reply instead of throwing the
 * first error, for callers that handle commands one by one (claims of several entries). Throws
 * only when a whole pipeline could not be sent. Command names are ioredis method names
 * (lower case: `xack`, `xclaim`).
 */
export async function execPipelinedSettled(
  client: RedisClient,
  commands: readonly PipelineCommand[],
): Promise<PipelineOutcome[]> {
  const outcomes: PipelineOutcome[] = new Array(commands.length);
  await Promise.all(
    pipelinesBySlot(client, commands).map(async (indexes) => {
      const pipeline = client.pipeline(indexes.map((i) => commands[i] as unknown as string[]));
      const results = await pipeline.exec();
      if (!results) throw new Error('pipeline was discarded');
      results.forEach(([error, reply], j) => {
        outcomes[indexes[j]!] = [error ?? null, reply];
      });
    }),
  );
  return outcomes;
}

/** Indexes of the commands that may share a pipeline: all of them, or on a cluster those of one slot. */
function pipelinesBySlot(client: RedisClient, commands: readonly PipelineCommand[]): number[][] {
  if (commands.length === 0) return [];
  if (!isCluster(client)) return [commands.map((_, i) => i)];
  const groups = new Map<number, number[]>();
  commands.forEach((c, i) => {
    const slot = calculateSlot(c[1]);
    const list = groups.get(slot);
    if (list) list.push(i);
    else groups.set(slot, [i]);
  });
  return [...groups.values()];
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
const TRANSIENT_REPLIES = /^(LOADING|READONLY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|MOVED|ASK)\b/;
/** What the cluster client says while slots move or a master fails over. */
const TRANSIENT_CLUSTER_ERRORS =
  /^(Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available)/;

/**
 * Whether a Redis error may go away by itself (connection lost, failover in progress) and the
 * command is worth retrying.
 */
export function isTransientRedisError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && TRANSIENT_CODES.has(code)) return true;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  if (/Connection is closed|Stream isn't writeable|connect ETIMEDOUT|Command timed out/i.test(error.message))
    return true;
  return TRANSIENT_REPLIES.test(error.message) || TRANSIENT_CLUSTER_ERRORS.test(error.message);
}

/** Compares two stream ids (`ms-seq`). */
export function compareStreamIds(a: string, b: string): number {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  const ms = Number(ad < 0 ? a : a.slice(0, ad)) - Number(bd < 0 ? b : b.slice(0, bd));
  if (ms !== 0) return Math.sign(ms);
  return Math.sign(Number(ad < 0 ? 0 : a.slice(ad + 1)) - Number(bd < 0 ? 0 : b.slice(bd + 1)));
}

/** Milliseconds part of a stream id (the time Redis assigned it). */
export function streamIdTime(id: string): number {
  return Number(id.split('-')[0]);
}
