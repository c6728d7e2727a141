import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deployStage,
  type LocalInstanceKey,
  localStatePath,
  readLocalInstance,
  rollbackStage,
  StageFailedError,
  stopLocalInstance,
} from '../../../src/orchestrator/providers/index.js';
import { deploymentOf, freePort, isRunning, stageWith } from './fixtures.js';

const service = fileURLToPath(new URL('../../../examples/services/demo-service.mjs', import.meta.url));
let dataDir: string;
let port: number;
const keys: LocalInstanceKey[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'materi-local-'));
  port = await freePort();
});
afterAll(async () => {
  for (const key of keys) await stopLocalInstance(key, { gracePeriodMs: 1000 });
  await rm(dataDir, { recursive: true, force: true });
});

function webStage(extra: Record<string, unknown> = {}, name = 'web') {
  const key = { dataDir, project: 'materi', environment: 'production', stage: name };
  if (!keys.some((k) => k.stage === name)) keys.push(key);
  return {
    key,
    stage: stageWith(
      {
        type: 'local',
        command: ['node', service, 'web', '${VERSION}', '${PORT}'],
        port,
        startTimeout: '5s',
        gracePeriod: '2s',
        ...extra,
      },
      { name },
    ),
  };
}

async function versionAt(url: string): Promise<string> {
  const response = await fetch(`${url}/`);
  return ((await response.json()) as { version: string }).version;
}

describe('local provider', () => {
  it('starts a version, replaces it with the next one and rolls back', async () => {
    const { stage, key } = webStage();
    const first = await deployStage({ stage, deployment: deploymentOf({ version: 'v1.0.0' }), dataDir });
    const url = first.artifacts.find((a) => a.name === 'url')!.value;
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(await versionAt(url)).toBe('v1.0.0');
    const v1 = await readLocalInstance(key);
    expect(v1).toMatchObject({ version: 'v1.0.0', port, deploymentId: 'dep-1' });
    expect(JSON.parse(await readFile(localStatePath(key), 'utf8')).pid).toBe(v1!.pid);

    const second = await deployStage({ stage, deployment: deploymentOf({ version: 'v2.0.0' }), dataDir });
    expect(await versionAt(url)).toBe('v2.0.0');
    expect(isRunning(v1!.pid)).toBe(false);
    expect(second.log).toContain(`stopped v1.0.0 (pid ${v1!.pid})`);
    const v2 = await readLocalInstance(key);

    const rolledBack = await rollbackStage({
      stage,
      deployment: deploymentOf({ version: 'v2.0.0', previousVersion: 'v1.0.0' }),
      dataDir,
    });
    expect(await versionAt(url)).toBe('v1.0.0');
    expect(isRunning(v2!.pid)).toBe(false);
    expect(rolledBack.log).toContain('v1.0.0 answers');
    expect((await readLocalInstance(key))?.version).toBe('v1.0.0');
  });

  it('fails with the process output when the new version exits at once, leaving nothing running', async () => {
    const { stage, key } = webStage({ port: await freePort() }, 'crashing');
    const error = (await deployStage({
      stage,
      deployment: deploymentOf({ version: 'v3-crash' }),
      dataDir,
    }).catch((e: unknown) => e)) as StageFailedError;
    expect(error).toBeInstanceOf(StageFailedError);
    expect(error.message).toBe(
      'local: v3-crash exited with code 1 before answering /health: web v3-crash: cannot start: missing configuration key "database.url"',
    );
    expect(await readLocalInstance(key)).toBeUndefined();
  });

  it('stops a process that never answers within the start timeout, with its children', async () => {
    const pidFile = join(dataDir, 'mute.pid');
    const mutePort = await freePort();
    const { stage, key } = webStage(
      {
        command: ['/bin/sh', '-c', `sleep 30 & echo $! > ${pidFile}; sleep 30`],
        port: mutePort,
        startTimeout: '600ms',
        gracePeriod: '500ms',
      },
      'mute',
    );
    const error = (await deployStage({ stage, deployment: deploymentOf(), dataDir }).catch(
      (e: unknown) => e,
    )) as StageFailedError;
    expect(error.message).toBe(
      `local: v2.0.0 did not answer http://127.0.0.1:${mutePort}/health within 600ms`,
    );
    const child = Number((await readFile(pidFile, 'utf8')).trim());
    expect(isRunning(child)).toBe(false);
    expect(await readLocalInstance(key)).toBeUndefined();
  });

  it('stops the starting process when the deployment is cancelled', async () => {
    const pidFile = join(dataDir, 'cancelled.pid');
    const { stage, key } = webStage(
      { command: ['/bin/sh', '-c', `echo $$ > ${pidFile}; exec sleep 30`], port: await freePort() },
      'cancelled',
    );
    const cancel = new AbortController();
    const running = deployStage({ stage, deployment: deploymentOf(), dataDir, signal: cancel.signal });
    let pid = 0;
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 20));
      pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    }
    expect(isRunning(pid)).toBe(true);
    cancel.abort();
    const error = (await running.catch((e: unknown) => e)) as StageFailedError;
    expect(error.kind).toBe('cancelled');
    expect(isRunning(pid)).toBe(false);
    expect(await readLocalInstance(key)).toBeUndefined();
  });

  it('refuses a port another process holds', async () => {
    const taken: Server = createServer((_, res) => res.end('not ours'));
    const takenPort = await freePort();
    await new Promise<void>((resolve) => taken.listen(takenPort, '127.0.0.1', resolve));
    try {
      const { stage } = webStage({ port: takenPort }, 'conflict');
      const error = (await deployStage({ stage, deployment: deploymentOf(), dataDir }).catch(
        (e: unknown) => e,
      )) as StageFailedError;
      expect(error.message).toBe(`local: port ${takenPort} on 127.0.0.1 is in use by another process`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('stops the instance on rollback when there is no previous version', async () => {
    const otherPort = await freePort();
    const { stage, key } = webStage({ port: otherPort }, 'first');
    await deployStage({ stage, deployment: deploymentOf({ previousVersion: undefined }), dataDir });
    const running = await readLocalInstance(key);
    expect(running?.version).toBe('v2.0.0');
    const outcome = await rollbackStage({
      stage,
      deployment: deploymentOf({ previousVersion: undefined }),
      dataDir,
    });
    expect(outcome.log).toBe(`no previous version: stopped v2.0.0 (pid ${running!.pid})`);
    expect(isRunning(running!.pid)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${otherPort}/health`)).rejects.toThrow();
  });

  it('names a program that cannot be started', async () => {
    const { stage } = webStage({ command: ['materi-no-such-program'], port: await freePort() }, 'missing');
    const error = (await deployStage({ stage, deployment: deploymentOf(), dataDir }).catch(
      (e: unknown) => e,
    )) as StageFailedError;
    expect(error.message).toMatch(/^local: cannot start "materi-no-such-program" in .*ENOENT$/);
  });
});
