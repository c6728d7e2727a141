/**
 * 100 deployments of a three-stage no-op plan to 100 environments at once, through the real
 * orchestrator on Redis + PostgreSQL, with gate workers that answer at once. Reports whether all
 * finished, the wall time, and events and Redis commands per deployment.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openEventBus } from '../src/bus/open.js';
import { Router } from '../src/bus/router.js';
import { Orchestrator } from '../src/orchestrator/index.js';
import { loadSettings } from '../src/runtime/config.js';
import { silentLogger } from '../src/runtime/logging.js';
import { openStore } from '../src/store/index.js';
import { report } from './_support.js';

const DEPLOYMENTS = Number(process.env.BENCH_DEPLOYMENTS ?? 100);
const redisUrl = process.env.MATERI_REDIS_URL ?? 'redis://127.0.0.1:6379';
const adminUrl = process.env.MATERI_TEST_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const prefix = `materi-bench:deploy:${process.pid}`;
const dbName = `materi_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(adminUrl);
dbUrl.pathname = `/${dbName}`;
const logger = silentLogger();
const settings = loadSettings({
  MATERI_REDIS_URL: redisUrl,
  MATERI_STREAM_PREFIX: prefix,
  MATERI_DATABASE_URL: dbUrl.toString(),
});
const bus = await openEventBus(settings, {
  logger,
  source: 'bench',
  subscriber: { blockMs: 200, scanIntervalMs: 100 },
});
const store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: '/tmp', logger, poolSize: 20 });
const redis = new Redis(redisUrl);

const workers = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
const answer =
  (type: string, data: Record<string, unknown>) =>
  async (e: { deploymentId: string }, ctx: { publisher: typeof bus.publisher }) => {
    await ctx.publisher.publish({
      type,
      data: { deploymentId: e.deploymentId, executionStatus: 1, ...data },
    });
  };
workers.addHandler({
  name: 'v',
  group: 'printery-validator',
  types: ['validation:started'],
  concurrency: 20,
  handler: answer('validation:completed', { result: 1 }) as never,
});
workers.addHandler({
  name: 'd',
  group: 'printery-dependency-checker',
  types: ['dependency:check:started'],
  concurrency: 20,
  handler: answer('dependency:check:completed', { result: 1 }) as never,
});
workers.addHandler({
  name: 'h',
  group: 'printery-health-monitor',
  types: ['health:check:started'],
  concurrency: 20,
  handler: answer('health:check:completed', { status: 1 }) as never,
});
await workers.start();
const orchestrator = new Orchestrator({
  db: store.db,
  publisher: bus.publisher,
  subscriber: bus.subscriber,
  logger,
  dataDir: '/tmp',
  pollMs: 100,
});
await orchestrator.start();

const plan = `project: bench
services: { a: {}, b: {}, c: {} }
stages:
  - { name: a, services: [a], provider: { type: command, deploy: "true" } }
  - { name: b, services: [b], dependsOn: [a], provider: { type: command, deploy: "true" } }
  - { name: c, services: [c], dependsOn: [b], provider: { type: command, deploy: "true" } }
`;

const commandsBefore = Number((/total_commands_processed:(\d+)/.exec(await redis.info('stats')) ?? [])[1]);
const started = performance.now();
const submitted = await Promise.all(
  Array.from({ length: DEPLOYMENTS }, (_, i) =>
    orchestrator.submit({ planText: plan, planSource: 'bench', version: 'v1', environment: `env-${i}` }),
  ),
);
const finished = await Promise.all(submitted.map((s) => orchestrator.waitFor(s.id, 300_000)));
const seconds = (performance.now() - started) / 1000;
const commandsAfter = Number((/total_commands_processed:(\d+)/.exec(await redis.info('stats')) ?? [])[1]);
const succeeded = finished.filter((f) => f.status === 'SUCCESS').length;
const events = finished.reduce((n, f) => n + f.state.events.length, 0) / DEPLOYMENTS + 3; // + the three gate results
const commands = (commandsAfter - commandsBefore) / DEPLOYMENTS;
process.stderr.write(`deploy: ${succeeded}/${DEPLOYMENTS} succeeded in ${seconds.toFixed(1)} s\n`);
report({
  bench: 'deploy',
  metric: 'deployments_succeeded',
  value: succeeded,
  baseline: DEPLOYMENTS,
  target: '= 1',
});
report({
  bench: 'deploy',
  metric: 'deployments_per_s',
  value: DEPLOYMENTS / seconds,
  baseline: DEPLOYMENTS / seconds,
});
report({
  bench: 'deploy',
  metric: 'redis_commands_per_deployment_vs_events',
  value: commands,
  baseline: events,
});

await orchestrator.close(1000);
await workers.close(1000);
await bus.close();
await store.close();
const keys = await redis.keys(`${prefix}*`);
if (keys.length) await redis.del(...keys);
await redis.quit();
await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
await admin.end();
if (succeeded !== DEPLOYMENTS) process.exitCode = 1;
