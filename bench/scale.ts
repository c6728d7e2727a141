/**
 * Coordination at scale (issue 17), measured on the real stack as `materi up` runs it: every
 * component, default settings, the HTTP server on port 0, deployments submitted with
 * `POST /api/deployments`. Plans do nothing: each stage runs `true` with the `command` provider
 * (the `local` provider starts a service that must answer HTTP, so it cannot run `true`), no
 * service has a health URL or dependencies, and every concurrent deployment has its own environment.
 *
 * Both backends in one run: Redis + PostgreSQL (a unique stream prefix, a fresh database per
 * section, dropped at the end) and embedded (SQLite bus and store in a temp data dir).
 *
 * Sections (`BENCH_SCALE_ONLY="overhead,throughput"` runs some; default all):
 * - `overhead`   coordination time of a do-nothing 3-stage deployment (submit → the
 *                `deployment:completed` event's time; median of `BENCH_SCALE_SEQUENTIAL`, 20,
 *                sequential) against a floor measured in the same run on the same backend: 16
 *                sequential durable writes + 3 stream hops. Also Redis commands and PostgreSQL
 *                commits and rows per deployment, and the gate wake-up (gate result → the saga's
 *                next event).
 * - `plansize`   PostgreSQL commits, rows and bytes written per stage, 3-stage vs 30-stage plans,
 *                and Shield's rows per event (Redis + PostgreSQL only).
 * - `throughput` deployments/s and submit → completed p50/p95 at each of
 *                `BENCH_SCALE_CONCURRENCY` ("100,500") deployments submitted at once, and the
 *                validation gate's p50.
 * - `lag`        dashboard lag at `BENCH_SCALE_LAG` (100) concurrent: `deployment:completed` event
 *                time → the first poll of `GET /api/deployments` (every 25 ms) that shows it done.
 * - `shield`     Shield's live projection catching up `BENCH_SCALE_SHIELD` (200) deployments'
 *                events vs `rebuildShield` on the same events (events/s).
 * - `idle`       Redis commands/s of an idle stack before and after a 100-stage deployment
 *                created 200 more streams (Redis only).
 * - `cli`        `materi --help` and `materi plan validate` start times (`npm run build` first
 *                unless `BENCH_SCALE_BUILD=0`) vs `node -e 0`.
 * - `memory`     RSS after a forced GC after `BENCH_RSS_SMALL` (1000) and `BENCH_RSS_LARGE` (5000)
 *                deployments, `BENCH_RSS_BATCH` (100) at a time.
 * `BENCH_SCALE_BACKENDS="redis-pg,embedded"` picks the backends.
 *
 * PostgreSQL counters (pg_stat_*) are flushed by a backend at most once a second and 10 s after it
 * goes idle, so each counted window starts and ends with the stack closed (its connections gone,
 * their counters flushed); the cost of one empty start and stop of the stack is measured the same
 * way and subtracted. Redis counters are INFO commandstats (server-wide: run the bench alone); the
 * commands of the bench's own watcher of `deployment:completed` are counted and subtracted.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import SqliteDatabase from 'better-sqlite3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openEventBus } from '../src/bus/open.js';
import { Router } from '../src/bus/router.js';
import { type EventStreamReader, streamReaderFor } from '../src/bus/stream-reader.js';
import { decodeEntry, fieldsToRecord } from '../src/events/codec.js';
import { DeploymentStatus } from '../src/events/index.js';
import { streamKey } from '../src/events/streams.js';
import { loadSettings, type Settings } from '../src/runtime/config.js';
import { silentLogger } from '../src/runtime/logging.js';
import { COMPONENTS, type ComponentName, type Stack, startStack } from '../src/runtime/stack.js';
import { rebuildShield } from '../src/shield/index.js';
import { openStore } from '../src/store/index.js';
import { describeSpread, percentile, reportWithSpread } from './_support.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const redisUrl = process.env.MATERI_REDIS_URL ?? 'redis://127.0.0.1:6379';
const adminUrl = process.env.MATERI_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

const list = (name: string, fallback: string) =>
  (process.env[name] ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const count = (name: string, fallback: number) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};

const SECTIONS = ['cli', 'overhead', 'plansize', 'throughput', 'lag', 'shield', 'idle', 'memory'] as const;
const ONLY = list('BENCH_SCALE_ONLY', SECTIONS.join(','));
for (const name of ONLY)
  if (!(SECTIONS as readonly string[]).includes(name))
    throw new Error(`BENCH_SCALE_ONLY: unknown section "${name}" (have: ${SECTIONS.join(', ')})`);
type BackendName = 'redis-pg' | 'embedded';
const BACKENDS = list('BENCH_SCALE_BACKENDS', 'redis-pg,embedded') as BackendName[];
const SEQUENTIAL = count('BENCH_SCALE_SEQUENTIAL', 20);
const CONCURRENCY = list('BENCH_SCALE_CONCURRENCY', '100,500').map(Number);
const LAG_COUNT = count('BENCH_SCALE_LAG', 100);
const SHIELD_COUNT = count('BENCH_SCALE_SHIELD', 200);
const PLAN_RUNS = count('BENCH_SCALE_PLAN_RUNS', 5);
const RSS_SMALL = count('BENCH_RSS_SMALL', 1000);
const RSS_LARGE = count('BENCH_RSS_LARGE', 5000);
const RSS_BATCH = count('BENCH_RSS_BATCH', 100);
const TIMEOUT_MS = count('BENCH_SCALE_TIMEOUT_MS', 900_000);

const logger = silentLogger();
const progress = (line: string) => process.stderr.write(`scale: ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round2 = (v: number) => Math.round(v * 100) / 100;

function result(
  backend: BackendName | 'cli',
  metric: string,
  value: number,
  baseline: number,
  target: string,
  spread?: string,
  ratio?: number,
): void {
  reportWithSpread({
    bench: 'scale',
    metric: `${backend}/${metric}`,
    value,
    baseline,
    ...(ratio === undefined ? {} : { ratio }),
    target,
    ...(spread ? { spread } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Backends: one target per section (a stream prefix, a data dir, a PostgreSQL database)

const admin = new pg.Client({ connectionString: adminUrl });
const redisAdmin = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
let adminReady = false;
let redisReady = false;

async function ensureAdmins(backend: BackendName): Promise<void> {
  if (backend !== 'redis-pg') return;
  if (!adminReady) {
    await admin.connect();
    adminReady = true;
  }
  if (!redisReady) {
    await redisAdmin.connect();
    redisReady = true;
  }
}

interface Target {
  backend: BackendName;
  prefix: string;
  dataDir: string;
  env: Record<string, string>;
  settings: Settings;
  dbName?: string;
  dbUrl?: string;
  /** More databases to drop (the rebuild's). */
  extraDbs: string[];
}

