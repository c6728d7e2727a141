/**
 * A worker SIGKILLed in the middle of a gate check, then restarted: the restarted worker reclaims
 * the request and runs the check again at once — it never waits out the dead consumer's
 * idempotency lease, never retries, never dead-letters — and the release succeeds. On Redis +
 * PostgreSQL and on the embedded backend, with the default lease (at least twice the claim idle
 * time).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentView } from '../../src/orchestrator/index.js';
import { postgresBackend, type TestDatabase } from '../store/backends.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

type Gate = 'validation' | 'dependency' | 'health';

const WORKER_OF: Record<Gate, string> = {
  validation: 'validator',
  dependency: 'dependency-checker',
  health: 'health-monitor',
};
const GROUP_OF: Record<Gate, string> = {
  validation: 'printery-validator',
  dependency: 'printery-dependency-checker',
  health: 'printery-health-monitor',
};

/**
 * The service's registry, dependency and health endpoints in one local server. While a gate is
 * held, that gate's requests get no answer: the worker is inside its check when the test kills it.
 */
class GateServer {
  held: Gate | undefined;
  readonly hits: Record<Gate, number> = { validation: 0, dependency: 0, health: 0 };
  private readonly waiting: ServerResponse[] = [];
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      const gate: Gate | undefined = request.url!.startsWith('/v2/app/manifests/')
        ? 'validation'
        : request.url === '/dep'
          ? 'dependency'
          : request.url === '/health'
            ? 'health'
            : undefined;
      if (gate) this.hits[gate] += 1;
      if (gate && gate === this.held) {
        this.waiting.push(response);
        return;
      }
      if (gate === 'validation') {
        response.writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'docker-content-digest': `sha256:${'a'.repeat(64)}`,
        });
      }
      response.end(gate === 'validation' ? '' : 'ok');
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  /** Answers nothing more for the held gate (the worker that asked is dead by now). */
  release(): void {
    this.held = undefined;
    for (const response of this.waiting.splice(0)) response.destroy();
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

interface Worker {
  child: ChildProcess;
  url: string;
}

function startWorker(name: string, env: Record<string, string>): Promise<Worker> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'worker', name, '--port', '0'],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const url = /running \((http:\/\/[^/]+)\/metrics\)/.exec(err);
      if (url) resolve({ child, url: url[1]! });
    });
    child.once('exit', (code) => reject(new Error(`worker ${name} exited with ${code}: ${err}`)));
  });
}

async function kill(worker: Worker | undefined): Promise<void> {
  const child = worker?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** A counter of a worker's /metrics for a group, 0 when it has no sample yet. */
async function counter(worker: Worker, name: string, group: string): Promise<number> {
  const text = await (await fetch(`${worker.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(`group="${group}"`))
      total += Number(line.split(' ').at(-1));
  }
  return total;
}

for (const backend of ['redis', 'embedded'] as const) {
  describe(`a gate worker killed mid-check (${backend})`, () => {
    const prefix = uniquePrefix(`gate-crash-${backend}`);
    const gates = new GateServer();
    const workers = new Map<string, Worker>();
    let database: TestDatabase | undefined;
    let workdir: string;
    let env: Record<string, string>;
    let plan: string;

    const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
      const response = await fetch(`${workers.get('orchestrator')!.url}${url}`, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };

    const restart = async (name: string) => {
      await kill(workers.get(name));
      workers.set(name, await startWorker(name, env));
    };

    beforeAll(async () => {
      const port = await gates.listen();
      database = backend === 'redis' ? await postgresBackend.create() : undefined;
      workdir = await mkdtemp(path.join(tmpdir(), 'materi-gate-crash-'));
      env = {
        MATERI_STREAM_PREFIX: prefix,
        MATERI_DATA_DIR: workdir,
        // Reclaim quickly; the idempotency lease keeps its default (at least twice this).
        MATERI_CLAIM_IDLE_MS: '1500',
        MATERI_LOG_LEVEL: 'warn',
        ...(database ? { MATERI_REDIS_URL: TEST_REDIS_URL, MATERI_DATABASE_URL: database.databaseUrl! } : {}),
      };
      plan = [
        'project: crash',
        `environment: ${backend}`,
        'services:',
        '  api:',
        `    image: 127.0.0.1:${port}/app:\${VERSION}`,
        `    health: http://127.0.0.1:${port}/health`,
        `    dependencies: [{ name: upstream, type: http, url: "http://127.0.0.1:${port}/dep", timeout: 20s, retries: 0 }]`,
        'stages:',
        '  - { name: api, services: [api], provider: { type: command, deploy: "true" } }',
        'validation: { images: true, registry: { insecure: true }, checkTimeout: 20s, timeout: 60s }',
        'dependencies: { timeout: 60s }',
        'health: { interval: 200ms, duration: 2s, requestTimeout: 20s, timeout: 60s, onInconclusive: succeed }',
        '',
      ].join('\n');
      // The orchestrator first: on the embedded backend it creates the store the others share.
      await restart('orchestrator');
      for (const gate of ['validation', 'dependency', 'health'] as const) await restart(WORKER_OF[gate]);
    }, 90_000);

    afterAll(async () => {
      await Promise.all([...workers.values()].map(kill));
      await gates.close();
      if (backend === 'redis') {
        const redis = testRedis();
        await deletePrefix(redis, prefix);
        await redis.quit();
      }
      await database?.drop();
      await rm(workdir, { recursive: true, force: true });
    }, 60_000);

    for (const [index, gate] of (['validation', 'dependency', 'health'] as const).entries()) {
      it(`succeeds when the ${WORKER_OF[gate]} is SIGKILLed during the ${gate} gate and restarted`, async () => {
        gates.held = gate;
        const hitsBefore = gates.hits[gate];
        const { id } = await api<DeploymentView>('POST', '/api/deployments', {
          plan,
          version: `v${index + 1}`,
        });
        await eventually(() => gates.hits[gate] > hitsBefore, 30_000);
        await restart(WORKER_OF[gate]);
        gates.release();

        const done = await eventually(async () => {
          const view = await api<DeploymentView>('GET', `/api/deployments/${id}/saga`);
          return ['SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'].includes(view.status) ? view : undefined;
        }, 60_000);
        expect(done.reason).toBeUndefined();
        expect(done.status).toBe('SUCCESS');
        // The restarted worker ran the check again from the reclaimed entry: no lease wait (a
        // retry), no dead letter.
        const restarted = workers.get(WORKER_OF[gate])!;
        expect(await counter(restarted, 'materi_events_handled_total', GROUP_OF[gate])).toBe(1);
        expect(await counter(restarted, 'materi_events_retried_total', GROUP_OF[gate])).toBe(0);
        expect(await counter(restarted, 'materi_events_dead_lettered_total', GROUP_OF[gate])).toBe(0);
      }, 120_000);
    }
  });
}
