import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { createApiServer } from '../api/index.js';
import { consumerLiveness, startHeartbeat } from '../bus/heartbeat.js';
import { idempotency, logging } from '../bus/middleware/index.js';
import { type EventBus, openEventBus, type SubscriberTuning } from '../bus/open.js';
import { Router } from '../bus/router.js';
import { streamReaderFor } from '../bus/stream-reader.js';
import type { Handler, Subscription } from '../bus/types.js';
import { BusAlertMonitor, startDeadLetterRecorder } from '../dlq/index.js';
import { Orchestrator, registerOrchestratorRoutes } from '../orchestrator/index.js';
import {
  registerShieldRoutes,
  registerWorkersRoute,
  SHIELD_GROUP,
  ShieldFeed,
  shieldProjectionRegistration,
} from '../shield/index.js';
import { FailedEventStore, openStore, type Store } from '../store/index.js';
import {
  createDependencyCheckerHandler,
  DEPENDENCY_CHECKER_GROUP,
} from '../workers/dependency-checker/index.js';
import { createHealthMonitorHandler, HEALTH_MONITOR_GROUP } from '../workers/health-monitor/index.js';
import {
  createMemoryNotifierState,
  createNotifier,
  createRedisNotifierState,
  loadNotifierSettings,
  notifierRegistration,
  parseNotifierSettings,
} from '../workers/notifier/index.js';
import { createValidatorHandler, VALIDATOR_GROUP } from '../workers/validator/index.js';
import type { ComponentName } from './components.js';
import type { Settings } from './config.js';
import { checkListenAddress, isLoopbackHost, localServerUrl } from './listen.js';
import type { Logger } from './logging.js';
import { createBusMetrics } from './metrics.js';

export { COMPONENTS, type ComponentName } from './components.js';

/**
 * Consumer groups and default concurrency of the Printery workers. Every group handles the events
 * of one deployment one at a time, in order (`orderedBy: 'deployment'`), and different deployments
 * in parallel: the seed's "validator 1, sequential" is the order per deployment, not one validation
 * at a time for the whole fleet. The gates wait on I/O (registries, endpoints, health windows that
 * mostly sleep), so the defaults leave room for hundreds of deployments in flight.
 */
export const WORKER_DEFAULTS = {
  validator: { group: VALIDATOR_GROUP, concurrency: 32, types: ['validation:started'] },
  'dependency-checker': {
    group: DEPENDENCY_CHECKER_GROUP,
    concurrency: 32,
    types: ['dependency:check:started'],
  },
  'health-monitor': { group: HEALTH_MONITOR_GROUP, concurrency: 200, types: ['health:check:started'] },
  notifier: { group: 'printery-notifier', concurrency: 16, types: [] as string[] },
} as const;

export interface StackOptions {
  settings: Settings;
  components: readonly ComponentName[];
  logger: Logger;
  /** What runs in this process, for heartbeats: `up`, `worker validator`, … */
  role: string;
  /**
   * Serve the HTTP API (and dashboard) on this port; 0 picks a free one. The host defaults to
   * `MATERI_HOST`; a non-loopback one needs a token ({@link checkListenAddress}).
   */
  http?: { port: number; host?: string };
  /** Override a component's concurrency (`--concurrency`). */
  concurrency?: Partial<Record<ComponentName, number>>;
  subscriber?: SubscriberTuning;
  /** Claim idle time of every consumer. @defaultValue 30000 */
  claimIdleMs?: number;
  /** How long `close()` gives work in flight to finish. @defaultValue `MATERI_SHUTDOWN_TIMEOUT_MS` */
  shutdownTimeoutMs?: number;
}

/** A running stack: what `materi up` and `materi worker` hold until they stop. */
export interface Stack {
  bus: EventBus;
  store?: Store;
  orchestrator?: Orchestrator;
  router: Router;
  server?: FastifyInstance;
  /** Base URL of the HTTP server, when serving. */
  url?: string;
  metrics: ReturnType<typeof createBusMetrics>;
  close(): Promise<void>;
}

