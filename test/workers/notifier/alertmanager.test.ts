import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeploymentStatus } from '../../../src/events/index.js';
import {
  buildNotification,
  type ChannelSettings,
  createChannel,
  DEFAULT_TEMPLATES,
  MemoryIncidentStore,
  type NotificationChannel,
} from '../../../src/workers/notifier/index.js';
import { eventually } from '../../support/redis.js';
import { decodedEvent } from './support/events.js';

const BINARY = '/usr/bin/prometheus-alertmanager';

let dir: string;
let child: ChildProcess;
let base: string;
let stderr = '';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-alertmanager-'));
  await writeFile(join(dir, 'am.yml'), 'route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(
    BINARY,
    [
      `--config.file=${join(dir, 'am.yml')}`,
      `--storage.path=${dir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.on('data', (d) => (stderr += d));
  await eventually(async () => (await fetch(`${base}/api/v2/status`)).ok, 15_000, 100).catch((error) => {
    throw new Error(`Alertmanager did not start: ${(error as Error).message}\n${stderr.slice(-2000)}`);
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

interface GettableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  status: { state: string };
}

async function alertsNamed(alertname: string): Promise<GettableAlert[]> {
  const response = await fetch(
    `${base}/api/v2/alerts?filter=${encodeURIComponent(`alertname="${alertname}"`)}`,
  );
  expect(response.status).toBe(200);
  return (await response.json()) as GettableAlert[];
}

const incidents = new MemoryIncidentStore();

function am(): NotificationChannel {
  return createChannel(
    {
      type: 'alertmanager',
      url: base,
      alertname: 'MateriDeploymentFailed',
      endsAfter: 3_600_000,
    } as ChannelSettings,
    { name: 'am', lookup: () => undefined, templates: DEFAULT_TEMPLATES, incidents, timeoutMs: 3000 },
  );
}

const dashboardUrl = 'http://127.0.0.1:4600';
const where = { project: 'materi', environment: 'production' };

describe('Alertmanager channel (real Alertmanager)', () => {
  it('posts one alert per service that Alertmanager then lists as active, and resolves them on the next success', async () => {
    const failure = buildNotification(
      decodedEvent('deployment:failed', {
        deploymentId: 'dep-42',
        ...where,
        version: 'v1.4.2',
        reason: 'health gate: api unhealthy',
        failedGate: 'health',
      }),
      { dashboardUrl, facts: { services: ['api', 'web'] } },
    );
    const before = Date.now();
    expect(await am().send(failure)).toEqual({ detail: 'posted 2 alert(s)' });

    // Alertmanager lists a new alert as `unprocessed` until its dispatcher has seen it.
    const active = await eventually(
      async () => {
        const alerts = await alertsNamed('MateriDeploymentFailed');
        return alerts.length === 2 && alerts.every((a) => a.status.state === 'active') ? alerts : undefined;
      },
      5000,
      50,
    );
    expect(active.map((a) => a.labels).sort((a, b) => a.service!.localeCompare(b.service!))).toEqual([
      {
        alertname: 'MateriDeploymentFailed',
        environment: 'production',
        project: 'materi',
        service: 'api',
        severity: 'critical',
      },
      {
        alertname: 'MateriDeploymentFailed',
        environment: 'production',
        project: 'materi',
        service: 'web',
        severity: 'critical',
      },
    ]);
    for (const alert of active) {
      expect(alert.annotations).toEqual({
        summary: 'Deployment failed at the health gate: materi v1.4.2 to production',
        description: 'health gate: api unhealthy — deployment dep-42',
      });
      expect(alert.generatorURL).toBe('http://127.0.0.1:4600/deployments/dep-42');
      // Ends by itself after endsAfter (1 h here) if nothing resolves it.
      const endsIn = Date.parse(alert.endsAt) - before;
      expect(endsIn).toBeGreaterThan(3_500_000);
      expect(endsIn).toBeLessThan(3_700_000);
    }

    const success = buildNotification(
      decodedEvent('deployment:completed', {
        deploymentId: 'dep-43',
        ...where,
        version: 'v1.4.3',
        status: DeploymentStatus.SUCCESS,
      }),
      { dashboardUrl },
    );
    expect(await am().send(success)).toEqual({ detail: 'resolved 2 alert(s)' });
    await eventually(async () => (await alertsNamed('MateriDeploymentFailed')).length === 0, 5000, 100);
    expect(await incidents.list('am', 'materi:production')).toEqual([]);
  });

  it('raises a bus alert under its own name and resolves only that alert', async () => {
    const alert = (name: string, resolved: boolean) =>
      buildNotification(
        decodedEvent('alert:raised', {
          alert: name,
          group: 'printery-notifier',
          severity: 'warning',
          summary: `${name} over threshold`,
          value: 70,
          threshold: 60,
          resolved,
        }),
        { dashboardUrl },
      );
    await am().send(alert('OldestPendingAge', false));
    await am().send(alert('DeadLetterQueueDepth', false));
    const [raised] = await alertsNamed('OldestPendingAge');
    expect(raised!.labels).toEqual({
      alertname: 'OldestPendingAge',
      group: 'printery-notifier',
      severity: 'warning',
    });
    expect(raised!.annotations.summary).toBe('OldestPendingAge firing: printery-notifier');

    expect(await am().send(alert('OldestPendingAge', true))).toEqual({ detail: 'resolved 1 alert(s)' });
    await eventually(async () => (await alertsNamed('OldestPendingAge')).length === 0, 5000, 100);
    expect(await alertsNamed('DeadLetterQueueDepth')).toHaveLength(1);
  });

  it('fails with the answer when Alertmanager rejects the alerts', async () => {
    const broken = createChannel(
      { type: 'alertmanager', url: `${base}/nowhere`, alertname: 'X', endsAfter: 60_000 } as ChannelSettings,
      {
        name: 'am',
        lookup: () => undefined,
        templates: DEFAULT_TEMPLATES,
        incidents: new MemoryIncidentStore(),
        timeoutMs: 3000,
      },
    );
    const failure = buildNotification(
      decodedEvent('deployment:failed', { deploymentId: 'd', ...where, reason: 'x' }),
      { dashboardUrl },
    );
    await expect(broken.send(failure)).rejects.toThrow(/^alertmanager:am: Alertmanager answered HTTP 404/);
  });
});
