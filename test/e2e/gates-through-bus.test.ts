import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentEvent } from '../../src/events/index.js';
import { TEST_POSTGRES_URL } from '../store/backends.js';
import { eventually } from '../support/redis.js';
import { type E2E, startE2E } from './support.js';

let e2e: E2E;

beforeAll(async () => {
  process.env.MATERI_E2E_PRESENT = 'yes';
  process.env.MATERI_E2E_PG = TEST_POSTGRES_URL;
  e2e = await startE2E({ components: ['validator', 'dependency-checker'] });
}, 60_000);
afterAll(async () => {
  await e2e?.close();
});

/** Publishes a request and returns the result event that names it as its cause. */
async function ask(
  type: string,
  resultType: string,
  data: Record<string, unknown>,
): Promise<DeploymentEvent> {
  const request = await e2e.stack.bus.publisher.publish({ type, data });
  return eventually(
    async () => (await e2e.events()).find((e) => e.type === resultType && e.causationId === request.event.id),
    20_000,
  );
}

describe('the validator and the dependency checker, through the bus', () => {
  it('answers validation:started with one result per check, failing on a missing variable', async () => {
    const result = await ask('validation:started', 'validation:completed', {
      deploymentId: 'dep-v',
      version: 'v1',
      spec: {
        env: [
          {
            service: 'api',
            source: { type: 'process' },
            required: ['MATERI_E2E_PRESENT', 'MATERI_E2E_ABSENT'],
          },
        ],
        discovery: [{ name: 'redis', host: '127.0.0.1', port: 6379 }],
      },
    });
    const data = result.data as {
      result: number;
      checks: { name: string; status: number; message: string }[];
      executionStatus: number;
    };
    expect(data.result).toBe(2);
    expect(data.executionStatus).toBe(1);
    const byKind = Object.fromEntries(data.checks.map((c) => [c.name.split(':')[0], c]));
    expect(byKind.env).toMatchObject({ status: 2 });
    expect(byKind.env!.message).toContain('MATERI_E2E_ABSENT');
    expect(byKind.env!.message).not.toContain('yes');
    expect(byKind.discovery).toMatchObject({ status: 1 });
  });

  it('answers a malformed request with a FAILED result naming the problem, not silence', async () => {
    const result = await ask('validation:started', 'validation:completed', {
      deploymentId: 'dep-bad',
      spec: { images: 'all of them' },
    });
    expect(result.data).toMatchObject({ result: 2, executionStatus: 2 });
    expect((result.data as { message: string }).message).toContain('images');
  });

  it('fails the dependency gate when a critical dependency is down, and degrades for a non-critical one', async () => {
    const down = await ask('dependency:check:started', 'dependency:check:completed', {
      deploymentId: 'dep-d1',
      spec: {
        timeoutMs: 500,
        retries: 0,
        dependencies: [
          { name: 'cache', type: 'redis', url: 'redis://127.0.0.1:6379' },
          { name: 'db', type: 'postgres', url: '${MATERI_E2E_PG}' },
          { name: 'billing', type: 'tcp', host: '127.0.0.1', port: 1, critical: true },
        ],
      },
    });
    const deps = (down.data as { dependencies: { name: string; healthy?: boolean }[] }).dependencies;
    expect(down.data).toMatchObject({ result: 3 });
    expect(
      deps
        .filter((d) => d.healthy)
        .map((d) => d.name)
        .sort(),
    ).toEqual(['cache', 'db']);
    const degraded = await ask('dependency:check:started', 'dependency:check:completed', {
      deploymentId: 'dep-d2',
      spec: {
        timeoutMs: 500,
        retries: 0,
        dependencies: [
          { name: 'billing', type: 'tcp', host: '127.0.0.1', port: 1, critical: false },
          { name: 'cache', type: 'redis', url: 'redis://127.0.0.1:6379' },
        ],
      },
    });
    expect(degraded.data).toMatchObject({ result: 2 });
  });
});
