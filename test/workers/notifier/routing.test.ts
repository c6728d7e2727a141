import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import {
  CheckStatus,
  DeploymentStatus,
  ExecutionStatus,
  HealthCheckPurpose,
  HealthStatus,
  ValidationResult,
} from '../../../src/events/index.js';
import {
  buildNotification,
  notifierEventTypes,
  parseNotifierSettings,
  routeNotification,
} from '../../../src/workers/notifier/index.js';
import { decodedEvent } from './support/events.js';

const settings = parseNotifierSettings({
  dashboardUrl: 'http://127.0.0.1:4600',
  channels: {
    deploys: { type: 'slack', webhookUrl: '${SLACK_WEBHOOK_URL}' },
    'oncall-mail': {
      type: 'email',
      smtp: { host: '127.0.0.1' },
      from: 'materi@example.com',
      to: ['oncall@example.com'],
    },
    pager: { type: 'pagerduty', routingKey: '${PAGERDUTY_ROUTING_KEY}' },
    am: { type: 'alertmanager', url: 'http://127.0.0.1:9093' },
    team: { type: 'status', webhookUrl: '${TEAM_STATUS_WEBHOOK}' },
    ops: { type: 'slack', webhookUrl: '${OPS_WEBHOOK}' },
  },
  routes: [
    {
      events: ['deployment:failed', 'rollback:*'],
      environments: ['production'],
      severities: ['critical'],
      channels: ['deploys', 'oncall-mail', 'pager', 'am'],
    },
    { events: ['deployment:completed'], channels: ['deploys', 'team'] },
    {
      events: ['health:check:completed', 'alert:raised'],
      severities: ['warning', 'critical'],
      channels: ['ops'],
    },
  ],
});

const context = { dashboardUrl: settings.dashboardUrl };
const where = { project: 'materi', environment: 'production', version: 'v1.4.2' };

function read(
  event: ReturnType<typeof decodedEvent>,
  facts?: Parameters<typeof buildNotification>[1]['facts'],
) {
  return buildNotification(event, { ...context, facts });
}

