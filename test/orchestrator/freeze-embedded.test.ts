import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerDeployCommands } from '../../src/cli/deploy.js';
import type { DeploymentEvent } from '../../src/events/envelope.js';
import { DeploymentStatus } from '../../src/events/index.js';
import { openIncident, recordIncidentEvent } from '../../src/orchestrator/incidents.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { openStore, type Store } from '../../src/store/index.js';
import { parseNotifierSettings } from '../../src/workers/notifier/index.js';
import { runMateri } from '../support/materi-cli.js';

let dir: string;
let saved: NodeJS.ProcessEnv;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-freeze-embedded-'));
  saved = { ...process.env };
  for (const name of [
    'MATERI_REDIS_URL',
    'MATERI_REDIS_CLUSTER',
    'MATERI_DATABASE_URL',
    'MATERI_NOTIFIER_CONFIG',
  ])
    delete process.env[name];
  process.env.MATERI_DATA_DIR = dir;
  process.env.MATERI_LOG_LEVEL = 'error';
  process.env.MATERI_QUIET = '1';
});
afterEach(async () => {
  process.env = saved;
  process.exitCode = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Runs `materi <args>` in this process, as src/cli/main.ts would. */
async function materi(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const { code, stdout, stderr } = await runMateri([registerDeployCommands], args);
  return { stdout, stderr, exitCode: code };
}

describe('materi deploy --standalone on the embedded backends', () => {
  it('refuses a frozen environment with exit 2 and deploys with an override', async () => {
    const plan = join(dir, 'shop.yaml');
    await writeFile(
      plan,
      [
        'project: shop',
        'environment: production',
        'services:',
        '  api: {}',
        'stages:',
        '  - name: api',
        '    services: [api]',
        '    provider: { type: command, deploy: "true" }',
        'freeze:',
        '  - { name: always, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00", timeZone: Europe/Berlin }',
        '',
      ].join('\n'),
    );
    const refused = await materi(['deploy', plan, '--version', 'v1', '--standalone']);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(
      /^materi: environment production of shop is frozen by "always" \(mon,tue,wed,thu,fri,sat,sun 00:00-24:00 Europe\/Berlin, plan .*shop\.yaml\) until \S+Z; to deploy anyway: --override-freeze --reason "<why>" \(API: overrideFreeze, overrideReason\)\n$/,
    );

    const overridden = await materi([
      'deploy',
      plan,
      '--version',
      'v1',
      '--standalone',
      '--override-freeze',
      '--reason',
      'release train',
    ]);
    expect(overridden.exitCode).toBe(0);
    expect(overridden.stdout).toMatch(/^! freeze overridden by \S+: always \(.*\) — reason: release train$/m);
  }, 60_000);
});

describe('incidents on SQLite', () => {
  let store: Store;
  beforeEach(async () => {
    store = await openStore({ dataDir: dir, logger: silentLogger() });
  });
  afterEach(async () => {
    await store.close();
  });

  const rules = parseNotifierSettings({
    channels: { am: { type: 'alertmanager', url: 'http://127.0.0.1:9/api/v2/alerts' } },
    routes: [
      {
        events: ['deployment:failed', 'deployment:completed'],
        channels: ['am'],
        environments: ['production'],
      },
    ],
  });

  function event(type: string, at: string, data: Record<string, unknown>): DeploymentEvent {
    return {
      id: randomUUID(),
      type,
      source: 'test',
      time: new Date(at),
      correlationId: randomUUID(),
      causationId: '',
      deploymentId: String(data.deploymentId),
      priority: 'CRITICAL',
      schema: '',
      contentType: 'application/json',
      data,
    };
  }

  const failed = (id: string, at: string, environment = 'production') =>
    event('deployment:failed', at, {
      deploymentId: id,
      reason: 'stage api failed: exit 3',
      failedStage: 'api',
      environment,
      version: 'v1',
      project: 'shop',
    });
  const succeeded = (id: string, at: string) =>
    event('deployment:completed', at, {
      deploymentId: id,
      status: DeploymentStatus.SUCCESS,
      environment: 'production',
      project: 'shop',
      version: 'v2',
      stageResults: [],
      services: [],
    });

  it('opens one per failed deployment the notifier pages for, and a success resolves them', async () => {
    const first = failed('dep-1', '2026-12-07T10:00:00Z');
    await recordIncidentEvent(store.db, rules, first);
    await recordIncidentEvent(store.db, rules, first);
    await recordIncidentEvent(store.db, rules, failed('dep-2', '2026-12-07T10:05:00Z'));
    const open = await openIncident(store.db, 'shop', 'production');
    expect(open).toMatchObject({
      deploymentId: 'dep-1',
      summary: 'Deployment failed at stage api: stage api failed: exit 3',
      openedAt: new Date('2026-12-07T10:00:00Z'),
    });
    // The route pages only for production.
    await recordIncidentEvent(store.db, rules, failed('dep-3', '2026-12-07T10:00:00Z', 'staging'));
    expect(await openIncident(store.db, 'shop', 'staging')).toBeUndefined();

    // A success older than the incidents resolves nothing; a later one resolves them all.
    await recordIncidentEvent(store.db, rules, succeeded('dep-0', '2026-12-07T09:00:00Z'));
    expect(await openIncident(store.db, 'shop', 'production')).toBeDefined();
    await recordIncidentEvent(store.db, rules, succeeded('dep-4', '2026-12-07T11:00:00Z'));
    expect(await openIncident(store.db, 'shop', 'production')).toBeUndefined();

    // The same deployment failing again later (a rollback of it, say) opens its incident again.
    await recordIncidentEvent(store.db, rules, failed('dep-1', '2026-12-07T12:00:00Z'));
    expect(await openIncident(store.db, 'shop', 'production')).toMatchObject({
      deploymentId: 'dep-1',
      openedAt: new Date('2026-12-07T12:00:00Z'),
    });
  });
});
