import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CheckStatus, ExecutionStatus, ValidationResult } from '../../../src/events/index.js';
import {
  CheckFailure,
  checkItemSettings,
  DEFAULT_VALIDATION_CHECKS,
  defineValidationCheck,
  runValidation,
} from '../../../src/workers/validator/index.js';

/** A check kind defined the way a new check would be: behaviour chosen per item. */
const probeCheck = defineValidationCheck({
  key: 'probes',
  kind: 'probe',
  item: z.strictObject({
    name: z.string(),
    behaviour: z.enum(['pass', 'fail', 'throw', 'hang', 'slow', 'echo-secret']),
    secret: z.string().optional(),
    ...checkItemSettings,
  }),
  name: (item) => `probe:${item.name}`,
  async run(item, context) {
    switch (item.behaviour) {
      case 'pass':
        return { passed: true, message: 'fine' };
      case 'fail':
        return { passed: false, message: 'not fine' };
      case 'throw':
        throw new Error('connection reset');
      case 'slow':
        await delay(300);
        return { passed: true, message: 'slow but fine' };
      case 'hang':
        await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve()));
        aborted.add(item.name);
        return { passed: true, message: 'should never be reported' };
      case 'echo-secret': {
        const value = context.resolve(item.secret ?? '');
        throw new CheckFailure(`server said: bad password ${value}`);
      }
    }
  },
});
const aborted = new Set<string>();
const checks = [...DEFAULT_VALIDATION_CHECKS, probeCheck];

describe('runValidation policy', () => {
  it('passes when every check passes', async () => {
    const outcome = await runValidation(
      {
        probes: [
          { name: 'a', behaviour: 'pass' },
          { name: 'b', behaviour: 'pass' },
        ],
      },
      { checks },
    );
    expect(outcome).toMatchObject({
      result: ValidationResult.PASSED,
      executionStatus: ExecutionStatus.SUCCEEDED,
      message: 'all 2 checks passed',
    });
    expect(outcome.checks.map((c) => [c.name, c.kind, c.status])).toEqual([
      ['probe:a', 'probe', CheckStatus.PASSED],
      ['probe:b', 'probe', CheckStatus.PASSED],
    ]);
  });

  it('fails when a blocking check fails, and still reports every other check', async () => {
    const outcome = await runValidation(
      {
        probes: [
          { name: 'ok', behaviour: 'pass' },
          { name: 'broken', behaviour: 'throw' },
          { name: 'soft', behaviour: 'fail', blocking: false },
        ],
      },
      { checks },
    );
    expect(outcome.result).toBe(ValidationResult.FAILED);
    expect(outcome.checks.map((c) => c.status)).toEqual([
      CheckStatus.PASSED,
      CheckStatus.FAILED,
      CheckStatus.WARNING,
    ]);
    expect(outcome.checks[1]!.message).toBe('connection reset');
    expect(outcome.message).toBe(
      '1 of 3 checks failed: probe:broken: connection reset; warnings: probe:soft: not fine',
    );
  });

  it('gives WARNINGS when only non-blocking checks fail', async () => {
    const outcome = await runValidation(
      {
        probes: [
          { name: 'ok', behaviour: 'pass' },
          { name: 'soft', behaviour: 'fail', blocking: false },
        ],
      },
      { checks },
    );
    expect(outcome.result).toBe(ValidationResult.WARNINGS);
    expect(outcome.message).toBe('passed with 1 warning: probe:soft: not fine');
  });

  it('passes with a note when the spec asks for no checks', async () => {
    const outcome = await runValidation({}, { checks });
    expect(outcome).toMatchObject({
      result: ValidationResult.PASSED,
      checks: [],
      message: 'no checks configured',
    });
  });

  it('numbers results whose names repeat', async () => {
    const outcome = await runValidation(
      {
        probes: [
          { name: 'x', behaviour: 'pass' },
          { name: 'x', behaviour: 'pass' },
        ],
      },
      { checks },
    );
    expect(outcome.checks.map((c) => c.name)).toEqual(['probe:x', 'probe:x#2']);
  });
});

