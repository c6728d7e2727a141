import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../../src/bus/router.js';
import type { OutgoingEvent } from '../../src/bus/types.js';
import { ApprovalOutcome, DeploymentStatus } from '../../src/events/index.js';
import { sqliteBackend } from '../store/backends.js';
import { approvalEvents, deploymentScenario } from './fixtures.js';
import { type ShieldHarness, startShield } from './harness.js';

// Browser globals used inside page.evaluate callbacks (the project compiles without the DOM library).
declare function getComputedStyle(element: unknown): { backgroundColor: string };

declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  body: { innerText: string };
  cookie: string;
};
declare const sessionStorage: { getItem(key: string): string | null };

/** The little of the DOM the layout test measures with. */
interface DomNode {
  textContent: string | null;
}
interface DomElement extends DomNode {
  scrollWidth: number;
  clientWidth: number;
  classList: { contains(name: string): boolean };
}
interface DomDocument {
  querySelectorAll(selector: string): Iterable<DomElement>;
  createTreeWalker(root: DomElement, whatToShow: number): { nextNode(): DomNode | null };
  createRange(): {
    setStart(node: DomNode, offset: number): void;
    setEnd(node: DomNode, offset: number): void;
    getClientRects(): Iterable<{ top: number }>;
  };
}

const artifacts = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const XSS = '<img src=x onerror=alert(1)>';

