import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/index.js';
import { registerDeployCommands } from '../../src/cli/deploy.js';
import { BadInputError, EnvironmentFrozenError } from '../../src/errors/index.js';
import { type Orchestrator, openIncident, registerOrchestratorRoutes } from '../../src/orchestrator/index.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { parseNotifierSettings } from '../../src/workers/notifier/index.js';
import { runMateri } from '../support/materi-cli.js';
import { eventually, testRedis } from '../support/redis.js';
import { type OrchestratorHarness, openOrchestratorHarness } from './support/harness.js';

let h: OrchestratorHarness;

beforeEach(async () => {
  h = await openOrchestratorHarness();
});
afterEach(async () => {
  await h.close();
});

/** A one-stage plan (deploy to staging by default); `freeze` lines go under `freeze:`. */
function plan(options: { freeze?: string[]; deploy?: string } = {}): string {
  return [
    'project: shop',
    'environment: staging',
    'services:',
    '  api: {}',
    'stages:',
    '  - name: api',
    '    services: [api]',
    '    timeout: 20s',
    `    provider: { type: command, deploy: ${JSON.stringify(options.deploy ?? 'true')}, rollback: "true" }`,
    'validation: { timeout: 20s, checkTimeout: 500ms }',
    'dependencies: { timeout: 20s, checkTimeout: 500ms }',
    ...(options.freeze ? ['freeze:', ...options.freeze.map((line) => `  - ${line}`)] : []),
    '',
  ].join('\n');
}

/** A one-off window for production only, from 2020 to 2099: frozen whenever the test runs. */
const PRODUCTION_FROZEN = plan({
  freeze: [
    '{ name: change-freeze, start: "2020-01-01T00:00:00Z", end: "2099-01-01T00:00:00Z", environments: [production] }',
  ],
});

async function serve(orchestrator: Orchestrator): Promise<{ app: FastifyInstance; url: string }> {
  const app = await createApiServer({ auth: {}, logger: silentLogger() });
  registerOrchestratorRoutes(app, orchestrator);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url };
}