const targets = new Set<Target>();
const openStacks = new Set<Stack>();
let targetSeq = 0;

function databaseUrl(name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function createDatabase(name: string): Promise<string> {
  await admin.query(`CREATE DATABASE ${name}`);
  return databaseUrl(name);
}

async function createTarget(backend: BackendName, label: string, countRedis = false): Promise<Target> {
  await ensureAdmins(backend);
  const seq = ++targetSeq;
  const prefix = `materi-bench:scale:${process.pid}:${seq}`;
  const dataDir = mkdtempSync(join(tmpdir(), `materi-bench-scale-${label}-`));
  const env: Record<string, string> = {
    MATERI_STREAM_PREFIX: prefix,
    MATERI_DATA_DIR: dataDir,
    MATERI_LOG_LEVEL: 'silent',
  };
  const target: Target = { backend, prefix, dataDir, env, settings: loadSettings(env), extraDbs: [] };
  targets.add(target);
  if (backend === 'redis-pg') {
    target.dbName = `materi_bench_scale_${process.pid}_${seq}`;
    target.dbUrl = await createDatabase(target.dbName);
    env.MATERI_REDIS_URL = redisUrl;
    env.MATERI_DATABASE_URL = target.dbUrl;
    target.settings = loadSettings(env);
    if (countRedis) redisCounters.set(target, await RedisCommandCounter.start(target));
    // Where the plansize section's triggers add up the bytes written (see installByteCounters).
    await withDb(target.dbUrl, (c) =>
      c.query(
        'CREATE TABLE bench_bytes (tbl text PRIMARY KEY, bytes bigint NOT NULL, state_bytes bigint NOT NULL)',
      ),
    );
  }
  return target;
}

async function deleteKeys(pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redisAdmin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redisAdmin.del(...keys);
  } while (cursor !== '0');
}

async function dropTarget(target: Target): Promise<void> {
  targets.delete(target);
  if (target.backend === 'redis-pg') {
    redisCounters.get(target)?.stop();
    redisCounters.delete(target);
    await deleteKeys(`${target.prefix}:*`).catch((e) => progress(`cleanup: ${(e as Error).message}`));
    for (const db of [target.dbName!, ...target.extraDbs])
      await admin
        .query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
        .catch((e) => progress(`cleanup: ${(e as Error).message}`));
  }
  rmSync(target.dataDir, { recursive: true, force: true });
}

async function withDb<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function up(
  target: Target,
  components: readonly ComponentName[] = COMPONENTS,
  http = true,
): Promise<Stack> {
  const stack = await startStack({
    settings: target.settings,
    logger,
    role: 'up',
    components,
    ...(http ? { http: { port: 0 } } : {}),
  });
  openStacks.add(stack);
  return stack;
}

async function down(stack: Stack): Promise<void> {
  openStacks.delete(stack);
  await stack.close();
}

// ---------------------------------------------------------------------------------------------
// Plans and submitting

/** A do-nothing plan: `stages` sequential stages named by `stageName`, each running `true`. */
function planText(project: string, stages: number, stageName = (i: number) => `s${i + 1}`): string {
  const names = Array.from({ length: stages }, (_, i) => stageName(i));
  const lines = [`project: ${project}`, 'services:'];
  for (const name of names) lines.push(`  ${name}: {}`);
  lines.push('stages:');
  names.forEach((name, i) => {
    const after = i > 0 ? `, dependsOn: [${names[i - 1]}]` : '';
    lines.push(
      `  - { name: ${name}, services: [${name}]${after}, provider: { type: command, deploy: "true" } }`,
    );
  });
  lines.push('validation: { images: false }');
  return `${lines.join('\n')}\n`;
}

const PLAN_3 = planText('bench', 3);

interface Submitted {
  id: string;
  /** Date.now() just before the POST. */
  at: number;
}

