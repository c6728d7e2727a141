/**
 * The whole system end to end, as a user drives it: the stack (orchestrator, the four Printery
 * workers, Shield) on one backend, deployments submitted over HTTP, notifications to local Slack
 * and SMTP peers, and the dashboard in a real browser. Run by one test file per backend.
 */
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentView } from '../../src/orchestrator/index.js';
import { stopLocalInstance } from '../../src/orchestrator/providers/index.js';
import { COMPONENTS } from '../../src/runtime/stack.js';
import { eventually } from '../support/redis.js';
import { type FakeProvider, startSlack } from '../workers/notifier/support/providers.js';
import { type E2E, localPlan, startE2E } from './support.js';

const FINAL = ['SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'];

export function fullStackSuite(
  name: string,
  ports: [number, number, number],
  backend: () => Parameters<typeof startE2E>[0]['backend'],
): void {
  describe(`the whole stack on ${name}`, () => {
    let e2e: E2E;
    let slack: FakeProvider;
    let smtp: SMTPServer;
    const mails: string[] = [];
    const project = `full-${name.replace(/[^a-z]/g, '')}`.slice(0, 30);

    beforeAll(async () => {
      slack = await startSlack();
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
      e2e = await startE2E({
        backend: backend(),
        components: COMPONENTS,
        notifierConfig: [
          'channels:',
          `  deploys: { type: slack, webhookUrl: "${slack.url}/services/T1/B2/e2e-token" }`,
          `  oncall: { type: email, smtp: { host: 127.0.0.1, port: ${(smtp.server.address() as AddressInfo).port}, secure: false }, from: materi@example.com, to: [oncall@example.com] }`,
          'routes:',
          '  - events: ["deployment:completed"]',
          '    channels: [deploys]',
          '  - events: ["rollback:completed"]',
          '    channels: [deploys, oncall]',
          '',
        ].join('\n'),
      });
    }, 90_000);

    afterAll(async () => {
      for (const stage of ['api', 'worker', 'web']) {
        await stopLocalInstance(
          { dataDir: e2e.workdir, project, environment: 'e2e', stage },
          { gracePeriodMs: 1000 },
        ).catch(() => {});
      }
      await e2e?.close();
      await slack?.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }, 60_000);

    async function deploy(version: string): Promise<DeploymentView> {
      const response = await fetch(`${e2e.stack.url}/api/deployments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          plan: localPlan(project, ports),
          planSource: 'plan.yaml',
          version,
          triggeredBy: 'e2e',
        }),
      });
      expect(response.status).toBe(201);
      const { id } = (await response.json()) as DeploymentView;
      return eventually(async () => {
        const view = (await (
          await fetch(`${e2e.stack.url}/api/deployments/${id}/saga`)
        ).json()) as DeploymentView;
        return FINAL.includes(view.status) ? view : undefined;
      }, 60_000);
    }

    it('deploys v1 and v2, rolls back v3, and every component shows it', async () => {
      expect((await deploy('v1')).status).toBe('SUCCESS');
      const v2 = await deploy('v2');
      expect(v2.status).toBe('SUCCESS');
      const v3 = await deploy('v3-unhealthy');
      expect(v3.status).toBe('ROLLED_BACK');

      // The full ordered flow of v2, one correlation id.
      const all = await e2e.events();
      const flow = all.filter((e) => e.deploymentId === v2.id && e.type !== 'notification:sent');
      const types = flow.map((e) => e.type.replace(/^deployment:stage:(worker|web):/, 'deployment:stage:*:'));
      expect(types).toEqual([
        'deployment:started',
        'validation:started',
        'validation:completed',
        'dependency:check:started',
        'dependency:check:completed',
        'deployment:stage:api:started',
        'deployment:stage:api:completed',
        ...types.slice(7, 11),
        'health:check:started',
        'health:check:completed',
        'deployment:completed',
      ]);
      expect(types.slice(7, 11).sort()).toEqual([
        'deployment:stage:*:completed',
        'deployment:stage:*:completed',
        'deployment:stage:*:started',
        'deployment:stage:*:started',
      ]);
      expect(new Set(flow.map((e) => e.correlationId))).toEqual(new Set([v2.correlationId]));
      const rollbackFlow = all.filter((e) => e.deploymentId === v3.id).map((e) => e.type);
      expect(rollbackFlow).toEqual(
        expect.arrayContaining([
          'health:check:completed',
          'deployment:failed',
          'rollback:initiated',
          'rollback:completed',
        ]),
      );
      expect(rollbackFlow.indexOf('deployment:failed')).toBeLessThan(
        rollbackFlow.indexOf('rollback:initiated'),
      );
      expect(
        rollbackFlow.at(-1) === 'deployment:completed' || rollbackFlow.at(-1) === 'notification:sent',
      ).toBe(true);

      // Shield's records.
      const record = await eventually(async () => {
        const body = (await (await fetch(`${e2e.stack.url}/api/deployments/${v3.id}`)).json()) as {
          deployment?: Record<string, unknown>;
        } & Record<string, unknown>;
        const deployment = (body.deployment ?? body) as Record<string, unknown>;
        return deployment.status === 'ROLLED_BACK' && deployment.rollback ? deployment : undefined;
      }, 10_000);
      expect(record).toMatchObject({
        version: 'v3-unhealthy',
        environment: 'e2e',
        correlationId: v3.correlationId,
      });
      const listed = (await (await fetch(`${e2e.stack.url}/api/deployments?environment=e2e`)).json()) as {
        deployments: { id: string; status: string }[];
      };
      expect(listed.deployments.map((d) => d.status)).toEqual(['ROLLED_BACK', 'SUCCESS', 'SUCCESS']);

      // Notifications at the peers: a Slack message per completed deployment and the rollback; one email.
      await eventually(() => slack.requests.length === 4 && mails.length === 1, 20_000);
      expect(slack.requests.every((r) => r.problems.length === 0)).toBe(true);
      expect(mails[0]).toContain('v3-unhealthy');

      // The dashboard, in a real browser.
      const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        await page.goto(`${e2e.stack.url}/`);
        await page.getByText('ROLLED_BACK').first().waitFor({ timeout: 10_000 });
        await expect.poll(async () => page.getByText('v3-unhealthy').count()).toBeGreaterThan(0);
        await expect.poll(async () => page.getByText('SUCCESS').count()).toBeGreaterThan(1);
        await page.screenshot({ path: `test-artifacts/e2e-${name.replace(/[^a-z0-9]+/gi, '-')}.png` });
      } finally {
        await browser.close();
      }
    }, 180_000);
  });
}
