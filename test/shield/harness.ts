import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type AuthSettings, createApiServer } from '../../src/api/index.js';
import { startHeartbeat } from '../../src/bus/heartbeat.js';
import { type EventBus, openEventBus } from '../../src/bus/open.js';
import { Router } from '../../src/bus/router.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import {
  registerShieldRoutes,
  ShieldFeed,
  ShieldStore,
  shieldProjectionRegistration,
} from '../../src/shield/index.js';
import { FailedEventStore, openStore, type Store } from '../../src/store/index.js';
import type { TestBackend, TestDatabase } from '../store/backends.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const logger = silentLogger();

/** A running Shield: bus, store, projection router and the HTTP server on 127.0.0.1:0. */
export interface ShieldHarness {
  prefix: string;
  env: Record<string, string>;
  bus: EventBus;
  store: Store;
  shield: ShieldStore;
  feed: ShieldFeed;
  failedEvents: FailedEventStore;
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Starts a projection router (one is started by `startShield`). */
  startProjection(): Promise<Router>;
  router: Router;
  close(): Promise<void>;
}

export interface HarnessOptions {
  auth?: AuthSettings;
  keepAliveMs?: number;
  /** Extra routes (e.g. stand-ins for the orchestrator's write routes). */
  routes?: (app: FastifyInstance) => void;
}

export async function startShield(
  backend: TestBackend,
  options: HarnessOptions = {},
): Promise<ShieldHarness> {
  const database: TestDatabase = await backend.create();
  const prefix = uniquePrefix('shield');
  const env: Record<string, string> = {
    MATERI_REDIS_URL: TEST_REDIS_URL,
    MATERI_STREAM_PREFIX: prefix,
    MATERI_DATA_DIR: database.dataDir,
    ...(database.databaseUrl ? { MATERI_DATABASE_URL: database.databaseUrl } : {}),
  };
  const settings = loadSettings({ ...process.env, ...env });
  const bus = await openEventBus(settings, {
    logger,
    source: 'materi/shield-test',
    subscriber: { blockMs: 100, scanIntervalMs: 50, discoveryIntervalMs: 100 },
  });
  const store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger });
  const feed = new ShieldFeed();
  const failedEvents = new FailedEventStore(store.db);
  const routers: Router[] = [];
  const startProjection = async () => {
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher, logger });
    router.addHandler(
      shieldProjectionRegistration({
        db: store.db,
        logger,
        onChange: feed.publish,
        claimIdleMs: 2000,
        backoff: { baseMs: 50, jitter: 0 },
      }),
    );
    await router.start();
    routers.push(router);
    return router;
  };
  const router = await startProjection();
  const stopHeartbeat = startHeartbeat(bus.inspector, { role: 'worker shield', groups: () => ['shield'] });
  const app = await createApiServer({ auth: options.auth ?? {}, logger, info: { version: 'test' } });
  await registerShieldRoutes(app, {
    db: store.db,
    bus,
    failedEvents,
    feed,
    logger,
    keepAliveMs: options.keepAliveMs,
  });
  options.routes?.(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    prefix,
    env,
    bus,
    store,
    shield: new ShieldStore(store.db),
    feed,
    failedEvents,
    app,
    url: `http://127.0.0.1:${port}`,
    startProjection,
    router,
    async close() {
      await app.close();
      for (const r of routers) await r.close(500);
      await stopHeartbeat();
      const redis = testRedis();
      await deletePrefix(redis, prefix);
      await redis.quit();
      await bus.close();
      await store.close();
      await database.drop();
    },
  };
}

/** One Server-Sent Events message. */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** A raw SSE connection: collects messages and comments as they arrive. */
export interface SseConnection {
  status: number;
  headers: http.IncomingHttpHeaders;
  messages: SseMessage[];
  comments: string[];
  /** Resolves with the first message (from the start of the connection) that matches. */
  waitFor(match: (m: SseMessage) => boolean, timeoutMs?: number): Promise<SseMessage>;
  close(): void;
}

export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      const messages: SseMessage[] = [];
      const comments: string[] = [];
      const waiters = new Set<() => void>();
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: SseMessage = { event: 'message', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) message.id = line.slice(4);
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data += line.slice(6);
          }
          if (message.data !== '') messages.push(message);
        }
        for (const wake of waiters) wake();
      });
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        messages,
        comments,
        waitFor(match, timeoutMs = 2000) {
          return new Promise((done, fail) => {
            const check = () => {
              const found = messages.find(match);
              if (!found) return;
              waiters.delete(check);
              clearTimeout(timer);
              done(found);
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`no matching SSE message within ${timeoutMs} ms (got ${messages.length})`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
        close() {
          request.destroy();
        },
      });
    });
    request.on('error', reject);
  });
}
