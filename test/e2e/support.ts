import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamReaderFor } from '../../src/bus/stream-reader.js';
import { type DeploymentEvent, decodeEntry } from '../../src/events/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { COMPONENTS, type ComponentName, type Stack, startStack } from '../../src/runtime/stack.js';
import { postgresBackend, type TestDatabase } from '../store/backends.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const DEMO_SERVICE = path.join(root, 'examples', 'services', 'demo-service.mjs');

export interface E2E {
  stack: Stack;
  env: Record<string, string>;
  workdir: string;
  prefix: string;
  /** Every event published under the prefix, oldest first. */
  events(): Promise<DeploymentEvent[]>;
  close(): Promise<void>;
}

/** The whole stack (or some components) on real Redis + PostgreSQL, serving HTTP on a free port. */
export async function startE2E(options: {
  components?: readonly ComponentName[];
  notifierConfig?: string;
  extraEnv?: Record<string, string>;
  /** `redis` (Redis + PostgreSQL, the default), `embedded` (SQLite bus and store), or a cluster URL. */
  backend?: 'redis' | 'embedded' | { clusterUrl: string };
}): Promise<E2E> {
  const prefix = uniquePrefix('e2e');
  const backend = options.backend ?? 'redis';
  const database: TestDatabase | undefined =
    backend === 'embedded' ? undefined : await postgresBackend.create();
  const workdir = await mkdtemp(path.join(tmpdir(), 'materi-e2e-'));
  const env: Record<string, string> = {
    MATERI_STREAM_PREFIX: prefix,
    MATERI_DATA_DIR: workdir,
    ...(backend === 'redis' ? { MATERI_REDIS_URL: TEST_REDIS_URL } : {}),
    ...(typeof backend === 'object'
      ? { MATERI_REDIS_URL: backend.clusterUrl, MATERI_REDIS_CLUSTER: 'true' }
      : {}),
    ...(database ? { MATERI_DATABASE_URL: database.databaseUrl! } : {}),
    ...options.extraEnv,
  };
  if (options.notifierConfig) {
    const file = path.join(workdir, 'notifier.yaml');
    await writeFile(file, options.notifierConfig);
    env.MATERI_NOTIFIER_CONFIG = file;
  }
  const stack = await startStack({
    settings: loadSettings({ ...process.env, ...env }),
    logger: silentLogger(),
    role: 'test',
    components: options.components ?? COMPONENTS.filter((c) => c !== 'shield'),
    http: { port: 0 },
    subscriber: { blockMs: 200, scanIntervalMs: 100, discoveryIntervalMs: 200 },
    claimIdleMs: 5000,
  });
  env.MATERI_API_URL = stack.url!;
  return {
    stack,
    env,
    workdir,
    prefix,
    async events() {
      // Read through the bus itself, so it works on every backend.
      const reader = streamReaderFor(stack.bus);
      const all: { event: DeploymentEvent; id: string }[] = [];
      for (const type of await reader.types()) {
        for (const entry of await reader.read(type, undefined, 10_000)) {
          all.push({ event: decodeEntry(entry.fields), id: entry.entryId });
        }
      }
      return all
        .sort((a, b) => a.event.time.getTime() - b.event.time.getTime() || a.id.localeCompare(b.id))
        .map((x) => x.event);
    },
    async close() {
      await stack.close();
      if (backend === 'redis') {
        const redis = testRedis();
        await deletePrefix(redis, prefix);
        await redis.quit();
      }
      await database?.drop();
      await rm(workdir, { recursive: true, force: true });
    },
  };
}

/** A plan of three local demo services on the given ports, with short gates for tests. */
export function localPlan(project: string, ports: [number, number, number]): string {
  const [api, worker, web] = ports;
  const service = (name: string, port: number) => [
    `  ${name}:`,
    `    health: http://127.0.0.1:${port}/health`,
    `    ready: http://127.0.0.1:${port}/ready`,
  ];
  const stage = (name: string, port: number, dependsOn?: string) => [
    `  - name: ${name}`,
    `    services: [${name}]`,
    ...(dependsOn ? [`    dependsOn: [${dependsOn}]`] : []),
    '    timeout: 20s',
    '    provider:',
    '      type: local',
    `      command: [node, ${JSON.stringify(DEMO_SERVICE)}, ${name}, "\${VERSION}", "\${PORT}"]`,
    `      port: ${port}`,
    '      healthPath: /health',
  ];
  return [
    `project: ${project}`,
    'environment: e2e',
    'services:',
    ...service('api', api),
    '    dependencies:',
    '      - { name: redis, type: redis, url: "redis://127.0.0.1:6379", critical: true }',
    ...service('worker', worker),
    ...service('web', web),
    'stages:',
    ...stage('api', api),
    ...stage('worker', worker, 'api'),
    ...stage('web', web, 'api'),
    'validation: { images: false, timeout: 20s, checkTimeout: 2s }',
    'dependencies: { timeout: 20s, checkTimeout: 1s }',
    'health: { interval: 200ms, duration: 1500ms, requestTimeout: 500ms, timeout: 20s, onInconclusive: succeed }',
    '',
  ].join('\n');
}
