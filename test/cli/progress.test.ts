import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressPrinter } from '../../src/cli/progress.js';
import type { DeploymentView, SagaState } from '../../src/orchestrator/index.js';

type Event = SagaState['events'][number];

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function event(id: string, type: string, ms: number, data: Record<string, unknown> = {}): Event {
  return { id, type, time: at(ms), data: { deploymentId: 'dep-1', ...data } };
}

function viewOf(state: Partial<SagaState>, overrides: Partial<DeploymentView> = {}): DeploymentView {
  return {
    id: 'dep-1',
    project: 'shop',
    environment: 'staging',
    version: 'v2',
    previousVersion: 'v1',
    correlationId: 'c-1',
    status: 'RUNNING',
    phase: 'stages',
    triggeredBy: 'ana',
    kind: 'deploy',
    state: { started: true, gates: {}, stages: {}, warnings: [], events: [], startedAt: T0, ...state },
    createdAt: at(0),
    updatedAt: at(0),
    ...overrides,
  };
}

function printer(json = false): { printer: ProgressPrinter; lines: () => string[]; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return {
    printer: new ProgressPrinter(out, json),
    lines: () => text.split('\n').filter(Boolean),
    text: () => text,
  };
}

const started = event('e-started', 'deployment:started', 0);
const validation = event('e-validation', 'validation:started', 5);
const dependency = event('e-dependency', 'dependency:check:started', 20);
const gates = {
  validation: { requestId: 'e-validation', requestedAt: T0 + 5, deadlineAt: T0 + 60_000 },
};

function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

describe('materi deploy progress: order', () => {
  it("prints a gate's verdict before the next step, also when both share a millisecond", () => {
    const p = printer();
    p.printer.update(
      viewOf({
        events: [started, validation, dependency],
        gates: { validation: { ...gates.validation, completedAt: T0 + 20, verdict: 'PASSED' } },
      }),
    );
    expect(p.lines()).toEqual([
      '▶ deploying shop v2 to staging (dep-1)',
      '… validation gate (printery-validator)',
      '✓ validation PASSED (0.0 s)',
      '… dependency gate (printery-dependency-checker)',
    ]);
  });

  it("follows the saga's steps, not the clock (a verdict stamped before its request)", () => {
    const p = printer();
    p.printer.update(
      viewOf({
        events: [started, validation, dependency],
        // The clock stepped back between the request and the verdict.
        gates: { validation: { ...gates.validation, completedAt: T0 + 1, verdict: 'PASSED' } },
      }),
    );
    expect(p.lines().slice(1, 3)).toEqual([
      '… validation gate (printery-validator)',
      '✓ validation PASSED (0.0 s)',
    ]);
  });

  it('prints each line once when successive views go back and forth (saves landing out of order)', () => {
    const p = printer();
    const verdict = { ...gates.validation, completedAt: T0 + 10, verdict: 'PASSED' };
    p.printer.update(viewOf({ events: [started, validation, dependency], gates: { validation: verdict } }));
    p.printer.update(viewOf({ events: [started, validation], gates: { validation: verdict } }));
    p.printer.update(
      viewOf({
        events: [
          started,
          validation,
          dependency,
          event('e-api', 'deployment:stage:api:started', 30, { provider: 'command' }),
        ],
        gates: { validation: verdict },
      }),
    );
    expect(p.lines()).toEqual([
      '▶ deploying shop v2 to staging (dep-1)',
      '… validation gate (printery-validator)',
      '✓ validation PASSED (0.0 s)',
      '… dependency gate (printery-dependency-checker)',
      '… stage api (command)',
    ]);
  });

  it("holds a stage's completion until its start has been printed", () => {
    const p = printer();
    const completed = event('e-api-done', 'deployment:stage:api:completed', 40, {
      status: 'DEPLOYMENT_STATUS_SUCCESS',
      durationMs: 1200,
    });
    const apiStarted = event('e-api', 'deployment:stage:api:started', 30, { provider: 'command' });
    const webStarted = event('e-web', 'deployment:stage:web:started', 31, { provider: 'vercel' });
    p.printer.update(viewOf({ events: [started, completed, webStarted] }));
    expect(p.lines()).toEqual(['▶ deploying shop v2 to staging (dep-1)', '… stage web (vercel)']);
    p.printer.update(viewOf({ events: [started, completed, webStarted, apiStarted] }));
    expect(p.lines().slice(2)).toEqual(['… stage api (command)', '✓ stage api (1.2 s)']);
  });

  it('holds a rollback result until the rollback start, and prints what is still held when the deployment ends', () => {
    const p = printer();
    const rolledBack = event('e-rb-done', 'rollback:completed', 50, {
      status: 'DEPLOYMENT_STATUS_SUCCESS',
      restoredVersion: 'v1',
    });
    const rollingBack = event('e-rb', 'rollback:initiated', 45, {
      previousVersion: 'v1',
      stagesToRollback: ['api'],
    });
    const orphan = event('e-web-done', 'deployment:stage:web:completed', 40, {
      status: 'DEPLOYMENT_STATUS_SUCCESS',
      durationMs: 500,
    });
    p.printer.update(viewOf({ events: [started, rolledBack, orphan] }));
    expect(p.lines()).toEqual(['▶ deploying shop v2 to staging (dep-1)']);
    p.printer.update(viewOf({ events: [started, rolledBack, orphan, rollingBack] }));
    expect(p.lines().slice(1)).toEqual(['↺ rolling back api to v1', '✓ rolled back to v1']);
    p.printer.update(
      viewOf(
        { events: [started, rolledBack, orphan, rollingBack], finishedAt: T0 + 60 },
        { status: 'ROLLED_BACK', reason: 'health gate: api unhealthy' },
      ),
    );
    expect(p.lines().slice(3)).toEqual([
      '✓ stage web (0.5 s)',
      '■ ROLLED_BACK in 0.1 s — health gate: api unhealthy',
    ]);
  });
});

