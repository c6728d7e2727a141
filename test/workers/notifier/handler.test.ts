import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisPublisher } from '../../../src/bus/redis/publisher.js';
import {
  ApprovalOutcome,
  DeploymentStatus,
  ExecutionStatus,
  HealthStatus,
  NotificationOutcome,
  streamKey,
} from '../../../src/events/index.js';
import {
  createNotifier,
  createRedisNotifierState,
  NotificationDeliveryError,
  type Notifier,
  type NotifierSettings,
  parseNotifierSettings,
} from '../../../src/workers/notifier/index.js';
import { deletePrefix, testRedis, uniquePrefix } from '../../support/redis.js';
import { handlerContext, notificationsSent, publishedEvent, rejectionOf } from './support/events.js';
import {
  type FakeProvider,
  startPagerDuty,
  startSlack,
  startStatusReceiver,
  startWebhookReceiver,
} from './support/providers.js';

const SLACK_TOKEN = 'SlackHookToken0123456789';
const ROUTING_KEY = 'PDroutingKEY0123456789abcdefABCD';
const WEBHOOK_SECRET = 'hmac-secret-for-audit-hook';

let redis: Redis;
let slack: FakeProvider;
let pagerduty: FakeProvider;
let audit: FakeProvider;
let team: FakeProvider;
let env: Record<string, string>;

let prefix: string;
let publisher: RedisPublisher;

beforeAll(async () => {
  redis = testRedis();
  [slack, pagerduty, audit, team] = await Promise.all([
    startSlack(),
    startPagerDuty(),
    startWebhookReceiver(),
    startStatusReceiver(),
  ]);
  env = {
    SLACK_WEBHOOK_URL: `${slack.url}/services/T0001/B0002/${SLACK_TOKEN}`,
    PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
    AUDIT_URL: `${audit.url}/materi/audit-hook-path-secret`,
    WEBHOOK_SECRET,
    TEAM_STATUS_WEBHOOK: `${team.url}/hooks/team-status-token-9876`,
  };
});
afterAll(async () => {
  await Promise.all([slack, pagerduty, audit, team].map((p) => p.close()));
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix('notifier');
  publisher = new RedisPublisher({ client: redis, prefix, source: 'test/orchestrator' });
  for (const p of [slack, pagerduty, audit, team]) {
    p.requests.length = 0;
    p.failNext(0, { status: 200, body: '' });
    p.delay(0);
  }
});
afterEach(async () => {
  await deletePrefix(redis, prefix);
});

function settings(overrides: Record<string, unknown> = {}): NotifierSettings {
  return parseNotifierSettings({
    dashboardUrl: 'http://127.0.0.1:4600',
    channels: {
      deploys: { type: 'slack', webhookUrl: '${SLACK_WEBHOOK_URL}' },
      pager: {
        type: 'pagerduty',
        routingKey: '${PAGERDUTY_ROUTING_KEY}',
        url: `${pagerduty.url}/v2/enqueue`,
      },
      audit: { type: 'webhook', url: '${AUDIT_URL}', secret: '${WEBHOOK_SECRET}' },
      team: { type: 'status', webhookUrl: '${TEAM_STATUS_WEBHOOK}' },
    },
    routes: [
      {
        events: ['deployment:failed', 'rollback:*'],
        environments: ['production'],
        severities: ['critical'],
        channels: ['deploys', 'pager', 'audit'],
      },
      { events: ['deployment:completed'], channels: ['deploys', 'team'] },
      {
        events: ['health:check:completed'],
        environments: ['production'],
        severities: ['warning', 'critical'],
        channels: ['deploys'],
      },
    ],
    ...overrides,
  });
}

function notifier(s: NotifierSettings = settings()): Notifier {
  return createNotifier({
    settings: s,
    state: createRedisNotifierState({ client: redis, prefix: `${prefix}:notifier` }),
    lookup: (name) => env[name],
    timeoutMs: 3000,
  });
}

const where = { project: 'materi', environment: 'production' };
const correlationId = 'c0ffee00-0000-4000-8000-000000000001';

function started(deploymentId = 'dep-42') {
  return publishedEvent(
    publisher,
    redis,
    'deployment:started',
    { deploymentId, ...where, version: 'v1.4.2', strategy: 'rolling', services: ['api', 'web'] },
    { correlationId },
  );
}

function failed(deploymentId = 'dep-42') {
  return publishedEvent(
    publisher,
    redis,
    'deployment:failed',
    {
      deploymentId,
      ...where,
      version: 'v1.4.2',
      reason: 'stage railway: deploy command exited 1',
      failedStage: 'railway',
      failedGate: 'stage',
    },
    { correlationId },
  );
}

