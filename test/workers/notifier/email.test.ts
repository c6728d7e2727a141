import type { AddressInfo } from 'node:net';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DeploymentStatus } from '../../../src/events/index.js';
import {
  buildNotification,
  ChannelError,
  type ChannelSettings,
  createChannel,
  DEFAULT_TEMPLATES,
  MemoryIncidentStore,
  type Templates,
} from '../../../src/workers/notifier/index.js';
import { decodedEvent, rejectionOf } from './support/events.js';

const SMTP_USER = 'materi-notifier';
const SMTP_PASS = 'smtp-Pa55word-do-not-leak';

interface Received {
  mailFrom: string;
  rcptTo: string[];
  user: string | undefined;
  raw: string;
}

let server: SMTPServer;
let port: number;
const received: Received[] = [];

beforeAll(async () => {
  server = new SMTPServer({
    // Plain SMTP on loopback with AUTH, as a relay inside a private network would offer it.
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASS) callback(null, { user: auth.username });
      else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  received.length = 0;
});

/** Just enough MIME: headers (unfolded), and each part of a multipart body decoded. */
function parseMime(raw: string): {
  headers: Record<string, string>;
  parts: { type: string; body: string }[];
} {
  const [head, ...rest] = raw.split(/\r?\n\r?\n/);
  const headers: Record<string, string> = {};
  for (const line of head!.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = rest.join('\n\n');
  const boundary = /boundary="?([^";]+)"?/.exec(headers['content-type'] ?? '')?.[1];
  if (!boundary) return { headers, parts: [{ type: headers['content-type'] ?? '', body }] };
  const parts = body
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((part) => {
      const [partHead, ...partBody] = part.replace(/^\r?\n/, '').split(/\r?\n\r?\n/);
      const type = /content-type:\s*([^;\r\n]+)/i.exec(partHead!)?.[1] ?? '';
      const encoding = /content-transfer-encoding:\s*(\S+)/i.exec(partHead!)?.[1]?.toLowerCase();
      let text = partBody.join('\n\n').replace(/\r?\n$/, '');
      if (encoding === 'quoted-printable') {
        text = Buffer.from(
          text
            .replace(/=\r?\n/g, '')
            .replace(/=([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
          'latin1',
        ).toString('utf8');
      } else if (encoding === 'base64') {
        text = Buffer.from(text, 'base64').toString('utf8');
      }
      return { type, body: text.replace(/\r\n/g, '\n') };
    });
  return { headers, parts };
}

const env: Record<string, string> = { SMTP_USER, SMTP_PASS };

function mailChannel(overrides: Partial<{ pass: string; templates: Templates }> = {}) {
  const settings = {
    type: 'email',
    smtp: {
      host: '127.0.0.1',
      port,
      secure: false,
      requireTLS: false,
      ignoreTLS: false,
      rejectUnauthorized: true,
      auth: { user: '${SMTP_USER}', pass: overrides.pass ?? '${SMTP_PASS}' },
    },
    from: 'Materi <materi@example.com>',
    to: ['oncall@example.com', 'lead@example.com'],
  } as ChannelSettings;
  return createChannel(settings, {
    name: 'oncall-mail',
    lookup: (name) => env[name],
    templates: overrides.templates ?? DEFAULT_TEMPLATES,
    incidents: new MemoryIncidentStore(),
    timeoutMs: 3000,
  });
}

const failure = () =>
  buildNotification(
    decodedEvent('deployment:failed', {
      deploymentId: 'dep-42',
      project: 'materi',
      environment: 'production',
      version: 'v1.4.2',
      reason: 'stage railway: deploy command exited 1',
      failedStage: 'railway',
      errorDetails: 'Error: <missing> script & "start"',
    }),
    { dashboardUrl: 'http://127.0.0.1:4600' },
  );

describe('e-mail channel (real SMTP server)', () => {
  it('authenticates and delivers a text and HTML message with the templated subject', async () => {
    const receipt = await mailChannel().send(failure());
    expect(received).toHaveLength(1);
    const mail = received[0]!;
    expect(mail.user).toBe(SMTP_USER);
    expect(mail.mailFrom).toBe('materi@example.com');
    expect(mail.rcptTo).toEqual(['oncall@example.com', 'lead@example.com']);
    const { headers, parts } = parseMime(mail.raw);
    expect(headers.subject).toBe('[production] materi v1.4.2: FAILED');
    expect(headers.from).toBe('Materi <materi@example.com>');
    expect(headers.to).toBe('oncall@example.com, lead@example.com');
    expect(headers['x-materi-event']).toBe('deployment:failed');
    expect(headers['content-type']).toMatch(/^multipart\/alternative/);
    expect(receipt.providerId).toBe(headers['message-id']);
    expect(receipt.detail).toMatch(/^250 /);

    const text = parts.find((p) => p.type === 'text/plain')!.body;
    expect(text).toContain('Deployment failed at stage railway\nmateri v1.4.2 to production');
    expect(text).toContain('Reason: stage railway: deploy command exited 1');
    expect(text).toContain('Failing stage: railway');
    expect(text).toContain('Error: <missing> script & "start"');
    expect(text).toContain('Open in Shield: http://127.0.0.1:4600/deployments/dep-42');

    const html = parts.find((p) => p.type === 'text/html')!.body;
    expect(html).toContain('>Deployment failed at stage railway</h2>');
    expect(html).toContain('Error: &lt;missing&gt; script &amp; &quot;start&quot;');
    expect(html).toContain('<a href="http://127.0.0.1:4600/deployments/dep-42">Open in Shield</a>');
    expect(html).toMatch(/<th[^>]*>Version<\/th><td[^>]*>v1\.4\.2<\/td>/);
  });

  it('uses a custom subject template', async () => {
    const templates = { ...DEFAULT_TEMPLATES, emailSubject: '{{severity}}: {{headline}} ({{deploymentId}})' };
    const success = buildNotification(
      decodedEvent('deployment:completed', {
        deploymentId: 'dep-43',
        project: 'materi',
        environment: 'staging',
        version: 'v2',
        status: DeploymentStatus.SUCCESS,
      }),
      { dashboardUrl: 'http://127.0.0.1:4600' },
    );
    await mailChannel({ templates }).send(success);
    expect(parseMime(received[0]!.raw).headers.subject).toBe('info: Deployment succeeded (dep-43)');
  });

  it('asks for an approval with the whole story and a link to answer it', async () => {
    const request = buildNotification(
      decodedEvent('approval:requested', {
        deploymentId: 'dep-60',
        project: 'materi',
        environment: 'production',
        version: 'v1.5.0',
        gate: 'environment',
        approvers: 'deployer',
        reason: 'change window <2> & review',
        deadline: timestampFromDate(new Date('2026-03-01T18:00:00.000Z')),
        url: '',
      }),
      { dashboardUrl: 'http://127.0.0.1:4600' },
    );
    await mailChannel().send(request);
    const { headers, parts } = parseMime(received[0]!.raw);
    expect(headers.subject).toBe('[production] materi v1.5.0: WAITING_FOR_APPROVAL');
    const line =
      'materi v1.5.0 to production waits for approval (environment) by deployer until 2026-03-01 18:00 UTC: ' +
      'change window <2> & review';
    const text = parts.find((p) => p.type === 'text/plain')!.body;
    expect(text).toContain(`Waits for approval (environment)\nmateri v1.5.0 to production\n\n${line}\n`);
    expect(text).toContain('Approve or reject in Shield: http://127.0.0.1:4600/deployments/dep-60');
    const html = parts.find((p) => p.type === 'text/html')!.body;
    expect(html).toContain(`<p>${line.replace('<2> &', '&lt;2&gt; &amp;')}</p>`);
    expect(html).toContain(
      '<a href="http://127.0.0.1:4600/deployments/dep-60">Approve or reject in Shield</a>',
    );
  });

  it("fails with the server's answer and never the password when the login is refused", async () => {
    env.WRONG_PASS = 'wrong-Pa55word-secret';
    const error = await rejectionOf(mailChannel({ pass: '${WRONG_PASS}' }).send(failure()));
    expect(error).toBeInstanceOf(ChannelError);
    expect(error.message).toMatch(
      new RegExp(`^email:oncall-mail: SMTP 127\\.0\\.0\\.1:${port} refused or failed: .*535`),
    );
    expect(error.message).not.toContain('wrong-Pa55word-secret');
    expect(received).toHaveLength(0);
  });
});