describe('materi deploy progress: the failure reason', () => {
  it('prints the reason of a rolled-back deployment once, on the summary line', () => {
    const message = 'unhealthy over a 3000 ms window: api unhealthy (error rate 50% > 20%)';
    const reason = `health gate: ${message}`;
    const p = printer();
    const health = event('e-health', 'health:check:started', 30);
    const failing = {
      events: [
        started,
        event('e-api', 'deployment:stage:api:started', 10, { provider: 'local' }),
        event('e-api-done', 'deployment:stage:api:completed', 20, {
          status: 'DEPLOYMENT_STATUS_SUCCESS',
          durationMs: 200,
        }),
        health,
      ],
      gates: {
        health: {
          requestId: 'e-health',
          requestedAt: T0 + 30,
          deadlineAt: T0 + 60_000,
          completedAt: T0 + 3030,
          verdict: 'UNHEALTHY:ROLLBACK',
          message,
        },
      },
    };
    p.printer.update(viewOf(failing));
    const ended = [
      ...failing.events,
      event('e-failed', 'deployment:failed', 3031, { reason, failedGate: 'health', errorDetails: message }),
      event('e-rb', 'rollback:initiated', 3032, { reason, previousVersion: 'v1', stagesToRollback: ['api'] }),
      event('e-rb-done', 'rollback:completed', 3100, {
        status: 'DEPLOYMENT_STATUS_SUCCESS',
        restoredVersion: 'v1',
      }),
      event('e-done', 'deployment:completed', 3101, {
        status: 'DEPLOYMENT_STATUS_ROLLED_BACK',
        totalDurationMs: 3101,
      }),
    ];
    p.printer.update(
      viewOf(
        { ...failing, events: ended, failure: { gate: 'health', reason }, finishedAt: T0 + 3101 },
        { status: 'ROLLED_BACK', reason },
      ),
    );
    expect(occurrences(p.text(), message)).toBe(1);
    expect(p.lines().slice(4)).toEqual([
      '✗ health UNHEALTHY (3.0 s)',
      '✗ deployment failed (health gate)',
      '↺ rolling back api to v1',
      '✓ rolled back to v1',
      `■ ROLLED_BACK in 3.1 s — ${reason}`,
    ]);
  });

  it("prints a failed stage's error once, and the error of another stage that failed with it", () => {
    const error = 'command exited with code 3: disk full on /var/lib/shop';
    const reason = `stage folio failed: ${error}`;
    const p = printer();
    const stage = (name: string, message: string) => [
      event(`e-${name}`, `deployment:stage:${name}:started`, 10, { provider: 'command' }),
      event(`e-${name}-done`, `deployment:stage:${name}:completed`, 20, {
        status: 'DEPLOYMENT_STATUS_FAILURE',
        durationMs: 100,
        errorMessage: message,
      }),
    ];
    const stageState = (message: string) => ({
      status: 'failed' as const,
      services: [],
      startedAt: T0 + 10,
      finishedAt: T0 + 110,
      attempts: 1,
      artifacts: [],
      error: message,
    });
    p.printer.update(
      viewOf(
        {
          events: [
            started,
            ...stage('folio', error),
            ...stage('docs', 'command exited with code 1'),
            event('e-failed', 'deployment:failed', 30, { reason, failedStage: 'folio', failedGate: 'stage' }),
          ],
          stages: { folio: stageState(error), docs: stageState('command exited with code 1') },
          failure: { gate: 'stage', stage: 'folio', reason, details: error },
          finishedAt: T0 + 120,
        },
        { status: 'FAILURE', reason },
      ),
    );
    expect(occurrences(p.text(), error)).toBe(1);
    expect(p.lines().slice(1)).toEqual([
      '… stage folio (command)',
      '✗ stage folio failed (0.1 s)',
      '… stage docs (command)',
      '✗ stage docs failed (0.1 s)',
      '✗ deployment failed (stage folio)',
      `■ FAILURE in 0.1 s — ${reason}`,
      '  also failed: stage docs: command exited with code 1',
    ]);
  });

  it('with --json, ends with one result line carrying the reason', () => {
    const p = printer(true);
    const final = viewOf(
      { events: [started], failure: { gate: 'cancel', reason: 'cancelled by ana' }, finishedAt: T0 + 5 },
      { status: 'CANCELLED', reason: 'cancelled by ana' },
    );
    p.printer.update(final);
    p.printer.update(final);
    const lines = p.lines().map((line) => JSON.parse(line));
    expect(lines).toEqual([
      { deployment_id: 'dep-1', ...started },
      { id: 'dep-1', status: 'CANCELLED', reason: 'cancelled by ana' },
    ]);
  });
});