describe('runValidation timing', () => {
  it('runs checks concurrently', async () => {
    const started = Date.now();
    const outcome = await runValidation(
      { probes: ['a', 'b', 'c'].map((name) => ({ name, behaviour: 'slow' })) },
      { checks },
    );
    expect(outcome.result).toBe(ValidationResult.PASSED);
    expect(Date.now() - started).toBeLessThan(800);
  });

  it('fails a check that exceeds its time limit, aborts it, and keeps the others', async () => {
    const outcome = await runValidation(
      {
        timeoutMs: 2000,
        probes: [
          { name: 'stuck', behaviour: 'hang', timeoutMs: 100 },
          { name: 'ok', behaviour: 'pass' },
        ],
      },
      { checks },
    );
    expect(outcome.checks[0]).toMatchObject({
      status: CheckStatus.FAILED,
      message: 'timed out after 100 ms',
    });
    expect(outcome.checks[0]!.durationMs).toBeGreaterThanOrEqual(95);
    expect(outcome.checks[0]!.durationMs).toBeLessThan(1000);
    expect(outcome.checks[1]!.status).toBe(CheckStatus.PASSED);
    expect(outcome.executionStatus).toBe(ExecutionStatus.SUCCEEDED);
    await delay(10);
    expect(aborted.has('stuck')).toBe(true);
  });

  it('uses the spec timeout for items without their own', async () => {
    const outcome = await runValidation(
      { timeoutMs: 80, probes: [{ name: 'stuck2', behaviour: 'hang' }] },
      { checks },
    );
    expect(outcome.checks[0]!.message).toBe('timed out after 80 ms');
  });

  it('cuts checks at the gate deadline and reports TIMED_OUT', async () => {
    const outcome = await runValidation(
      {
        probes: [
          { name: 'stuck3', behaviour: 'hang' },
          { name: 'ok', behaviour: 'pass' },
        ],
      },
      { checks, deadline: new Date(Date.now() + 150) },
    );
    expect(outcome.executionStatus).toBe(ExecutionStatus.TIMED_OUT);
    expect(outcome.result).toBe(ValidationResult.FAILED);
    expect(outcome.checks[0]!.message).toMatch(/^did not finish before the gate deadline \(\d+ ms\)$/);
    expect(outcome.message).toMatch(/^deadline reached before every check finished; /);
  });

  it('rejects with the reason when the worker aborts the run', async () => {
    const controller = new AbortController();
    const run = runValidation(
      { probes: [{ name: 'stuck4', behaviour: 'hang' }] },
      { checks, signal: controller.signal },
    );
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    await expect(run).rejects.toThrow('shutting down');
    await delay(10);
    expect(aborted.has('stuck4')).toBe(true);
  });
});

describe('runValidation spec handling', () => {
  it('gives ERRORED + FAILED for a spec that is not an object', async () => {
    const outcome = await runValidation('images: all', { checks });
    expect(outcome).toMatchObject({
      result: ValidationResult.FAILED,
      executionStatus: ExecutionStatus.ERRORED,
      checks: [],
      message: 'invalid validation spec: Invalid input: expected object, received string',
    });
  });

  it('names an unknown setting', async () => {
    const outcome = await runValidation({ imagez: [] }, { checks });
    expect(outcome.executionStatus).toBe(ExecutionStatus.ERRORED);
    expect(outcome.message).toBe('invalid validation spec: imagez: unknown setting');
  });

  it('names a bad shared setting', async () => {
    const outcome = await runValidation({ timeoutMs: -5 }, { checks });
    expect(outcome.message).toMatch(/^invalid validation spec: timeoutMs: /);
  });

  it('names a bad item setting of an added check', async () => {
    const outcome = await runValidation({ probes: [{ name: 'a', behaviour: 'dance' }] }, { checks });
    expect(outcome.message).toMatch(/^invalid validation spec: probes\[0\]\.behaviour: /);
  });

  it('does not know a check that was not registered', async () => {
    const outcome = await runValidation({ probes: [] });
    expect(outcome.message).toBe('invalid validation spec: probes: unknown setting');
  });
});

describe('runValidation references and secrets', () => {
  it('fails the check naming a variable that is not set', async () => {
    const outcome = await runValidation(
      { probes: [{ name: 's', behaviour: 'echo-secret', secret: '${DB_PASSWORD}' }] },
      { checks, env: {} },
    );
    expect(outcome.checks[0]!.message).toBe('${DB_PASSWORD} is not set');
  });

  it('masks resolved values in check messages', async () => {
    const outcome = await runValidation(
      { probes: [{ name: 's', behaviour: 'echo-secret', secret: 'user:${DB_PASSWORD}' }] },
      { checks, env: { DB_PASSWORD: 'correct-horse-battery' } },
    );
    expect(outcome.checks[0]!.message).toBe('server said: bad password user:***');
    expect(JSON.stringify(outcome)).not.toContain('correct-horse-battery');
  });

  it('resolves references through an injected lookup', async () => {
    const outcome = await runValidation(
      { probes: [{ name: 's', behaviour: 'echo-secret', secret: '${FROM_VAULT}' }] },
      { checks, env: {}, lookup: (name) => (name === 'FROM_VAULT' ? 'vault-value-1' : undefined) },
    );
    expect(outcome.checks[0]!.message).toBe('server said: bad password ***');
  });
});
