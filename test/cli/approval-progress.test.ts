import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressPrinter } from '../../src/cli/progress.js';
import type { DeploymentView, SagaState } from '../../src/orchestrator/index.js';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function event(id: string, type: string, ms: number, data: Record<string, unknown> = {}) {
  return { id, type, time: at(ms), data: { deploymentId: 'dep-1', ...data } };
}

function viewOf(events: SagaState['events'], overrides: Partial<DeploymentView> = {}): DeploymentView {
  return {
    id: 'dep-1',
    project: 'shop',
    environment: 'production',
    version: 'v2',
    correlationId: 'c-1',
    status: 'RUNNING',
    phase: 'approval',
    triggeredBy: 'ana',
    state: { started: true, gates: {}, stages: {}, warnings: [], events, startedAt: T0 },
    createdAt: at(0),
    updatedAt: at(0),
    ...overrides,
  } as DeploymentView;
}

function printer(): { printer: ProgressPrinter; lines: () => string[] } {
  let text = '';
  const out = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { printer: new ProgressPrinter(out, false), lines: () => text.split('\n').filter(Boolean) };
}

const started = event('e-started', 'deployment:started', 0);
const requested = event('e-requested', 'approval:requested', 10, {
  gate: 'environment',
  approvers: 'deployer',
  deadline: '2026-12-01T11:00:00Z',
});

describe('materi deploy progress: approvals', () => {
  it('says what the deployment waits for and how to answer, then the answer', () => {
    const p = printer();
    p.printer.update(viewOf([started, requested]));
    expect(p.lines().at(-1)).toBe(
      '⏸ waiting for approval of environment (approvers: deployer, until 2026-12-01T11:00:00Z): materi approve dep-1',
    );
    const approved = event('e-approved', 'approval:completed', 20, {
      gate: 'environment',
      outcome: 'APPROVAL_OUTCOME_APPROVED',
      by: 'alice',
      comment: 'ship it',
    });
    p.printer.update(viewOf([started, requested, approved], { phase: 'stages' }));
    expect(p.lines().at(-1)).toBe('✓ environment approved by alice: ship it');
  });

  it('prints a rejection and an expiry', () => {
    const p = printer();
    const rejected = event('e-rejected', 'approval:completed', 20, {
      gate: 'stage:api',
      outcome: 'APPROVAL_OUTCOME_REJECTED',
      by: 'bob',
      comment: 'not today',
    });
    p.printer.update(viewOf([started, requested, rejected]));
    expect(p.lines().at(-1)).toBe('✗ stage:api rejected by bob: not today');
    const q = printer();
    const expired = event('e-expired', 'approval:completed', 20, {
      gate: 'health',
      outcome: 'APPROVAL_OUTCOME_EXPIRED',
    });
    q.printer.update(viewOf([started, requested, expired]));
    expect(q.lines().at(-1)).toBe('✗ approval of health expired');
  });
});
