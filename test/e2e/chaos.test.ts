import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeploymentEvent, decodeEntry } from '../../src/events/index.js';
import type { DeploymentView } from '../../src/orchestrator/index.js';
import { stopLocalInstance } from '../../src/orchestrator/providers/index.js';
import { postgresBackend, type TestDatabase } from '../store/backends.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';
import { DEMO_SERVICE } from './support.js';

const prefix = uniquePrefix('chaos-e2e');
let database: TestDatabase;
let workdir: string;
let env: Record<string, string>;
const children: ChildProcess[] = [];
let apiUrl = '';

function start(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const url = /running \((http:\/\/[^/]+)\/metrics\)/.exec(err);
      if (url) apiUrl = url[1]!;
      if (err.includes('running')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker ${args[0]} exited with ${code}: ${err}`)));
  });
}

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

async function kill(child: ChildProcess): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function api<T>(method: string, url: string, body?: unknown): Promise<T> {
  const response = await fetch(`${apiUrl}${url}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

const plan = [
  'project: chaos',
  'environment: e2e',
  'services:',
  '  api: { health: "http://127.0.0.1:4771/health", ready: "http://127.0.0.1:4771/ready" }',
  '  worker: {}',
  'stages:',
  '  - name: api',
  '    services: [api]',
  `    provider: { type: local, command: [node, ${JSON.stringify(DEMO_SERVICE)}, api, "\${VERSION}", "\${PORT}"], port: 4771, healthPath: /health }`,
  '  - name: worker',
  '    services: [worker]',
  '    dependsOn: [api]',
  '    provider: { type: command, deploy: "sleep 2" }',
  'validation: { images: false, timeout: 30s, checkTimeout: 2s }',
  'dependencies: { timeout: 30s }',
  'health: { interval: 200ms, duration: 4s, requestTimeout: 500ms, timeout: 40s, onInconclusive: succeed }',
  '',
].join('\n');

beforeAll(async () => {
  database = await postgresBackend.create();
  workdir = await mkdtemp(path.join(tmpdir(), 'materi-chaos-'));
  env = {
    MATERI_REDIS_URL: TEST_REDIS_URL,
    MATERI_STREAM_PREFIX: prefix,
    MATERI_DATABASE_URL: database.databaseUrl!,
    MATERI_DATA_DIR: workdir,
    MATERI_CLAIM_IDLE_MS: '1500',
    MATERI_LEASE_MS: '1500',
    MATERI_LOG_LEVEL: 'warn',
  };
  await Promise.all([
    start(['orchestrator', '--port', '0']),
    start(['validator']),
    start(['dependency-checker']),
    start(['health-monitor']),
    start(['health-monitor']),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all(children.map(kill));
  await stopLocalInstance(
    { dataDir: workdir, project: 'chaos', environment: 'e2e', stage: 'api' },
    { gracePeriodMs: 1000 },
  ).catch(() => {});
  const redis = testRedis();
  await deletePrefix(redis, prefix);
  await redis.quit();
  await database.drop();
  await rm(workdir, { recursive: true, force: true });
}, 60_000);

async function events(): Promise<DeploymentEvent[]> {
  const redis = testRedis();
  try {
    const all: DeploymentEvent[] = [];
    for (const type of await redis.smembers(`${prefix}:registry:streams`)) {
      for (const [, fields] of await redis.xrange(`${prefix}:${type}`, '-', '+')) {
        try {
          all.push(decodeEntry(fields));
        } catch {
          // The poison entry the test wrote itself.
        }
      }
    }
    return all.sort((a, b) => a.time.getTime() - b.time.getTime());
  } finally {
    await redis.quit();
  }
}

describe('chaos during a deployment', () => {
  it('ends correctly when the orchestrator and a health monitor are killed and Redis connections drop', async () => {
    const first = await api<DeploymentView>('POST', '/api/deployments', { plan, version: 'v1' });
    const baseline = await eventually(async () => {
      const view = await api<DeploymentView>('GET', `/api/deployments/${first.id}/saga`);
      return ['SUCCESS', 'FAILURE', 'ROLLED_BACK'].includes(view.status) ? view : undefined;
    }, 40_000);
    expect(baseline.reason).toBeUndefined();
    expect(baseline.status).toBe('SUCCESS');

    const redis = testRedis();
    // A poison request written by a third party: the only thing that may end in a dead-letter stream.
    await redis.xadd(`${prefix}:validation:started`, '*', 'id', 'not-a-uuid', 'type', 'validation:started');

    const second = await api<DeploymentView>('POST', '/api/deployments', { plan, version: 'v2' });
    const saga = () => api<DeploymentView>('GET', `/api/deployments/${second.id}/saga`);
    // 1. Kill the orchestrator while the second stage runs; a new one takes over after its lease.
    await eventually(async () => (await saga()).state.stages.worker?.status === 'running', 30_000);
    await kill(children[0]!);
    await start(['orchestrator', '--port', '0']);
    // 2. Drop every Redis connection of this installation.
    const clients = String(await redis.client('LIST'))
      .split('\n')
      .filter((line) => line.includes(prefix))
      .map((line) => /id=(\d+)/.exec(line)![1]!);
    for (const id of clients) await redis.client('KILL', 'ID', id);
    // 3. Kill the health monitor that holds the health check; the other one reclaims it.
    const holder = await eventually(async () => {
      try {
        const consumers = (await redis.xinfo(
          'CONSUMERS',
          `${prefix}:health:check:started`,
          'printery-health-monitor',
        )) as string[][];
        const busy = consumers.find(
          (c) => Number(c[c.indexOf('pending') + 1]) > 0 && !c[1]!.endsWith('@retry'),
        );
        return busy?.[1];
      } catch {
        return undefined;
      }
    }, 30_000);
    const pid = Number(holder.split(':').at(-2));
    const victim = children.find((c) => c.pid === pid);
    expect(victim).toBeDefined();
    await kill(victim!);

    const done = await eventually(async () => {
      const view = await saga();
      return ['SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'].includes(view.status) ? view : undefined;
    }, 60_000);
    expect(done.status).toBe('SUCCESS');
    const flow = (await events()).filter((e) => e.deploymentId === second.id);
    const types = new Set(flow.map((e) => e.type));
    for (const type of [
      'deployment:started',
      'validation:started',
      'validation:completed',
      'dependency:check:started',
      'dependency:check:completed',
      'deployment:stage:api:started',
      'deployment:stage:api:completed',
      'deployment:stage:worker:started',
      'deployment:stage:worker:completed',
      'health:check:started',
      'health:check:completed',
      'deployment:completed',
    ]) {
      expect(types.has(type), type).toBe(true);
    }
    expect(flow.filter((e) => e.type === 'deployment:completed')).toHaveLength(1);
    expect(flow.filter((e) => e.type === 'health:check:completed')).toHaveLength(1);
    expect(new Set(flow.map((e) => e.correlationId)).size).toBe(1);
    const dlq = await redis.xrange(`${prefix}:dlq:printery-validator`, '-', '+');
    expect(dlq).toHaveLength(1);
    expect(dlq[0]![1]).toEqual(expect.arrayContaining(['reason', 'decode']));
    for (const group of ['orchestrator', 'printery-health-monitor', 'printery-dependency-checker']) {
      expect(await redis.exists(`${prefix}:dlq:${group}`), group).toBe(0);
    }
    await redis.quit();
  }, 150_000);
});