function succeeded(deploymentId = 'dep-43') {
  return publishedEvent(
    publisher,
    redis,
    'deployment:completed',
    { deploymentId, ...where, version: 'v1.4.3', status: DeploymentStatus.SUCCESS, services: ['api', 'web'] },
    { correlationId },
  );
}

const counts = () => ({
  slack: slack.requests.length,
  pagerduty: pagerduty.requests.length,
  audit: audit.requests.length,
  team: team.requests.length,
});

/** `[target, outcome name]` of every notification:sent event so far. */
async function outcomes(): Promise<[string, string][]> {
  return (await notificationsSent(redis, prefix)).map((e) => [
    e.data.target,
    NotificationOutcome[e.data.outcome]!,
  ]);
}

describe('notifier handler', () => {
  it('sends a production failure to every routed channel, one PagerDuty event per service, and records each delivery', async () => {
    const n = notifier();
    const ctx = handlerContext(publisher);
    await n.handle(await started(), ctx);
    expect(counts()).toEqual({ slack: 0, pagerduty: 0, audit: 0, team: 0 });

    const event = await failed();
    await n.handle(event, ctx);
    expect(counts()).toEqual({ slack: 1, pagerduty: 2, audit: 1, team: 0 });
    for (const p of [slack, pagerduty, audit])
      expect(p.requests.every((r) => r.problems.length === 0)).toBe(true);
    // The services came from deployment:started; deployment:failed does not carry them.
    expect(pagerduty.requests.map((r) => (r.json as { dedup_key: string }).dedup_key).sort()).toEqual([
      'materi:materi:production:api',
      'materi:materi:production:web',
    ]);

    const sent = await notificationsSent(redis, prefix);
    expect(sent.map((e) => e.data.target).sort()).toEqual([
      'pagerduty:pager',
      'slack:deploys',
      'webhook:audit',
    ]);
    for (const record of sent) {
      expect(record.data).toMatchObject({
        deploymentId: 'dep-42',
        notifiedEventId: event.id,
        notifiedEventType: 'deployment:failed',
        outcome: NotificationOutcome.SENT,
      });
      expect(record.correlationId).toBe(correlationId);
      expect(record.causationId).toBe(event.id);
      expect(record.deploymentId).toBe('dep-42');
      expect(record.priority).toBe('LOW');
    }
    expect(sent.find((e) => e.data.channel === 'pagerduty')!.data.message).toBe(
      'triggered 2 incident(s) (id materi:materi:production:api,materi:materi:production:web)',
    );
    expect(sent.find((e) => e.data.channel === 'slack')!.data.message).toBe('Slack answered ok');
  });

  it('sends nothing again when the same event is delivered again', async () => {
    const n = notifier();
    const ctx = handlerContext(publisher);
    const event = await failed();
    await n.handle(event, ctx);
    await n.handle(event, ctx);
    await n.handle(event, { ...ctx, delivery: { ...ctx.delivery, deliveryCount: 3 } });
    expect(counts()).toEqual({ slack: 1, pagerduty: 1, audit: 1, team: 0 });
    // Already-sent channels are skipped silently: no SUPPRESSED records for them.
    expect(await outcomes()).toHaveLength(3);
    expect(n.stats().deploys).toMatchObject({ SENT: 1, SKIPPED: 2 });
  });

  it('gives one message per channel when two notifier processes handle the same event at once', async () => {
    const [a, b] = [notifier(), notifier()];
    const event = await failed();
    // Slow providers, so that both processes claim before either has finished sending.
    for (const p of [slack, pagerduty, audit]) p.delay(150);
    const results = await Promise.allSettled([
      a.handle(event, handlerContext(publisher)),
      b.handle(event, handlerContext(publisher)),
    ]);
    expect(counts()).toEqual({ slack: 1, pagerduty: 1, audit: 1, team: 0 });
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThanOrEqual(1);
    for (const r of rejected) {
      expect(r.reason).toBeInstanceOf(NotificationDeliveryError);
      expect((r.reason as Error).message).toMatch(/being sent by another notifier/);
    }
    // The bus redelivers to whichever was told to retry: now every channel is done.
    await a.handle(event, handlerContext(publisher));
    await b.handle(event, handlerContext(publisher));
    expect(counts()).toEqual({ slack: 1, pagerduty: 1, audit: 1, team: 0 });
    expect((await outcomes()).map(([, o]) => o)).toEqual(['SENT', 'SENT', 'SENT']);
  });

  it('retries only the channel that failed on the next delivery', async () => {
    const n = notifier();
    const event = await failed();
    slack.failNext(1, { status: 500, body: 'internal_error' });
    const error = await rejectionOf(n.handle(event, handlerContext(publisher)));
    expect(error).toBeInstanceOf(NotificationDeliveryError);
    expect(error.message).toBe(
      `notifier: 1 of 3 channel(s) not notified about deployment:failed ${event.id}: slack:deploys: Slack answered HTTP 500: internal_error`,
    );
    expect((error as NotificationDeliveryError).failures).toEqual([
      { target: 'slack:deploys', message: 'slack:deploys: Slack answered HTTP 500: internal_error' },
    ]);
    expect(counts()).toEqual({ slack: 1, pagerduty: 1, audit: 1, team: 0 });
    expect((await outcomes()).sort()).toEqual([
      ['pagerduty:pager', 'SENT'],
      ['slack:deploys', 'FAILED'],
      ['webhook:audit', 'SENT'],
    ]);

    await n.handle(event, handlerContext(publisher));
    expect(counts()).toEqual({ slack: 2, pagerduty: 1, audit: 1, team: 0 });
    expect(slack.requests[1]!.problems).toEqual([]);
    expect((await outcomes()).at(-1)).toEqual(['slack:deploys', 'SENT']);
  });

  it('resolves the PagerDuty incidents on the next successful deployment, though no route sends successes there', async () => {
    const n = notifier();
    const ctx = handlerContext(publisher);
    await n.handle(await started(), ctx);
    await n.handle(await failed(), ctx);
    pagerduty.requests.length = 0;
    slack.requests.length = 0;

    const success = await succeeded();
    await n.handle(success, ctx);
    expect(
      pagerduty.requests
        .map((r) => [
          (r.json as { event_action: string }).event_action,
          (r.json as { dedup_key: string }).dedup_key,
        ])
        .sort(),
    ).toEqual([
      ['resolve', 'materi:materi:production:api'],
      ['resolve', 'materi:materi:production:web'],
    ]);
    expect(slack.requests).toHaveLength(1);
    expect(team.requests.map((r) => (r.json as { text: string }).text)).toEqual([
      ':white_check_mark: materi v1.4.3 to production: Deployment succeeded',
    ]);
    const forSuccess = (await notificationsSent(redis, prefix)).filter(
      (e) => e.data.notifiedEventId === success.id,
    );
    expect(
      forSuccess.map((e) => [e.data.target, NotificationOutcome[e.data.outcome], e.data.message]).sort(),
    ).toEqual([
      [
        'pagerduty:pager',
        'SENT',
        'resolved 2 incident(s) (id materi:materi:production:api,materi:materi:production:web)',
      ],
      ['slack:deploys', 'SENT', 'Slack answered ok'],
      ['status:team', 'SENT', 'HTTP 200'],
    ]);

    // A second success has nothing left to resolve and does not involve PagerDuty at all.
    pagerduty.requests.length = 0;
    await n.handle(await succeeded('dep-44'), ctx);
    expect(pagerduty.requests).toHaveLength(0);
  });

  it('routes a degraded health result by the environment remembered from deployment:started', async () => {
    const n = notifier();
    const ctx = handlerContext(publisher);
    await n.handle(await started('dep-50'), ctx);
    const degraded = await publishedEvent(publisher, redis, 'health:check:completed', {
      deploymentId: 'dep-50',
      status: HealthStatus.DEGRADED,
      executionStatus: ExecutionStatus.SUCCEEDED,
      reason: 'api p95 720 ms over 500 ms',
      services: [{ service: 'api', status: HealthStatus.DEGRADED }],
    });
    await n.handle(degraded, ctx);
    expect(slack.requests).toHaveLength(1);
    const body = slack.requests[0]!.json as { blocks: { text?: { text: string } }[] };
    expect(body.blocks[0]!.text!.text).toBe('Health check: services degraded: materi v1.4.2 to production');
    const healthy = await publishedEvent(publisher, redis, 'health:check:completed', {
      deploymentId: 'dep-50',
      status: HealthStatus.HEALTHY,
      executionStatus: ExecutionStatus.SUCCEEDED,
    });
    await n.handle(healthy, ctx);
    expect(slack.requests).toHaveLength(1);
  });

  it('sends an approval request published on the bus to Slack and the team line, and records each delivery', async () => {
    const n = notifier(
      settings({
        routes: [{ events: ['approval:*'], environments: ['production'], channels: ['deploys', 'team'] }],
      }),
    );
    const ctx = handlerContext(publisher);
    const request = await publishedEvent(publisher, redis, 'approval:requested', {
      deploymentId: 'dep-70',
      ...where,
      version: 'v2.0.0',
      gate: 'environment',
      approvers: 'deployer',
      reason: 'first release of the quarter',
      deadline: timestampFromDate(new Date('2026-03-01T12:00:00.000Z')),
    });
    await n.handle(request, ctx);
    expect(slack.requests).toHaveLength(1);
    expect(slack.requests[0]!.problems).toEqual([]);
    expect((slack.requests[0]!.json as { text: string }).text).toBe(
      'materi v2.0.0 to production waits for approval (environment) by deployer until 2026-03-01 12:00 UTC: ' +
        'first release of the quarter http://127.0.0.1:4600/deployments/dep-70',
    );
    expect(team.requests.map((r) => r.json)).toEqual([
      { text: ':raised_hand: materi v2.0.0 to production: Waits for approval (environment)' },
    ]);
    const answer = await publishedEvent(publisher, redis, 'approval:completed', {
      deploymentId: 'dep-70',
      ...where,
      version: 'v2.0.0',
      gate: 'environment',
      outcome: ApprovalOutcome.APPROVED,
      by: 'alice',
    });
    await n.handle(answer, ctx);
    expect(team.requests.at(-1)?.json).toEqual({
      text: ':information_source: materi v2.0.0 to production: Approved by alice',
    });
    const sent = await notificationsSent(redis, prefix);
    // Channels of one event are sent at once: their records may come in either order.
    expect(sent.map((e) => [e.data.notifiedEventType, e.data.channel, e.data.outcome]).sort()).toEqual([
      ['approval:completed', 'slack', NotificationOutcome.SENT],
      ['approval:completed', 'status', NotificationOutcome.SENT],
      ['approval:requested', 'slack', NotificationOutcome.SENT],
      ['approval:requested', 'status', NotificationOutcome.SENT],
    ]);
  });

  it('suppresses and counts messages over the rate limit, without failing the event', async () => {
    const n = notifier(settings({ rateLimit: { perChannel: 2, windowMs: 60_000 } }));
    const ctx = handlerContext(publisher);
    const events = [await failed('dep-1'), await failed('dep-2'), await failed('dep-3')];
    for (const event of events) await n.handle(event, ctx);
    expect(counts()).toEqual({ slack: 2, pagerduty: 2, audit: 2, team: 0 });
    const last = (await notificationsSent(redis, prefix)).filter((e) => e.data.deploymentId === 'dep-3');
    expect(
      last.map((e) => [e.data.target, NotificationOutcome[e.data.outcome], e.data.message]).sort(),
    ).toEqual([
      ['pagerduty:pager', 'SUPPRESSED', 'rate limit: more than 2 messages in 60000 ms'],
      ['slack:deploys', 'SUPPRESSED', 'rate limit: more than 2 messages in 60000 ms'],
      ['webhook:audit', 'SUPPRESSED', 'rate limit: more than 2 messages in 60000 ms'],
    ]);
    expect(n.stats().deploys).toMatchObject({ SENT: 2, SUPPRESSED: 1, RATE_LIMITED: 1 });
    // A suppressed pair is settled: a redelivery does not send it late.
    await n.handle(events[2]!, ctx);
    expect(counts()).toEqual({ slack: 2, pagerduty: 2, audit: 2, team: 0 });
  });

  it('ignores its own notification:sent events', async () => {
    const n = notifier(settings({ routes: [{ events: ['**'], channels: ['deploys'] }] }));
    const record = await publishedEvent(publisher, redis, 'notification:sent', {
      deploymentId: 'dep-1',
      channel: 'slack',
    });
    await n.handle(record, handlerContext(publisher));
    expect(slack.requests).toHaveLength(0);
    expect(n.eventTypes).toEqual(['**']);
  });

  it('keeps secrets out of notification:sent events and thrown errors, even when a provider echoes them', async () => {
    const n = notifier();
    const event = await failed();
    // A misbehaving provider quoting the URL it was called on, and a webhook echoing its secret.
    slack.failNext(1, { status: 500, body: `unknown hook ${env.SLACK_WEBHOOK_URL}` });
    audit.failNext(1, {
      status: 401,
      body: `bad signature for secret ${WEBHOOK_SECRET} at ${env.AUDIT_URL}`,
    });
    const error = await rejectionOf(n.handle(event, handlerContext(publisher)));
    expect(error).toBeInstanceOf(NotificationDeliveryError);
    expect(error.message).toContain('slack:deploys: Slack answered HTTP 500: unknown hook [redacted]');
    expect(error.message).toContain(
      'webhook:audit: webhook answered HTTP 401: bad signature for secret [redacted] at [redacted]',
    );

    const raw = JSON.stringify(await redis.xrange(streamKey(prefix, 'notification:sent'), '-', '+'));
    const secrets = [
      SLACK_TOKEN,
      ROUTING_KEY,
      WEBHOOK_SECRET,
      'audit-hook-path-secret',
      'team-status-token-9876',
    ];
    for (const secret of secrets) {
      expect(raw).not.toContain(secret);
      expect(error.message).not.toContain(secret);
    }
    expect(raw).toContain('[redacted]');
  });
});
