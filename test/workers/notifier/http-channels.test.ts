import { createHmac, timingSafeEqual } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors/index.js';
import {
  ApprovalOutcome,
  DeploymentStatus,
  ExecutionStatus,
  HealthStatus,
} from '../../../src/events/index.js';
import {
  buildNotification,
  ChannelError,
  type ChannelSettings,
  createChannel,
  DEFAULT_TEMPLATES,
  MemoryIncidentStore,
  type NotificationChannel,
} from '../../../src/workers/notifier/index.js';
import { decodedEvent, rejectionOf } from './support/events.js';
import {
  type FakeProvider,
  type ReceivedRequest,
  startPagerDuty,
  startSlack,
  startStatusReceiver,
  startWebhookReceiver,
} from './support/providers.js';

const SLACK_TOKEN = 'xoxbSecretTokenForSlack42';
const ROUTING_KEY = 'R0UT1NGK3Y0123456789abcdefABCDEF'; // 32 characters, like a real integration key
const HMAC_SECRET = 'whsec-very-secret-value';

let slack: FakeProvider;
let pagerduty: FakeProvider;
let webhook: FakeProvider;
let status: FakeProvider;
let env: Record<string, string>;

beforeAll(async () => {
  [slack, pagerduty, webhook, status] = await Promise.all([
    startSlack(),
    startPagerDuty(),
    startWebhookReceiver(),
    startStatusReceiver(),
  ]);
  env = {
    SLACK_WEBHOOK_URL: `${slack.url}/services/T0001/B0002/${SLACK_TOKEN}`,
    PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
    WEBHOOK_SECRET: HMAC_SECRET,
    TEAM_STATUS_WEBHOOK: `${status.url}/hooks/team-status-abcdef`,
  };
});
afterAll(async () => {
  await Promise.all([slack, pagerduty, webhook, status].map((p) => p.close()));
});
beforeEach(() => {
  for (const p of [slack, pagerduty, webhook, status]) p.requests.length = 0;
});

const lookup = (name: string) => env[name];
let incidents: MemoryIncidentStore;
beforeEach(() => {
  incidents = new MemoryIncidentStore();
});

function channel(name: string, settings: ChannelSettings): NotificationChannel {
  return createChannel(settings, { name, lookup, templates: DEFAULT_TEMPLATES, incidents, timeoutMs: 2000 });
}

const dashboardUrl = 'http://127.0.0.1:4600';
const where = { project: 'materi', environment: 'production', version: 'v1.4.2' };

const failed = () =>
  buildNotification(
    decodedEvent('deployment:failed', {
      deploymentId: 'dep-42',
      ...where,
      reason: 'stage railway: deploy command exited 1',
      failedStage: 'railway',
      failedGate: 'stage',
      errorDetails: 'Error: <missing> script & "start"',
    }),
    { dashboardUrl, facts: { services: ['api', 'web'] } },
  );

const succeeded = () =>
  buildNotification(
    decodedEvent('deployment:completed', {
      deploymentId: 'dep-43',
      ...where,
      version: 'v1.4.3',
      status: DeploymentStatus.SUCCESS,
      services: ['api', 'web'],
      totalDurationMs: 65_000,
    }),
    { dashboardUrl },
  );

