import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors/index.js';
import {
  DEFAULT_TEMPLATES,
  loadNotifierSettings,
  parseNotifierSettings,
  renderTemplate,
} from '../../../src/workers/notifier/index.js';
import { rejectionOf } from './support/events.js';

const EXAMPLE = `
dashboardUrl: http://127.0.0.1:4600/
channels:
  deploys: { type: slack, webhookUrl: '\${SLACK_WEBHOOK_URL}' }
  oncall-mail: { type: email, smtp: { host: 127.0.0.1, port: 2525, secure: false, auth: { user: '\${SMTP_USER}', pass: '\${SMTP_PASS}' } }, from: 'materi@example.com', to: [oncall@example.com] }
  pager: { type: pagerduty, routingKey: '\${PAGERDUTY_ROUTING_KEY}', url: 'https://events.pagerduty.com/v2/enqueue' }
  am: { type: alertmanager, url: 'http://127.0.0.1:9093' }
  audit: { type: webhook, url: 'https://hooks.example.com/materi', secret: '\${WEBHOOK_SECRET}' }
  team: { type: status, webhookUrl: '\${TEAM_STATUS_WEBHOOK}' }
routes:
  - events: ['deployment:failed', 'rollback:*']
    environments: [production]
    severities: [critical]
    channels: [deploys, oncall-mail, pager, am]
  - events: ['deployment:completed']
    channels: [deploys, team]
rateLimit: { perChannel: 30, windowMs: 60000 }
templates: { emailSubject: '[{{environment}}] {{project}} {{version}}: {{status}}' }
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-notifier-settings-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function problem(input: unknown): string {
  try {
    parseNotifierSettings(input, 'notifier.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the settings to be rejected');
}

const minimal = {
  channels: { deploys: { type: 'slack', webhookUrl: '${SLACK_WEBHOOK_URL}' } },
  routes: [{ events: ['deployment:failed'], channels: ['deploys'] }],
};

describe('notifier settings', () => {
  it('loads the documented example from YAML with every default filled in', async () => {
    const settings = await loadNotifierSettings(await file('notifier.yaml', EXAMPLE));
    expect(settings.dashboardUrl).toBe('http://127.0.0.1:4600');
    expect(Object.keys(settings.channels)).toEqual([
      'deploys',
      'oncall-mail',
      'pager',
      'am',
      'audit',
      'team',
    ]);
    expect(settings.channels['oncall-mail']).toMatchObject({
      type: 'email',
      smtp: { host: '127.0.0.1', port: 2525, secure: false, requireTLS: false, rejectUnauthorized: true },
      to: ['oncall@example.com'],
    });
    expect(settings.channels.am).toMatchObject({
      alertname: 'MateriDeploymentFailed',
      endsAfter: 86_400_000,
    });
    // Secrets stay references until a message is sent.
    expect(settings.channels.pager).toMatchObject({ routingKey: '${PAGERDUTY_ROUTING_KEY}' });
    expect(settings.routes[0]).toEqual({
      events: ['deployment:failed', 'rollback:*'],
      environments: ['production'],
      severities: ['critical'],
      channels: ['deploys', 'oncall-mail', 'pager', 'am'],
    });
    expect(settings.rateLimit).toEqual({ perChannel: 30, windowMs: 60_000 });
    expect(settings.templates).toEqual({
      ...DEFAULT_TEMPLATES,
      emailSubject: '[{{environment}}] {{project}} {{version}}: {{status}}',
    });
  });

  it('loads JSON files and accepts durations as text', async () => {
    const path = await file(
      'notifier.json',
      JSON.stringify({
        ...minimal,
        rateLimit: { perChannel: 5, windowMs: '2m' },
        channels: { deploys: { ...minimal.channels.deploys, timeoutMs: '3s' } },
      }),
    );
    const settings = await loadNotifierSettings(path);
    expect(settings.rateLimit).toEqual({ perChannel: 5, windowMs: 120_000 });
    expect(settings.channels.deploys).toMatchObject({ timeoutMs: 3000 });
    expect(settings.dashboardUrl).toBe('http://127.0.0.1:4600');
  });

  it('names the route and channel when a route points at a channel that does not exist', () => {
    expect(
      problem({ ...minimal, routes: [{ events: ['deployment:failed'], channels: ['deploys', 'pagr'] }] }),
    ).toBe('notifier.yaml: routes[0].channels[1]: no channel named "pagr" in channels');
  });

  it('names the missing key of a channel', () => {
    expect(problem({ ...minimal, channels: { deploys: { type: 'slack' } } })).toBe(
      'notifier.yaml: channels.deploys.webhookUrl: is required',
    );
  });

  it('lists the channel types when a type is unknown', () => {
    expect(problem({ ...minimal, channels: { deploys: { type: 'teams', webhookUrl: 'https://x' } } })).toBe(
      'notifier.yaml: channels.deploys.type: must be one of slack, email, pagerduty, alertmanager, webhook, status',
    );
  });

  it('rejects an event type that is not in the catalog, so a typo does not silence a route', () => {
    expect(problem({ ...minimal, routes: [{ events: ['deployment:faild'], channels: ['deploys'] }] })).toBe(
      'notifier.yaml: routes[0].events[0]: unknown event type "deployment:faild"',
    );
  });

  it('rejects unknown severities and unknown keys', () => {
    expect(
      problem({
        ...minimal,
        routes: [{ events: ['rollback:*'], severities: ['urgent'], channels: ['deploys'] }],
      }),
    ).toMatch(
      /^notifier\.yaml: routes\[0\]\.severities\[0\]: Invalid option: expected one of "info"\|"warning"\|"critical"$/,
    );
    expect(problem({ ...minimal, retries: 3 })).toBe('notifier.yaml: Unrecognized key: "retries"');
  });

  it('rejects a template that uses a field the notifier does not provide', () => {
    expect(problem({ ...minimal, templates: { slackTitle: '{{headline}} {{secretz}}' } })).toBe(
      'notifier.yaml: templates.slackTitle: unknown field "{{secretz}}"',
    );
  });

  it('rejects bad durations and rate limits with the expected form', () => {
    expect(problem({ ...minimal, rateLimit: { perChannel: 0 } })).toMatch(
      /^notifier\.yaml: rateLimit\.perChannel: Too small/,
    );
    expect(problem({ ...minimal, rateLimit: { windowMs: '1 minute' } })).toBe(
      'notifier.yaml: rateLimit.windowMs: must be milliseconds or a duration like 500ms, 30s, 5m, 1h',
    );
  });

  it('never repeats a literal secret value in its messages', () => {
    const secretUrl = 'hxxps://hooks.slack.com/services/T000/B000/SuperSecretToken123';
    const message = problem({ ...minimal, channels: { deploys: { type: 'slack', webhookUrl: secretUrl } } });
    expect(message).toBe(
      'notifier.yaml: channels.deploys.webhookUrl: must be an http(s) URL or a ${NAME} reference',
    );
    expect(message).not.toContain('SuperSecretToken123');
  });

  it('reports a YAML syntax error by position without quoting the line', async () => {
    const path = await file(
      'broken.yaml',
      "channels:\n  deploys: { type: slack, webhookUrl: 'https://hooks.slack.com/services/T/B/LeakMe123\n",
    );
    const error = await rejectionOf(loadNotifierSettings(path));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/^.*broken\.yaml: not valid YAML/);
    expect(error.message).not.toContain('LeakMe123');
  });

  it('says which file it cannot read', async () => {
    await expect(loadNotifierSettings(join(dir, 'missing.yaml'))).rejects.toThrow(
      /missing\.yaml: cannot read notifier settings: ENOENT/,
    );
  });
});

describe('templates', () => {
  it('fills fields and leaves no empty brackets or doubled spaces for missing ones', () => {
    expect(
      renderTemplate('[{{environment}}] {{project}} {{ version }}: {{status}}', {
        environment: 'production',
        project: 'materi',
        version: 'v1.4.2',
        status: 'FAILED',
      }),
    ).toBe('[production] materi v1.4.2: FAILED');
    expect(
      renderTemplate('[{{environment}}] {{project}} {{version}}: {{status}}', {
        project: 'materi',
        status: 'DEGRADED',
      }),
    ).toBe('materi: DEGRADED');
  });
});
