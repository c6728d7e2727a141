import { describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/index.js';
import { NotFoundError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { createBusMetrics } from '../../src/runtime/metrics.js';

async function server(auth: { apiToken?: string; viewerToken?: string }) {
  const app = await createApiServer({
    auth,
    logger: silentLogger(),
    metrics: createBusMetrics({ defaultMetrics: false }).registry,
  });
  app.get('/api/things', async () => ({ things: [] }));
  app.get('/api/things/:id', async (request) => {
    throw new NotFoundError(`no thing ${(request.params as { id: string }).id}`);
  });
  app.post('/api/things', { config: { access: 'write' } }, async () => ({ created: true }));
  await app.ready();
  return app;
}

describe('API server', () => {
  it('answers errors as JSON with a stable code and the matching status', async () => {
    const app = await server({});
    const missing = await app.inject({ method: 'GET', url: '/api/things/42' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'MATERI_ERR_NOT_FOUND', message: 'no thing 42' } });
    const noRoute = await app.inject({ method: 'GET', url: '/api/nothing' });
    expect(noRoute.json().error.code).toBe('MATERI_ERR_NOT_FOUND');
    const badJson = await app.inject({
      method: 'POST',
      url: '/api/things',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe('MATERI_ERR_BAD_INPUT');
  });

  it('without tokens, reads are open and writes are accepted only from loopback', async () => {
    const app = await server({});
    expect(
      (await app.inject({ method: 'GET', url: '/api/things', remoteAddress: '10.1.2.3' })).statusCode,
    ).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/api/things' })).statusCode).toBe(200);
    const remote = await app.inject({ method: 'POST', url: '/api/things', remoteAddress: '10.1.2.3' });
    expect(remote.statusCode).toBe(403);
    expect(remote.json().error.message).toContain('no token is configured on the server');
    expect((await app.inject({ method: 'GET', url: '/api/info' })).json().auth).toEqual({
      writes: 'loopback',
      reads: 'open',
    });
  });

  it('with tokens, writes need the operator token and reads the viewer or operator token', async () => {
    const app = await server({ apiToken: 'op-secret', viewerToken: 'view-secret' });
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    expect((await app.inject({ method: 'GET', url: '/api/things' })).statusCode).toBe(401);
    expect(
      (await app.inject({ method: 'GET', url: '/api/things', headers: bearer('view-secret') })).statusCode,
    ).toBe(200);
    expect(
      (await app.inject({ method: 'GET', url: '/api/things', headers: bearer('op-secret') })).statusCode,
    ).toBe(200);
    // A token in the URL ends up in logs: it is not read from there.
    expect(
      (await app.inject({ method: 'GET', url: '/api/things?access_token=view-secret' })).statusCode,
    ).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/api/things' })).json()).toEqual({
      error: {
        code: 'MATERI_ERR_UNAUTHORIZED',
        message:
          'this action needs a deployer or admin token (Authorization: Bearer …, or a dashboard session)',
      },
    });
    expect(
      (await app.inject({ method: 'POST', url: '/api/things', headers: bearer('op-secret') })).statusCode,
    ).toBe(200);
    const wrong = await app.inject({ method: 'POST', url: '/api/things', headers: bearer('op-secreT') });
    expect(wrong.json()).toEqual({
      error: { code: 'MATERI_ERR_UNAUTHORIZED', message: 'the token is not known to this server' },
    });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });

  it('answers 403, not 401, to a valid viewer token on a write: authenticated but not allowed', async () => {
    const app = await server({ apiToken: 'op-secret', viewerToken: 'view-secret' });
    const viewer = await app.inject({
      method: 'POST',
      url: '/api/things',
      headers: { authorization: 'Bearer view-secret' },
    });
    expect(viewer.statusCode).toBe(403);
    expect(viewer.json().error).toEqual({
      code: 'MATERI_ERR_FORBIDDEN',
      message: 'token "viewer-token" (viewer) may not POST /api/things: that needs a deployer or admin token',
    });
    expect(viewer.body).not.toContain('view-secret');
    // Over a real socket too.
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/things`;
      const post = (token?: string) =>
        fetch(url, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });
      expect((await post('view-secret')).status).toBe(403);
      expect((await post()).status).toBe(401);
      expect((await post('not-a-token')).status).toBe(401);
      expect((await post('op-secret')).status).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('treats a token as unknown on a write when no viewer token is configured', async () => {
    const app = await server({ apiToken: 'op-secret' });
    const post = await app.inject({
      method: 'POST',
      url: '/api/things',
      headers: { authorization: 'Bearer view-secret' },
    });
    expect(post.statusCode).toBe(401);
    expect(post.json().error.code).toBe('MATERI_ERR_UNAUTHORIZED');
  });

  it('serves an OpenAPI document of its routes', async () => {
    const app = await server({});
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/things', '/api/things/{id}', '/api/info']),
    );
  });
});