async function submit(url: string, plan: string, environment: string): Promise<Submitted> {
  const at = Date.now();
  const response = await fetch(`${url}/api/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ plan, planSource: 'bench', version: 'v1', environment }),
  });
  const body = (await response.json()) as { id?: string };
  if (response.status !== 201 || !body.id)
    throw new Error(`POST /api/deployments: ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
  return { id: body.id, at };
}

/**
 * Follows the `deployment:completed` stream outside any consumer group: Redis with XREAD BLOCK on
 * its own connection (its commands counted, to be subtracted), the embedded bus by reading the
 * stack's SQLite file every 5 ms. Records each deployment's completion time (the event's time).
 */
class CompletionWatcher {
  readonly done = new Map<string, { at: number; status: string }>();
  commands = 0;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private client: Redis | undefined;

  static async start(target: Target, stack: Stack): Promise<CompletionWatcher> {
    const watcher = new CompletionWatcher();
    const key = streamKey(target.prefix, 'deployment:completed');
    if (target.backend === 'redis-pg') {
      const client = new Redis(redisUrl, { maxRetriesPerRequest: null });
      watcher.client = client;
      const last = (await client.xrevrange(key, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
      watcher.commands += 2; // XREVRANGE and ioredis' ready check (INFO is not counted anyway)
      watcher.loop = watcher.followRedis(client, key, last);
    } else {
      watcher.loop = watcher.followEmbedded(stack, key);
    }
    return watcher;
  }

  private record(fields: Record<string, string>): void {
    const event = decodeEntry(fields);
    const status = String((event.data as { status?: unknown }).status ?? '');
    if (!this.done.has(event.deploymentId))
      this.done.set(event.deploymentId, { at: event.time.getTime(), status });
    this.wake?.();
  }

  private async followRedis(client: Redis, key: string, from: string): Promise<void> {
    let last = from;
    while (!this.stopped) {
      const answer = (await client
        .xread('COUNT', 1000, 'BLOCK', 500, 'STREAMS', key, last)
        .catch(() => null)) as [string, [string, string[]][]][] | null;
      this.commands++;
      for (const [, entries] of answer ?? [])
        for (const [id, fields] of entries) {
          last = id;
          this.record(fieldsToRecord(fields));
        }
    }
  }

  private async followEmbedded(stack: Stack, key: string): Promise<void> {
    let after: string | undefined;
    while (!this.stopped) {
      for (const entry of stack.bus.embedded!.range(key, { ...(after ? { after } : {}), count: 1000 })) {
        after = entry.entryId;
        this.record(entry.fields);
      }
      await sleep(5);
    }
  }

  /** Resolves when every id completed; throws at the timeout. */
  async wait(ids: readonly string[], timeoutMs = TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const missing = ids.filter((id) => !this.done.has(id)).length;
      if (missing === 0) return;
      if (Date.now() > deadline) throw new Error(`${missing} of ${ids.length} deployments did not complete`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.client?.disconnect();
  }
}

interface Batch {
  ids: string[];
  /** submit → completed, ms, per deployment. */
  latencies: number[];
  /** First submit → last completion, s. */
  seconds: number;
  /** Time to make all the POSTs, s. */
  submitSeconds: number;
  failed: number;
}

/** Submits `n` deployments at once (each to its own environment) and waits for all of them. */
async function runBatch(
  stack: Stack,
  watcher: CompletionWatcher,
  n: number,
  label: string,
  plan = PLAN_3,
): Promise<Batch> {
  const started = Date.now();
  const submitted = await Promise.all(
    Array.from({ length: n }, (_, i) => submit(stack.url!, plan, `${label}-${i}`)),
  );
  const submitSeconds = (Date.now() - started) / 1000;
  const ids = submitted.map((s) => s.id);
  await watcher.wait(ids);
  const ends = submitted.map((s) => watcher.done.get(s.id)!);
  const batch: Batch = {
    ids,
    latencies: submitted.map((s, i) => ends[i]!.at - s.at),
    seconds: (Math.max(...ends.map((e) => e.at)) - started) / 1000,
    submitSeconds,
    failed: ends.filter((e) => e.status !== String(DeploymentStatus.SUCCESS)).length,
  };
  for (const id of ids) watcher.done.delete(id);
  return batch;
}

async function runSequential(
  stack: Stack,
  watcher: CompletionWatcher,
  n: number,
  label: string,
  plan = PLAN_3,
): Promise<Batch> {
  const all: Batch = { ids: [], latencies: [], seconds: 0, submitSeconds: 0, failed: 0 };
  for (let i = 0; i < n; i++) {
    const one = await runBatch(stack, watcher, 1, `${label}-${i}`, plan);
    all.ids.push(...one.ids);
    all.latencies.push(...one.latencies);
    all.seconds += one.seconds;
    all.failed += one.failed;
  }
  return all;
}

// ---------------------------------------------------------------------------------------------
// Counters

interface Counters {
  redis: number;
  commits: number;
  /** Table → rows inserted + updated. */
  rows: Map<string, number>;
  inserted: Map<string, number>;
  /** Table → bytes of rows written (only while the byte-counting triggers are installed). */
  bytes: Map<string, number>;
  stateBytes: number;
}

/**
 * Counts the Redis commands of one target: MONITOR, keeping the commands of every connection that
 * ever named a key under the target's prefix (so its PINGs and INFOs count too), and the commands
 * scripts run on those keys — what INFO commandstats would count for a Redis used by the stack
 * alone, while other programs use the same server.
 */
class RedisCommandCounter {
  private readonly perSource = new Map<string, number>();
  private readonly known = new Set<string>();
  /** The bench's own connections (the settle check's). */
  readonly excluded = new Set<string>();
  private scripted = 0;
  private monitor: Redis | undefined;

  private constructor(private readonly marker: string) {}

  static async start(target: Target): Promise<RedisCommandCounter> {
    const counter = new RedisCommandCounter(`${target.prefix}:`);
    const client = new Redis(redisUrl);
    counter.monitor = await client.monitor();
    client.disconnect();
    counter.monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const mine = args.some((a) => a.includes(counter.marker));
      if (source === 'lua') {
        if (mine) counter.scripted++;
        return;
      }
      counter.perSource.set(source, (counter.perSource.get(source) ?? 0) + 1);
      if (mine) counter.known.add(source);
    });
    return counter;
  }

  /** Commands so far. */
  total(): number {
    let sum = this.scripted;
    for (const source of this.known) if (!this.excluded.has(source)) sum += this.perSource.get(source) ?? 0;
    return sum;
  }

  stop(): void {
    this.monitor?.disconnect();
  }
}

const redisCounters = new Map<Target, RedisCommandCounter>();

async function commits(dbName: string): Promise<number> {
  const answer = await admin.query(
    'SELECT xact_commit::bigint AS n FROM pg_stat_database WHERE datname = $1',
    [dbName],
  );
  return Number(answer.rows[0]?.n ?? 0);
}

/**
 * The counters now. Call it with no stack running: waits until the database's commit count stops
 * moving (the closed connections' counters flushed). The one query on the bench database counts
 * one commit in the next window, the same in every window.
 */
async function counters(target: Target): Promise<Counters> {
  const empty: Counters = {
    redis: 0,
    commits: 0,
    rows: new Map(),
    inserted: new Map(),
    bytes: new Map(),
    stateBytes: 0,
  };
  if (target.backend !== 'redis-pg') return empty;
  let previous = -1;
  let current = await commits(target.dbName!);
  for (let i = 0; i < 40 && current !== previous; i++) {
    await sleep(250);
    previous = current;
    current = await commits(target.dbName!);
  }
  const c: Counters = { ...empty, redis: redisCounters.get(target)?.total() ?? 0, commits: current };
  const rows = await withDb(target.dbUrl!, (client) =>
    client.query(`SELECT relname AS name, n_tup_ins::bigint AS ins, n_tup_upd::bigint AS upd, 0::bigint AS bytes,
        0::bigint AS state_bytes FROM pg_stat_user_tables WHERE relname NOT LIKE 'bench_%'
      UNION ALL SELECT 'bytes:' || tbl, 0, 0, bytes, state_bytes FROM bench_bytes`),
  );
  for (const row of rows.rows as {
    name: string;
    ins: string;
    upd: string;
    bytes: string;
    state_bytes: string;
  }[]) {
    if (row.name.startsWith('bytes:')) {
      c.bytes.set(row.name.slice(6), Number(row.bytes));
      c.stateBytes += Number(row.state_bytes);
    } else {
      c.rows.set(row.name, Number(row.ins) + Number(row.upd));
      c.inserted.set(row.name, Number(row.ins));
    }
  }
  return c;
}

interface Delta {
  redis: number;
  commits: number;
  rows: number;
  rowsBy: (prefix: string) => number;
  insertedInto: (table: string) => number;
  bytes: number;
  bytesBy: (prefix: string) => number;
  stateBytes: number;
}

function delta(from: Counters, to: Counters): Delta {
  const diff = (a: Map<string, number>, b: Map<string, number>, keep: (k: string) => boolean) => {
    let sum = 0;
    for (const [k, v] of b) if (keep(k)) sum += v - (a.get(k) ?? 0);
    return sum;
  };
  return {
    redis: to.redis - from.redis,
    commits: to.commits - from.commits,
    rows: diff(from.rows, to.rows, () => true),
    rowsBy: (prefix) => diff(from.rows, to.rows, (k) => k.startsWith(prefix)),
    insertedInto: (table) => diff(from.inserted, to.inserted, (k) => k === table),
    bytes: diff(from.bytes, to.bytes, () => true),
    bytesBy: (prefix) => diff(from.bytes, to.bytes, (k) => k.startsWith(prefix)),
    stateBytes: to.stateBytes - from.stateBytes,
  };
}

/** `work` minus `empty` (one empty start and stop of the stack), field by field. */
function net(work: Delta, empty: Delta): Delta {
  return {
    redis: work.redis - empty.redis,
    commits: work.commits - empty.commits,
    rows: work.rows - empty.rows,
    rowsBy: (p) => work.rowsBy(p) - empty.rowsBy(p),
    insertedInto: (t) => work.insertedInto(t) - empty.insertedInto(t),
    bytes: work.bytes - empty.bytes,
    bytesBy: (p) => work.bytesBy(p) - empty.bytesBy(p),
    stateBytes: work.stateBytes - empty.stateBytes,
  };
}

/** Counters of one empty start and stop of the stack (subtracted from each counted window). */
async function emptyCycle(target: Target): Promise<Delta> {
  const before = await counters(target);
  await down(await up(target));
  return delta(before, await counters(target));
}

/**
 * Adds the bytes of every row inserted or updated in the store's tables to `bench_bytes` (by
 * table; `state_bytes` the bytes of a `state` column where a table has one), in the writing
 * transaction: no commit is added.
 */
async function installByteCounters(target: Target): Promise<void> {
  await withDb(target.dbUrl!, async (client) => {
    await client.query(`CREATE FUNCTION bench_count_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO bench_bytes (tbl, bytes, state_bytes)
          VALUES (TG_TABLE_NAME, octet_length(NEW::text), coalesce(octet_length(to_jsonb(NEW) ->> 'state'), 0))
          ON CONFLICT (tbl) DO UPDATE SET bytes = bench_bytes.bytes + excluded.bytes,
            state_bytes = bench_bytes.state_bytes + excluded.state_bytes;
        RETURN NEW;
      END $$`);
    const tables = await client.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'bench_%'",
    );
    for (const { tablename } of tables.rows as { tablename: string }[])
      await client.query(
        `CREATE TRIGGER bench_bytes AFTER INSERT OR UPDATE ON "${tablename}" FOR EACH ROW EXECUTE FUNCTION bench_count_bytes()`,
      );
  });
}

// ---------------------------------------------------------------------------------------------
// Reading the streams after a run

async function withReader<T>(target: Target, fn: (reader: EventStreamReader) => Promise<T>): Promise<T> {
  const bus = await openEventBus(target.settings, { logger, source: 'bench' });
  try {
    return await fn(streamReaderFor(bus));
  } finally {
    await bus.close();
  }
}

/** Time of each type's first event per deployment (of `ids`), from the streams. */
async function eventTimes(
  reader: EventStreamReader,
  types: readonly string[],
  ids: ReadonlySet<string>,
): Promise<Map<string, Map<string, number>>> {
  const times = new Map<string, Map<string, number>>();
  const known = new Set(await reader.types());
  for (const type of types) {
    const byDeployment = new Map<string, number>();
    times.set(type, byDeployment);
    if (!known.has(type)) continue;
    let after: string | undefined;
    for (;;) {
      const entries = await reader.read(type, after, 1000);
      for (const entry of entries) {
        const event = decodeEntry(entry.fields);
        if (ids.has(event.deploymentId) && !byDeployment.has(event.deploymentId))
          byDeployment.set(event.deploymentId, event.time.getTime());
      }
      if (entries.length < 1000) break;
      after = entries.at(-1)!.entryId;
    }
  }
  return times;
}

/** `to`'s time minus `from`'s per deployment, where both exist. */
function gaps(times: Map<string, Map<string, number>>, from: string, to: string): number[] {
  const a = times.get(from)!;
  const b = times.get(to)!;
  const out: number[] = [];
  for (const [id, t] of a) {
    const u = b.get(id);
    if (u !== undefined) out.push(u - t);
  }
  return out;
}

async function totalEntries(reader: EventStreamReader): Promise<number> {
  let total = 0;
  for (const type of await reader.types()) {
    let after: string | undefined;
    for (;;) {
      const entries = await reader.read(type, after, 1000);
      total += entries.length;
      if (entries.length < 1000) break;
      after = entries.at(-1)!.entryId;
    }
  }
  return total;
}

/**
 * Waits until every consumer group has read and acknowledged everything (Shield may still be
 * catching up after the last deployment completed), so a counted window holds all the work of its
 * deployments. Reads the groups through a bus of its own, whose commands are not counted.
 */
async function settle(target: Target): Promise<void> {
  const bus = await openEventBus(target.settings, { logger, source: 'bench-settle' });
  try {
    const counter = redisCounters.get(target);
    if (counter) {
      const clients = await redisAdmin.client('LIST');
      for (const line of String(clients).split('\n'))
        if (line.includes('bench-settle')) {
          const addr = /addr=(\S+)/.exec(line)?.[1];
          if (addr) counter.excluded.add(addr);
        }
    }
    const deadline = Date.now() + 300_000;
    let quiet = 0;
    while (quiet < 2 && Date.now() < deadline) {
      const groups = await bus.inspector.groups();
      const busy = groups.some((g) => g.lag > 0 || g.pending > 0);
      quiet = busy ? 0 : quiet + 1;
      await sleep(200);
    }
  } finally {
    await bus.close();
  }
}

// ---------------------------------------------------------------------------------------------
// 1, 2, 7: overhead vs the floor, per-deployment costs, gate wake-up

/** 16 sequential durable writes + 3 stream hops, per round, on the target's backend. */
async function measureFloor(
  target: Target,
  rounds = 20,
): Promise<{ total: number[]; writes: number[]; hops: number[] }> {
  const writes: number[] = [];
  if (target.backend === 'redis-pg') {
    await withDb(target.dbUrl!, async (client) => {
      await client.query(
        'CREATE TABLE bench_floor (id bigserial PRIMARY KEY, at bigint NOT NULL, note text NOT NULL)',
      );
      for (let r = 0; r < rounds + 2; r++) {
        const t0 = performance.now();
        for (let i = 0; i < 16; i++)
          await client.query('INSERT INTO bench_floor (at, note) VALUES ($1, $2)', [
            Date.now(),
            `r${r}-${i}`,
          ]);
        if (r >= 2) writes.push(performance.now() - t0);
      }
    });
  } else {
    const db = new SqliteDatabase(join(target.dataDir, 'floor.db'));
    // The store's pragmas (src/store/open.ts).
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.exec('CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO bench_floor (at, note) VALUES (?, ?)');
    for (let r = 0; r < rounds + 2; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 16; i++) insert.run(Date.now(), `r${r}-${i}`);
      if (r >= 2) writes.push(performance.now() - t0);
    }
    db.close();
  }

  // Stream hops: publish → a consumer group's handler, on a bus of the same backend.
  const floorDir = join(target.dataDir, 'floor-bus');
  mkdirSync(floorDir, { recursive: true });
  const bus = await openEventBus(
    loadSettings({
      ...target.env,
      MATERI_STREAM_PREFIX: `${target.prefix}:floor`,
      MATERI_DATA_DIR: floorDir,
    }),
    { logger, source: 'bench' },
  );
  const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher, logger });
  let arrived: (() => void) | undefined;
  router.addHandler({
    name: 'floor',
    group: 'floor',
    types: ['deployment:started'],
    concurrency: 1,
    startFrom: 'beginning',
    handler: async () => arrived?.(),
  });
  await router.start();
  const hop = async (i: number) => {
    const got = new Promise<void>((resolve, reject) => {
      arrived = resolve;
      setTimeout(() => reject(new Error('floor: a stream hop took more than 10 s')), 10_000).unref();
    });
    const t0 = performance.now();
    await bus.publisher.publish({
      type: 'deployment:started',
      data: { deploymentId: `floor-${i}`, version: 'v1', environment: 'floor', services: ['a'] },
    });
    await got;
    return performance.now() - t0;
  };
  const hops: number[] = [];
  try {
    for (let i = 0; i < 5; i++) await hop(i);
    for (let r = 0; r < rounds; r++) {
      let sum = 0;
      for (let h = 0; h < 3; h++) sum += await hop(100 + r * 3 + h);
      hops.push(sum);
    }
  } finally {
    await router.close(1000);
    await bus.close();
  }
  return { total: writes.map((w, i) => w + hops[i]!), writes, hops };
}

