import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/index.js';
import { replayStreamKey } from '../../src/events/streams.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { registerShieldRoutes, ShieldFeed, type UnifiedDeployment } from '../../src/shield/index.js';
import { FailedEventStore, openStore } from '../../src/store/index.js';
import { BACKENDS } from '../store/backends.js';
import { eventually, testRedis } from '../support/redis.js';
import { approvalEvents, deploymentScenario } from './fixtures.js';
import { openSse, type ShieldHarness, startShield } from './harness.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON answers and assert on them
type Json = any;

describe.each(BACKENDS)('Shield API on $dialect', (backend) => {
  let harness: ShieldHarness;
  const runs = [
    { id: 'api-1', environment: 'staging', services: ['api'], start: '2026-03-01T08:00:00Z', version: 'v1' },
    {
      id: 'api-2',
      environment: 'production',
      services: ['api', 'web'],
      start: '2026-03-01T09:00:00Z',
      version: 'v2',
    },
    {
      id: 'api-3',
      environment: 'production',
      services: ['web'],
      start: '2026-03-01T10:00:00Z',
      version: 'v3',
      outcome: 'rollback' as const,
    },
    {
      id: 'api-4',
      environment: 'production',
      services: ['api'],
      start: '2026-03-01T11:00:00Z',
      version: 'v4',
    },
  ];
  const correlation = randomUUID();

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${harness.url}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as Json };
  };

  beforeAll(async () => {
    harness = await startShield(backend, { keepAliveMs: 200 });
    for (const run of runs) {
      await harness.bus.publisher.publishBatch(
        deploymentScenario({
          ...run,
          start: new Date(run.start),
          correlationId: run.id === 'api-2' ? correlation : undefined,
        }),
      );
    }
    await eventually(async () => {
      const records = await Promise.all(runs.map((r) => harness.shield.getDeployment(r.id)));
      return records.every((r) => r && r.status !== 'RUNNING' && r.notifications.length === 1);
    }, 15_000);
  });
  afterAll(async () => harness?.close());

  it('lists deployments newest first, filtered by environment, service, status, version and time', async () => {
    const ids = async (query: string) =>
      ((await get(`/api/deployments${query}`)).body.deployments as UnifiedDeployment[]).map((d) => d.id);
    expect(await ids('')).toEqual(['api-4', 'api-3', 'api-2', 'api-1']);
    expect(await ids('?environment=production')).toEqual(['api-4', 'api-3', 'api-2']);
    expect(await ids('?service=api')).toEqual(['api-4', 'api-2', 'api-1']);
    expect(await ids('?environment=production&service=web')).toEqual(['api-3', 'api-2']);
    expect(await ids('?status=ROLLED_BACK')).toEqual(['api-3']);
    expect(await ids('?status=SUCCESS,ROLLED_BACK&service=web')).toEqual(['api-3', 'api-2']);
    expect(await ids('?version=v2')).toEqual(['api-2']);
    expect(await ids('?project=printery&from=2026-03-01T09:00:00Z&to=2026-03-01T11:00:00Z')).toEqual([
      'api-3',
      'api-2',
    ]);
    const all = await get('/api/deployments');
    expect(all.body.lastEventId).toBe(await harness.shield.lastSeq());
  });

  it('pages with a cursor until nextCursor is null', async () => {
    const first = (await get('/api/deployments?limit=3')).body;
    expect(first.deployments.map((d: UnifiedDeployment) => d.id)).toEqual(['api-4', 'api-3', 'api-2']);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = (await get(`/api/deployments?limit=3&cursor=${first.nextCursor}`)).body;
    expect(second.deployments.map((d: UnifiedDeployment) => d.id)).toEqual(['api-1']);
    expect(second.nextCursor).toBeNull();
  });

  it('answers one deployment with its events in lifecycle order', async () => {
    const { status, body } = await get('/api/deployments/api-3');
    expect(status).toBe(200);
    expect(body.deployment).toMatchObject({ id: 'api-3', status: 'ROLLED_BACK', version: 'v3' });
    const types = body.timeline.map((e: { type: string }) => e.type);
    expect(types[0]).toBe('deployment:started');
    expect(types.slice(-2)).toEqual(['deployment:completed', 'notification:sent']);
    expect(types.indexOf('rollback:initiated')).toBeGreaterThan(types.indexOf('deployment:failed'));
    const times = body.timeline.map((e: { time: string }) => e.time);
    expect(times).toEqual([...times].sort());
    expect(body.timeline[0]).toMatchObject({
      deploymentId: 'api-3',
      source: 'materi/orchestrator',
      priority: 'NORMAL',
      stream: `${harness.prefix}:deployment:started`,
      data: { deploymentId: 'api-3', version: 'v3', environment: 'production' },
    });
    const missing = await get('/api/deployments/nope');
    expect(missing).toEqual({
      status: 404,
      body: { error: { code: 'MATERI_ERR_NOT_FOUND', message: `no deployment "nope" in Shield's records` } },
    });
  });

  it('finds the events of a correlation id, and filters events by deployment, type and time', async () => {
    const { body } = await get(`/api/events?correlation_id=${correlation}`);
    expect(body.events).toHaveLength(deploymentScenario().length);
    expect(new Set(body.events.map((e: { deploymentId: string }) => e.deploymentId))).toEqual(
      new Set(['api-2']),
    );
    const completed = await get('/api/events?type=deployment:completed&from=2026-03-01T09:30:00Z');
    expect(completed.body.events.map((e: { deploymentId: string }) => e.deploymentId)).toEqual([
      'api-3',
      'api-4',
    ]);
    const paged = await get('/api/events?deployment_id=api-1&limit=10');
    expect(paged.body.events).toHaveLength(10);
    const rest = await get(`/api/events?deployment_id=api-1&limit=10&cursor=${paged.body.nextCursor}`);
    expect(rest.body.events).toHaveLength(deploymentScenario().length - 10);
    expect(rest.body.nextCursor).toBeNull();
  });

  it('rejects bad queries with 400 MATERI_ERR_BAD_INPUT naming the parameter', async () => {
    for (const [query, name] of [
      ['/api/deployments?status=DONE', 'status'],
      ['/api/deployments?limit=0', 'limit'],
      ['/api/deployments?from=yesterday', 'from'],
      ['/api/deployments?enviroment=production', 'enviroment'],
      ['/api/deployments?cursor=bm90LWEtY3Vyc29y', 'cursor'],
      ['/api/events?limit=5000', 'limit'],
      ['/api/dlq?status=lost', 'status'],
      ['/api/stream?last_event_id=abc', 'last_event_id'],
    ] as const) {
      const { status, body } = await get(query);
      expect(status, query).toBe(400);
      expect(body.error.code, query).toBe('MATERI_ERR_BAD_INPUT');
      expect(body.error.message, query).toContain(name);
    }
  });

  it('streams events and records over SSE, and resumes after Last-Event-ID', async () => {
    const sse = await openSse(`${harness.url}/api/stream`);
    expect(sse.status).toBe(200);
    expect(sse.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const id = `sse-${randomUUID().slice(0, 6)}`;
    const [started, ...rest] = deploymentScenario({ id, start: new Date() });
    const sentAt = Date.now();
    await harness.bus.publisher.publish(started!);
    const event = await sse.waitFor(
      (m) => m.event === 'event' && JSON.parse(m.data).deploymentId === id,
      1000,
    );
    expect(Date.now() - sentAt).toBeLessThan(1000);
    const record = await sse.waitFor((m) => m.event === 'deployment' && JSON.parse(m.data).id === id, 1000);
    expect(JSON.parse(record.data)).toMatchObject({ id, status: 'PENDING' });
    expect(event.id).toMatch(/^\d+$/);
    expect(record.id).toBe(event.id);
    // Keep-alive comments keep idle connections open.
    await eventually(() => sse.comments.includes('keep-alive'), 2000);
    sse.close();

    // Published while disconnected: replayed on reconnect, then live again.
    const missed = rest.slice(0, 3);
    await harness.bus.publisher.publishBatch(missed);
    await eventually(async () => (await harness.shield.getDeployment(id))?.eventCount === 4);
    const resumed = await openSse(`${harness.url}/api/stream`, { 'last-event-id': event.id! });
    for (const m of missed) {
      await resumed.waitFor((msg) => msg.event === 'event' && JSON.parse(msg.data).id === m.id, 1000);
    }
    const replayedIds = resumed.messages.filter((m) => m.event === 'event').map((m) => JSON.parse(m.data).id);
    expect(replayedIds).not.toContain(started!.id);
    const current = await resumed.waitFor((m) => m.event === 'deployment' && JSON.parse(m.data).id === id);
    expect(JSON.parse(current.data).eventCount).toBe(4);
    await harness.bus.publisher.publish(rest[3]!);
    await resumed.waitFor((m) => m.event === 'event' && JSON.parse(m.data).id === rest[3]!.id, 1000);
    resumed.close();

    // ?last_event_id= works like the header (EventSource cannot set headers on a fresh connection).
    const byQuery = await openSse(`${harness.url}/api/stream?last_event_id=${event.id}&deployment_id=${id}`);
    await byQuery.waitFor((m) => m.event === 'event' && JSON.parse(m.data).id === rest[3]!.id, 1000);
    expect(
      byQuery.messages.every((m) => JSON.parse(m.data).deploymentId === id || JSON.parse(m.data).id === id),
    ).toBe(true);
    byQuery.close();
  });

  it('lists dead letters and replays one to its group', async () => {
    const fields = {
      id: randomUUID(),
      type: 'validation:started',
      source: 'materi/orchestrator',
      time: new Date().toISOString(),
      correlation_id: randomUUID(),
      causation_id: '',
      deployment_id: 'api-dlq',
      priority: 'NORMAL',
      schema: 'materi.events.v1.ValidationStartedEvent',
      content_type: 'application/json',
      data: '{"deploymentId":"api-dlq"}',
    };
    const recorded = await harness.failedEvents.record({
      dlqEntryId: '1-0',
      sourceStream: `${harness.prefix}:validation:started`,
      entryId: '1700000000000-0',
      eventId: fields.id,
      eventType: fields.type,
      group: 'printery-validator',
      consumer: 'printery-validator:host:1:0',
      attempts: 5,
      error: 'registry unreachable',
      stack: '',
      fields,
      correlationId: fields.correlation_id,
      deploymentId: 'api-dlq',
      firstFailedAt: new Date(),
      lastFailedAt: new Date(),
    });
    const list = await get('/api/dlq?group=printery-validator');
    expect(list.body.failedEvents).toEqual([
      expect.objectContaining({
        id: recorded.id,
        status: 'dead',
        attempts: 5,
        error: 'registry unreachable',
      }),
    ]);
    expect((await get('/api/dlq?group=someone-else')).body.failedEvents).toEqual([]);

    const replay = await fetch(`${harness.url}/api/dlq/${recorded.id}/replay`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(replay.status).toBe(200);
    const { replayed } = (await replay.json()) as Json;
    expect(replayed).toMatchObject({ id: recorded.id, group: 'printery-validator' });
    const redis = testRedis();
    const entries = await redis.xrange(replayStreamKey(harness.prefix, 'printery-validator'), '-', '+');
    await redis.quit();
    expect(entries.map(([entryId]) => entryId)).toEqual([replayed.replayEntryId]);
    expect((await get('/api/dlq?status=replayed')).body.failedEvents[0]).toMatchObject({
      id: recorded.id,
      replayCount: 1,
    });
    const unknown = await fetch(`${harness.url}/api/dlq/abcdefabcdef/replay`, { method: 'POST' });
    expect(unknown.status).toBe(404);
  });

  it('reports the worker groups, with the shield group and its consumer', async () => {
    const { status, body } = await get('/api/workers');
    expect(status).toBe(200);
    const shield = body.groups.find((g: { group: string }) => g.group === 'shield');
    expect(shield).toMatchObject({ pending: 0, deadLetterDepth: 0 });
    expect(shield.consumers[0].name).toMatch(/^shield:/);
    expect(
      body.groups.find((g: { group: string }) => g.group === 'printery-validator')?.deadLetterDepth ?? 0,
    ).toBe(0);
  });

  it('lists every Shield route in the OpenAPI document with a summary', async () => {
    const doc = (await get('/api/openapi.json')).body;
    const routes: [string, string][] = [
      ['/api/deployments', 'get'],
      ['/api/deployments/{id}', 'get'],
      ['/api/events', 'get'],
      ['/api/stream', 'get'],
      ['/api/dlq', 'get'],
      ['/api/dlq/{id}/replay', 'post'],
      ['/api/workers', 'get'],
    ];
    for (const [path, method] of routes) {
      expect(doc.paths[path]?.[method]?.summary, `${method} ${path}`).toEqual(expect.any(String));
    }
    expect(doc.paths['/']).toBeUndefined();
  });

  it('serves the dashboard with a Content-Security-Policy and no inline code', async () => {
    for (const path of ['/', '/deployments/api-1', '/operations', '/environments']) {
      const response = await fetch(`${harness.url}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-security-policy')).toBe(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
      );
      const html = await response.text();
      expect(html).toContain('<script type="module" src="/static/app.js"></script>');
      expect(html).not.toMatch(/<script>|<style|style=/);
    }
    const script = await fetch(`${harness.url}/static/app.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${harness.url}/static/..%2Fapi%2Froutes.ts`)).status).toBe(404);
    expect((await fetch(`${harness.url}/static/nothing.js`)).status).toBe(404);
  });

  it('shows that a running deployment waits for a person, in the list and on its own', async () => {
    const id = `api-wait-${randomUUID().slice(0, 6)}`;
    const start = new Date();
    const scenario = deploymentScenario({ id, start, environment: 'approvals' }).filter(
      (e) => e.time!.getTime() - start.getTime() <= 900,
    );
    const deadline = new Date(start.getTime() + 3_600_000);
    await harness.bus.publisher.publishBatch([
      ...scenario,
      ...approvalEvents({
        id,
        correlationId: scenario[0]!.correlationId!,
        at: new Date(start.getTime() + 950),
        environment: 'approvals',
        gate: 'stage:api',
        approvers: '',
        deadline,
      }),
    ]);
    await eventually(async () => (await harness.shield.getDeployment(id))?.waitingFor != null, 10_000);
    const listed = (await get('/api/deployments?environment=approvals&status=RUNNING')).body.deployments;
    expect(listed.map((d: UnifiedDeployment) => [d.id, d.status, d.phase, d.waitingFor?.gate])).toEqual([
      [id, 'RUNNING', 'approval', 'stage:api'],
    ]);
    const { body } = await get(`/api/deployments/${id}`);
    expect(body.deployment.waitingFor).toMatchObject({
      gate: 'stage:api',
      approvers: '',
      deadline: deadline.toISOString(),
      outcome: null,
    });
    expect(body.deployment.approvals).toHaveLength(1);
    expect(body.timeline.at(-1)).toMatchObject({ type: 'approval:requested', priority: 'HIGH' });
  });
});

describe('Shield API authentication', () => {
  it('needs the viewer or operator token for reads and the operator token to replay', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'shield-auth-'));
    const store = await openStore({ dataDir, logger: silentLogger() });
    try {
      const app = await createApiServer({
        auth: { apiToken: 'operator-secret', viewerToken: 'viewer-secret' },
        logger: silentLogger(),
      });
      await registerShieldRoutes(app, {
        db: store.db,
        bus: {
          replay: async () => '1-0',
          inspector: { groups: async () => [], heartbeats: async () => [], beat: async () => {} },
        },
        failedEvents: new FailedEventStore(store.db),
        feed: new ShieldFeed(),
      });
      await app.ready();
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
      for (const url of [
        '/api/deployments',
        '/api/events',
        '/api/dlq',
        '/api/workers',
        '/api/deployments/x',
      ]) {
        const anonymous = await app.inject({ url });
        expect(anonymous.statusCode, url).toBe(401);
        expect(anonymous.json().error.code).toBe('MATERI_ERR_UNAUTHORIZED');
        expect((await app.inject({ url, headers: bearer('viewer-secret') })).statusCode, url).not.toBe(401);
        expect((await app.inject({ url, headers: bearer('operator-secret') })).statusCode, url).not.toBe(401);
      }
      expect((await app.inject({ url: '/api/stream?last_event_id=x&access_token=nope' })).statusCode).toBe(
        401,
      );
      const replay = { method: 'POST' as const, url: '/api/dlq/abcdefabcdef/replay' };
      // The viewer is known but may not write: 403, not 401.
      expect((await app.inject({ ...replay, headers: bearer('viewer-secret') })).statusCode).toBe(403);
      expect((await app.inject(replay)).statusCode).toBe(401);
      expect((await app.inject({ ...replay, headers: bearer('operator-secret') })).statusCode).toBe(404);
      // The page itself is public: it holds no data.
      expect((await app.inject({ url: '/' })).statusCode).toBe(200);
      await app.close();
    } finally {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('ends open streams when the server closes, next to a stack that serves /api/workers', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'shield-close-'));
    const store = await openStore({ dataDir, logger: silentLogger() });
    try {
      const app = await createApiServer({ auth: {}, logger: silentLogger() });
      // A stack that already serves the worker report keeps its route; Shield does not clash with it.
      app.get('/api/workers', async () => ({ groups: [], processes: [], from: 'stack' }));
      await registerShieldRoutes(app, {
        db: store.db,
        bus: {
          replay: async () => '1-0',
          inspector: { groups: async () => [], heartbeats: async () => [], beat: async () => {} },
        },
        failedEvents: new FailedEventStore(store.db),
        feed: new ShieldFeed(),
        dashboard: false,
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const port = (app.server.address() as AddressInfo).port;
      expect(await (await fetch(`http://127.0.0.1:${port}/api/workers`)).json()).toMatchObject({
        from: 'stack',
      });
      const sse = await openSse(`http://127.0.0.1:${port}/api/stream`);
      expect(sse.status).toBe(200);
      const started = Date.now();
      await app.close();
      expect(Date.now() - started).toBeLessThan(2000);
      expect((await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined))?.status).toBeUndefined();
    } finally {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