describe('Slack channel', () => {
  const settings = { type: 'slack', webhookUrl: '${SLACK_WEBHOOK_URL}' } as ChannelSettings;

  it('posts text and Block Kit blocks Slack accepts, with status, version, environment, failing stage and a Shield link', async () => {
    const receipt = await channel('deploys', settings).send(failed());
    expect(receipt).toEqual({ detail: 'Slack answered ok' });
    expect(slack.requests).toHaveLength(1);
    const request = slack.requests[0]!;
    expect(request.problems).toEqual([]);
    expect(request.path).toBe(`/services/T0001/B0002/${SLACK_TOKEN}`);
    const body = request.json as { text: string; blocks: Record<string, never>[] };
    expect(body.text).toBe(
      'Deployment failed at stage railway: materi v1.4.2 to production http://127.0.0.1:4600/deployments/dep-42',
    );
    expect(body.blocks.map((b) => b.type)).toEqual(['header', 'section', 'actions', 'context']);
    const [header, section, actions] = body.blocks as unknown as [
      { text: { type: string; text: string } },
      { text: { text: string }; fields: { type: string; text: string }[] },
      { elements: { type: string; url: string; style: string; text: { text: string } }[] },
    ];
    expect(header.text).toEqual({
      type: 'plain_text',
      text: 'Deployment failed at stage railway: materi v1.4.2 to production',
      emoji: true,
    });
    expect(section.fields.map((f) => f.text)).toEqual(
      expect.arrayContaining([
        '*Status*\nFAILED',
        '*Version*\nv1.4.2',
        '*Environment*\nproduction',
        '*Project*\nmateri',
        '*Failing stage*\nrailway',
        '*Gate*\nstage',
        '*Deployment*\ndep-42',
      ]),
    );
    // mrkdwn control characters are escaped.
    expect(section.text.text).toContain('Error: &lt;missing&gt; script &amp; "start"');
    expect(actions.elements[0]).toMatchObject({
      type: 'button',
      url: 'http://127.0.0.1:4600/deployments/dep-42',
      style: 'danger',
      text: { text: 'Open in Shield' },
    });
  });

  it('stays within Block Kit limits when the error is very long', async () => {
    const message = failed();
    message.problem = { ...message.problem!, details: 'x'.repeat(10_000), reason: 'y'.repeat(5000) };
    await channel('deploys', settings).send(message);
    expect(slack.requests[0]!.problems).toEqual([]);
  });

  it("fails with Slack's answer, never the webhook URL, when Slack refuses", async () => {
    slack.failNext(1, { status: 404, body: 'no_service' });
    const error = await rejectionOf(channel('deploys', settings).send(failed()));
    expect(error).toBeInstanceOf(ChannelError);
    expect(error.message).toBe('slack:deploys: Slack answered HTTP 404: no_service');
  });

  it('fails on a 200 whose body is not ok', async () => {
    slack.failNext(1, { status: 200, body: 'invalid_token' });
    await expect(channel('deploys', settings).send(failed())).rejects.toThrow(
      'slack:deploys: Slack answered HTTP 200: invalid_token',
    );
  });

  it('names the unset variable, not a value, when the webhook reference cannot be resolved', async () => {
    const error = await rejectionOf(
      channel('deploys', { type: 'slack', webhookUrl: '${NOT_SET_ANYWHERE}' }).send(failed()),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe('slack:deploys: webhookUrl: ${NOT_SET_ANYWHERE} is not set');
  });

  it('reports an unreachable server by error code without the URL', async () => {
    const closed = await startSlack();
    await closed.close();
    env.DEAD_SLACK = `${closed.url}/services/T/B/${SLACK_TOKEN}`;
    const error = await rejectionOf(
      channel('deploys', { type: 'slack', webhookUrl: '${DEAD_SLACK}' }).send(failed()),
    );
    expect(error.message).toBe('slack:deploys: request failed: ECONNREFUSED');
  });
});

describe('approval messages on Slack', () => {
  const settings = { type: 'slack', webhookUrl: '${SLACK_WEBHOOK_URL}' } as ChannelSettings;
  const deadline = timestampFromDate(new Date('2026-03-01T11:30:00.000Z'));
  const requested = (url: string) =>
    buildNotification(
      decodedEvent('approval:requested', {
        deploymentId: 'dep-50',
        ...where,
        gate: 'stage:api',
        approvers: 'deployer',
        reason: 'production release <needs> a second pair of eyes',
        deadline,
        url,
      }),
      { dashboardUrl },
    );

  it('asks for approval in one line naming the gate, approvers, deadline and reason, linking to the page', async () => {
    const message = requested('https://deploy.example.com/deployments/dep-50');
    // Routed by default (not critical, not info: a person has to act).
    expect(message.severity).toBe('warning');
    await channel('deploys', settings).send(message);
    const request = slack.requests[0]!;
    expect(request.problems).toEqual([]);
    const body = request.json as { text: string; blocks: Record<string, never>[] };
    const line =
      'materi v1.4.2 to production waits for approval (stage:api) by deployer until 2026-03-01 11:30 UTC: ' +
      'production release <needs> a second pair of eyes';
    expect(body.text).toBe(`${line} https://deploy.example.com/deployments/dep-50`);
    const [header, section, actions] = body.blocks as unknown as [
      { text: { text: string } },
      { text: { text: string }; fields: { text: string }[] },
      { elements: { url: string; style?: string; text: { text: string } }[] },
    ];
    expect(header.text.text).toBe('Waits for approval (stage:api): materi v1.4.2 to production');
    expect(section.text.text).toBe(
      `*Waits for approval (stage:api)*\n${line.replace('<needs>', '&lt;needs&gt;')}`,
    );
    expect(section.fields.map((f) => f.text)).toEqual(
      expect.arrayContaining([
        '*Status*\nWAITING_FOR_APPROVAL',
        '*Gate*\nstage:api',
        '*Approvers*\ndeployer',
        '*Deadline*\n2026-03-01 11:30 UTC',
      ]),
    );
    expect(actions.elements[0]).toMatchObject({
      url: 'https://deploy.example.com/deployments/dep-50',
      text: { text: 'Approve or reject in Shield' },
    });
    expect(actions.elements[0]?.style).toBeUndefined();
  });

  it("links to the dashboard's deployment page when the event names no usable URL", async () => {
    for (const url of ['', 'javascript:alert(1)']) {
      const message = requested(url);
      expect(message.link).toBe('http://127.0.0.1:4600/deployments/dep-50');
    }
    const anyone = buildNotification(
      decodedEvent('approval:requested', { deploymentId: 'dep-51', ...where, gate: 'health' }),
      { dashboardUrl },
    );
    expect(anyone.summary).toBe(
      'materi v1.4.2 to production waits for approval (health) by any operator until no deadline',
    );
  });

  it('says how the wait ended and who answered', async () => {
    const answer = (outcome: ApprovalOutcome, by: string, comment = '') =>
      buildNotification(
        decodedEvent('approval:completed', {
          deploymentId: 'dep-50',
          ...where,
          gate: 'environment',
          outcome,
          by,
          comment,
        }),
        { dashboardUrl },
      );
    const approved = answer(ApprovalOutcome.APPROVED, 'alice', 'ship it');
    expect([approved.severity, approved.status, approved.headline, approved.summary]).toEqual([
      'info',
      'APPROVED',
      'Approved by alice',
      'materi v1.4.2 to production: approval of environment approved by alice: ship it',
    ]);
    const rejected = answer(ApprovalOutcome.REJECTED, 'bob', 'not on a Friday');
    expect([rejected.severity, rejected.headline, rejected.summary]).toEqual([
      'warning',
      'Rejected by bob',
      'materi v1.4.2 to production: approval of environment rejected by bob: not on a Friday',
    ]);
    const expired = answer(ApprovalOutcome.EXPIRED, '');
    expect([expired.status, expired.headline, expired.summary]).toEqual([
      'EXPIRED',
      'Approval expired: nobody answered before the deadline',
      'materi v1.4.2 to production: approval of environment expired',
    ]);
    await channel('deploys', settings).send(rejected);
    const body = slack.requests[0]!.json as { text: string };
    expect(slack.requests[0]!.problems).toEqual([]);
    expect(body.text).toBe(
      'materi v1.4.2 to production: approval of environment rejected by bob: not on a Friday ' +
        'http://127.0.0.1:4600/deployments/dep-50',
    );
  });
});

describe('status channel', () => {
  it('posts one line per phase: started, succeeded, failed, rolled back', async () => {
    const team = channel('team', { type: 'status', webhookUrl: '${TEAM_STATUS_WEBHOOK}' } as ChannelSettings);
    const events = [
      decodedEvent('deployment:started', { deploymentId: 'd1', ...where, services: ['api'] }),
      decodedEvent('deployment:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.SUCCESS,
      }),
      decodedEvent('deployment:failed', {
        deploymentId: 'd2',
        ...where,
        failedGate: 'health',
        reason: 'api unhealthy',
      }),
      decodedEvent('rollback:completed', {
        deploymentId: 'd2',
        ...where,
        status: DeploymentStatus.SUCCESS,
        restoredVersion: 'v1.4.1',
      }),
    ];
    for (const event of events) await team.send(buildNotification(event, { dashboardUrl }));
    expect(status.requests.map((r) => r.problems)).toEqual([[], [], [], []]);
    expect(status.requests.map((r) => (r.json as { text: string }).text)).toEqual([
      ':rocket: materi v1.4.2 to production: Deployment started',
      ':white_check_mark: materi v1.4.2 to production: Deployment succeeded',
      ':x: materi v1.4.2 to production: Deployment failed at the health gate',
      ':leftwards_arrow_with_hook: materi v1.4.2 to production: Rolled back to v1.4.1',
    ]);
    expect(status.requests[0]!.path).toBe('/hooks/team-status-abcdef');
  });
});

