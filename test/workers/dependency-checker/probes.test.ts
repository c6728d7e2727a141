import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DependencyStatusOutcome,
  runDependencyChecks,
} from '../../../src/workers/dependency-checker/index.js';

const PG_ADMIN_URL = 'postgres://root@127.0.0.1:5432/postgres';
const pgDatabase = `materi_depcheck_${randomUUID().slice(0, 8)}`;

let httpServer: Server;
let base: string;
let closedPort: number;
let tcpServer: TcpServer;
let tcpPort: number;
const seenHeaders: IncomingHttpHeaders[] = [];

async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  httpServer = createServer((req, res) => {
    seenHeaders.push(req.headers);
    switch (req.url?.split('?')[0]) {
      case '/health':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      case '/no-content':
        res.writeHead(204).end();
        return;
      case '/error':
        res.writeHead(500).end('{"status":"down"}');
        return;
      case '/wrong-body':
        res.writeHead(200).end('<html>maintenance</html>');
        return;
      case '/slow':
        setTimeout(() => res.writeHead(200).end('ok'), 1500).unref();
        return;
      case '/basic':
        if (req.headers.authorization === `Basic ${Buffer.from('probe:s3cret').toString('base64')}`) {
          res.writeHead(200).end('ok');
        } else res.writeHead(401).end();
        return;
      case '/private':
        if (req.headers.authorization === 'Bearer health-token-123') res.writeHead(200).end('ok');
        else res.writeHead(401).end();
        return;
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(httpServer.address() as { port: number }).port}`;
  tcpServer = createTcpServer((socket) => socket.end());
  await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
  tcpPort = (tcpServer.address() as { port: number }).port;
  closedPort = await freePort();
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pgDatabase}`);
  await admin.end();
});

afterAll(async () => {
  httpServer.closeAllConnections();
  await new Promise((resolve) => httpServer.close(resolve));
  await new Promise((resolve) => tcpServer.close(resolve));
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${pgDatabase} WITH (FORCE)`);
  await admin.end();
});

/** Checks one dependency without retries. */
async function check(
  dependency: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<DependencyStatusOutcome> {
  const outcome = await runDependencyChecks(
    { timeoutMs: 1000, retries: 0, dependencies: [{ name: 'dep', ...dependency }] },
    { env },
  );
  expect(outcome.dependencies, outcome.message).toHaveLength(1);
  return outcome.dependencies[0]!;
}

describe('http dependency', () => {
  it('is healthy when the endpoint answers 2xx', async () => {
    const status = await check({ type: 'http', url: `${base}/health` });
    expect(status).toMatchObject({
      type: 'http',
      healthy: true,
      message: 'HTTP 200',
      attempts: 1,
      critical: true,
    });
    expect(status.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('accepts the statuses listed in expectStatus', async () => {
    expect((await check({ type: 'http', url: `${base}/no-content`, expectStatus: [204] })).healthy).toBe(
      true,
    );
    const status = await check({ type: 'http', url: `${base}/health`, expectStatus: [204] });
    expect(status.healthy).toBe(false);
    expect(status.message).toBe(`HTTP 200 from ${base}/health, expected 204`);
  });

  it('is unhealthy when the endpoint answers 500', async () => {
    const status = await check({ type: 'http', url: `${base}/error` });
    expect(status.healthy).toBe(false);
    expect(status.message).toBe(`HTTP 500 from ${base}/error, expected 2xx`);
  });

  it('checks bodyContains and bodyMatches', async () => {
    const good = await check({
      type: 'http',
      url: `${base}/health`,
      bodyContains: '"ok"',
      bodyMatches: '^\\{.*\\}$',
    });
    expect(good).toMatchObject({ healthy: true, message: 'HTTP 200, body as expected' });
    const contains = await check({ type: 'http', url: `${base}/wrong-body`, bodyContains: 'ok' });
    expect(contains).toMatchObject({
      healthy: false,
      message: 'HTTP 200 but the body does not contain "ok"',
    });
    const matches = await check({ type: 'http', url: `${base}/wrong-body`, bodyMatches: '^\\{.*\\}$' });
    expect(matches).toMatchObject({
      healthy: false,
      message: 'HTTP 200 but the body does not match /^\\{.*\\}$/',
    });
  });

  it('is unhealthy when nothing listens on the port', async () => {
    const status = await check({ type: 'http', url: `http://127.0.0.1:${closedPort}/health` });
    expect(status.healthy).toBe(false);
    expect(status.message).toMatch(
      new RegExp(`^cannot reach http://127\\.0\\.0\\.1:${closedPort}/health: .*ECONNREFUSED`),
    );
  });

  it('is unhealthy when the answer comes after the time limit', async () => {
    const started = Date.now();
    const outcome = await runDependencyChecks({
      timeoutMs: 200,
      retries: 0,
      dependencies: [{ name: 'slow', type: 'http', url: `${base}/slow` }],
    });
    expect(outcome.dependencies[0]).toMatchObject({ healthy: false, message: 'no answer within 200 ms' });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('sends headers with resolved references and masks the token and query string', async () => {
    seenHeaders.length = 0;
    const ok = await check(
      { type: 'http', url: `${base}/private`, headers: { authorization: 'Bearer ${HEALTH_TOKEN}' } },
      { HEALTH_TOKEN: 'health-token-123' },
    );
    expect(ok.healthy).toBe(true);
    expect(seenHeaders[0]!.authorization).toBe('Bearer health-token-123');
    const denied = await check(
      { type: 'http', url: `${base}/private?key=\${HEALTH_TOKEN}`, headers: {} },
      { HEALTH_TOKEN: 'health-token-123' },
    );
    expect(denied.message).toBe(`HTTP 401 from ${base}/private?***, expected 2xx`);
  });
});

