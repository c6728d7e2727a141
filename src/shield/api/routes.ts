import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { actorOf } from '../../api/auth.js';
import type { EventBus } from '../../bus/open.js';
import { replayFailedEvents } from '../../dlq/replay.js';
import { NotFoundError } from '../../errors/index.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { collectWorkerStatus } from '../../runtime/worker-status.js';
import type { FailedEventStatus, FailedEventStore } from '../../store/index.js';
import type { Database } from '../../store/schema.js';
import type { ShieldFeed } from '../projection.js';
import type { DeploymentStatusName } from '../record.js';
import { ShieldStore } from '../store/shield-store.js';
import { registerDashboardRoutes } from './dashboard.js';
import { optionalDate, querySchema, textFilter, timeFilter } from './query.js';
import { registerStreamRoute } from './stream.js';

/** What Shield's routes need. */
export interface ShieldRoutesOptions {
  /** The store's query builder (Shield's tables migrated). */
  db: Kysely<Database>;
  /** The event bus: `replay` for `POST /api/dlq/:id/replay`, `inspector` for `GET /api/workers`. */
  bus: Pick<EventBus, 'replay' | 'inspector'>;
  failedEvents: FailedEventStore;
  /** The feed the projection's `onChange` publishes to; `GET /api/stream` listens on it. */
  feed: ShieldFeed;
  logger?: Logger;
  /** Serve the dashboard at `/`. @defaultValue true */
  dashboard?: boolean;
  /** Directory of the dashboard's files. @defaultValue `defaultWebRoot()` (src/shield/web) */
  webRoot?: string;
  /** Interval of SSE keep-alive comments. @defaultValue 15000 */
  keepAliveMs?: number;
  /** Heartbeat interval of worker processes, to tell alive from dead. @defaultValue 5000 */
  heartbeatIntervalMs?: number;
}

const STATUSES = 'PENDING|RUNNING|SUCCESS|FAILURE|ROLLED_BACK|CANCELLED';

/**
 * Registers Shield's HTTP API — deployments, events, SSE stream, dead letters, workers — and the
 * dashboard on the shared server (`createApiServer`). Reads need the viewer token when one is set;
 * replaying a dead letter needs the operator token.
 */