describe('webhook channel', () => {
  function verify(body: string, signature: string | undefined, secret: string): boolean {
    const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
    const given = Buffer.from(signature ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  it('posts the event JSON with an HMAC-SHA256 signature of the raw body the receiver can verify', async () => {
    const audit = channel('audit', {
      type: 'webhook',
      url: `${webhook.url}/materi`,
      secret: '${WEBHOOK_SECRET}',
    } as ChannelSettings);
    const message = failed();
    const before = Math.floor(Date.now() / 1000);
    await audit.send(message);
    const request = webhook.requests[0]!;
    expect(request.path).toBe('/materi');
    expect(verify(request.body, request.headers['x-materi-signature'] as string, HMAC_SECRET)).toBe(true);
    expect(verify(request.body, request.headers['x-materi-signature'] as string, 'another-secret')).toBe(
      false,
    );
    expect(request.headers['x-materi-event']).toBe('deployment:failed');
    expect(request.headers['content-type']).toBe('application/json');
    const timestamp = Number(request.headers['x-materi-timestamp']);
    expect(timestamp).toBeGreaterThanOrEqual(before);
    expect(timestamp).toBeLessThanOrEqual(before + 5);
    expect(request.json).toMatchObject({
      id: message.event.id,
      type: 'deployment:failed',
      deployment_id: 'dep-42',
      priority: 'CRITICAL',
      schema: 'materi.events.v1.DeploymentFailedEvent',
      data: { deploymentId: 'dep-42', failedStage: 'railway', environment: 'production', version: 'v1.4.2' },
      notification: {
        channel: 'audit',
        severity: 'critical',
        link: 'http://127.0.0.1:4600/deployments/dep-42',
      },
    });
    expect(request.body).not.toContain(HMAC_SECRET);
  });

  it('sends no signature header when no secret is set, and fails on a non-2xx answer', async () => {
    const open = channel('open', { type: 'webhook', url: `${webhook.url}/open` } as ChannelSettings);
    await open.send(succeeded());
    expect(webhook.requests[0]!.headers['x-materi-signature']).toBeUndefined();
    webhook.failNext(1, { status: 503, body: 'try later' });
    await expect(open.send(succeeded())).rejects.toThrow(
      'webhook:open: webhook answered HTTP 503: try later',
    );
  });
});

/** The fields of a PagerDuty event body the tests compare. */
function pdBody(request: ReceivedRequest): { event_action: string; dedup_key: string } {
  return request.json as { event_action: string; dedup_key: string };
}

describe('PagerDuty channel', () => {
  const settings = {
    type: 'pagerduty',
    routingKey: '${PAGERDUTY_ROUTING_KEY}',
    url: '',
  } as unknown as ChannelSettings;
  const pager = () =>
    channel('pager', { ...settings, url: `${pagerduty.url}/v2/enqueue` } as ChannelSettings);

  it('triggers one event per service with the documented payload and a per-service dedup key', async () => {
    const receipt = await pager().send(failed());
    expect(pagerduty.requests.map((r) => r.problems)).toEqual([[], []]);
    const bodies = pagerduty.requests.map((r) => r.json as Record<string, never>);
    expect(bodies.map((b) => b.dedup_key).sort()).toEqual([
      'materi:materi:production:api',
      'materi:materi:production:web',
    ]);
    const api = bodies.find((b) => b.dedup_key === 'materi:materi:production:api')!;
    expect(api).toMatchObject({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      payload: {
        summary: 'Deployment failed at stage railway: materi v1.4.2 to production',
        source: 'materi:production',
        severity: 'critical',
        component: 'api',
        group: 'production',
        class: 'deployment:failed',
        custom_details: {
          deployment_id: 'dep-42',
          failing_stage: 'railway',
          reason: 'stage railway: deploy command exited 1',
          version: 'v1.4.2',
        },
      },
      links: [{ href: 'http://127.0.0.1:4600/deployments/dep-42', text: 'Open in Shield' }],
    });
    expect(receipt.detail).toBe('triggered 2 incident(s)');
    expect((await incidents.list('pager', 'materi:production')).map((i) => i.key).sort()).toEqual([
      'materi:materi:production:api',
      'materi:materi:production:web',
    ]);
  });

  it('resolves the triggered keys on the next success of the same environment', async () => {
    await pager().send(failed());
    pagerduty.requests.length = 0;
    const receipt = await pager().send(succeeded());
    expect(pagerduty.requests.map((r) => r.problems)).toEqual([[], []]);
    expect(
      pagerduty.requests.map((r) => pdBody(r)).sort((a, b) => a.dedup_key.localeCompare(b.dedup_key)),
    ).toEqual([
      { routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: 'materi:materi:production:api' },
      { routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: 'materi:materi:production:web' },
    ]);
    expect(receipt.detail).toBe('resolved 2 incident(s)');
    expect(await incidents.list('pager', 'materi:production')).toEqual([]);
  });

  it('sends nothing for a success with no open incident, or for an informational event', async () => {
    expect(await pager().send(succeeded())).toEqual({ suppressed: 'no open incident in materi:production' });
    const started = buildNotification(decodedEvent('deployment:started', { deploymentId: 'd1', ...where }), {
      dashboardUrl,
    });
    expect((await pager().send(started)).suppressed).toMatch(/^PagerDuty takes failures/);
    expect(pagerduty.requests).toHaveLength(0);
  });

  it('triggers and resolves a bus alert by its own dedup key', async () => {
    const alert = (resolved: boolean) =>
      buildNotification(
        decodedEvent('alert:raised', {
          alert: 'DeadLetterQueueDepth',
          group: 'printery-notifier',
          severity: 'critical',
          summary: '12 entries in the dead-letter queue',
          value: 12,
          threshold: 10,
          resolved,
        }),
        { dashboardUrl },
      );
    await pager().send(alert(false));
    await pager().send(alert(true));
    expect(pagerduty.requests.map((r) => r.problems)).toEqual([[], []]);
    expect(pagerduty.requests.map((r) => [pdBody(r).event_action, pdBody(r).dedup_key])).toEqual([
      ['trigger', 'materi:bus:printery-notifier:DeadLetterQueueDepth'],
      ['resolve', 'materi:bus:printery-notifier:DeadLetterQueueDepth'],
    ]);
    expect((pagerduty.requests[0]!.json as { payload: { summary: string } }).payload.summary).toBe(
      'DeadLetterQueueDepth firing: printery-notifier',
    );
  });

  it("fails with PagerDuty's own explanation, never the routing key, when it rejects the event", async () => {
    env.SHORT_KEY = 'short-routing-key-oops';
    const bad = channel('pager', {
      type: 'pagerduty',
      routingKey: '${SHORT_KEY}',
      url: `${pagerduty.url}/v2/enqueue`,
    } as ChannelSettings);
    const message = buildNotification(
      decodedEvent('deployment:failed', { deploymentId: 'd1', ...where, reason: 'x' }),
      { dashboardUrl },
    );
    const error = await rejectionOf(bad.send(message));
    expect(error).toBeInstanceOf(ChannelError);
    expect(error.message).toBe(
      "pagerduty:pager: PagerDuty answered HTTP 400: Event object is invalid ('routing_key' must be a 32 character string)",
    );
    expect(error.message).not.toContain('short-routing-key-oops');
    expect(await incidents.list('pager', 'materi:production')).toEqual([]);
  });

  it('sends a health warning nowhere, since it is not an incident', async () => {
    const degraded = buildNotification(
      decodedEvent('health:check:completed', {
        deploymentId: 'd1',
        status: HealthStatus.DEGRADED,
        executionStatus: ExecutionStatus.SUCCEEDED,
      }),
      { dashboardUrl },
    );
    expect((await pager().send(degraded)).suppressed).toBeDefined();
    expect(pagerduty.requests).toHaveLength(0);
  });
});
