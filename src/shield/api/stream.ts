import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { BadInputError, describeCause } from '../../errors/index.js';
import type { Logger } from '../../runtime/logging.js';
import type { LoggedEvent } from '../event-log.js';
import type { ShieldFeed } from '../projection.js';
import type { UnifiedDeployment } from '../record.js';
import type { ShieldStore } from '../store/shield-store.js';
import { querySchema, textFilter } from './query.js';

export interface StreamRouteOptions {
  store: ShieldStore;
  feed: ShieldFeed;
  logger: Logger;
  /** Interval of the keep-alive comments. @defaultValue 15000 */
  keepAliveMs?: number;
  /** A client whose unsent output grows past this many bytes is disconnected (it will resume). @defaultValue 4 MiB */
  maxBufferedBytes?: number;
}

/** Events read from the log per query while a client catches up. */
const REPLAY_PAGE = 500;

function parseResumePoint(header: unknown, query: string | undefined): number | undefined {
  const raw = typeof header === 'string' && header.trim() !== '' ? header.trim() : query;
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw)) {
    throw new BadInputError(
      `Last-Event-ID: expected the id of an event this stream sent, got "${raw.slice(0, 30)}"`,
    );
  }
  return Number(raw);
}

function message(kind: 'event' | 'deployment', seq: number, data: unknown): string {
  // JSON.stringify never emits a raw newline, so the data fits one `data:` line.
  return `id: ${seq}\nevent: ${kind}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * `GET /api/stream`: Server-Sent Events. Each change sends `event: event` (the logged event) and,
 * for a deployment's event, `event: deployment` (its record), both with `id: <log sequence>`.
 * `Last-Event-ID` (or `?last_event_id=`) first replays the events logged after that id, then the
 * current records of the deployments they touched, then goes live.
 */
export function registerStreamRoute(app: FastifyInstance, options: StreamRouteOptions): void {
  const open = new Set<ServerResponse>();
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
  // Open streams would hold the server open forever; end them when it closes.
  app.addHook('preClose', async () => {
    for (const response of open) response.end();
  });

  const query = querySchema({
    last_event_id: { type: 'string', pattern: '^\\d{1,15}$', description: 'Resume after this id' },
    deployment_id: textFilter('Only this deployment'),
  });
  app.get(
    '/api/stream',
    {
      preValidation: query.preValidation,
      schema: {
        summary: 'Live deployment records and events (Server-Sent Events)',
        description:
          'Messages `event: event` (a logged event) and `event: deployment` (a changed record), each with an ' +
          '`id:`. Send `Last-Event-ID` (or `?last_event_id=`) to replay what was logged after it. A comment ' +
          'line is sent every 15 s to keep the connection open.',
        tags: ['shield'],
        querystring: query.schema,
      },
    },
    async (request, reply) => {
      const params = request.query as { last_event_id?: string; deployment_id?: string };
      const resumeFrom = parseResumePoint(request.headers['last-event-id'], params.last_event_id);
      const only = params.deployment_id;
      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      open.add(response);
      let closed = false;
      const write = (text: string) => {
        if (closed) return;
        response.write(text);
        if (response.writableLength > maxBuffered) {
          options.logger.warn({ buffered: response.writableLength }, 'SSE client too slow; disconnecting');
          response.end();
        }
      };
      const send = (record: UnifiedDeployment | undefined, event: LoggedEvent) => {
        if (only !== undefined && event.deploymentId !== only) return;
        write(message('event', event.seq, event));
        if (record) write(message('deployment', event.seq, record));
      };

      // Listen before reading the log, holding live changes back until the replay is sent.
      let held: [UnifiedDeployment | undefined, LoggedEvent][] | undefined = [];
      const unsubscribe = options.feed.subscribe((record, event) => {
        if (held) held.push([record, event]);
        else send(record, event);
      });
      const keepAlive = setInterval(() => write(': keep-alive\n\n'), keepAliveMs);
      keepAlive.unref();
      response.on('close', () => {
        closed = true;
        open.delete(response);
        clearInterval(keepAlive);
        unsubscribe();
      });
      write('retry: 2000\n: connected\n\n');

      try {
        let replayedUpTo = 0;
        if (resumeFrom !== undefined) {
          replayedUpTo = resumeFrom;
          const touched = new Set<string>();
          for (;;) {
            const page = await options.store.eventsAfter(replayedUpTo, REPLAY_PAGE, only);
            for (const event of page) {
              write(message('event', event.seq, event));
              if (event.deploymentId !== '') touched.add(event.deploymentId);
              replayedUpTo = event.seq;
            }
            if (page.length < REPLAY_PAGE || closed) break;
          }
          for (const id of touched) {
            const record = await options.store.getDeployment(id);
            if (record) write(message('deployment', replayedUpTo, record));
          }
        }
        const backlog = held;
        held = undefined;
        for (const [record, event] of backlog) {
          if (event.seq > replayedUpTo) send(record, event);
        }
      } catch (error) {
        options.logger.error({ err: describeCause(error) }, 'SSE replay failed');
        response.end();
      }
    },
  );
}