async function overheadSection(backend: BackendName): Promise<void> {
  const target = await createTarget(backend, 'overhead', true);
  try {
    progress(`[${backend}] overhead: measuring the floor (16 durable writes + 3 stream hops, 20 rounds)`);
    const floor = await measureFloor(target);
    const floorP50 = percentile(floor.total, 50);

    // Warm-up on a first stack; the counted window starts with it closed.
    let stack = await up(target);
    let watcher = await CompletionWatcher.start(target, stack);
    await runSequential(stack, watcher, 2, 'warm');
    await watcher.close();
    await down(stack);

    if (backend === 'redis-pg') {
      // Counted apart from the timed runs: MONITOR slows Redis down a little.
      const counted = Math.min(SEQUENTIAL, 10);
      progress(
        `[${backend}] overhead: ${counted} sequential 3-stage deployments, counting commands and commits`,
      );
      const c0 = await counters(target);
      stack = await up(target);
      watcher = await CompletionWatcher.start(target, stack);
      const runs = await runSequential(stack, watcher, counted, 'count');
      await settle(target);
      const watcherCommands = watcher.commands;
      await watcher.close();
      await down(stack);
      const work = delta(c0, await counters(target));
      work.redis -= watcherCommands;
      const d = net(work, await emptyCycle(target));
      redisCounters.get(target)?.stop();
      const n = runs.ids.length;
      result(backend, 'redis_commands_per_deployment', d.redis / n, 1, 'lower is better');
      result(backend, 'pg_commits_per_deployment', d.commits / n, 1, 'lower is better');
      result(
        backend,
        'pg_rows_written_per_deployment',
        d.rows / n,
        1,
        'lower is better',
        `orchestrator ${round2(d.rowsBy('orchestrator_') / n)}, shield ${round2(d.rowsBy('shield_') / n)}`,
      );
    }

    progress(`[${backend}] overhead: ${SEQUENTIAL} sequential 3-stage deployments, timed`);
    stack = await up(target);
    watcher = await CompletionWatcher.start(target, stack);
    const runs = await runSequential(stack, watcher, SEQUENTIAL, 'seq');
    await watcher.close();
    await down(stack);
    const p50 = percentile(runs.latencies, 50);
    result(
      backend,
      'overhead_3stage_ms_vs_floor',
      p50,
      floorP50,
      '<= 2',
      `deployment ${describeSpread(runs.latencies, 'ms')}; floor ${describeSpread(floor.total, 'ms')} ` +
        `(writes p50 ${round2(percentile(floor.writes, 50))}, 3 hops p50 ${round2(percentile(floor.hops, 50))})`,
    );
    if (runs.failed > 0) progress(`[${backend}] overhead: ${runs.failed} deployments did not succeed`);

    // Gate timings from the streams (read with the stack closed).
    const ids = new Set(runs.ids);
    const times = await withReader(target, (reader) =>
      eventTimes(
        reader,
        [
          'validation:started',
          'validation:completed',
          'dependency:check:started',
          'dependency:check:completed',
          'deployment:stage:s1:started',
        ],
        ids,
      ),
    );
    const wake = [
      ...gaps(times, 'validation:completed', 'dependency:check:started'),
      ...gaps(times, 'dependency:check:completed', 'deployment:stage:s1:started'),
    ];
    result(
      backend,
      'gate_wakeup_p99_ms',
      percentile(wake, 99),
      10,
      '<= 10 ms (ratio <= 1)',
      `gate result → saga's next event ${describeSpread(wake, 'ms', [50, 99])}`,
    );
    const validation = gaps(times, 'validation:started', 'validation:completed');
    result(
      backend,
      'validation_gate_p50_ms_sequential',
      percentile(validation, 50),
      percentile(validation, 50),
      'info',
      describeSpread(validation, 'ms'),
    );
  } finally {
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------
// 3: durable writes per step vs plan size (PostgreSQL)

async function planSizeSection(backend: BackendName): Promise<void> {
  if (backend !== 'redis-pg') return;
  const target = await createTarget(backend, 'plansize');
  try {
    const plan30 = planText('bench', 30);
    let stack = await up(target);
    let watcher = await CompletionWatcher.start(target, stack);
    await runSequential(stack, watcher, 1, 'warm');
    await watcher.close();
    await down(stack);
    await installByteCounters(target);

    const window = async (label: string, plan: string, runs: number) => {
      const before = await counters(target);
      stack = await up(target);
      watcher = await CompletionWatcher.start(target, stack);
      const batch = await runSequential(stack, watcher, runs, label, plan);
      await settle(target);
      await watcher.close();
      await down(stack);
      return { batch, delta: delta(before, await counters(target)) };
    };
    progress(`[${backend}] plansize: ${PLAN_RUNS} sequential 3-stage deployments`);
    const small = await window('p3', PLAN_3, PLAN_RUNS);
    const largeRuns = Math.max(1, Math.ceil(PLAN_RUNS / 2));
    progress(`[${backend}] plansize: ${largeRuns} sequential 30-stage deployments`);
    const large = await window('p30', plan30, largeRuns);
    const empty = await emptyCycle(target);

    const per = (w: typeof small, stages: number) => {
      const d = net(w.delta, empty);
      const n = w.batch.ids.length;
      const events = d.insertedInto('shield_events');
      return {
        commits: d.commits / n / stages,
        rows: d.rows / n / stages,
        bytes: d.bytesBy('orchestrator_') / n / stages,
        stateBytesPerDeployment: d.stateBytes / n,
        bytesPerDeployment: d.bytesBy('orchestrator_') / n,
        shieldRowsPerEvent: events > 0 ? d.rowsBy('shield_') / events : Number.NaN,
        shieldBytesPerEvent: events > 0 ? d.bytesBy('shield_') / events : Number.NaN,
        latencyMs: percentile(w.batch.latencies, 50),
      };
    };
    const s = per(small, 3);
    const l = per(large, 30);
    result(backend, 'pg_commits_per_stage_30_vs_3', l.commits, s.commits, '<= 1.2');
    result(backend, 'pg_rows_per_stage_30_vs_3', l.rows, s.rows, '<= 1.2');
    result(
      backend,
      'orchestrator_bytes_per_stage_30_vs_3',
      l.bytes,
      s.bytes,
      '<= 1.2',
      `per deployment: 3-stage ${Math.round(s.bytesPerDeployment)} B (saga state ${Math.round(s.stateBytesPerDeployment)} B), ` +
        `30-stage ${Math.round(l.bytesPerDeployment)} B (saga state ${Math.round(l.stateBytesPerDeployment)} B)`,
    );
    result(
      backend,
      'saga_state_bytes_per_deployment_3stage',
      s.stateBytesPerDeployment,
      1,
      'lower is better',
    );
    result(backend, 'shield_rows_per_event_30_vs_3', l.shieldRowsPerEvent, s.shieldRowsPerEvent, '<= 1.2');
    result(backend, 'shield_bytes_per_event_30_vs_3', l.shieldBytesPerEvent, s.shieldBytesPerEvent, '<= 1.2');
    result(
      backend,
      'deployment_ms_30_vs_3_stages',
      l.latencyMs,
      s.latencyMs,
      'info (<= 10 if O(1) per stage)',
    );
  } finally {
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------
// 4: throughput and latency under concurrency

async function throughputSection(backend: BackendName): Promise<void> {
  const target = await createTarget(backend, 'throughput');
  const stack = await up(target);
  const watcher = await CompletionWatcher.start(target, stack);
  try {
    await runBatch(stack, watcher, 3, 'warm');
    const figures: { n: number; rate: number; p95: number }[] = [];
    for (const n of CONCURRENCY) {
      progress(`[${backend}] throughput: ${n} deployments at once`);
      const batch = await runBatch(stack, watcher, n, `c${n}`);
      const rate = n / batch.seconds;
      const times = await eventTimes(
        streamReaderFor(stack.bus),
        ['validation:started', 'validation:completed'],
        new Set(batch.ids),
      );
      const validation = gaps(times, 'validation:started', 'validation:completed');
      progress(
        `[${backend}] throughput: ${n} in ${batch.seconds.toFixed(1)} s (POSTs ${batch.submitSeconds.toFixed(1)} s), ` +
          `p50 ${Math.round(percentile(batch.latencies, 50))} ms, ${batch.failed} not succeeded`,
      );
      result(backend, `deployments_per_s_at_${n}`, rate, rate, 'info', `${n} in ${round2(batch.seconds)} s`);
      result(
        backend,
        `latency_p50_ms_at_${n}`,
        percentile(batch.latencies, 50),
        percentile(batch.latencies, 50),
        'info',
        describeSpread(batch.latencies, 'ms'),
      );
      result(
        backend,
        `latency_p95_ms_at_${n}`,
        percentile(batch.latencies, 95),
        percentile(batch.latencies, 95),
        'info',
      );
      result(
        backend,
        `validation_gate_p50_ms_at_${n}`,
        percentile(validation, 50),
        percentile(validation, 50),
        'info',
        describeSpread(validation, 'ms'),
      );
      result(
        backend,
        `submit_s_at_${n}`,
        batch.submitSeconds,
        batch.submitSeconds,
        'info',
        'time to make the POSTs',
      );
      figures.push({ n, rate, p95: percentile(batch.latencies, 95) });
    }
    if (figures.length >= 2) {
      const first = figures[0]!;
      const last = figures.at(-1)!;
      result(
        backend,
        `throughput_${last.n}_vs_${first.n}`,
        last.rate,
        first.rate,
        '>= 1',
        `${round2(last.rate)} vs ${round2(first.rate)} deployments/s`,
      );
      result(
        backend,
        `latency_p95_${last.n}_vs_${first.n}`,
        last.p95,
        first.p95,
        `<= ${last.n / first.n}`,
        `${Math.round(last.p95)} vs ${Math.round(first.p95)} ms`,
      );
    }
  } finally {
    await watcher.close();
    await down(stack);
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------
// 5: dashboard lag

async function lagSection(backend: BackendName): Promise<void> {
  const target = await createTarget(backend, 'lag');
  const stack = await up(target);
  const watcher = await CompletionWatcher.start(target, stack);
  try {
    await runBatch(stack, watcher, 3, 'warm');
    progress(`[${backend}] lag: ${LAG_COUNT} deployments at once, polling GET /api/deployments every 25 ms`);
    const plan = planText('lag', 3);
    const seen = new Map<string, number>();
    let polling = true;
    let polls = 0;
    const poller = (async () => {
      const url = `${stack.url}/api/deployments?project=lag&status=SUCCESS,FAILURE,ROLLED_BACK,CANCELLED&limit=200`;
      while (polling) {
        const next = Date.now() + 25;
        try {
          const response = await fetch(url);
          const body = (await response.json()) as { deployments?: { id: string }[] };
          const at = Date.now();
          polls++;
          for (const d of body.deployments ?? []) if (!seen.has(d.id)) seen.set(d.id, at);
        } catch (error) {
          progress(`[${backend}] lag: a poll failed: ${(error as Error).message}`);
        }
        await sleep(Math.max(0, next - Date.now()));
      }
    })();
    const started = Date.now();
    const submitted = await Promise.all(
      Array.from({ length: LAG_COUNT }, (_, i) => submit(stack.url!, plan, `lag-${i}`)),
    );
    const ids = submitted.map((s) => s.id);
    await watcher.wait(ids);
    const deadline = Date.now() + 120_000;
    while (ids.some((id) => !seen.has(id)) && Date.now() < deadline) await sleep(50);
    polling = false;
    await poller;
    const lags = ids.filter((id) => seen.has(id)).map((id) => seen.get(id)! - watcher.done.get(id)!.at);
    const missing = ids.length - lags.length;
    progress(
      `[${backend}] lag: ${LAG_COUNT} done in ${((Date.now() - started) / 1000).toFixed(1)} s, ${polls} polls` +
        (missing ? `, ${missing} never shown within 120 s` : ''),
    );
    result(
      backend,
      `dashboard_lag_p99_ms_at_${LAG_COUNT}`,
      percentile(lags, 99),
      1000,
      '<= 1000 ms (ratio <= 1)',
      describeSpread(lags, 'ms', [50, 99]) + (missing ? `; ${missing} never shown` : ''),
    );
    result(backend, `dashboard_lag_p50_ms_at_${LAG_COUNT}`, percentile(lags, 50), 1000, 'info');
  } finally {
    await watcher.close();
    await down(stack);
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------
// 6: Shield live projection vs rebuild

async function shieldEventCounter(
  target: Target,
): Promise<{ count(): Promise<number>; close(): Promise<void> }> {
  if (target.backend === 'redis-pg') {
    const client = new pg.Client({ connectionString: target.dbUrl });
    await client.connect();
    return {
      count: async () =>
        Number((await client.query('SELECT count(*)::int AS n FROM shield_events')).rows[0].n),
      close: () => client.end(),
    };
  }
  const db = new SqliteDatabase(join(target.dataDir, 'materi.db'), { readonly: true });
  const query = db.prepare('SELECT count(*) AS n FROM shield_events');
  return {
    count: async () => (query.get() as { n: number }).n,
    close: async () => void db.close(),
  };
}

async function shieldSection(backend: BackendName): Promise<void> {
  const target = await createTarget(backend, 'shield');
  try {
    progress(`[${backend}] shield: ${SHIELD_COUNT} deployments with Shield stopped`);
    const stack = await up(
      target,
      COMPONENTS.filter((c) => c !== 'shield'),
    );
    const watcher = await CompletionWatcher.start(target, stack);
    try {
      for (let done = 0; done < SHIELD_COUNT; done += 50)
        await runBatch(stack, watcher, Math.min(50, SHIELD_COUNT - done), `sh${done}`);
    } finally {
      await watcher.close();
      await down(stack);
    }
    const entries = await withReader(target, totalEntries);

    progress(`[${backend}] shield: live projection catching up ${entries} events`);
    const counter = await shieldEventCounter(target);
    const initial = await counter.count();
    const t0 = performance.now();
    const shield = await up(target, ['shield'], false);
    // The rate is taken from the moment the component runs (its start is reported apart).
    const startMs = performance.now() - t0;
    const t1 = performance.now();
    const atStart = await counter.count();
    let logged = atStart;
    let lastChange = performance.now();
    let caughtUp = t1;
    try {
      while (logged - initial < entries && performance.now() - lastChange < 5000) {
        await sleep(50);
        const now = await counter.count();
        if (now !== logged) {
          logged = now;
          lastChange = caughtUp = performance.now();
        }
      }
    } finally {
      await down(shield);
      await counter.close();
    }
    const liveRate = (logged - atStart) / ((caughtUp - t1) / 1000);

    progress(`[${backend}] shield: rebuild of the same events into an empty store`);
    let rebuildDb: string | undefined;
    if (backend === 'redis-pg') {
      const name = `${target.dbName}_rebuild`;
      target.extraDbs.push(name);
      rebuildDb = await createDatabase(name);
    }
    const store = await openStore({
      databaseUrl: rebuildDb,
      dataDir: join(target.dataDir, 'rebuild'),
      logger,
    });
    const bus = await openEventBus(target.settings, { logger, source: 'bench' });
    let rebuilt: Awaited<ReturnType<typeof rebuildShield>>;
    const r0 = performance.now();
    try {
      rebuilt = await rebuildShield({ db: store.db, reader: streamReaderFor(bus), logger });
    } finally {
      await bus.close();
      await store.close();
    }
    const rebuildRate = rebuilt.added / ((performance.now() - r0) / 1000);
    result(
      backend,
      'shield_live_vs_rebuild_events_per_s',
      liveRate,
      rebuildRate,
      '>= 0.8',
      `live ${Math.round(liveRate)} events/s (${logged - initial} of ${entries} events; the shield component ` +
        `took ${Math.round(startMs)} ms to start, ${atStart - initial} logged by then), rebuild ${Math.round(rebuildRate)} events/s (${rebuilt.added} events)`,
    );
  } finally {
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------
// 8: idle Redis commands

async function idleSection(backend: BackendName): Promise<void> {
  if (backend !== 'redis-pg') return;
  const target = await createTarget(backend, 'idle', true);
  const stack = await up(target);
  const watcher = await CompletionWatcher.start(target, stack);
  const idleRate = async () => {
    await sleep(3000);
    const counter = redisCounters.get(target)!;
    const c0 = counter.total();
    const w0 = watcher.commands;
    await sleep(10_000);
    return counter.total() - c0 - (watcher.commands - w0);
  };
  try {
    await runBatch(stack, watcher, 1, 'idle-few');
    const streamsBefore = (await streamReaderFor(stack.bus).types()).length;
    progress(`[${backend}] idle: 10 s with ${streamsBefore} streams`);
    const few = (await idleRate()) / 10;
    const plan100 = planText('idle', 100, (i) => `idle-stage-${String(i).padStart(3, '0')}`);
    await runBatch(stack, watcher, 1, 'idle-many', plan100);
    const streamsAfter = (await streamReaderFor(stack.bus).types()).length;
    progress(`[${backend}] idle: 10 s with ${streamsAfter} streams`);
    const many = (await idleRate()) / 10;
    result(
      backend,
      `idle_redis_commands_per_s_${streamsAfter}_streams`,
      many,
      2,
      '<= 2/s (ratio <= 1)',
      `${round2(few)}/s with ${streamsBefore} streams, ${round2(many)}/s with ${streamsAfter}`,
    );
  } finally {
    await watcher.close();
    await down(stack);
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------
// 9: CLI start

function timeCommand(args: string[], runs = 7): number[] {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const child = spawnSync(process.execPath, args, { cwd: root, stdio: 'ignore', env: process.env });
    times.push(performance.now() - t0);
    if (child.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${child.status}`);
  }
  return times;
}

async function cliSection(): Promise<void> {
  if (process.env.BENCH_SCALE_BUILD !== '0') {
    progress('cli: npm run build');
    const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 2, 2] });
    if (build.status !== 0) throw new Error('npm run build failed; cli section skipped');
  }
  progress('cli: 7 runs each of node -e 0, materi --help, materi plan validate');
  const baseline = timeCommand(['-e', '0']);
  const help = timeCommand(['bin/materi.js', '--help']);
  const validate = timeCommand(['bin/materi.js', 'plan', 'validate', 'examples/three-stage.yaml']);
  const node = percentile(baseline, 50);
  result(
    'cli',
    'help_ms',
    percentile(help, 50),
    node,
    '<= 250 ms',
    `${describeSpread(help, 'ms', [50])}; node -e 0 ${describeSpread(baseline, 'ms', [50])}`,
  );
  result(
    'cli',
    'plan_validate_ms',
    percentile(validate, 50),
    node,
    '<= 400 ms',
    describeSpread(validate, 'ms', [50]),
  );
}

// ---------------------------------------------------------------------------------------------
// 10: memory

function forcedGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

async function memorySection(backend: BackendName): Promise<void> {
  const gc = forcedGc();
  const target = await createTarget(backend, 'memory');
  const stack = await up(target);
  const watcher = await CompletionWatcher.start(target, stack);
  const rss = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(300);
    }
    return process.memoryUsage();
  };
  try {
    let done = 0;
    const runTo = async (total: number) => {
      const started = Date.now();
      while (done < total) {
        const n = Math.min(RSS_BATCH, total - done);
        await runBatch(stack, watcher, n, `m${done}`);
        done += n;
      }
      progress(
        `[${backend}] memory: ${done} deployments (${((Date.now() - started) / 1000).toFixed(0)} s for the last part)`,
      );
    };
    progress(`[${backend}] memory: ${RSS_SMALL} then ${RSS_LARGE} deployments, ${RSS_BATCH} at a time`);
    await runTo(RSS_SMALL);
    const small = await rss();
    await runTo(RSS_LARGE);
    const large = await rss();
    const mb = (v: number) => Math.round(v / 1e6);
    result(
      backend,
      `rss_mb_${RSS_LARGE}_vs_${RSS_SMALL}_deployments`,
      large.rss / 1e6,
      small.rss / 1e6,
      '<= 1.2',
      `heap used ${mb(small.heapUsed)} → ${mb(large.heapUsed)} MB, rss ${mb(small.rss)} → ${mb(large.rss)} MB`,
    );
  } finally {
    await watcher.close();
    await down(stack);
    await dropTarget(target);
  }
}

// ---------------------------------------------------------------------------------------------

const perBackend: [string, (backend: BackendName) => Promise<void>][] = [
  ['overhead', overheadSection],
  ['plansize', planSizeSection],
  ['throughput', throughputSection],
  ['lag', lagSection],
  ['shield', shieldSection],
  ['idle', idleSection],
  ['memory', memorySection],
];

let failures = 0;
async function section(name: string, fn: () => Promise<void>): Promise<void> {
  const t0 = Date.now();
  try {
    await fn();
  } catch (error) {
    failures++;
    progress(`${name} FAILED: ${(error as Error).stack ?? error}`);
    for (const stack of openStacks) await down(stack).catch(() => {});
  }
  progress(`${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

const interrupted = () => {
  progress('interrupted: cleaning up');
  void cleanup().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);

async function cleanup(): Promise<void> {
  for (const stack of openStacks) await down(stack).catch(() => {});
  for (const target of targets) await dropTarget(target);
  if (adminReady) await admin.end().catch(() => {});
  if (redisReady) redisAdmin.disconnect();
}

try {
  progress(`sections ${ONLY.join(', ')}; backends ${BACKENDS.join(', ')}`);
  if (ONLY.includes('cli')) await section('cli', cliSection);
  for (const backend of BACKENDS)
    for (const [name, fn] of perBackend)
      if (ONLY.includes(name)) await section(`[${backend}] ${name}`, () => fn(backend));
} finally {
  await cleanup();
}
if (failures > 0) process.exitCode = 1;
// Stage commands and HTTP keep-alive sockets must not keep the bench alive.
setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