describe('http dependency with credentials in its URL', () => {
  it('sends them as basic auth and never shows the password', async () => {
    const url = `http://probe:\${HEALTH_PASSWORD}@${base.slice('http://'.length)}/basic`;
    const ok = await check({ type: 'http', url }, { HEALTH_PASSWORD: 's3cret' });
    expect(ok.healthy).toBe(true);
    const denied = await check({ type: 'http', url }, { HEALTH_PASSWORD: 'wrong' });
    expect(denied.healthy).toBe(false);
    expect(denied.message).toContain('HTTP 401');
    expect(denied.message).not.toContain('wrong');
  });
});

describe('tcp dependency', () => {
  it('is healthy when the port accepts a connection', async () => {
    const status = await check({ type: 'tcp', host: '127.0.0.1', port: tcpPort });
    expect(status).toMatchObject({ healthy: true, message: `127.0.0.1:${tcpPort} accepts connections` });
  });

  it('is unhealthy when the port refuses', async () => {
    const status = await check({ type: 'tcp', host: '127.0.0.1', port: closedPort });
    expect(status).toMatchObject({
      healthy: false,
      message: `127.0.0.1:${closedPort} refused the connection (ECONNREFUSED)`,
    });
  });
});

describe('postgres dependency', () => {
  it('is healthy when SELECT 1 runs', async () => {
    const status = await check(
      { type: 'postgres', url: '${DATABASE_URL}' },
      { DATABASE_URL: `postgres://root@127.0.0.1:5432/${pgDatabase}` },
    );
    expect(status).toMatchObject({ type: 'postgres', healthy: true, message: 'SELECT 1 succeeded' });
  });

  it('is unhealthy with the server reason when the database does not exist', async () => {
    const status = await check({
      type: 'postgres',
      url: `postgres://root@127.0.0.1:5432/${pgDatabase}_gone`,
    });
    expect(status.healthy).toBe(false);
    expect(status.message).toContain(`database "${pgDatabase}_gone" does not exist`);
  });

  it('never shows the password of the connection string', async () => {
    const url = `postgres://root:pg-secret-pass@127.0.0.1:${closedPort}/app`;
    const status = await check({ type: 'postgres', url: '${DATABASE_URL}' }, { DATABASE_URL: url });
    expect(status.healthy).toBe(false);
    expect(status.message).toMatch(
      /^cannot connect to postgres:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:\d+\/app: .*ECONNREFUSED/,
    );
    expect(status.message).not.toContain('pg-secret-pass');
  });
});

describe('redis dependency', () => {
  it('is healthy when PING answers PONG', async () => {
    const status = await check({ type: 'redis', url: 'redis://127.0.0.1:6379' });
    expect(status).toMatchObject({ healthy: true, message: 'PING answered PONG' });
  });

  it('is unhealthy at once, without reconnect loops, when nothing listens', async () => {
    const started = Date.now();
    const url = `redis://:redis-secret-pass@127.0.0.1:${closedPort}`;
    const status = await check({ type: 'redis', url: '${REDIS_URL}' }, { REDIS_URL: url });
    expect(status.healthy).toBe(false);
    expect(status.message).toMatch(/ECONNREFUSED/);
    expect(status.message).not.toContain('redis-secret-pass');
    expect(Date.now() - started).toBeLessThan(900);
  });
});

describe('mysql dependency', () => {
  it('is healthy when SELECT 1 runs on MariaDB', async () => {
    const status = await check({ type: 'mysql', url: 'mysql://root@127.0.0.1:3306/test' });
    expect(status).toMatchObject({ type: 'mysql', healthy: true, message: 'SELECT 1 succeeded' });
  });

  it('is unhealthy when the server refuses the credentials, without showing them', async () => {
    const status = await check(
      { type: 'mysql', url: '${ORDERS_DB}' },
      { ORDERS_DB: 'mysql://materi_nobody:mysql-secret-pass@127.0.0.1:3306/test' },
    );
    expect(status.healthy).toBe(false);
    expect(status.message).toMatch(
      /^cannot connect to mysql:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:3306\/test: .*Access denied/,
    );
    expect(status.message).not.toContain('mysql-secret-pass');
  });
});
