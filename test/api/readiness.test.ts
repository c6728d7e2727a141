import { describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/index.js';
import { silentLogger } from '../../src/runtime/logging.js';

async function server(
  ready: Record<string, () => Promise<unknown>>,
  auth = { apiToken: 'op-secret', viewerToken: 'view-secret' },
) {
  const app = await createApiServer({ auth, logger: silentLogger(), ready });
  await app.ready();
  return app;
}

describe('GET /readyz', () => {
  it('answers 200 without a token when every check passes', async () => {
    const app = await server({ bus: async () => 'PONG', store: async () => undefined });
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ ready: true, checks: { bus: 'ok', store: 'ok' } });
    await app.close();
  });

  it('answers 503 naming the check that failed, with credentials masked', async () => {
    const app = await server({
      bus: async () => undefined,
      store: async () => {
        throw new Error('connect ECONNREFUSED for postgres://materi:hunter2@db.internal:5432/materi');
      },
    });
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    const body = response.json() as { ready: boolean; checks: Record<string, string> };
    expect(body.ready).toBe(false);
    expect(body.checks.bus).toBe('ok');
    expect(body.checks.store).toMatch(/^failed: /);
    expect(body.checks.store).toContain('postgres://***@db.internal');
    expect(response.body).not.toContain('hunter2');
    await app.close();
  });

  it('counts a check that does not answer in time as failed', async () => {
    const app = await server({ bus: () => new Promise(() => {}) });
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.json().checks.bus).toMatch(/^failed: no answer within \d+ ms$/);
    await app.close();
  });

  it('keeps /healthz a liveness probe: public and independent of the checks', async () => {
    const app = await server({ bus: async () => Promise.reject(new Error('down')) });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    await app.close();
  });
});
