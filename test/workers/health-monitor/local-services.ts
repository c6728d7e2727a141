import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A real HTTP service on 127.0.0.1 and a free port, for the health monitor to probe. */
export interface LocalService {
  /** `http://127.0.0.1:<port>` */
  base: string;
  port: number;
  /** Requests received so far, by path. */
  requests: Map<string, number>;
  close(): Promise<void>;
}

type Respond = (req: IncomingMessage, res: ServerResponse, requestNumber: number) => void;

export async function startService(respond: Respond): Promise<LocalService> {
  const requests = new Map<string, number>();
  let total = 0;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    respond(req, res, ++total);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers 200 `ok` at once. */
export function healthyService(): Promise<LocalService> {
  return startService((_, res) => res.end('ok'));
}

/** Answers 500 to every `failEvery`-th request (counted across paths), 200 otherwise. */
export function flakyService(failEvery: number): Promise<LocalService> {
  return startService((_, res, n) => {
    res.statusCode = n % failEvery === 0 ? 500 : 200;
    res.end(res.statusCode === 200 ? 'ok' : 'boom');
  });
}

/** Answers 200 after `delayMs`. */
export function slowService(delayMs: number): Promise<LocalService> {
  return startService((_, res) => {
    const timer = setTimeout(() => res.end('ok'), delayMs);
    res.on('close', () => clearTimeout(timer));
  });
}

/** Answers 200 only with the given basic-auth credentials, 401 otherwise. */
export function basicAuthService(user: string, password: string): Promise<LocalService> {
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  return startService((req, res) => {
    res.statusCode = req.headers.authorization === expected ? 200 : 401;
    res.end();
  });
}

/**
 * Exposes `test_requests_total{path=…}` in the Prometheus text format at `/metrics` and answers
 * 200 elsewhere. With `increasing`, the counter counts every request (scrapes included); without,
 * it stays at 7 whatever happens.
 */
export function metricsService(options: { increasing: boolean }): Promise<LocalService> {
  const counts = new Map<string, number>([['/health', 7]]);
  return startService((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (options.increasing) counts.set(path, (counts.get(path) ?? 0) + 1);
    if (path !== '/metrics') {
      res.end('ok');
      return;
    }
    const lines = [
      '# HELP test_requests_total Requests served.',
      '# TYPE test_requests_total counter',
      ...[...counts].map(([p, n]) => `test_requests_total{path="${p}"} ${n}`),
      '# HELP test_up Always 1.',
      '# TYPE test_up gauge',
      'test_up 1',
      '',
    ];
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(lines.join('\n'));
  });
}

/** A URL on a port where nothing listens (connection refused). */
export async function downBase(): Promise<string> {
  const service = await healthyService();
  await service.close();
  return service.base;
}

/** A free TCP port on 127.0.0.1 (for servers started by another process). */
export async function freePort(): Promise<number> {
  const service = await healthyService();
  await service.close();
  return service.port;
}
