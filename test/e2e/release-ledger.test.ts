import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { streamReaderFor } from '../../src/bus/stream-reader.js';
import { registerReleaseCommands } from '../../src/cli/releases.js';
import { listEnvironments, releaseHistory } from '../../src/orchestrator/ledger.js';
import { COMPONENTS } from '../../src/runtime/stack.js';
import { rebuildShield } from '../../src/shield/rebuild.js';
import { runMateri } from '../support/materi-cli.js';
import { eventually } from '../support/redis.js';
import { type E2E, startE2E } from './support.js';

/** A plan of two command stages that log `<stage> <version>`; no health URL, so no health gate. */
function plan(log: string): string {
  const stage = (name: string, dependsOn?: string) => [
    `  - name: ${name}`,
    `    services: [${name}]`,
    ...(dependsOn ? [`    dependsOn: [${dependsOn}]`] : []),
    '    timeout: 20s',
    '    provider:',
    '      type: command',
    `      deploy: ${JSON.stringify(`echo "deploy ${name} $MATERI_VERSION" >> ${log}`)}`,
    `      rollback: ${JSON.stringify(`echo "rollback ${name} $MATERI_VERSION" >> ${log}`)}`,
  ];
  return [
    'project: shop',
    'environment: production',
    'services:',
    '  api: {}',
    '  web: {}',
    'stages:',
    ...stage('api'),
    ...stage('web', 'api'),
    'validation: { images: false, timeout: 20s, checkTimeout: 2s }',
    'dependencies: { timeout: 20s, checkTimeout: 1s }',
    '',
  ].join('\n');
}

/** Runs `materi <args>` in this process against the test's server; collects its output. */
async function materi(
  e2e: E2E,
  args: string[],
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  vi.stubEnv('MATERI_API_URL', e2e.env.MATERI_API_URL);
  vi.stubEnv('MATERI_LOG_LEVEL', 'error');
  try {
    const { code, stdout, stderr } = await runMateri([registerReleaseCommands], args);
    return { stdout, stderr, exitCode: code };
  } finally {
    vi.unstubAllEnvs();
  }
}

