import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import {
  type DeploymentInfo,
  type ProviderConfig,
  providerSettingsSchema,
  type StageRef,
} from '../../../src/orchestrator/providers/index.js';

/** A stage whose provider settings went through the plan schema (defaults applied). */
export function stageWith(
  provider: Record<string, unknown>,
  overrides: Partial<Omit<StageRef, 'provider'>> = {},
): StageRef {
  return {
    name: 'web',
    services: ['web'],
    timeoutMs: 20_000,
    ...overrides,
    provider: providerSettingsSchema.parse(provider) as ProviderConfig,
  };
}

export function deploymentOf(overrides: Partial<DeploymentInfo> = {}): DeploymentInfo {
  return {
    id: 'dep-1',
    version: 'v2.0.0',
    previousVersion: 'v1.0.0',
    environment: 'production',
    project: 'materi',
    ...overrides,
  };
}

/** A request as the test server received it. */
export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage['headers'];
  body: unknown;
  text: string;
}

export interface TestApi {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

type Reply = { status: number; body?: unknown };

/** A local HTTP server that records every request and answers with `route`. */
export async function startApi(route: (request: SeenRequest) => Reply | Promise<Reply>): Promise<TestApi> {
  const requests: SeenRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (chunk) => (text += chunk));
    req.on('end', async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      const seen: SeenRequest = {
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
        text,
      };
      requests.push(seen);
      let reply: Reply;
      try {
        reply = await route(seen);
      } catch (error) {
        reply = { status: 500, body: { error: { message: (error as Error).message } } };
      }
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether a process runs; a zombie (exited, not yet reaped) counts as gone. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