describe('severity and meaning of each event', () => {
  const cases: [string, ReturnType<typeof decodedEvent>, string, string, string][] = [
    [
      'deployment:started',
      decodedEvent('deployment:started', { deploymentId: 'd1', ...where, services: ['api'] }),
      'info',
      'none',
      'STARTED',
    ],
    [
      'deployment:completed SUCCESS',
      decodedEvent('deployment:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.SUCCESS,
      }),
      'info',
      'resolve',
      'SUCCESS',
    ],
    [
      'deployment:completed FAILURE',
      decodedEvent('deployment:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.FAILURE,
      }),
      'critical',
      'trigger',
      'FAILURE',
    ],
    [
      'deployment:completed ROLLED_BACK',
      decodedEvent('deployment:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.ROLLED_BACK,
      }),
      'critical',
      'trigger',
      'ROLLED_BACK',
    ],
    [
      'deployment:completed CANCELLED',
      decodedEvent('deployment:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.CANCELLED,
      }),
      'warning',
      'none',
      'CANCELLED',
    ],
    [
      'deployment:failed',
      decodedEvent('deployment:failed', { deploymentId: 'd1', ...where, reason: 'x' }),
      'critical',
      'trigger',
      'FAILED',
    ],
    [
      'rollback:initiated',
      decodedEvent('rollback:initiated', { deploymentId: 'd1', ...where }),
      'critical',
      'trigger',
      'ROLLING_BACK',
    ],
    [
      'rollback:completed',
      decodedEvent('rollback:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.SUCCESS,
        restoredVersion: 'v1.4.1',
      }),
      'critical',
      'trigger',
      'ROLLED_BACK',
    ],
    [
      'health DEGRADED',
      decodedEvent('health:check:completed', {
        deploymentId: 'd1',
        status: HealthStatus.DEGRADED,
        executionStatus: ExecutionStatus.SUCCEEDED,
      }),
      'warning',
      'none',
      'DEGRADED',
    ],
    [
      'health HEALTHY',
      decodedEvent('health:check:completed', {
        deploymentId: 'd1',
        status: HealthStatus.HEALTHY,
        executionStatus: ExecutionStatus.SUCCEEDED,
      }),
      'info',
      'none',
      'HEALTHY',
    ],
    [
      'validation FAILED',
      decodedEvent('validation:completed', {
        deploymentId: 'd1',
        result: ValidationResult.FAILED,
        executionStatus: ExecutionStatus.SUCCEEDED,
      }),
      'critical',
      'none',
      'FAILED',
    ],
    [
      'alert firing (critical)',
      decodedEvent('alert:raised', {
        alert: 'DeadLetterQueueDepth',
        group: 'printery-notifier',
        severity: 'critical',
        value: 12,
        threshold: 10,
      }),
      'critical',
      'trigger',
      'FIRING',
    ],
    [
      'alert firing (warning)',
      decodedEvent('alert:raised', {
        alert: 'OldestPendingAge',
        group: 'shield',
        severity: 'warning',
        value: 70,
        threshold: 60,
      }),
      'warning',
      'trigger',
      'FIRING',
    ],
    [
      'alert resolved',
      decodedEvent('alert:raised', {
        alert: 'DeadLetterQueueDepth',
        group: 'printery-notifier',
        severity: 'critical',
        resolved: true,
      }),
      'info',
      'resolve',
      'RESOLVED',
    ],
  ];
  for (const [name, event, severity, incident, status] of cases) {
    it(`reads ${name} as ${severity}, incident ${incident}`, () => {
      const message = read(event);
      expect(message.severity).toBe(severity);
      expect(message.incident).toBe(incident);
      expect(message.status).toBe(status);
    });
  }

  it('names the failing stage, gate and details of a failed deployment', () => {
    const message = read(
      decodedEvent('deployment:failed', {
        deploymentId: 'dep-7',
        ...where,
        reason: 'stage railway: deploy command exited 1',
        failedStage: 'railway',
        failedGate: 'stage',
        errorDetails: 'npm ERR! missing script: start',
      }),
    );
    expect(message.headline).toBe('Deployment failed at stage railway');
    expect(message.subject).toBe('materi v1.4.2 to production');
    expect(message.problem).toEqual({
      reason: 'stage railway: deploy command exited 1',
      stage: 'railway',
      gate: 'stage',
      details: 'npm ERR! missing script: start',
    });
    expect(message.link).toBe('http://127.0.0.1:4600/deployments/dep-7');
  });

  it('names the failing check of a validation and of a health result', () => {
    const validation = read(
      decodedEvent('validation:completed', {
        deploymentId: 'd1',
        result: ValidationResult.FAILED,
        executionStatus: ExecutionStatus.SUCCEEDED,
        checks: [
          { name: 'image:web', status: CheckStatus.PASSED },
          { name: 'image:api', status: CheckStatus.FAILED, message: 'tag v1.4.2 not found' },
        ],
      }),
    );
    expect(validation.problem).toEqual({ reason: 'tag v1.4.2 not found', check: 'image:api' });
    const health = read(
      decodedEvent('health:check:completed', {
        deploymentId: 'd1',
        status: HealthStatus.DEGRADED,
        executionStatus: ExecutionStatus.SUCCEEDED,
        purpose: HealthCheckPurpose.BAKE,
        reason: 'api p95 720 ms over 500 ms',
        services: [
          { service: 'web', status: HealthStatus.HEALTHY },
          { service: 'api', status: HealthStatus.DEGRADED, responseTimeP95Ms: 720 },
        ],
      }),
    );
    expect(health.headline).toBe('Bake health check: services degraded');
    expect(health.problem).toEqual({ reason: 'api p95 720 ms over 500 ms', check: 'health:api' });
  });

  it('takes environment, version and services from earlier events when a result leaves them out', () => {
    const event = decodedEvent('health:check:completed', {
      deploymentId: 'd9',
      status: HealthStatus.DEGRADED,
      executionStatus: ExecutionStatus.SUCCEEDED,
    });
    expect(read(event).environment).toBe('');
    const message = read(event, { ...where, services: ['api', 'web'] });
    expect(message).toMatchObject({ environment: 'production', project: 'materi', version: 'v1.4.2' });
    expect(message.subject).toBe('materi v1.4.2 to production');
    expect(message.values.emoji).toBe(':warning:');
  });

  it('opens one incident per service, keyed by project, environment and service', () => {
    const message = read(decodedEvent('deployment:failed', { deploymentId: 'd1', ...where, reason: 'x' }), {
      services: ['api', 'web'],
    });
    expect(message.incidentScope).toBe('materi:production');
    expect(message.incidentTargets).toEqual([
      {
        key: 'materi:materi:production:api',
        component: 'api',
        labels: { environment: 'production', project: 'materi', service: 'api', severity: 'critical' },
      },
      {
        key: 'materi:materi:production:web',
        component: 'web',
        labels: { environment: 'production', project: 'materi', service: 'web', severity: 'critical' },
      },
    ]);
  });

  it('keys a bus alert by group and alert name, and links to the dashboard', () => {
    const message = read(
      decodedEvent('alert:raised', {
        alert: 'DeadLetterQueueDepth',
        group: 'printery-notifier',
        severity: 'critical',
        summary: '12 entries in the dead-letter queue',
        value: 12,
        threshold: 10,
        observedAt: timestampFromDate(new Date()),
      }),
    );
    expect(message.incidentScope).toBe('bus:printery-notifier');
    expect(message.incidentTargets.map((t) => t.key)).toEqual([
      'materi:bus:printery-notifier:DeadLetterQueueDepth',
    ]);
    expect(message.headline).toBe('DeadLetterQueueDepth firing');
    expect(message.link).toBe('http://127.0.0.1:4600/');
    expect(message.values.environment).toBe('bus');
  });
});

