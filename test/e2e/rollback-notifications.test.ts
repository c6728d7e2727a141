import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopLocalInstance } from '../../src/orchestrator/providers/index.js';
import { eventually } from '../support/redis.js';
import { type FakeProvider, startPagerDuty, startSlack } from '../workers/notifier/support/providers.js';
import { type E2E, localPlan, startE2E } from './support.js';

let e2e: E2E;
let slack: FakeProvider;
let pagerduty: FakeProvider;
let smtp: SMTPServer;
const mails: string[] = [];
const PORTS: [number, number, number] = [4761, 4762, 4763];

beforeAll(async () => {
  [slack, pagerduty] = await Promise.all([startSlack(), startPagerDuty()]);
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push(Buffer.concat(chunks).toString('utf8'));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const smtpPort = (smtp.server.address() as AddressInfo).port;
  e2e = await startE2E({
    notifierConfig: [
      'channels:',
      `  deploys: { type: slack, webhookUrl: "${slack.url}/services/T1/B2/secret-token" }`,
      `  oncall: { type: email, smtp: { host: 127.0.0.1, port: ${smtpPort}, secure: false }, from: materi@example.com, to: [oncall@example.com] }`,
      `  pager: { type: pagerduty, routingKey: "R0UT1NGKEY0000000000000000000000", url: "${pagerduty.url}/v2/enqueue" }`,
      'routes:',
      '  - events: ["rollback:completed"]',
      '    channels: [deploys, oncall, pager]',
      '',
    ].join('\n'),
  });
}, 60_000);

afterAll(async () => {
  for (const stage of ['api', 'worker', 'web']) {
    await stopLocalInstance(
      { dataDir: e2e.workdir, project: 'notify', environment: 'e2e', stage },
      { gracePeriodMs: 1000 },
    ).catch(() => {});
  }
  await e2e?.close();
  await Promise.all([
    slack?.close(),
    pagerduty?.close(),
    new Promise<void>((resolve) => smtp.close(() => resolve())),
  ]);
});

describe('an unhealthy release, through the bus', () => {
  it('is rolled back by the orchestrator, and Slack, email and the pager are told once each', async () => {
    const orchestrator = e2e.stack.orchestrator!;
    const plan = localPlan('notify', PORTS);
    const first = await orchestrator.submit({ planText: plan, planSource: 'plan.yaml', version: 'v1' });
    expect((await orchestrator.waitFor(first.id, 60_000)).status).toBe('SUCCESS');

    const bad = await orchestrator.submit({
      planText: plan,
      planSource: 'plan.yaml',
      version: 'v2-unhealthy',
    });
    const done = await orchestrator.waitFor(bad.id, 60_000);
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.reason).toMatch(/^health gate: .*unhealthy/);

    const events = (await e2e.events()).filter((e) => e.deploymentId === bad.id);
    const health = events.find((e) => e.type === 'health:check:completed')!;
    expect(health.data).toMatchObject({ status: 3, rollbackRecommended: true });
    const rollback = events.find((e) => e.type === 'rollback:completed')!;
    expect(rollback.data).toMatchObject({ restoredVersion: 'v1' });

    await eventually(
      () => slack.requests.length === 1 && mails.length === 1 && pagerduty.requests.length === 3,
      20_000,
    );
    expect(slack.requests[0]!.problems).toEqual([]);
    expect(JSON.stringify(slack.requests[0]!.json)).toContain('v2-unhealthy');
    expect(mails[0]).toMatch(/Subject: .*notify/);
    expect(pagerduty.requests.map((r) => (r.json as { event_action: string }).event_action)).toEqual([
      'trigger',
      'trigger',
      'trigger',
    ]);
    expect(new Set(pagerduty.requests.map((r) => (r.json as { dedup_key: string }).dedup_key))).toEqual(
      new Set(['materi:notify:e2e:api', 'materi:notify:e2e:worker', 'materi:notify:e2e:web']),
    );
    const sent = await eventually(async () => {
      const found = (await e2e.events()).filter(
        (e) =>
          e.type === 'notification:sent' &&
          (e.data as { notifiedEventId: string }).notifiedEventId === rollback.id,
      );
      return found.length >= 3 ? found : undefined;
    });
    expect(new Set(sent.map((e) => (e.data as { channel: string }).channel))).toEqual(
      new Set(['slack', 'email', 'pagerduty']),
    );
    expect(JSON.stringify(sent)).not.toContain('secret-token');

    // The same event delivered again (a duplicate entry with the same id): no second message.
    await e2e.stack.bus.publisher.publish({
      type: 'rollback:completed',
      id: rollback.id,
      data: rollback.data as never,
      correlationId: rollback.correlationId,
    });
    await new Promise((r) => setTimeout(r, 2000));
    expect(slack.requests).toHaveLength(1);
    expect(mails).toHaveLength(1);
    expect(pagerduty.requests).toHaveLength(3);
  }, 120_000);
});
