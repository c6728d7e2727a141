import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventBus } from '../../src/bus/open.js';
import { Router } from '../../src/bus/router.js';
import type { OutgoingEvent } from '../../src/bus/types.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import {
  rebuildShield,
  ShieldStore,
  shieldProjectionRegistration,
  streamReaderFor,
  type UnifiedDeployment,
} from '../../src/shield/index.js';
import { openStore } from '../../src/store/index.js';
import { BACKENDS } from '../store/backends.js';
import { eventually } from '../support/redis.js';
import { deploymentScenario } from './fixtures.js';
import { type ShieldHarness, startShield } from './harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function runShieldCli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/shield/shield-cli.ts', ...args], {
      cwd: root,
      env: { ...process.env, MATERI_LOG_LEVEL: 'warn', MATERI_QUIET: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function allRecords(harness: ShieldHarness): Promise<UnifiedDeployment[]> {
  return (await harness.shield.listDeployments({ limit: 200 })).items;
}

describe.each(BACKENDS)('Shield through the bus on $dialect', (backend) => {
  let harness: ShieldHarness;
  const published: OutgoingEvent[] = [];

  beforeAll(async () => {
    harness = await startShield(backend);
  });
  afterAll(async () => harness?.close());

  it('shows each event of a deployment in the API within a second of its publication', async () => {
    const id = `live-${randomUUID().slice(0, 6)}`;
    const correlationId = randomUUID();
    const events = deploymentScenario({ id, correlationId, start: new Date() });
    for (const [i, event] of events.entries()) {
      const sentAt = Date.now();
      await harness.bus.publisher.publish(event);
      published.push(event);
      const record = await eventually(async () => {
        const response = await fetch(`${harness.url}/api/deployments/${id}`);
        if (response.status !== 200) return undefined;
        const body = (await response.json()) as { deployment: UnifiedDeployment };
        return body.deployment.eventCount === i + 1 ? body.deployment : undefined;
      }, 1000);
      expect(Date.now() - sentAt, event.type).toBeLessThan(1000);
      expect(record.correlationId).toBe(correlationId);
    }
    const final = await harness.shield.getDeployment(id);
    expect(final).toMatchObject({ status: 'SUCCESS', phase: 'done', eventCount: events.length });
    const traced = await fetch(`${harness.url}/api/events?correlation_id=${correlationId}`);
    expect(((await traced.json()) as { events: unknown[] }).events).toHaveLength(events.length);
  });

  it('catches up after being stopped mid-stream, with no gaps and no duplicates', async () => {
    const before = deploymentScenario({ id: 'restart-a' }).concat(
      deploymentScenario({ id: 'restart-b', outcome: 'rollback' }),
    );
    const publishing = harness.bus.publisher.publishBatch(before);
    published.push(...before);
    // Stop while the projection is still working through the batch.
    await eventually(async () => (await harness.shield.eventCount()) > published.length - before.length);
    await harness.router.close(200);
    await publishing;
    const after = deploymentScenario({ id: 'restart-c', start: new Date('2026-03-02T10:00:00Z') });
    await harness.bus.publisher.publishBatch(after);
    published.push(...after);
    const loggedWhileStopped = await harness.shield.eventCount();
    expect(loggedWhileStopped).toBeLessThan(published.length);

    await harness.startProjection();
    await eventually(async () => (await harness.shield.eventCount()) === published.length, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await harness.shield.eventCount()).toBe(published.length);
    const logged = (await harness.shield.listEvents({ limit: 1000 })).items.map((e) => e.id);
    expect(new Set(logged).size).toBe(logged.length);
    expect(new Set(logged)).toEqual(new Set(published.map((e) => e.id)));
    expect((await harness.shield.getDeployment('restart-b'))?.status).toBe('ROLLED_BACK');
    expect((await harness.shield.getDeployment('restart-c'))?.status).toBe('SUCCESS');
  });

  it('rebuilds from the streams exactly the records built live', async () => {
    const live = await allRecords(harness);
    expect(live.length).toBeGreaterThanOrEqual(4);
    const result = await rebuildShield({
      db: harness.store.db,
      reader: streamReaderFor(harness.bus),
      batchSize: 7,
    });
    expect(result).toMatchObject({ events: published.length, undecodable: 0, deployments: live.length });
    expect(result.streams).toBeGreaterThanOrEqual(14);
    expect(await allRecords(harness)).toEqual(live);
    expect(await harness.shield.eventCount()).toBe(published.length);
  });

  it('rebuilds with `materi shield rebuild`', async () => {
    const live = await allRecords(harness);
    const run = await runShieldCli(['shield', 'rebuild', '--json'], harness.env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ events: published.length, deployments: live.length });
    expect(await allRecords(harness)).toEqual(live);

    const fromLog = await runShieldCli(['shield', 'rebuild', '--from-log'], harness.env);
    expect(fromLog.stdout).toBe(`recomputed ${live.length} deployment record(s) from the event log\n`);
    expect(await allRecords(harness)).toEqual(live);
  });

  it('keeps the history trimmed from the streams when rebuilding, and says what it kept', async () => {
    const reader = streamReaderFor(harness.bus);
    // Retention trims what every group has acknowledged: here, everything Shield has logged.
    await eventually(async () => {
      let left = 0;
      for (const type of await reader.types()) {
        await harness.bus.trim(type, { maxAgeMs: 0 });
        left += (await reader.read(type, undefined, 1)).length;
      }
      return left === 0;
    });
    const trimmed = published.length;
    const after = deploymentScenario({ id: 'after-trim', start: new Date('2026-03-03T10:00:00Z') });
    await harness.bus.publisher.publishBatch(after);
    published.push(...after);
    await eventually(async () => (await harness.shield.eventCount()) === published.length);
    const live = await allRecords(harness);

    const run = await runShieldCli(['shield', 'rebuild', '--json'], harness.env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      entries: after.length,
      events: published.length,
      added: 0,
      kept: trimmed,
      deployments: live.length,
      incomplete: [],
    });
    expect(await allRecords(harness)).toEqual(live);
    expect(await harness.shield.eventCount()).toBe(published.length);

    const text = await runShieldCli(['shield', 'rebuild'], harness.env);
    expect(text.stdout).toMatch(
      new RegExp(
        `^rebuilt ${live.length} deployment record\\(s\\) from ${published.length} logged event\\(s\\): ` +
          `0 added from \\d+ stream\\(s\\) \\(${after.length} entries\\), ${trimmed} kept that the streams no longer hold; release ledger of \\d+ environment\\(s\\) recomputed\n$`,
      ),
    );
    expect(await allRecords(harness)).toEqual(live);
  });

  it('rebuilds a lost log from what the streams still hold, and names the records left partial', async () => {
    // A Shield whose database was lost after `after-trim`'s start was trimmed from its stream.
    await harness.bus.trim('deployment:started', { maxAgeMs: 0 });
    await harness.shield.clear();
    const run = await runShieldCli(['shield', 'rebuild'], harness.env);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe(
      'materi: warning: 1 deployment record(s) lack their deployment:started — their first events were ' +
        'trimmed from the streams before Shield logged them, so their history is partial: after-trim\n',
    );
    expect((await allRecords(harness)).map((r) => r.id)).toEqual(['after-trim']);
    expect(await harness.shield.eventCount()).toBe(deploymentScenario().length - 1);
  });
});