describe('a freeze window', () => {
  it('refuses a deploy into the frozen environment through the API, with 423 and one line', async () => {
    const orchestrator = await h.orchestrator();
    const { app } = await serve(orchestrator);
    try {
      const refused = await app.inject({
        method: 'POST',
        url: '/api/deployments',
        payload: {
          plan: PRODUCTION_FROZEN,
          planSource: 'shop.yaml',
          version: 'v1',
          environment: 'production',
        },
      });
      expect(refused.statusCode).toBe(423);
      const { error } = refused.json() as { error: { code: string; message: string } };
      expect(error.code).toBe('MATERI_ERR_ENVIRONMENT_FROZEN');
      expect(error.message).toBe(
        'environment production of shop is frozen by "change-freeze" (2020-01-01T00:00:00Z to 2099-01-01T00:00:00Z, plan shop.yaml) until 2099-01-01T00:00:00Z; to deploy anyway: --override-freeze --reason "<why>" (API: overrideFreeze, overrideReason)',
      );
      // Nothing was recorded for the refused request.
      expect(await orchestrator.list()).toEqual([]);

      // The same plan to another environment is not frozen.
      const staging = await app.inject({
        method: 'POST',
        url: '/api/deployments',
        payload: { plan: PRODUCTION_FROZEN, planSource: 'shop.yaml', version: 'v1', environment: 'staging' },
      });
      expect(staging.statusCode).toBe(201);
      const done = await orchestrator.waitFor((staging.json() as { id: string }).id, 30_000);
      expect(done.status).toBe('SUCCESS');
      expect(done.freezeOverride).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it('accepts an override with a reason, records it and shows it; refuses one without a reason', async () => {
    const orchestrator = await h.orchestrator();
    const { app } = await serve(orchestrator);
    try {
      const body = {
        plan: PRODUCTION_FROZEN,
        planSource: 'shop.yaml',
        version: 'v2',
        environment: 'production',
      };
      const noReason = await app.inject({
        method: 'POST',
        url: '/api/deployments',
        payload: { ...body, overrideFreeze: true },
      });
      expect(noReason.statusCode).toBe(400);
      expect(noReason.json()).toMatchObject({
        error: {
          code: 'MATERI_ERR_BAD_INPUT',
          message: expect.stringContaining('--override-freeze needs --reason'),
        },
      });

      const accepted = await app.inject({
        method: 'POST',
        url: '/api/deployments',
        payload: { ...body, overrideFreeze: true, overrideReason: 'hotfix for INC-7', triggeredBy: 'ana' },
      });
      expect(accepted.statusCode).toBe(201);
      const id = (accepted.json() as { id: string }).id;
      const expected = {
        window: 'change-freeze (2020-01-01T00:00:00Z to 2099-01-01T00:00:00Z, plan shop.yaml)',
        reason: 'hotfix for INC-7',
        by: 'ana',
      };
      expect((accepted.json() as { freezeOverride: unknown }).freezeOverride).toEqual(expected);
      expect((await orchestrator.waitFor(id, 30_000)).status).toBe('SUCCESS');
      const saga = await app.inject({ method: 'GET', url: `/api/deployments/${id}/saga` });
      expect(saga.json()).toMatchObject({ freezeOverride: expected });
      const row = await h.store.db
        .selectFrom('orchestrator_deployments')
        .select('freeze_override')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      expect(JSON.parse(row.freeze_override!)).toEqual(expected);
      // Announced with the start, so Shield's record (and the dashboard) shows it too.
      const started = (await h.events()).find(
        (e) => e.type === 'deployment:started' && e.deploymentId === id,
      );
      expect(started?.data).toMatchObject({ freezeOverride: expected });
    } finally {
      await app.close();
    }
  });

  it('reads the windows of MATERI_FREEZE_FILE for the projects it names', async () => {
    const file = path.join(h.workdir, 'freeze.yaml');
    await writeFile(
      file,
      'project: shop\nfreeze:\n  - { name: audit, start: "2020-01-01T00:00:00Z", end: "2099-01-01T00:00:00Z", environments: [staging] }\n',
    );
    const orchestrator = await h.orchestrator({ freezeFile: file });
    await expect(
      orchestrator.submit({ planText: plan(), planSource: 'shop.yaml', version: 'v1' }),
    ).rejects.toThrow(
      `environment staging of shop is frozen by "audit" (2020-01-01T00:00:00Z to 2099-01-01T00:00:00Z, MATERI_FREEZE_FILE ${file})`,
    );
    // Read at every submit: the platform team lifts the freeze without a restart.
    await writeFile(
      file,
      'project: billing\nfreeze:\n  - { start: "2020-01-01T00:00:00Z", end: "2099-01-01T00:00:00Z" }\n',
    );
    const accepted = await orchestrator.submit({ planText: plan(), planSource: 'shop.yaml', version: 'v1' });
    expect((await orchestrator.waitFor(accepted.id, 30_000)).status).toBe('SUCCESS');
  });
});

/** Runs `materi <args>` in this process, as src/cli/main.ts would. */
async function materi(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const { code, stdout, stderr } = await runMateri([registerDeployCommands], args);
  return { stdout, stderr, exitCode: code };
}

describe('materi deploy into a frozen environment', () => {
  let saved: NodeJS.ProcessEnv;
  beforeEach(() => {
    saved = { ...process.env };
  });
  afterEach(() => {
    process.env = saved;
  });

  it('exits 2 with the one-line error, and deploys with --override-freeze --reason', async () => {
    const orchestrator = await h.orchestrator();
    const { app, url } = await serve(orchestrator);
    try {
      process.env.MATERI_API_URL = url;
      delete process.env.MATERI_API_TOKEN;
      const file = path.join(h.workdir, 'shop.yaml');
      await writeFile(file, PRODUCTION_FROZEN);

      const refused = await materi(['deploy', file, '--version', 'v3', '--env', 'production']);
      expect(refused.exitCode).toBe(2);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toBe(
        `materi: environment production of shop is frozen by "change-freeze" (2020-01-01T00:00:00Z to 2099-01-01T00:00:00Z, plan ${file}) until 2099-01-01T00:00:00Z; to deploy anyway: --override-freeze --reason "<why>" (API: overrideFreeze, overrideReason)\n`,
      );

      const noReason = await materi([
        'deploy',
        file,
        '--version',
        'v3',
        '--env',
        'production',
        '--override-freeze',
      ]);
      expect(noReason.exitCode).toBe(2);
      expect(noReason.stderr).toContain('--override-freeze needs --reason');

      const overridden = await materi([
        'deploy',
        file,
        '--version',
        'v3',
        '--env',
        'production',
        '--override-freeze',
        '--reason',
        'security fix CVE-1',
      ]);
      expect(overridden.exitCode).toBe(0);
      expect(overridden.stdout).toMatch(
        /^! freeze overridden by \S+: change-freeze \(.*\) — reason: security fix CVE-1$/m,
      );
    } finally {
      await app.close();
    }
  });
});

describe('stop the line: an open critical incident', () => {
  const pagerRules = parseNotifierSettings({
    channels: { pager: { type: 'pagerduty', routingKey: 'r-key', url: 'http://127.0.0.1:9/enqueue' } },
    routes: [{ events: ['deployment:*', 'rollback:*'], channels: ['pager'] }],
  });

  it('freezes the environment until a deployment there succeeds (an override)', async () => {
    const orchestrator = await h.orchestrator({ incidentRules: pagerRules });
    const failed = await orchestrator.submit({
      planText: plan({ deploy: 'echo "disk full" >&2; exit 3' }),
      planSource: 'shop.yaml',
      version: 'v1',
    });
    expect((await orchestrator.waitFor(failed.id, 30_000)).status).not.toBe('SUCCESS');
    const incident = await eventually(() => openIncident(h.store.db, 'shop', 'staging'), 20_000);
    expect(incident.deploymentId).toBe(failed.id);

    const refused = await orchestrator
      .submit({ planText: plan(), planSource: 'shop.yaml', version: 'v2' })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(EnvironmentFrozenError);
    expect((refused as Error).message).toMatch(
      new RegExp(
        `^environment staging of shop is frozen: open critical incident "Deployment failed at stage api.*" \\(deployment ${failed.id}, since \\S+\\) stops the line until a deployment to staging succeeds; to deploy anyway: --override-freeze --reason "<why>"`,
      ),
    );
    expect((refused as Error).message).not.toContain('\n');
    // Another environment of the project is not frozen by it.
    const production = await orchestrator.submit({
      planText: plan(),
      planSource: 'shop.yaml',
      version: 'v2',
      environment: 'production',
    });
    expect((await orchestrator.waitFor(production.id, 30_000)).status).toBe('SUCCESS');

    await expect(
      orchestrator.submit({ planText: plan(), planSource: 'shop.yaml', version: 'v2', overrideFreeze: true }),
    ).rejects.toThrow(BadInputError);
    const fix = await orchestrator.submit({
      planText: plan(),
      planSource: 'shop.yaml',
      version: 'v2',
      overrideFreeze: true,
      overrideReason: 'the fix for the disk',
      triggeredBy: 'ana',
    });
    expect(fix.freezeOverride).toEqual({
      window: `incident: ${incident.summary} (deployment ${failed.id})`,
      reason: 'the fix for the disk',
      by: 'ana',
    });
    expect((await orchestrator.waitFor(fix.id, 30_000)).status).toBe('SUCCESS');
    await eventually(async () => (await openIncident(h.store.db, 'shop', 'staging')) === undefined, 20_000);

    const next = await orchestrator.submit({ planText: plan(), planSource: 'shop.yaml', version: 'v3' });
    expect(next.freezeOverride).toBeUndefined();
    expect((await orchestrator.waitFor(next.id, 30_000)).status).toBe('SUCCESS');
  });

  it('is not opened by a failure the notifier does not page an incident channel for', async () => {
    const chatOnly = parseNotifierSettings({
      channels: { chat: { type: 'slack', webhookUrl: 'http://127.0.0.1:9/hook' } },
      routes: [{ events: ['deployment:*', 'rollback:*'], channels: ['chat'] }],
    });
    const orchestrator = await h.orchestrator({ incidentRules: chatOnly });
    const failed = await orchestrator.submit({
      planText: plan({ deploy: 'exit 3' }),
      planSource: 'shop.yaml',
      version: 'v1',
    });
    await orchestrator.waitFor(failed.id, 30_000);
    // Wait until the orchestrator's group has read and acknowledged the failure.
    const redis = testRedis();
    try {
      await eventually(async () => {
        const stream = `${h.prefix}:deployment:failed`;
        const [last] = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
        const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
        const group = groups.map((g) => Object.fromEntries(chunk(g))).find((g) => g.name === 'orchestrator');
        return last && group && group['last-delivered-id'] === last[0] && group.pending === 0;
      }, 20_000);
    } finally {
      await redis.quit();
    }
    expect(await openIncident(h.store.db, 'shop', 'staging')).toBeUndefined();
    const next = await orchestrator.submit({ planText: plan(), planSource: 'shop.yaml', version: 'v2' });
    expect((await orchestrator.waitFor(next.id, 30_000)).status).toBe('SUCCESS');
  });
});

/** `[k1, v1, k2, v2]` → `[[k1, v1], [k2, v2]]` (XINFO replies). */
function chunk(flat: unknown[]): [string, unknown][] {
  const pairs: [string, unknown][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([String(flat[i]), flat[i + 1]]);
  return pairs;
}
