/**
 * Shield's live projection against `materi shield rebuild`, same events, same database:
 * - live: the projection handler fed the events in publication order (deployments interleaved),
 *   as many at a time as the registration's `concurrency` (BENCH_SHIELD_CONCURRENCY, else the
 *   registration's default; the router keeps that many in flight);
 * - rebuild: `rebuildShield` over the same events held in memory as stream entries, into empty
 *   tables.
 * Shapes: 200 deployments × 3 stages and 20 × 50 stages, on PostgreSQL and SQLite. The value is the
 * live rate, the baseline the rebuild rate (target: ratio >= 0.8). Also reports the rows written
 * (inserted + updated + deleted, counted from every statement's result) per event, live.
 *
 * Each is the best of BENCH_SHIELD_ROUNDS (3) rounds, live and rebuild alternating, each into
 * emptied tables. Env: BENCH_SHIELD_BACKENDS (postgres,sqlite), BENCH_SHIELD_SHAPES (200x3,20x50),
 * BENCH_SHIELD_CONCURRENCY, MATERI_TEST_POSTGRES_URL.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';
import pg from 'pg';
import { prepareEvent } from '../src/bus/outgoing.js';
import type { EventStreamReader, StreamEntry } from '../src/bus/stream-reader.js';
import type { HandlerContext, OutgoingEvent } from '../src/bus/types.js';
import { encodeEntry } from '../src/events/codec.js';
import type { DeploymentEvent } from '../src/events/envelope.js';
import { ORCHESTRATOR_SOURCE } from '../src/events/sources.js';
import { silentLogger } from '../src/runtime/logging.js';
import { shieldProjectionRegistration } from '../src/shield/projection.js';
import { rebuildShield } from '../src/shield/rebuild.js';
import { ShieldStore } from '../src/shield/store/shield-store.js';
import { openStore, type Store } from '../src/store/index.js';
import { report } from './_support.js';

const PG_URL = process.env.MATERI_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const BACKENDS = (process.env.BENCH_SHIELD_BACKENDS ?? 'postgres,sqlite').split(',');
const SHAPES = (process.env.BENCH_SHIELD_SHAPES ?? '200x3,20x50').split(',').map((s) => {
  const [deployments, stages] = s.split('x').map(Number);
  return { deployments: deployments!, stages: stages! };
});
const ROUNDS = Number(process.env.BENCH_SHIELD_ROUNDS ?? 3);
const TARGET = 'live >= 0.8 x rebuild';
const logger = silentLogger();

const WORKER: Record<string, string> = {
  'validation:completed': 'materi/worker-validator',
  'dependency:check:completed': 'materi/worker-dependency-checker',
  'health:check:completed': 'materi/worker-health-monitor',
  'notification:sent': 'materi/worker-notifier',
};

/** Every event of one do-nothing deployment of `stageCount` stages, each stage its own service. */
function deployment(index: number, stageCount: number, start: number): OutgoingEvent[] {
  const id = `bench-${stageCount}-${index}`;
  const correlationId = randomUUID();
  const stages = Array.from({ length: stageCount }, (_, i) => `stage${i}`);
  const services = stages.map((s) => `svc-${s}`);
  const events: OutgoingEvent[] = [];
  let t = start;
  const add = (type: string, data: Record<string, unknown>, causationId = '') => {
    t += 7;
    const event: OutgoingEvent = {
      id: randomUUID(),
      type,
      time: new Date(t),
      correlationId,
      causationId,
      deploymentId: id,
      source: WORKER[type] ?? ORCHESTRATOR_SOURCE,
      data: { deploymentId: id, ...data },
    };
    events.push(event);
    return event.id!;
  };
  const env = { version: 'v1.0.0', environment: 'production' };
  const started = add('deployment:started', { ...env, strategy: 'rolling', services, project: 'p', stages });
  const validation = add('validation:started', { ...env, deadlineSeconds: 60 }, started);
  add('validation:completed', { result: 1, executionStatus: 1, durationMs: 5 }, validation);
  const dependency = add('dependency:check:started', { environment: 'production' }, started);
  add('dependency:check:completed', { result: 1, executionStatus: 1, durationMs: 5 }, dependency);
  for (const [i, stage] of stages.entries()) {
    const stageServices = [services[i]!];
    add(`deployment:stage:${stage}:started`, { stage, services: stageServices, provider: 'command' });
    add(`deployment:stage:${stage}:completed`, {
      stage,
      status: 3,
      durationMs: 5,
      services: stageServices,
      artifacts: [{ name: 'log', kind: 'text', value: 'ok' }],
    });
  }
  const health = add('health:check:started', { services, purpose: 1, deadlineSeconds: 60 }, started);
  add('health:check:completed', { status: 1, executionStatus: 1, purpose: 1, durationMs: 5 }, health);
  const completed = add('deployment:completed', { ...env, status: 3, services, totalDurationMs: t - start });
  add(
    'notification:sent',
    { channel: 'log', target: 'stdout', notifiedEventId: completed, outcome: 1 },
    completed,
  );
  return events;
}

/** Deployments started 50 ms apart, their events in publication order (interleaved). */
function eventSet(deployments: number, stages: number): DeploymentEvent[] {
  const base = Date.parse('2026-03-01T10:00:00.000Z');
  const all = Array.from({ length: deployments }, (_, i) => deployment(i, stages, base + i * 50)).flat();
  all.sort((a, b) => a.time!.getTime() - b.time!.getTime());
  return all.map((e) => prepareEvent(e, { source: 'bench', contentType: 'application/json' }).event);
}