describe('Shield dashboard in a browser', () => {
  let harness: ShieldHarness;
  let browser: Browser;
  let page: Page;
  const actions: { id: string; action: string; body: unknown }[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    harness = await startShield(sqliteBackend, {
      // Stand-ins for the orchestrator's write routes, which the dashboard's buttons call.
      routes(app) {
        for (const action of ['cancel', 'rollback']) {
          app.post(
            `/api/deployments/:id/${action}`,
            { config: { access: 'write' } },
            async (request, reply) => {
              const { id } = request.params as { id: string };
              actions.push({ id, action, body: request.body });
              return reply
                .status(202)
                .send({ id, status: action === 'cancel' ? 'CANCELLING' : 'ROLLING_BACK' });
            },
          );
        }
      },
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
  });

  afterAll(async () => {
    await browser?.close();
    await harness?.close();
  });

  /** Publishes one event stamped with the current time, as the orchestrator would. */
  async function publish(event: OutgoingEvent): Promise<void> {
    await harness.bus.publisher.publish({ ...event, time: new Date() });
  }

  it('shows a deployment live, its page, and renders hostile text as text', async () => {
    await page.goto(harness.url);
    await page.locator('#loopback-notice').waitFor();
    expect(await page.locator('#loopback-notice').textContent()).toBe(
      'writes are open to this machine only: no token is configured',
    );
    await page.locator('#connection[data-state="live"]').waitFor();

    const id = `ui-${randomUUID().slice(0, 6)}`;
    const events = deploymentScenario({ id, services: ['api', 'web'] });
    const byType = (type: string) => events.find((e) => e.type === type)!;
    const card = page.locator(`.deployment-card[data-deployment-id="${id}"]`);

    await publish(byType('deployment:started'));
    await card.waitFor({ timeout: 2000 });
    expect(await card.locator('.badge').first().textContent()).toBe('PENDING');
    for (const type of [
      'validation:started',
      'validation:completed',
      'dependency:check:started',
      'dependency:check:completed',
    ]) {
      await publish(byType(type));
    }

    // The timeline is redrawn every second, so the bar is looked up and measured in one step.
    const bar = `.deployment-card[data-deployment-id="${id}"] .gantt-bar[data-row="stage:build"]`;
    const colourOf = (selector: string) =>
      page.evaluate((s) => getComputedStyle(document.querySelector(s)).backgroundColor, selector);
    await publish(byType('deployment:stage:build:started'));
    await card
      .locator('.gantt-bar[data-row="stage:build"][data-status="RUNNING"]')
      .waitFor({ timeout: 2000 });
    const runningColour = await colourOf(`${bar}[data-status="RUNNING"]`);
    await publish(byType('deployment:stage:build:completed'));
    await card
      .locator('.gantt-bar[data-row="stage:build"][data-status="SUCCESS"]')
      .waitFor({ timeout: 2000 });
    const doneColour = await colourOf(`${bar}[data-status="SUCCESS"]`);
    expect(runningColour).toBe('rgb(47, 116, 208)');
    expect(doneColour).toBe('rgb(46, 157, 91)');

    for (const stage of ['api', 'web']) {
      await publish(byType(`deployment:stage:${stage}:started`));
      await publish(byType(`deployment:stage:${stage}:completed`));
    }
    await publish(byType('health:check:started'));
    const blocked = card.locator('.blocked');
    await card.locator('.blocked:not([hidden])').waitFor({ timeout: 2000 });
    expect(await blocked.textContent()).toMatch(/^blocked on: printery-health-monitor, \d+ s$/);
    const firstWait = Number(/(\d+) s$/.exec((await blocked.textContent()) ?? '')![1]);
    await page.waitForFunction(
      ({ selector, before }) => {
        const text = document.querySelector(selector)?.textContent ?? '';
        return Number(/(\d+) s$/.exec(text)?.[1] ?? -1) > before;
      },
      { selector: `.deployment-card[data-deployment-id="${id}"] .blocked`, before: firstWait },
      { timeout: 2500 },
    );

    // The operator cancels from the card (two clicks: the second confirms).
    const cancel = card.getByRole('button', { name: 'Cancel' });
    await cancel.click();
    await card.getByRole('button', { name: 'Confirm cancel' }).click();
    await card.locator('.action-result', { hasText: 'cancel requested (CANCELLING)' }).waitFor();
    expect(actions).toEqual([{ id, action: 'cancel', body: {} }]);
    await page.screenshot({ path: `${artifacts}dashboard-live.png`, fullPage: true });

    await publish(byType('health:check:completed'));
    await publish(byType('deployment:completed'));
    await publish(byType('notification:sent'));
    await card.locator('.badge[data-status="SUCCESS"]').first().waitFor({ timeout: 2000 });
    expect(await card.locator('.blocked').isHidden()).toBe(true);
    const historyRow = page.locator(`#history tr[data-deployment-id="${id}"]`);
    await historyRow.locator('.badge[data-status="SUCCESS"]').waitFor({ timeout: 2000 });

    // The deployment page: full timeline, check results, health charts, notifications.
    await historyRow.getByRole('link', { name: id }).click();
    await page.waitForURL(`${harness.url}/deployments/${id}`);
    await page
      .locator('.timeline li')
      .nth(events.length - 1)
      .waitFor();
    expect(await page.locator('.timeline li').count()).toBe(events.length);
    expect(await page.locator('.timeline li').first().getAttribute('data-type')).toBe('deployment:started');
    expect(await page.locator('#validation tbody tr').count()).toBe(2);
    expect(await page.locator('#dependencies tbody tr').first().textContent()).toContain('postgres-main');
    expect(await page.locator('#health svg.health-chart.response-time polyline.latency-line').count()).toBe(
      2,
    );
    expect(await page.locator('#health svg.health-chart.error-rate rect.error-bar').count()).toBeGreaterThan(
      0,
    );
    expect(await page.locator('#notifications tbody tr').textContent()).toContain('#deploys');
    await page.screenshot({ path: `${artifacts}dashboard-deployment.png`, fullPage: true });

    // A rollback on the finished deployment, from its page.
    await page.getByRole('button', { name: 'Roll back' }).click();
    await page.getByRole('button', { name: 'Confirm roll back' }).click();
    await page.locator('.action-result', { hasText: 'rollback requested (ROLLING_BACK)' }).waitFor();
    expect(actions.at(-1)).toEqual({ id, action: 'rollback', body: {} });

    // Hostile text in a version, a reason and a stage description stays text.
    const hostile = `xss-${randomUUID().slice(0, 6)}`;
    const hostileEvents = deploymentScenario({
      id: hostile,
      version: XSS,
      reason: XSS,
      description: XSS,
      outcome: 'rollback',
      start: new Date(),
    });
    await harness.bus.publisher.publishBatch(hostileEvents);
    await page.goBack();
    await page.waitForURL(`${harness.url}/`);
    const hostileCard = page.locator(`.deployment-card[data-deployment-id="${hostile}"]`);
    await hostileCard.locator('.badge[data-status="ROLLED_BACK"]').first().waitFor({ timeout: 3000 });
    expect(await hostileCard.locator('.version').textContent()).toBe(XSS);
    expect(await hostileCard.locator('.failure').textContent()).toBe(`failed: ${XSS}`);
    expect(await page.locator('img').count()).toBe(0);

    // The history filters by status and service.
    await page.locator('#history-filters select[name="status"]').selectOption('ROLLED_BACK');
    await page.locator('#history-filters input[name="service"]').fill('web');
    await page.locator('#history-filters').getByRole('button', { name: 'Filter' }).click();
    await page.locator(`#history tr[data-deployment-id="${id}"]`).waitFor({ state: 'detached' });
    expect(await page.locator('#history tbody tr').count()).toBe(1);
    expect(await page.locator('#history tbody tr').getAttribute('data-deployment-id')).toBe(hostile);

    await page.goto(`${harness.url}/deployments/${hostile}`);
    await page.locator('#rollback').waitFor();
    expect(await page.locator('h1 .version').textContent()).toBe(XSS);
    expect(await page.locator('.failure-box').textContent()).toContain(XSS);
    expect(await page.locator('#stages tr[data-stage="build"] td').nth(1).textContent()).toBe(XSS);
    expect(await page.getByText(XSS).first().isVisible()).toBe(true);
    // The unhealthy service's chart marks its failed probes.
    expect(await page.locator('[data-service="api"] svg.response-time circle.probe.failed').count()).toBe(3);
    expect(await page.locator('img').count()).toBe(0);
    await page.screenshot({ path: `${artifacts}dashboard-xss.png`, fullPage: true });

    expect(problems).toEqual([]);
  }, 60_000);

  it('keeps showing what the orchestrator said when someone else publishes deployment:completed', async () => {
    const id = `ui-forged-${randomUUID().slice(0, 6)}`;
    const events = deploymentScenario({ id, start: new Date() });
    await harness.bus.publisher.publishBatch(events);
    await page.goto(`${harness.url}/deployments/${id}`);
    await page.locator('.page-header .badge[data-status="SUCCESS"]').waitFor();
    await page
      .locator('.timeline li')
      .nth(events.length - 1)
      .waitFor();

    const forged = await harness.bus.publisher.publish({
      type: 'deployment:completed',
      source: 'materi/cli',
      deploymentId: id,
      data: { deploymentId: id, status: DeploymentStatus.FAILURE },
    });
    const row = page.locator(`.timeline li.ignored[data-event-id="${forged.event.id}"]`);
    await row.waitFor({ timeout: 3000 });
    expect(await row.locator('.ignored-reason').textContent()).toBe(
      'ignored: deployment:completed from "materi/cli": only the orchestrator (materi/orchestrator) moves a deployment',
    );
    expect(await page.locator('.page-header .badge').textContent()).toBe('SUCCESS');
    expect(await page.locator('.failure-box').count()).toBe(0);
    expect(await page.locator('.timeline li').count()).toBe(events.length + 1);
    expect(problems).toEqual([]);
  });

  it("prints a rolled-back deployment's failure reason once, on its card and on its page", async () => {
    const id = `ui-reason-${randomUUID().slice(0, 6)}`;
    // The texts as the orchestrator writes them: the reason is the gate's name and the monitor's
    // reason, which is also the failure's details, the health gate's reason and the rollback's.
    const healthReason = `unhealthy over a 5000 ms window: api unhealthy (error rate 50% > unhealthy limit 20%) ${id}`;
    const reason = `health gate: ${healthReason}`;
    await harness.bus.publisher.publishBatch(
      deploymentScenario({ id, outcome: 'rollback', healthReason, start: new Date() }),
    );
    const seen = async (text: string) => {
      // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person sees
      const visible = await page.evaluate(() => document.body.innerText);
      return visible.split(text).length - 1;
    };

    await page.goto(harness.url);
    const card = page.locator(`.deployment-card[data-deployment-id="${id}"]`);
    await card.locator('.badge[data-status="ROLLED_BACK"]').first().waitFor({ timeout: 3000 });
    expect(await card.locator('.failure').textContent()).toBe(`failed: ${reason}`);
    expect(await seen(healthReason)).toBe(1);

    await page.goto(`${harness.url}/deployments/${id}`);
    await page.locator('#rollback').waitFor();
    await page.screenshot({ path: `${artifacts}dashboard-failure-reason.png`, fullPage: true });
    expect(await page.locator('.failure-box').textContent()).toBe(`Failed: ${reason}`);
    expect(await seen(healthReason)).toBe(1);
    expect(await page.locator('#rollback').textContent()).toContain('reasonthe failure above');
    expect(await page.locator('#health p').first().textContent()).toBe('verdict: UNHEALTHY');
    expect(problems).toEqual([]);
  });

  it('lists dead letters with a replay button and the worker groups', async () => {
    const fields = {
      id: randomUUID(),
      type: 'health:check:started',
      source: 'materi/orchestrator',
      time: new Date().toISOString(),
      correlation_id: randomUUID(),
      causation_id: '',
      deployment_id: 'ui-dlq',
      priority: 'HIGH',
      schema: 'materi.events.v1.HealthCheckStartedEvent',
      content_type: 'application/json',
      data: '{"deploymentId":"ui-dlq"}',
    };
    const record = await harness.failedEvents.record({
      dlqEntryId: '1-0',
      sourceStream: `${harness.prefix}:health:check:started`,
      entryId: '1700000000000-0',
      eventId: fields.id,
      eventType: fields.type,
      group: 'printery-health-monitor',
      consumer: 'printery-health-monitor:host:1:0',
      attempts: 5,
      error: `probe failed ${XSS}`,
      stack: '',
      fields,
      correlationId: fields.correlation_id,
      deploymentId: 'ui-dlq',
      firstFailedAt: new Date(),
      lastFailedAt: new Date(),
    });
    await page.goto(`${harness.url}/operations`);
    const row = page.locator(`#dlq tr[data-failed-event="${record.id}"]`);
    await row.waitFor();
    expect(await row.locator('.error-text').textContent()).toBe(`probe failed ${XSS}`);
    await row.getByRole('button', { name: 'Replay' }).click();
    await row.locator('.action-result', { hasText: 'replayed to printery-health-monitor' }).waitFor();
    expect((await harness.failedEvents.get(record.id))?.status).toBe('replayed');
    await page.locator('#workers tr[data-group="shield"]').waitFor();
    // The harness beats like a worker process, so the projection's consumer shows alive.
    expect(await page.locator('#workers tr[data-group="shield"] td').nth(4).textContent()).toBe('1 alive');
    expect(await page.locator('img').count()).toBe(0);
    expect(problems).toEqual([]);
  });

  it('keeps every word of the Operations tables on one line at 1400 px', async () => {
    // What a real installation shows: long group names, event types and errors, several processes.
    const router = new Router({ subscriber: harness.bus.subscriber, publisher: harness.bus.publisher });
    for (const [group, type] of [
      ['printery-dependency-checker', 'dependency:check:started'],
      ['printery-health-monitor', 'health:check:started'],
    ] as const) {
      router.addHandler({ name: group, group, types: [type], handler: async () => {} });
    }
    await router.start();
    // Worker processes on other machines, as their heartbeats describe them.
    const processes = ['dependency-checker', 'health-monitor', 'notifier'].map((worker, i) => ({
      host: `build-host-0${i + 7}.ci.internal`,
      pid: 48_213 + i,
      role: `worker ${worker}`,
      groups: [`printery-${worker}`, 'shield'],
      startedAt: new Date(),
      beatAt: new Date(),
    }));
    for (const beat of processes) await harness.bus.inspector.beat(beat);
    const errors = [
      'Unrecoverable: payload does not match materi.events.v1.HealthCheckStartedEvent: services[0].endpoints is required',
      'connect ECONNREFUSED 127.0.0.1:5432 (postgres-main, critical) after 5 attempts with backoff; giving up',
      'deadline exceeded',
    ];
    const recorded: string[] = [];
    for (const [i, error] of errors.entries()) {
      const eventId = randomUUID();
      const { id } = await harness.failedEvents.record({
        dlqEntryId: `${i + 2}-0`,
        sourceStream: `${harness.prefix}:dependency:check:started`,
        entryId: `170000000000${i}-0`,
        eventId,
        eventType: i === 0 ? 'health:check:started' : 'dependency:check:started',
        group: i === 0 ? 'printery-health-monitor' : 'printery-dependency-checker',
        consumer: 'printery-dependency-checker:build-host-07:48213:3',
        attempts: 5,
        error,
        stack: '',
        fields: { id: eventId },
        correlationId: randomUUID(),
        deploymentId: `dep-${randomUUID().slice(0, 12)}`,
        firstFailedAt: new Date(),
        lastFailedAt: new Date(),
      });
      recorded.push(id);
    }
    const wide = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    try {
      await wide.goto(`${harness.url}/operations`);
      for (const id of recorded) await wide.locator(`#dlq tr[data-failed-event="${id}"]`).waitFor();
      await wide.locator('#workers tr[data-group="printery-health-monitor"]').waitFor();
      await wide.locator('#workers tr', { hasText: processes.at(-1)!.host }).waitFor();
      await wide.screenshot({ path: `${artifacts}operations-1400.png`, fullPage: true });
      // Every word of every header and cell, measured where it is drawn: a word broken across lines
      // has boxes on two lines. Names, ids and times must not break at all (not even at a hyphen);
      // free text (errors, lists) may wrap between words, including after a hyphen.
      const broken = await wide.evaluate(() => {
        const found: string[] = [];
        const doc = document as unknown as DomDocument;
        const segmenter = new Intl.Segmenter('en', { granularity: 'word' });
        for (const cell of doc.querySelectorAll('.operations th, .operations td')) {
          const freeText = cell.classList.contains('wrap');
          const walker = doc.createTreeWalker(cell, 4);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const text = node.textContent ?? '';
            const words = freeText
              ? [...segmenter.segment(text)]
                  .filter((s) => s.isWordLike)
                  .map((s) => ({ at: s.index, word: s.segment }))
              : [...text.matchAll(/\S+/g)].map((m) => ({ at: m.index, word: m[0] }));
            for (const { at, word } of words) {
              const range = doc.createRange();
              range.setStart(node, at);
              range.setEnd(node, at + word.length);
              const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
              if (lines.size > 1) found.push(word);
            }
          }
        }
        return found;
      });
      expect(broken).toEqual([]);
      // The tables fit the page: nothing is cut off or needs scrolling at this width.
      const overflow = await wide.evaluate(() =>
        [...(document as unknown as DomDocument).querySelectorAll('.operations .table-scroll')].map(
          (box) => box.scrollWidth - box.clientWidth,
        ),
      );
      expect(overflow).toEqual([0, 0, 0]);
    } finally {
      await wide.close();
      for (const beat of processes) await harness.bus.inspector.beat(beat, true);
      await router.close(500);
    }
    expect(problems).toEqual([]);
  });

  it('asks to sign in when the server wants a token, then shows the data live from a session cookie', async () => {
    const guarded = await startShield(sqliteBackend, {
      auth: { viewerToken: 'viewer-secret', apiToken: 'op' },
    });
    try {
      await guarded.bus.publisher.publishBatch(deploymentScenario({ id: 'guarded-1' }));
      const tab = await browser.newPage();
      await tab.goto(guarded.url);
      await tab.locator('#token-form:not([hidden])').waitFor();
      // A wrong token: the form stays, with the server's message.
      await tab.locator('#token-input').fill('not-a-token');
      await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
      await tab.locator('#token-message', { hasText: 'the token is not known to this server' }).waitFor();
      await tab.locator('#token-input').fill('viewer-secret');
      await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
      await tab.locator('#history tr[data-deployment-id="guarded-1"]').waitFor({ timeout: 5000 });
      expect(await tab.locator('#loopback-notice').count()).toBe(0);
      // The page keeps no token: the session is an HttpOnly cookie that scripts cannot read.
      expect(await tab.evaluate(() => sessionStorage.getItem('materi.token'))).toBeNull();
      expect(await tab.evaluate(() => document.cookie)).toBe('');
      const [cookie] = await tab.context().cookies();
      expect(cookie).toMatchObject({ name: 'materi_session', httpOnly: true, sameSite: 'Strict', path: '/' });
      expect(cookie!.value).not.toContain('viewer-secret');
      expect(await tab.locator('#identity').textContent()).toBe(
        'signed in as viewer-token (viewer) Sign out',
      );
      // The live stream runs on the cookie, and shows what is published now.
      await tab.locator('#connection[data-state="live"]').waitFor();
      await guarded.bus.publisher.publishBatch(deploymentScenario({ id: 'guarded-2' }));
      await tab.locator('#history tr[data-deployment-id="guarded-2"]').waitFor({ timeout: 5000 });
      // Signing out ends the session: the next read asks to sign in again.
      await tab.getByRole('button', { name: 'Sign out' }).click();
      await tab.locator('#identity[hidden]').waitFor({ state: 'attached' });
      expect(await tab.context().cookies()).toEqual([]);
      await tab.close();
    } finally {
      await guarded.close();
    }
  });
});