/**
 * Starts the components of one process on the backends the settings select: the event bus,
 * the store (when a component needs it), the workers' handlers on one router, the orchestrator,
 * the dead-letter recorder and alerts, heartbeats, and the HTTP server.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { settings, logger, components } = options;
  const claimIdleMs = options.claimIdleMs ?? settings.claimIdleMs;
  const host = options.http?.host ?? settings.host;
  if (options.http) checkListenAddress({ ...settings, host });
  // One deadline for every step of close(): what is in flight when it passes stays pending.
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? settings.shutdownTimeoutMs;
  let closeDeadline: number | undefined;
  const remaining = () =>
    closeDeadline === undefined ? shutdownTimeoutMs : Math.max(0, closeDeadline - Date.now());
  const closers: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    while (closers.length > 0)
      await closers.pop()!().catch((error) => logger.warn({ err: error }, 'shutdown step failed'));
  };
  try {
    const bus = await openEventBus(settings, {
      logger,
      source: `materi/${options.role.replace(/\s+/g, '-')}`,
      subscriber: options.subscriber,
    });
    closers.push(() => bus.close());
    const needsStore =
      components.includes('orchestrator') || components.includes('shield') || options.http !== undefined;
    const store = needsStore
      ? await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger })
      : undefined;
    if (store) closers.push(() => store.close());
    const failedEvents = store ? new FailedEventStore(store.db) : undefined;
    const metrics = createBusMetrics();
    metrics.watchGroups(
      bus.inspector,
      failedEvents ? async () => new Map(Object.entries(await failedEvents.depth())) : undefined,
    );

    // `--concurrency` of `materi worker`, then MATERI_CONCURRENCY, then the component's default.
    const concurrencyOf = (name: ComponentName): number | undefined =>
      options.concurrency?.[name] ?? settings.concurrency[name];
    const router = new Router({
      subscriber: bus.subscriber,
      publisher: bus.publisher,
      logger,
      observer: metrics.observer,
      middleware: [
        logging(),
        idempotency({
          store: bus.idempotency,
          leaseMs: Math.max(2 * claimIdleMs, 5000),
          isConsumerGone: consumerLiveness(bus.inspector),
        }),
      ],
    });
    const groups: string[] = [];
    const add = (
      name: ComponentName,
      handler: Handler,
      types: readonly string[],
      group: string,
      concurrency: number,
    ) => {
      router.addHandler({
        name,
        group,
        types: [...types],
        handler,
        concurrency: concurrencyOf(name) ?? concurrency,
        orderedBy: 'deployment',
        claimIdleMs,
      });
      groups.push(group);
    };
    if (components.includes('validator')) {
      const d = WORKER_DEFAULTS.validator;
      add('validator', createValidatorHandler(), d.types, d.group, d.concurrency);
    }
    if (components.includes('dependency-checker')) {
      const d = WORKER_DEFAULTS['dependency-checker'];
      add('dependency-checker', createDependencyCheckerHandler(), d.types, d.group, d.concurrency);
    }
    if (components.includes('health-monitor')) {
      const d = WORKER_DEFAULTS['health-monitor'];
      add('health-monitor', createHealthMonitorHandler(), d.types, d.group, d.concurrency);
    }
    if (components.includes('notifier')) {
      // Without a settings file, team status updates go to the local server's inbox (GET /api/inbox).
      process.env.MATERI_INBOX_URL ??= `${settings.apiUrl}/api/inbox`;
      const notifierSettings = settings.notifierConfig
        ? await loadNotifierSettings(settings.notifierConfig)
        : parseNotifierSettings(
            {
              dashboardUrl: settings.apiUrl,
              channels: { inbox: { type: 'status', webhookUrl: '${MATERI_INBOX_URL}' } },
              routes: [
                {
                  events: [
                    'deployment:started',
                    'deployment:completed',
                    'deployment:failed',
                    'rollback:*',
                    'approval:*',
                  ],
                  channels: ['inbox'],
                },
              ],
            },
            'default notifier settings',
          );
      const state = bus.redis
        ? createRedisNotifierState({ client: bus.redis, prefix: `${bus.prefix}:notifier` })
        : createMemoryNotifierState();
      const notifier = createNotifier({ settings: notifierSettings, state, logger });
      // A new printery-notifier group starts where the settings say (default: the streams' end).
      router.addHandler(
        notifierRegistration(notifier, {
          concurrency: concurrencyOf('notifier') ?? WORKER_DEFAULTS.notifier.concurrency,
          claimIdleMs,
        }),
      );
      groups.push(WORKER_DEFAULTS.notifier.group);
      if (!settings.notifierConfig)
        logger.info('notifier: no MATERI_NOTIFIER_CONFIG set, so no channels are configured');
    }

    let orchestrator: Orchestrator | undefined;
    if (components.includes('orchestrator')) {
      orchestrator = new Orchestrator({
        db: store!.db,
        publisher: bus.publisher,
        subscriber: bus.subscriber,
        logger,
        dataDir: settings.dataDir,
        observer: metrics.observer,
        claimIdleMs,
        leaseMs: settings.leaseMs,
        concurrency: concurrencyOf('orchestrator'),
        dashboardUrl: settings.apiUrl,
        freezeFile: settings.freezeFile,
        // Stop the line: the incidents the notifier pages for, read with the notifier's own settings.
        incidentRules: settings.notifierConfig
          ? await loadNotifierSettings(settings.notifierConfig)
          : undefined,
      });
      groups.push('orchestrator');
    }

    const feed = components.includes('shield') ? new ShieldFeed() : undefined;
    if (feed && store) {
      router.addHandler(
        shieldProjectionRegistration({
          db: store.db,
          logger,
          onChange: feed.publish,
          claimIdleMs,
          concurrency: concurrencyOf('shield'),
        }),
      );
      groups.push(SHIELD_GROUP);
    }

    const stack: Stack = {
      bus,
      store,
      orchestrator,
      router,
      metrics,
      close: async () => {
        closeDeadline ??= Date.now() + shutdownTimeoutMs;
        await closeAll();
      },
    };

    // Beating before the first handler runs: a consumer seen holding a lease is known to be alive.
    closers.push(
      startHeartbeat(bus.inspector, {
        role: options.role,
        groups: () => [...new Set(groups)],
      }),
    );
    await router.start();
    closers.push(() => router.close(remaining()));
    if (orchestrator) {
      await orchestrator.start();
      closers.push(() => orchestrator!.close(remaining()));
    }
    const subscriptions: Subscription[] = [];
    if (failedEvents && store) {
      subscriptions.push(
        await startDeadLetterRecorder({
          subscriber: bus.subscriber,
          failedEvents,
          logger,
          observer: metrics.observer,
          claimIdleMs,
        }),
      );
      const alerts = new BusAlertMonitor({
        inspector: bus.inspector,
        deadLetterDepth: () => failedEvents.depth(),
        db: store.db,
        publisher: bus.publisher,
        logger,
      });
      alerts.start();
      closers.push(async () => alerts.stop());
      closers.push(() => Promise.all(subscriptions.map((s) => s.close(Math.min(2000, remaining())))));
    }
    if (feed && settings.streamRetentionMs > 0) {
      // The process that keeps Shield's log also keeps the streams from growing forever.
      const trimmer = startStreamTrimmer(bus, settings.streamRetentionMs, logger);
      closers.push(async () => clearInterval(trimmer));
    }

    if (options.http) {
      const server = await createApiServer({
        auth: {
          apiToken: settings.apiToken,
          viewerToken: settings.viewerToken,
          tokensFile: settings.tokensFile,
        },
        logger,
        metrics: metrics.registry,
        info: {
          bus: `${bus.kind} ${bus.description}`,
          store: store ? `${store.dialect} ${store.describe()}` : undefined,
          role: options.role,
        },
        // /healthz is liveness (the process answers); /readyz checks what the process needs.
        ready: {
          bus: () => pingBus(bus),
          ...(store ? { store: () => sql`select 1`.execute(store.db) } : {}),
        },
      });
      if (orchestrator) registerOrchestratorRoutes(server, orchestrator);
      if (feed && store && failedEvents) {
        // Shield's routes: deployments, events, SSE, DLQ, workers, and the dashboard at /.
        await registerShieldRoutes(server, { db: store.db, bus, failedEvents, feed, logger });
      } else if (failedEvents) {
        registerWorkersRoute(server, { bus, failedEvents });
      }
      registerInbox(server, logger);
      stack.server = server;
      await server.listen({ port: options.http.port, host });
      const address = server.server.address();
      const port = typeof address === 'object' && address ? address.port : options.http.port;
      stack.url = localServerUrl(host, port);
      if (!settings.notifierConfig) process.env.MATERI_INBOX_URL = `${stack.url}/api/inbox`;
      closers.push(() => server.close());
    }
    return stack;
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** Resolves when the event bus answers: Redis PING, or a query on the embedded bus' SQLite file. */
async function pingBus(bus: EventBus): Promise<void> {
  if (bus.redis) await bus.redis.ping();
  else bus.embedded?.database.db.prepare('select 1').get();
}