describe('routing', () => {
  const failed = (environment: string) =>
    decodedEvent('deployment:failed', { deploymentId: 'd1', ...where, environment, reason: 'x' });

  it('sends a production failure to every channel of the matching route', () => {
    expect(routeNotification(read(failed('production')), settings)).toEqual([
      'deploys',
      'oncall-mail',
      'pager',
      'am',
    ]);
  });

  it('leaves out routes whose environment does not match', () => {
    expect(routeNotification(read(failed('staging')), settings)).toEqual([]);
  });

  it('matches `rollback:*` against both rollback events', () => {
    for (const type of ['rollback:initiated', 'rollback:completed'] as const) {
      expect(
        routeNotification(read(decodedEvent(type, { deploymentId: 'd1', ...where })), settings),
      ).toContain('pager');
    }
  });

  it('routes by severity: a degraded health result goes to ops, a healthy one nowhere', () => {
    const health = (status: HealthStatus) =>
      read(
        decodedEvent('health:check:completed', {
          deploymentId: 'd1',
          status,
          executionStatus: ExecutionStatus.SUCCEEDED,
        }),
      );
    expect(routeNotification(health(HealthStatus.DEGRADED), settings)).toEqual(['ops']);
    expect(routeNotification(health(HealthStatus.HEALTHY), settings)).toEqual([]);
  });

  it('names each channel once when several routes match', () => {
    const twice = parseNotifierSettings({
      channels: settings.channels,
      routes: [
        { events: ['deployment:*'], channels: ['deploys', 'team'] },
        { events: ['deployment:completed'], channels: ['team', 'deploys', 'ops'] },
      ],
    });
    const completed = read(
      decodedEvent('deployment:completed', {
        deploymentId: 'd1',
        ...where,
        status: DeploymentStatus.SUCCESS,
      }),
    );
    expect(routeNotification(completed, twice)).toEqual(['deploys', 'team', 'ops']);
  });

  it('never routes its own notification:sent events, even with a catch-all route', () => {
    const all = parseNotifierSettings({
      channels: settings.channels,
      routes: [{ events: ['**'], channels: ['deploys'] }],
    });
    const sent = read(decodedEvent('notification:sent', { deploymentId: 'd1', channel: 'slack' }));
    expect(routeNotification(sent, all)).toEqual([]);
    expect(notifierEventTypes(all)).toEqual(['**']);
  });

  it('subscribes to every routed type plus deployment:started and deployment:completed', () => {
    expect(notifierEventTypes(settings).sort()).toEqual(
      [
        'alert:raised',
        'deployment:completed',
        'deployment:failed',
        'deployment:started',
        'health:check:completed',
        'rollback:*',
      ].sort(),
    );
  });
});