describe('Shield on the embedded bus', () => {
  it('projects events and rebuilds the same records from the SQLite streams', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'shield-embedded-'));
    const logger = silentLogger();
    const settings = loadSettings({ MATERI_DATA_DIR: dataDir });
    const bus = await openEventBus(settings, {
      logger,
      source: 'materi/shield-test',
      subscriber: { scanIntervalMs: 50, discoveryIntervalMs: 100 },
    });
    const store = await openStore({ dataDir, logger });
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher, logger });
    try {
      expect(bus.kind).toBe('embedded');
      router.addHandler(shieldProjectionRegistration({ db: store.db, logger }));
      await router.start();
      const events = [
        ...deploymentScenario({ id: 'embedded-1' }),
        ...deploymentScenario({
          id: 'embedded-2',
          outcome: 'rollback',
          start: new Date('2026-03-02T00:00:00Z'),
        }),
      ];
      await bus.publisher.publishBatch(events);
      const shield = new ShieldStore(store.db);
      await eventually(async () => (await shield.eventCount()) === events.length, 10_000);
      const live = (await shield.listDeployments()).items;
      expect(live.map((d) => [d.id, d.status])).toEqual([
        ['embedded-2', 'ROLLED_BACK'],
        ['embedded-1', 'SUCCESS'],
      ]);
      const reader = streamReaderFor(bus);
      const result = await rebuildShield({ db: store.db, reader });
      expect(result).toMatchObject({ events: events.length, deployments: 2, undecodable: 0 });
      expect((await shield.listDeployments()).items).toEqual(live);

      // Trimmed from the SQLite streams, the history stays in Shield's log through a rebuild.
      await eventually(async () => {
        let left = 0;
        for (const type of await reader.types()) {
          await bus.trim(type, { maxAgeMs: 0 });
          left += (await reader.read(type, undefined, 1)).length;
        }
        return left === 0;
      });
      const afterTrim = await rebuildShield({ db: store.db, reader });
      expect(afterTrim).toMatchObject({
        entries: 0,
        events: events.length,
        added: 0,
        kept: events.length,
        deployments: 2,
        incomplete: [],
      });
      expect((await shield.listDeployments()).items).toEqual(live);
    } finally {
      await router.close(200);
      await bus.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
