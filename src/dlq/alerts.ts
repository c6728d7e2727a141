import type { Kysely } from 'kysely';
import type { BusInspector, Publisher } from '../bus/types.js';
import type { Logger } from '../runtime/logging.js';
import type { Database } from '../store/index.js';

/** Thresholds of the bus alerts. */
export interface BusAlertThresholds {
  /** Dead-lettered events not yet replayed or purged, per group. @defaultValue 1 */
  deadLetterDepth: number;
  /** Age of a group's oldest unacknowledged entry, in ms. @defaultValue 300000 (5 min) */
  oldestPendingAgeMs: number;
}

export interface BusAlertMonitorOptions {
  inspector: BusInspector;
  /** Dead-letter depth per group (from the `failed_events` rows). */
  deadLetterDepth: () => Promise<Record<string, number>>;
  db: Kysely<Database>;
  publisher: Publisher;
  logger: Logger;
  thresholds?: Partial<BusAlertThresholds>;
  /** @defaultValue 15000 */
  intervalMs?: number;
}

interface Reading {
  alert: 'DeadLetterQueueDepth' | 'OldestPendingAge';
  group: string;
  value: number;
  threshold: number;
}

/**
 * Watches every consumer group's dead-letter depth and oldest pending age and publishes an
 * `alert:raised` event when one crosses its threshold — once per crossing, not per entry — and a
 * resolved one when it goes back under. The firing state is a row per alert and group, changed
 * with a compare-and-set, so several processes running the monitor raise each crossing once.
 */
export class BusAlertMonitor {
  private timer: NodeJS.Timeout | undefined;
  private readonly thresholds: BusAlertThresholds;

  constructor(private readonly options: BusAlertMonitorOptions) {
    this.thresholds = { deadLetterDepth: 1, oldestPendingAgeMs: 300_000, ...options.thresholds };
  }

  start(): void {
    const run = () =>
      this.check().catch((error) => this.options.logger.warn({ err: error }, 'checking bus alerts failed'));
    this.timer = setInterval(run, this.options.intervalMs ?? 15_000);
    this.timer.unref();
    void run();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One round: reads the groups and raises or resolves alerts. Returns the events published. */
  async check(): Promise<{ alert: string; group: string; resolved: boolean }[]> {
    const [groups, depth] = await Promise.all([
      this.options.inspector.groups(),
      this.options.deadLetterDepth(),
    ]);
    const readings: Reading[] = [];
    const names = new Set([...groups.map((g) => g.group), ...Object.keys(depth)]);
    for (const group of names) {
      readings.push({
        alert: 'DeadLetterQueueDepth',
        group,
        value: depth[group] ?? 0,
        threshold: this.thresholds.deadLetterDepth,
      });
    }
    for (const g of groups) {
      readings.push({
        alert: 'OldestPendingAge',
        group: g.group,
        value: (g.oldestPendingAgeMs ?? 0) / 1000,
        threshold: this.thresholds.oldestPendingAgeMs / 1000,
      });
    }
    const published: { alert: string; group: string; resolved: boolean }[] = [];
    for (const reading of readings) {
      const firing = reading.value >= reading.threshold;
      if (await this.transition(reading, firing)) {
        await this.options.publisher.publish({
          type: 'alert:raised',
          data: {
            alert: reading.alert,
            group: reading.group,
            severity: firing ? 'critical' : 'info',
            summary: describe(reading, firing),
            value: reading.value,
            threshold: reading.threshold,
            resolved: !firing,
            observedAt: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 },
          },
        });
        this.options.logger.warn(
          { alert: reading.alert, group: reading.group, value: reading.value, firing },
          'bus alert',
        );
        published.push({ alert: reading.alert, group: reading.group, resolved: !firing });
      }
    }
    return published;
  }

  /** Flips the stored state; true only for the one process whose update changed it. */
  private async transition(reading: Reading, firing: boolean): Promise<boolean> {
    const { db } = this.options;
    const now = Date.now();
    await db
      .insertInto('bus_alerts')
      .values({ alert: reading.alert, group_name: reading.group, firing: 0, value: 0, changed_at: now })
      .onConflict((oc) => oc.columns(['alert', 'group_name']).doNothing())
      .execute();
    const result = await db
      .updateTable('bus_alerts')
      .set({ firing: firing ? 1 : 0, value: reading.value, changed_at: now })
      .where('alert', '=', reading.alert)
      .where('group_name', '=', reading.group)
      .where('firing', '=', firing ? 0 : 1)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

function describe(reading: Reading, firing: boolean): string {
  if (reading.alert === 'DeadLetterQueueDepth') {
    return firing
      ? `${reading.value} dead-lettered event(s) in ${reading.group} (threshold ${reading.threshold}); see materi dlq list --group ${reading.group}`
      : `dead-letter queue of ${reading.group} is back under ${reading.threshold}`;
  }
  return firing
    ? `oldest unacknowledged entry of ${reading.group} is ${Math.round(reading.value)} s old (threshold ${reading.threshold} s)`
    : `${reading.group} caught up: oldest pending entry under ${reading.threshold} s`;
}
