/**
 * `materi up` and `materi worker` as a supervisor runs them (docker stop, systemd, Ctrl-C): real
 * child processes on the embedded backend, stopped by SIGTERM or SIGINT.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type MateriProcess, startMateri } from '../support/materi-process.js';
import { eventually } from '../support/redis.js';

const started: MateriProcess[] = [];
const dirs: string[] = [];
/** Stage commands left running by a stopped server (they run in process groups of their own). */
const stageProcesses: number[] = [];

afterEach(async () => {
  for (const process of started.splice(0)) process.kill();
  for (const pid of stageProcesses.splice(0)) {
    try {
      globalThis.process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** An embedded installation of its own: a fresh data dir, no Redis, no PostgreSQL, no tokens. */
async function embeddedEnv(extra: Record<string, string> = {}): Promise<Record<string, string | undefined>> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'materi-shutdown-'));
  dirs.push(dataDir);
  return {
    MATERI_DATA_DIR: dataDir,
    MATERI_REDIS_URL: undefined,
    MATERI_DATABASE_URL: undefined,
    MATERI_API_TOKEN: undefined,
    MATERI_VIEWER_TOKEN: undefined,
    MATERI_TOKENS_FILE: undefined,
    MATERI_HOST: undefined,
    MATERI_API_URL: undefined,
    MATERI_LOG_LEVEL: 'warn',
    ...extra,
  };
}

function materi(args: string[], env: Record<string, string | undefined>): MateriProcess {
  const process = startMateri(args, env);
  started.push(process);
  return process;
}

async function up(env: Record<string, string | undefined>): Promise<{ process: MateriProcess; url: string }> {
  const process = materi(['up', '--port', '0'], env);
  const [, url] = await process.waitFor(/Dashboard: (http:\/\/\S+)\/\n/);
  return { process, url: url! };
}

/** A deployment whose one stage is still running (a long `sleep`) when the test stops the server. */
async function startLongDeployment(url: string, dataDir: string): Promise<void> {
  const log = path.join(dataDir, 'stage.log');
  const plan = [
    'project: drain',
    'environment: test',
    'services:',
    '  web: {}',
    'stages:',
    '  - name: web',
    '    services: [web]',
    '    timeout: 10m',
    '    provider:',
    '      type: command',
    `      deploy: ${JSON.stringify(`echo $$ >> ${log}; exec sleep 600`)}`,
    'validation: { images: false, timeout: 30s }',
    '',
  ].join('\n');
  const response = await fetch(`${url}/api/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ plan, version: 'v1' }),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  const pid = await eventually(
    async () => /^(\d+)\n/.exec(await readFile(log, 'utf8').catch(() => ''))?.[1],
    60_000,
  );
  stageProcesses.push(Number(pid));
}

describe('materi up and materi worker stop on a signal', () => {
  it('refuses to listen beyond loopback without a token (one line, exit 2)', async () => {
    const process = materi(['up', '--port', '0'], await embeddedEnv({ MATERI_HOST: '0.0.0.0' }));
    expect((await process.exited).code).toBe(2);
    expect(process.output()).toBe(
      'materi: MATERI_HOST=0.0.0.0 exposes the API beyond this machine without a token: set MATERI_API_TOKEN or MATERI_TOKENS_FILE\n',
    );
  }, 60_000);

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'materi up answers /healthz and /readyz, and on %s stops and exits 0',
    async (signal) => {
      const { process, url } = await up(await embeddedEnv());
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ready: true, checks: { bus: 'ok', store: 'ok' } });

      process.child.kill(signal);
      expect(await process.exited).toEqual({ code: 0, signal: null });
      expect(process.output()).toContain(`materi: ${signal}: stopping`);
      expect(process.output()).toContain('materi: stopped\n');
    },
    120_000,
  );

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'materi worker on %s stops and exits 0',
    async (signal) => {
      const process = materi(['worker', 'validator'], await embeddedEnv());
      await process.waitFor(/worker validator running/);
      process.child.kill(signal);
      expect(await process.exited).toEqual({ code: 0, signal: null });
      expect(process.output()).toContain('materi: stopped\n');
    },
    120_000,
  );

  it('gives work in flight until MATERI_SHUTDOWN_TIMEOUT_MS, then exits 0 leaving it to be reclaimed', async () => {
    const env = await embeddedEnv({ MATERI_SHUTDOWN_TIMEOUT_MS: '1000' });
    const { process, url } = await up(env);
    await startLongDeployment(url, env.MATERI_DATA_DIR!);

    process.child.kill('SIGTERM');
    expect(await process.exited).toEqual({ code: 0, signal: null });
    expect(process.output()).toContain('materi: stopped\n');
  }, 120_000);

  it('exits at once on a second signal while waiting for work in flight', async () => {
    const env = await embeddedEnv({ MATERI_SHUTDOWN_TIMEOUT_MS: '600000' });
    const { process, url } = await up(env);
    await startLongDeployment(url, env.MATERI_DATA_DIR!);

    process.child.kill('SIGTERM');
    await process.waitFor(/materi: SIGTERM: stopping/);
    process.child.kill('SIGINT');
    expect(await process.exited).toEqual({ code: 130, signal: null });
    expect(process.output()).toContain('materi: SIGINT again: exiting now');
    expect(process.output()).not.toContain('materi: stopped');
  }, 120_000);
});
