/**
 * The split topology a platform team runs: every component a process of its own (`materi worker
 * …`) on Redis + PostgreSQL, the HTTP servers on a non-loopback address of this machine with a
 * token, and a deployment submitted through that address.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/runtime/listen.js';
import { postgresBackend, type TestDatabase } from '../store/backends.js';
import { type MateriProcess, startMateri } from '../support/materi-process.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

/** The first address `hostname -I` prints that is not loopback, if any. */
function machineAddress(): string | undefined {
  try {
    return execFileSync('hostname', ['-I'], { encoding: 'utf8' })
      .split(/\s+/)
      .find((address) => address !== '' && !isLoopbackHost(address));
  } catch {
    return undefined;
  }
}

const address = machineAddress();
const host = address?.includes(':') ? `[${address}]` : address;
const TOKEN = 'split-topology-operator-token';
const WORKERS = ['validator', 'dependency-checker', 'health-monitor', 'notifier'] as const;

describe.skipIf(address === undefined)(
  `split topology on ${address ?? '(skipped: `hostname -I` prints no non-loopback address)'}`,
  () => {
    const prefix = uniquePrefix('split');
    const processes: MateriProcess[] = [];
    let database: TestDatabase;
    let workdir: string;
    let service: Server;
    let env: Record<string, string | undefined>;

    /** What every process printed, for a failure message. */
    const diagnostics = () =>
      processes.map((p) => `--- materi ${p.child.spawnargs.slice(3).join(' ')}\n${p.output()}`).join('\n');

    /** Starts `materi worker <name>` and waits until it runs; with `--port 0`, returns its URL. */
    async function worker(name: string, serve: boolean): Promise<string | undefined> {
      const process = startMateri(['worker', name, ...(serve ? ['--port', '0'] : [])], env);
      processes.push(process);
      const [, url] = await process.waitFor(
        /materi: worker \S+ running(?: \((http:\/\/\S+)\/metrics\))?\n/,
        90_000,
      );
      return url;
    }

    beforeAll(async () => {
      database = await postgresBackend.create();
      workdir = await mkdtemp(path.join(tmpdir(), 'materi-split-'));
      // The deployed service's health endpoint, probed by the health monitor process.
      service = createServer((_request, response) => response.writeHead(200).end('ok'));
      await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
      env = {
        MATERI_REDIS_URL: TEST_REDIS_URL,
        MATERI_REDIS_CLUSTER: undefined,
        MATERI_DATABASE_URL: database.databaseUrl,
        MATERI_DATA_DIR: workdir,
        MATERI_STREAM_PREFIX: prefix,
        MATERI_HOST: address,
        MATERI_API_TOKEN: TOKEN,
        MATERI_VIEWER_TOKEN: undefined,
        MATERI_TOKENS_FILE: undefined,
        MATERI_NOTIFIER_CONFIG: undefined,
        MATERI_API_URL: undefined,
        MATERI_LOG_LEVEL: 'warn',
      };
    }, 60_000);

    afterAll(async () => {
      for (const process of processes) process.kill();
      await Promise.all(processes.map((process) => process.exited));
      await new Promise((resolve) => service?.close(resolve));
      const redis = testRedis();
      await deletePrefix(redis, prefix);
      await redis.quit();
      await database?.drop();
      if (workdir) await rm(workdir, { recursive: true, force: true });
    }, 60_000);

    it('runs a deployment submitted through the address with the token to SUCCESS', async () => {
      // The API (orchestrator) and the dashboard (Shield) serve HTTP on the machine's address.
      const apiUrl = (await worker('orchestrator', true))!;
      expect(apiUrl).toMatch(new RegExp(`^http://${host!.replace(/[.[\]]/g, '\\$&')}:\\d+$`));
      // The notifier's default channel posts to the API server's inbox.
      env.MATERI_API_URL = apiUrl;
      const [shieldUrl] = await Promise.all([
        worker('shield', true),
        ...WORKERS.map((name) => worker(name, false)),
      ]);
      expect(processes).toHaveLength(2 + WORKERS.length);

      const bearer = { authorization: `Bearer ${TOKEN}` };
      for (const url of [apiUrl, shieldUrl!]) {
        const ready = await fetch(`${url}/readyz`);
        expect(ready.status).toBe(200);
        expect(await ready.json()).toEqual({ ready: true, checks: { bus: 'ok', store: 'ok' } });
        // Bound to that address only.
        await expect(fetch(`http://127.0.0.1:${new URL(url).port}/healthz`)).rejects.toThrow();
      }

      const log = path.join(workdir, 'deploy.log');
      const health = `http://127.0.0.1:${(service.address() as AddressInfo).port}/health`;
      const plan = [
        'project: split',
        'environment: e2e',
        'services:',
        `  web: { health: ${JSON.stringify(health)} }`,
        'stages:',
        '  - name: web',
        '    services: [web]',
        '    timeout: 60s',
        '    provider:',
        '      type: command',
        `      deploy: ${JSON.stringify(`echo "deploy web $MATERI_VERSION" >> ${log}`)}`,
        `      rollback: ${JSON.stringify(`echo "rollback web $MATERI_VERSION" >> ${log}`)}`,
        'validation: { images: false, timeout: 60s, checkTimeout: 2s }',
        'dependencies: { timeout: 60s, checkTimeout: 1s }',
        'health: { interval: 200ms, duration: 1s, requestTimeout: 1s, timeout: 60s }',
        '',
      ].join('\n');
      const request = { method: 'POST', body: JSON.stringify({ plan, version: 'v1' }) };
      const anonymous = await fetch(`${apiUrl}/api/deployments`, {
        ...request,
        headers: { 'content-type': 'application/json' },
      });
      expect(anonymous.status).toBe(401);
      const submitted = await fetch(`${apiUrl}/api/deployments`, {
        ...request,
        headers: { 'content-type': 'application/json', ...bearer },
      });
      expect(submitted.status, await submitted.clone().text()).toBe(201);
      const { id } = (await submitted.json()) as { id: string };

      let last: unknown;
      const record = await eventually(
        async () => {
          const response = await fetch(`${shieldUrl}/api/deployments/${id}`, { headers: bearer });
          const body = (await response.json()) as { deployment?: { status: string } };
          last = body;
          const status = body.deployment?.status;
          return status === 'SUCCESS' || status === 'FAILURE' || status === 'ROLLED_BACK'
            ? body.deployment
            : undefined;
        },
        120_000,
        250,
      ).catch((error: Error) => {
        throw new Error(`${error.message}; last record ${JSON.stringify(last)}\n${diagnostics()}`);
      });
      expect(record.status, JSON.stringify(record)).toBe('SUCCESS');
      expect(await readFile(log, 'utf8')).toBe('deploy web v1\n');

      const list = (await (await fetch(`${shieldUrl}/api/deployments`, { headers: bearer })).json()) as {
        deployments: { id: string; status: string }[];
      };
      expect(list.deployments.find((d) => d.id === id)?.status).toBe('SUCCESS');
      // The notifier process reached the API server's inbox through the same address.
      await eventually(async () => {
        const inbox = (await (await fetch(`${apiUrl}/api/inbox`, { headers: bearer })).json()) as {
          text: string;
        }[];
        return inbox.some((n) => n.text.includes('v1') && /succeeded|completed|success/i.test(n.text));
      }, 60_000);
    }, 300_000);
  },
);
