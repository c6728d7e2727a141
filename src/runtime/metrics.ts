import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BusInspector, ReceivedMessage, SubscriptionObserver } from '../bus/types.js';

/** The Prometheus metrics of one process. Exposed on `/metrics` by every long-running command. */
export interface BusMetrics {
  registry: Registry;
  /** Counts what subscriptions do; pass it to the Router. */
  observer: SubscriptionObserver;
  /** Reads group gauges from this inspector at scrape time (lag, pending, oldest pending, DLQ). */
  watchGroups(inspector: BusInspector, deadLetterDepth?: () => Promise<Map<string, number>>): void;
}

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300];

/**
 * Creates the metrics (prefix `materi_`): counters of handled, failed, retried, dead-lettered,
 * reclaimed and vanished entries per group and event type, a handler duration histogram, and
 * gauges per group read when Prometheus scrapes.
 */
export function createBusMetrics(options: { defaultMetrics?: boolean } = {}): BusMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'materi_' });
  const labels = ['group', 'type'] as const;
  const handled = new Counter({
    name: 'materi_events_handled_total',
    help: 'Events handled successfully',
    labelNames: labels,
    registers: [registry],
  });
  const failed = new Counter({
    name: 'materi_events_failed_total',
    help: 'Handler failures (each attempt)',
    labelNames: labels,
    registers: [registry],
  });
  const retried = new Counter({
    name: 'materi_events_retried_total',
    help: 'Events parked for a retry',
    labelNames: labels,
    registers: [registry],
  });
  const deadLettered = new Counter({
    name: 'materi_events_dead_lettered_total',
    help: 'Events moved to a dead-letter stream',
    labelNames: [...labels, 'reason'],
    registers: [registry],
  });
  const reclaimed = new Counter({
    name: 'materi_events_reclaimed_total',
    help: 'Entries taken over from a dead or stalled consumer',
    labelNames: ['group', 'stream'],
    registers: [registry],
  });
  const vanished = new Counter({
    name: 'materi_events_vanished_total',
    help: 'Pending entries found deleted or trimmed (acknowledged, not retried)',
    labelNames: ['group', 'stream'],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'materi_bus_errors_total',
    help: 'Bus operation errors',
    labelNames: ['where'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'materi_handler_duration_seconds',
    help: 'Handler duration',
    labelNames: labels,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const typeOf = (message: ReceivedMessage) => message.fields.type ?? 'unknown';

  const observer: SubscriptionObserver = {
    acked(message, durationMs) {
      const l = { group: message.group, type: typeOf(message) };
      handled.inc(l);
      duration.observe(l, durationMs / 1000);
    },
    retried(message) {
      const l = { group: message.group, type: typeOf(message) };
      failed.inc(l);
      retried.inc(l);
    },
    deadLettered(message, _error, reason) {
      failed.inc({ group: message.group, type: typeOf(message) });
      deadLettered.inc({ group: message.group, type: typeOf(message), reason });
    },
    reclaimed(group, stream, count) {
      reclaimed.inc({ group, stream }, count);
    },
    vanished(group, stream, count) {
      vanished.inc({ group, stream }, count);
    },
    error(_error, where) {
      errors.inc({ where });
    },
  };

  function watchGroups(inspector: BusInspector, deadLetterDepth?: () => Promise<Map<string, number>>): void {
    let snapshot: Promise<Awaited<ReturnType<BusInspector['groups']>>> | undefined;
    // One inspection per scrape, shared by the gauges.
    const groups = () => {
      snapshot ??= inspector.groups().finally(() => setTimeout(() => (snapshot = undefined), 50));
      return snapshot;
    };
    const gauge = (
      name: string,
      help: string,
      pick: (g: Awaited<ReturnType<typeof groups>>[number]) => number | null,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['group'],
        registers: [registry],
        async collect() {
          this.reset();
          for (const g of await groups()) {
            const value = pick(g);
            if (value !== null) this.set({ group: g.group }, value);
          }
        },
      });
    gauge('materi_group_lag', 'Entries not yet delivered to the group', (g) => g.lag);
    gauge('materi_group_pending', 'Entries delivered and not acknowledged', (g) => g.pending);
    gauge('materi_group_oldest_pending_age_seconds', 'Age of the oldest unacknowledged entry', (g) =>
      g.oldestPendingAgeMs === null ? 0 : g.oldestPendingAgeMs / 1000,
    );
    gauge(
      'materi_group_consumers',
      'Consumers alive in the group',
      (g) => g.consumers.filter((c) => c.state === 'alive').length,
    );
    new Gauge({
      name: 'materi_dlq_depth',
      help: 'Dead-lettered events not replayed or purged',
      labelNames: ['group'],
      registers: [registry],
      async collect() {
        this.reset();
        if (deadLetterDepth) {
          for (const [group, depth] of await deadLetterDepth()) this.set({ group }, depth);
        } else {
          for (const g of await groups()) this.set({ group: g.group }, g.deadLettered);
        }
      },
    });
  }

  return { registry, observer, watchGroups };
}

/**
 * Serves `GET /metrics` (Prometheus text format) on its own small HTTP server, for processes that
 * run no API server (`materi worker …`). Resolves with the bound port.
 */
export async function serveMetrics(
  registry: Registry,
  options: { port: number; host?: string },
): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((error: Error) =>
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