export async function registerShieldRoutes(
  app: FastifyInstance,
  options: ShieldRoutesOptions,
): Promise<void> {
  const store = new ShieldStore(options.db);
  const logger = options.logger ?? silentLogger();

  const deploymentsQuery = querySchema({
    environment: textFilter('Only this environment'),
    service: textFilter('Only deployments that covered this service'),
    status: {
      type: 'string',
      pattern: `^(${STATUSES})(,(${STATUSES}))*$`,
      description: 'One status or several, comma separated',
    },
    version: textFilter('Only this version'),
    project: textFilter('Only this project'),
    from: timeFilter('Started at or after (RFC 3339)'),
    to: timeFilter('Started before (RFC 3339)'),
    limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    cursor: {
      type: 'string',
      minLength: 1,
      maxLength: 300,
      description: '`nextCursor` of the previous page',
    },
  });
  app.get(
    '/api/deployments',
    {
      preValidation: deploymentsQuery.preValidation,
      schema: {
        summary: 'List deployment records, newest first',
        description:
          'Filtered and paged: pass `nextCursor` as `cursor` for the next page. `lastEventId` is the latest ' +
          'event logged; open `/api/stream?last_event_id=` with it to miss nothing after this answer.',
        tags: ['shield'],
        querystring: deploymentsQuery.schema,
      },
    },
    async (request) => {
      const q = request.query as {
        environment?: string;
        service?: string;
        status?: string;
        version?: string;
        project?: string;
        from?: string;
        to?: string;
        limit: number;
        cursor?: string;
      };
      const lastEventId = await store.lastSeq();
      const page = await store.listDeployments({
        environment: q.environment,
        service: q.service,
        status: q.status?.split(',') as DeploymentStatusName[] | undefined,
        version: q.version,
        project: q.project,
        from: optionalDate(q.from),
        to: optionalDate(q.to),
        limit: q.limit,
        cursor: q.cursor,
      });
      return { deployments: page.items, nextCursor: page.nextCursor, lastEventId };
    },
  );

  const idParams = {
    type: 'object',
    properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
    required: ['id'],
  };
  const noQuery = querySchema({});
  app.get(
    '/api/deployments/:id',
    {
      preValidation: noQuery.preValidation,
      schema: {
        summary: 'One deployment record and its event timeline',
        tags: ['shield'],
        params: idParams,
        querystring: noQuery.schema,
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const deployment = await store.getDeployment(id);
      if (!deployment) throw new NotFoundError(`no deployment "${id.slice(0, 80)}" in Shield's records`);
      return { deployment, timeline: await store.timeline(id) };
    },
  );

  const eventsQuery = querySchema({
    correlation_id: textFilter('Only events of this correlation id'),
    deployment_id: textFilter('Only events of this deployment'),
    type: textFilter('Only this event type (exact)'),
    from: timeFilter('Published at or after (RFC 3339)'),
    to: timeFilter('Published before (RFC 3339)'),
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
    cursor: {
      type: 'string',
      minLength: 1,
      maxLength: 300,
      description: '`nextCursor` of the previous page',
    },
  });
  app.get(
    '/api/events',
    {
      preValidation: eventsQuery.preValidation,
      schema: {
        summary: 'Logged events by correlation id, deployment, type or time, oldest first',
        tags: ['shield'],
        querystring: eventsQuery.schema,
      },
    },
    async (request) => {
      const q = request.query as {
        correlation_id?: string;
        deployment_id?: string;
        type?: string;
        from?: string;
        to?: string;
        limit: number;
        cursor?: string;
      };
      const page = await store.listEvents({
        correlationId: q.correlation_id,
        deploymentId: q.deployment_id,
        type: q.type,
        from: optionalDate(q.from),
        to: optionalDate(q.to),
        limit: q.limit,
        cursor: q.cursor,
      });
      return { events: page.items, nextCursor: page.nextCursor };
    },
  );

  registerStreamRoute(app, { store, feed: options.feed, logger, keepAliveMs: options.keepAliveMs });

  const dlqQuery = querySchema({
    group: textFilter('Only this consumer group'),
    status: {
      type: 'string',
      enum: ['dead', 'replayed', 'purged'],
      description: 'Default: dead and replayed',
    },
    deployment_id: textFilter('Only dead letters of this deployment'),
    correlation_id: textFilter('Only dead letters of this correlation id'),
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  });
  app.get(
    '/api/dlq',
    {
      preValidation: dlqQuery.preValidation,
      schema: {
        summary: 'Dead-lettered events, newest failure first',
        tags: ['dead letters'],
        querystring: dlqQuery.schema,
      },
    },
    async (request) => {
      const q = request.query as {
        group?: string;
        status?: FailedEventStatus;
        deployment_id?: string;
        correlation_id?: string;
        limit: number;
      };
      const failedEvents = await options.failedEvents.list({
        group: q.group,
        status: q.status,
        deploymentId: q.deployment_id,
        correlationId: q.correlation_id,
        limit: q.limit,
      });
      return { failedEvents };
    },
  );

  app.post(
    '/api/dlq/:id/replay',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Deliver a dead-lettered event again to the group that failed it',
        tags: ['dead letters'],
        params: {
          type: 'object',
          properties: {
            id: { type: 'string', pattern: '^[0-9a-f]{12}$', description: 'Dead-letter record id' },
          },
          required: ['id'],
        },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const by = actorOf(request);
      const [replayed] = await replayFailedEvents(options.bus, options.failedEvents, { ids: [id] }, by);
      logger.info({ failed_event: id, group: replayed?.group, by }, 'dead letter replayed through the API');
      return { replayed: replayed && { ...replayed, by } };
    },
  );

  // A host that already serves the report (its own registerWorkersRoute) keeps it.
  if (!app.hasRoute({ method: 'GET', url: '/api/workers' })) registerWorkersRoute(app, options);

  if (options.dashboard !== false) registerDashboardRoutes(app, options.webRoot);
}

/** `GET /api/workers`: served with Shield, and by a stack that has a store but no Shield. */
export function registerWorkersRoute(
  app: FastifyInstance,
  options: Pick<ShieldRoutesOptions, 'bus' | 'failedEvents' | 'heartbeatIntervalMs'>,
): void {
  const noQuery = querySchema({});
  app.get(
    '/api/workers',
    {
      preValidation: noQuery.preValidation,
      schema: {
        summary: 'Consumer groups (lag, pending, consumers, dead letters) and worker processes',
        tags: ['workers'],
        querystring: noQuery.schema,
      },
    },
    async () => collectWorkerStatus(options.bus.inspector, options.failedEvents, options.heartbeatIntervalMs),
  );
}