describe('Shield dashboard: release controls in a browser', () => {
  const OPERATOR = 'op-secret-token';
  const VIEWER = 'viewer-secret-token';
  let harness: ShieldHarness;
  let browser: Browser;
  /** Requests the page sent to the stand-ins of the orchestrator's routes. */
  const calls: {
    method: string;
    path: string;
    body: unknown;
    authorization: string | undefined;
    actor: string | undefined;
  }[] = [];
  const waitingId = `ui-wait-${randomUUID().slice(0, 6)}`;
  const deadline = new Date(Date.now() + 2 * 3_600_000);
  const releases = [
    {
      project: 'printery',
      environment: 'production',
      version: 'v3',
      deploymentId: 'dep-v3',
      since: '2026-03-01T10:00:00.000Z',
      kind: 'deploy',
      triggeredBy: 'ci:pipeline-42',
    },
    {
      project: 'printery',
      environment: 'staging',
      version: 'v1',
      deploymentId: 'dep-rb-1',
      since: '2026-03-02T09:00:00.000Z',
      kind: 'rollback',
      triggeredBy: 'alice',
    },
  ];
  const productionHistory = [
    {
      version: 'v3',
      deploymentId: 'dep-v3',
      kind: 'deploy',
      since: '2026-03-01T10:00:00.000Z',
      triggeredBy: 'ci',
    },
    {
      version: 'v2',
      deploymentId: 'dep-v2',
      kind: 'deploy',
      since: '2026-02-20T10:00:00.000Z',
      until: '2026-03-01T10:00:00.000Z',
      triggeredBy: 'ci',
    },
    {
      version: 'v1',
      deploymentId: 'dep-v1',
      kind: 'deploy',
      since: '2026-02-10T10:00:00.000Z',
      until: '2026-02-20T10:00:00.000Z',
      triggeredBy: 'ci',
    },
  ];

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    harness = await startShield(sqliteBackend, {
      auth: { apiToken: OPERATOR, viewerToken: VIEWER },
      // Stand-ins for the orchestrator's release routes, with the shapes of its API.
      routes(app) {
        const record = (request: {
          method: string;
          url: string;
          body: unknown;
          headers: { authorization?: string };
          actor: string | undefined;
        }) =>
          calls.push({
            method: request.method,
            path: request.url,
            body: request.body ?? null,
            authorization: request.headers.authorization,
            actor: request.actor,
          });
        app.get('/api/environments', async () => releases);
        app.get('/api/environments/:project/:environment/history', async (request) => {
          const { environment } = request.params as { environment: string };
          return environment === 'production' ? productionHistory : [];
        });
        app.post(
          '/api/environments/:project/:environment/rollback',
          { config: { access: 'write' } },
          async (request, reply) => {
            record(request);
            const { environment } = request.params as { environment: string };
            if (environment === 'staging') {
              return reply.status(409).send({
                error: {
                  code: 'MATERI_ERR_NOT_CURRENT_RELEASE',
                  message:
                    'printery staging runs v1 (dep-rb-1), a rollback itself; nothing older to go back to',
                },
              });
            }
            const { to } = (request.body ?? {}) as { to?: string };
            return reply.status(202).send({ id: 'dep-rb-2', status: 'RUNNING', version: to ?? 'v2' });
          },
        );
        for (const verb of ['approve', 'reject']) {
          app.post(
            `/api/deployments/:id/${verb}`,
            { config: { access: 'write' } },
            async (request, reply) => {
              record(request);
              const { id } = request.params as { id: string };
              if (verb === 'reject') {
                return reply.status(409).send({
                  error: {
                    code: 'MATERI_ERR_CONFLICT',
                    message: `deployment ${id} does not wait for an approval`,
                  },
                });
              }
              return reply.status(202).send({ id, status: 'RUNNING' });
            },
          );
        }
      },
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    // A deployment past its dependency gate, waiting for a person before its first stage.
    const start = new Date();
    const scenario = deploymentScenario({ id: waitingId, start }).filter(
      (e) => e.time!.getTime() - start.getTime() <= 900,
    );
    await harness.bus.publisher.publishBatch([
      ...scenario,
      ...approvalEvents({
        id: waitingId,
        correlationId: scenario[0]!.correlationId!,
        at: new Date(start.getTime() + 950),
        deadline,
        reason: 'production releases need a second pair of eyes',
      }),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await harness?.close();
  });

  /** A tab already signed in with a token (as after the sign-in form), and the problems it reports. */
  async function tab(token: string): Promise<{ page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // The context's requests share its cookies: this sets the session cookie the page then sends.
    const login = await context.request.post(`${harness.url}/api/session`, { data: { token } });
    expect(login.status()).toBe(200);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      // The browser logs every refused request (the 409s below) by itself.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
        problems.push(`console: ${message.text()}`);
    });
    return { page, problems };
  }

  const localTime = (page: Page, iso: string) =>
    page.evaluate((value) => new Date(value).toLocaleString(undefined, { hour12: false }), iso);

  it('shows a viewer what runs where and what a deployment waits for, without action buttons', async () => {
    const { page, problems } = await tab(VIEWER);
    try {
      await page.goto(`${harness.url}/environments`);
      const production = page.locator('#environments tr.environment[data-environment="production"]');
      await production.waitFor();
      expect(await page.locator('nav a.current').textContent()).toBe('Environments');
      expect(await production.locator('td').allTextContents()).toEqual([
        'printery',
        'production',
        'v3',
        'dep-v3',
        await localTime(page, releases[0]!.since),
        'deploy',
        'ci:pipeline-42',
        '',
      ]);
      expect(await production.getByRole('link', { name: 'dep-v3' }).getAttribute('href')).toBe(
        '/deployments/dep-v3',
      );
      const staging = page.locator('#environments tr.environment[data-environment="staging"]');
      expect(await staging.locator('td').nth(5).textContent()).toBe('rollback');
      expect(await page.getByRole('button', { name: 'Roll back…' }).count()).toBe(0);
      expect(await page.locator('#read-only-notice').textContent()).toContain(
        'Read-only: approving, rolling back and cancelling need a deployer or admin token.',
      );
      await page.screenshot({ path: `${artifacts}environments-viewer.png`, fullPage: true });

      await page.goto(`${harness.url}/deployments/${waitingId}`);
      const banner = page.locator('.approval-banner');
      await banner.waitFor();
      expect(await page.locator('.page-header .badge').textContent()).toBe('RUNNING');
      expect(await page.locator('.page-header .phase').textContent()).toBe('approval');
      expect(await banner.locator('.approval-text').textContent()).toBe(
        `Waits for approval of environment by deployer until ${await localTime(page, deadline.toISOString())}`,
      );
      expect(await banner.locator('.approval-reason').textContent()).toBe(
        'production releases need a second pair of eyes',
      );
      expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Reject' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Cancel' }).count()).toBe(0);

      // The viewer signs in with the operator token: the actions appear.
      await page.getByRole('button', { name: 'Sign in with another token' }).click();
      await page.locator('#token-input').fill(OPERATOR);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('button', { name: 'Approve' }).waitFor();
      expect(await page.locator('#read-only-notice').count()).toBe(0);
      expect(calls).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await page.context().close();
    }
  });

  it('lets an operator roll an environment back to a release it ran, and shows a refusal', async () => {
    const { page, problems } = await tab(OPERATOR);
    calls.length = 0;
    try {
      await page.goto(`${harness.url}/environments`);
      const production = page.locator('#environments tr.environment[data-environment="production"]');
      await production.getByRole('button', { name: 'Roll back…' }).click();
      const form = page.locator('#environments tr.rollback-form');
      await form.waitFor();
      expect(await form.locator('.actions > span').first().textContent()).toBe(
        'Roll back printery production from v3 to ',
      );
      const target = form.getByRole('combobox', { name: 'Roll back to' });
      await form.locator('option[value="v1"]').waitFor({ state: 'attached' });
      expect(await target.locator('option').allTextContents()).toEqual([
        'the previous good release',
        `v2 (deploy, since ${await localTime(page, productionHistory[1]!.since)})`,
        `v1 (deploy, since ${await localTime(page, productionHistory[2]!.since)})`,
      ]);
      await target.selectOption('v1');
      await form.getByRole('button', { name: 'Confirm roll back' }).click();
      await form
        .locator('.action-result', { hasText: 'rollback requested (RUNNING) dep-rb-2 → v1' })
        .waitFor();
      expect(await form.getByRole('link', { name: 'dep-rb-2' }).getAttribute('href')).toBe(
        '/deployments/dep-rb-2',
      );
      expect(calls).toEqual([
        {
          method: 'POST',
          path: '/api/environments/printery/production/rollback',
          body: { to: 'v1' },
          authorization: undefined,
          actor: 'api-token',
        },
      ]);
      await page.screenshot({ path: `${artifacts}environments-rollback.png`, fullPage: true });
      await form.getByRole('button', { name: 'Close' }).click();
      await form.waitFor({ state: 'detached' });

      // The server refuses: its message is shown as it is.
      const staging = page.locator('#environments tr.environment[data-environment="staging"]');
      await staging.getByRole('button', { name: 'Roll back…' }).click();
      await page.getByRole('button', { name: 'Confirm roll back' }).click();
      await page
        .locator('.rollback-form .action-result.error', {
          hasText:
            'rollback failed: printery staging runs v1 (dep-rb-1), a rollback itself; nothing older to go back to',
        })
        .waitFor();
      expect(calls.at(-1)).toEqual({
        method: 'POST',
        path: '/api/environments/printery/staging/rollback',
        body: {},
        authorization: undefined,
        actor: 'api-token',
      });
      expect(problems).toEqual([]);
    } finally {
      await page.context().close();
    }
  });

  it('lets an operator approve or reject a waiting deployment with a comment', async () => {
    const { page, problems } = await tab(OPERATOR);
    calls.length = 0;
    try {
      // The live card says it waits, too.
      await page.goto(harness.url);
      const card = page.locator(`.deployment-card[data-deployment-id="${waitingId}"]`);
      await card.locator('.approval-banner').waitFor();
      expect(await card.locator('.approval-text').textContent()).toMatch(
        /^Waits for approval of environment by deployer until /,
      );

      await page.goto(`${harness.url}/deployments/${waitingId}`);
      const banner = page.locator('.approval-banner');
      await banner.getByRole('button', { name: 'Approve' }).click();
      await banner.getByRole('textbox', { name: 'Comment' }).fill('ship it');
      await page.screenshot({ path: `${artifacts}approval-operator.png`, fullPage: true });
      await banner.getByRole('button', { name: 'Confirm approve' }).click();
      await banner.locator('.action-result', { hasText: 'approve requested (RUNNING)' }).waitFor();
      expect(calls).toEqual([
        {
          method: 'POST',
          path: `/api/deployments/${waitingId}/approve`,
          body: { comment: 'ship it' },
          authorization: undefined,
          actor: 'api-token',
        },
      ]);

      await banner.getByRole('button', { name: 'Reject' }).click();
      await banner.getByRole('textbox', { name: 'Comment' }).fill('');
      await banner.getByRole('button', { name: 'Confirm reject' }).click();
      await banner
        .locator('.action-result.error', {
          hasText: `reject failed: deployment ${waitingId} does not wait for an approval`,
        })
        .waitFor();
      expect(calls.at(-1)).toMatchObject({ path: `/api/deployments/${waitingId}/reject`, body: {} });

      // The orchestrator's answer arrives: the banner goes, the approval is listed with who answered.
      const [requested] = (await harness.shield.timeline(waitingId)).filter(
        (e) => e.type === 'approval:requested',
      );
      await harness.bus.publisher.publish({
        type: 'approval:completed',
        source: 'materi/orchestrator',
        deploymentId: waitingId,
        correlationId: requested!.correlationId,
        causationId: requested!.id,
        time: new Date(),
        data: {
          deploymentId: waitingId,
          gate: 'environment',
          outcome: ApprovalOutcome.APPROVED,
          by: 'alice',
          comment: 'ship it',
        },
      });
      await banner.waitFor({ state: 'detached', timeout: 5000 });
      const row = page.locator('#approvals tr[data-gate="environment"]');
      await row.locator('.badge[data-status="APPROVED"]').waitFor();
      expect(await row.locator('td').nth(6).textContent()).toBe('alice');
      expect(await row.locator('td').nth(7).textContent()).toBe('ship it');
      await page.screenshot({ path: `${artifacts}approval-answered.png`, fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});