/** Counts the rows every insert, update and delete touched, in all and per table. */
class RowCounter implements KyselyPlugin {
  rows = 0;
  readonly byTable = new Map<string, number>();
  readonly #tables = new WeakMap<object, string>();
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node as {
      kind: string;
      into?: { table: { identifier: { name: string } } };
      table?: { table?: { identifier: { name: string } } };
      from?: { froms: { table?: { identifier: { name: string } } }[] };
    };
    const table =
      node.kind === 'SelectQueryNode'
        ? undefined
        : (node.into?.table.identifier.name ??
          node.table?.table?.identifier.name ??
          node.from?.froms[0]?.table?.identifier.name);
    if (table) this.#tables.set(args.queryId, table);
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const table = this.#tables.get(args.queryId);
    // A write with RETURNING reports its rows, not always a count (SQLite).
    const affected = args.result.numAffectedRows ?? (table ? BigInt(args.result.rows.length) : undefined);
    if (affected !== undefined) {
      this.rows += Number(affected);
      this.byTable.set(table ?? '?', (this.byTable.get(table ?? '?') ?? 0) + Number(affected));
    }
    return args.result;
  }
}

function contextFor(event: DeploymentEvent, n: number): HandlerContext {
  return {
    delivery: {
      stream: `materi:events:deployment:${event.type}`,
      entryId: `${1_700_000_000_000 + n}-0`,
      deliveryCount: 1,
      group: 'shield',
      consumer: 'shield:bench:0',
    },
    logger,
    isLevelEnabled: () => false,
    deferAck: () => {},
    publisher: {
      publish: async () => {
        throw new Error('unused');
      },
      publishBatch: async () => {
        throw new Error('unused');
      },
      close: async () => {},
    },
    signal: new AbortController().signal,
    renewClaim: async () => {},
  };
}

/** The events as stream entries, one stream per type, read from memory. */
function memoryReader(events: readonly DeploymentEvent[]): EventStreamReader {
  const streams = new Map<string, StreamEntry[]>();
  events.forEach((event, n) => {
    const list = streams.get(event.type) ?? [];
    const fields = encodeEntry(event);
    const record: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    list.push({ stream: `bench:${event.type}`, entryId: `${n + 1}-0`, fields: record });
    streams.set(event.type, list);
  });
  return {
    types: async () => [...streams.keys()].sort(),
    read: async (type, after, count) => {
      const list = streams.get(type) ?? [];
      const from = after === undefined ? 0 : list.findIndex((e) => e.entryId === after) + 1;
      return list.slice(from, from + count);
    },
  };
}

async function openBackend(dialect: string): Promise<{ store: Store; drop: () => Promise<void> }> {
  if (dialect === 'sqlite') {
    const dataDir = mkdtempSync(join(tmpdir(), 'materi-bench-shield-'));
    const store = await openStore({ dataDir, logger });
    return {
      store,
      drop: async () => {
        await store.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  const name = `materi_bench_${randomBytes(6).toString('hex')}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'materi-bench-shield-'));
  const store = await openStore({ databaseUrl: url.toString(), dataDir, logger });
  return {
    store,
    drop: async () => {
      await store.close();
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function live(store: Store, events: readonly DeploymentEvent[], counter: RowCounter) {
  const registration = shieldProjectionRegistration({ db: store.db.withPlugin(counter), logger });
  const handle = registration.handler;
  const concurrency = Number(process.env.BENCH_SHIELD_CONCURRENCY ?? registration.concurrency ?? 1);
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < events.length) {
        const n = next++;
        await handle(events[n]!, contextFor(events[n]!, n));
      }
    }),
  );
  return events.length / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function rebuild(store: Store, events: readonly DeploymentEvent[]) {
  const started = process.hrtime.bigint();
  await rebuildShield({ db: store.db, reader: memoryReader(events), logger });
  return events.length / (Number(process.hrtime.bigint() - started) / 1e9);
}

for (const dialect of BACKENDS) {
  for (const shape of SHAPES) {
    const events = eventSet(shape.deployments, shape.stages);
    const { store, drop } = await openBackend(dialect);
    try {
      const shield = new ShieldStore(store.db);
      let liveRate = 0;
      let rebuildRate = 0;
      let counter = new RowCounter();
      let serviceRows = 0;
      for (let round = 0; round < ROUNDS; round++) {
        await shield.clear();
        counter = new RowCounter();
        liveRate = Math.max(liveRate, await live(store, events, counter));
        const liveRecords = await shield.listDeployments({ limit: 200 });
        const counted = await store.db
          .selectFrom('shield_deployment_services')
          .select((eb) => eb.fn.countAll<number | string>().as('n'))
          .executeTakeFirstOrThrow();
        serviceRows = Number(counted.n);
        await shield.clear();
        rebuildRate = Math.max(rebuildRate, await rebuild(store, events));
        const rebuilt = await shield.listDeployments({ limit: 200 });
        if (JSON.stringify(rebuilt.items) !== JSON.stringify(liveRecords.items)) {
          process.stderr.write(
            `shield-projection: ${dialect} ${shape.deployments}x${shape.stages}: live != rebuild\n`,
          );
          process.exitCode = 1;
        }
      }
      const tag = `${dialect} ${shape.deployments}x${shape.stages}-stage (${events.length} events)`;
      report({
        bench: 'shield-projection',
        metric: `${tag}: live events/s vs rebuild`,
        value: liveRate,
        baseline: rebuildRate,
        target: TARGET,
      });
      report({
        bench: 'shield-projection',
        metric: `${tag}: rows written per event (live)`,
        value: counter.rows / events.length,
        baseline: 1,
        target: 'O(1) in plan size',
      });
      report({
        bench: 'shield-projection',
        metric: `${tag}: service index rows written per deployment (live), vs rows kept`,
        value: (counter.byTable.get('shield_deployment_services') ?? 0) / shape.deployments,
        baseline: serviceRows / shape.deployments,
      });
    } finally {
      await drop();
    }
  }
}