async function api(e2e: E2E, method: 'GET' | 'POST', route: string, body?: unknown) {
  const response = await fetch(`${e2e.env.MATERI_API_URL}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> & unknown[] };
}

describe.each(['redis', 'embedded'] as const)('the release ledger on %s', (backend) => {
  let e2e: E2E | undefined;
  afterEach(async () => {
    await e2e?.close();
    e2e = undefined;
  });

  it('refuses to roll back a release that no longer runs, rolls the environment back --to v1, and the ledger, the records and the next deploy agree', async () => {
    e2e = await startE2E({ backend, components: COMPONENTS });
    const orchestrator = e2e.stack.orchestrator!;
    const log = path.join(e2e.workdir, 'stages.log');
    const planText = plan(log);
    await writeFile(path.join(e2e.workdir, 'plan.yaml'), planText);
    const deploy = async (version: string) => {
      const started = await orchestrator.submit({ planText, planSource: 'plan.yaml', version });
      const done = await orchestrator.waitFor(started.id, 60_000);
      expect(done.status, `${version}: ${done.reason}`).toBe('SUCCESS');
      return done;
    };
    const v1 = await deploy('v1');
    const v2 = await deploy('v2');
    const v3 = await deploy('v3');
    expect([v2.previousVersion, v3.previousVersion]).toEqual(['v1', 'v2']);

    // v2 no longer runs: rolling it back would reinstall v1 behind v3.
    const refused = await api(e2e, 'POST', `/api/deployments/${v2.id}/rollback`, {});
    expect(refused.status).toBe(409);
    const error = (refused.json as unknown as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('MATERI_ERR_NOT_CURRENT_RELEASE');
    expect(error.message).toContain(`v3 is, from deployment ${v3.id}`);
    expect((await orchestrator.get(v2.id)).status).toBe('SUCCESS');

    // A version that never succeeded there is refused, naming those that did.
    const never = await materi(e2e, ['rollback', 'shop', '--env', 'production', '--to', 'v9']);
    expect(never.exitCode).toBe(2);
    expect(never.stderr).toContain('--to v9: that version never succeeded in production of shop');
    expect(never.stderr).toContain('v3, v2, v1');

    const rolled = await materi(e2e, ['rollback', 'shop', '--env', 'production', '--to', 'v1']);
    expect(rolled.stderr).toBe('');
    expect(rolled.exitCode).toBe(0);
    expect(rolled.stdout).toMatch(/^▶ rolling production of shop back from v3 to v1 \(dep-/);
    expect(rolled.stdout).toMatch(/✔ SUCCESS in /);
    // The rollback ran the stages with v1 and skipped the validation and dependency gates.
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines.slice(-2)).toEqual(['deploy api v1', 'deploy web v1']);
    const rollbacks = (await orchestrator.list(10)).filter((d) => d.kind === 'rollback');
    expect(rollbacks).toHaveLength(1);
    const rollback = rollbacks[0]!;
    expect(rollback).toMatchObject({ version: 'v1', previousVersion: 'v3', status: 'SUCCESS' });
    expect(rollback.state.gates.validation).toBeUndefined();
    expect(rollback.state.gates.dependency).toBeUndefined();

    // The ledger: v1 runs, put there by the rollback.
    const environments = await api(e2e, 'GET', '/api/environments');
    expect(environments.json).toEqual([
      expect.objectContaining({
        project: 'shop',
        environment: 'production',
        version: 'v1',
        deploymentId: rollback.id,
        kind: 'rollback',
      }),
    ]);
    const history = await materi(e2e, ['history', 'shop', '--env', 'production', '--json']);
    expect(history.exitCode).toBe(0);
    const releases = JSON.parse(history.stdout) as { version: string; kind: string; until?: string }[];
    expect(releases.map((r) => `${r.version} ${r.kind}${r.until ? '' : ' current'}`)).toEqual([
      'v1 rollback current',
      'v3 deploy',
      'v2 deploy',
      'v1 deploy',
    ]);
    const table = await materi(e2e, ['history', 'shop']);
    expect(table.stdout.split('\n')[1]).toMatch(/^production\s+v1\s+current\s+rollback\s/);

    // The next deploy's previous version is what runs: v1, not v3.
    const v4 = await deploy('v4');
    expect(v4.previousVersion).toBe('v1');
    const started = (await e2e.events()).find(
      (e) => e.type === 'deployment:started' && e.deploymentId === v4.id,
    );
    expect(started?.data).toMatchObject({ previousVersion: 'v1', kind: 'deploy' });

    // Rolling back the current release (v4) restores v1 and says so in the ledger.
    const back = await api(e2e, 'POST', `/api/deployments/${v4.id}/rollback`, {});
    expect(back.status).toBe(202);
    expect((await orchestrator.waitFor(v4.id, 60_000)).status).toBe('ROLLED_BACK');
    expect(await listEnvironments(e2e.stack.store!.db)).toEqual([
      expect.objectContaining({ version: 'v1', deploymentId: v4.id, kind: 'rollback' }),
    ]);

    // Shield's records say the same: each deployment's final status, the rollback one included.
    await eventually(async () => {
      const page = (await api(e2e!, 'GET', '/api/deployments?limit=20')).json as unknown as {
        deployments: { id: string; status: string; version: string; kind: string }[];
      };
      const byId = new Map(page.deployments.map((d) => [d.id, d]));
      return (
        byId.get(v1.id)?.status === 'SUCCESS' &&
        byId.get(v3.id)?.status === 'SUCCESS' &&
        byId.get(rollback.id)?.status === 'SUCCESS' &&
        byId.get(rollback.id)?.version === 'v1' &&
        byId.get(rollback.id)?.kind === 'rollback' &&
        byId.get(v3.id)?.kind === 'deploy' &&
        byId.get(v4.id)?.status === 'ROLLED_BACK'
      );
    }, 20_000);

    // `materi shield rebuild` recomputes the same ledger from the event log.
    const db = e2e.stack.store!.db;
    const shape = (r: {
      version: string;
      deploymentId: string;
      kind: string;
      triggeredBy: string;
      until?: number;
    }) =>
      `${r.version} ${r.kind} ${r.deploymentId} by ${r.triggeredBy}${r.until === undefined ? ' current' : ''}`;
    const before = (await releaseHistory(db, 'shop', 'production')).map(shape);
    await db.deleteFrom('orchestrator_ledger_history').execute();
    await db.deleteFrom('orchestrator_ledger').execute();
    const rebuilt = await rebuildShield({ db, reader: streamReaderFor(e2e.stack.bus) });
    expect(rebuilt.environments).toBe(1);
    expect((await releaseHistory(db, 'shop', 'production')).map(shape)).toEqual(before);
    expect(before[0]).toBe(`v1 rollback ${v4.id} by local current`);
  }, 180_000);
});