/**
 * The local inbox: where the notifier's default `status` channel posts when no settings file is
 * configured, so a fresh `materi up` shows its notifications (log and `GET /api/inbox`).
 */
function registerInbox(server: FastifyInstance, logger: Logger): void {
  const received: { at: string; text: string }[] = [];
  server.post(
    '/api/inbox',
    {
      config: { access: 'public' },
      schema: { summary: 'Receive a status update (Slack-compatible, from this machine only)' },
    },
    async (request, reply) => {
      // From this machine: loopback, or one of its own addresses when the server listens on one.
      if (!isLoopbackHost(request.ip) && request.ip !== request.socket.localAddress) {
        return reply.status(403).send({
          error: {
            code: 'MATERI_ERR_FORBIDDEN',
            message: 'the inbox accepts posts from this machine only',
          },
        });
      }
      const text = String((request.body as { text?: unknown } | undefined)?.text ?? '').slice(0, 2000);
      received.unshift({ at: new Date().toISOString(), text });
      received.length = Math.min(received.length, 100);
      logger.info({ notification: text }, 'status update');
      return reply.type('text/plain').send('ok');
    },
  );
  server.get(
    '/api/inbox',
    { schema: { summary: 'The latest status updates received by the local inbox' } },
    async () => received,
  );
}

/**
 * Trims every event stream to the retention hourly (and once at start). The trim never removes an
 * entry some consumer group has not acknowledged; Shield's event log keeps the history.
 */
function startStreamTrimmer(bus: EventBus, retentionMs: number, logger: Logger): NodeJS.Timeout {
  const trimAll = async () => {
    try {
      for (const type of await streamReaderFor(bus).types()) {
        const result = await bus.trim(type, { maxAgeMs: retentionMs });
        if (result.removed > 0)
          logger.info({ stream: result.stream, removed: result.removed }, 'trimmed stream');
      }
    } catch (error) {
      logger.warn({ err: error }, 'trimming streams failed');
    }
  };
  void trimAll();
  const timer = setInterval(trimAll, 3_600_000);
  timer.unref();
  return timer;
}
