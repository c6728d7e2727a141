import type { BusInspector, GroupStatus } from '../bus/types.js';
import type { FailedEventStore } from '../store/index.js';

/** Worker status as `materi workers` and `GET /api/workers` report it. */
export interface WorkerStatusReport {
  groups: (GroupStatus & { deadLetterDepth: number })[];
  processes: {
    host: string;
    pid: number;
    role: string;
    groups: string[];
    startedAt: string;
    beatAt: string;
    alive: boolean;
  }[];
}

/** Joins the bus' view of the groups with the dead-letter depth from the store. */
export async function collectWorkerStatus(
  inspector: BusInspector,
  failedEvents: FailedEventStore,
  heartbeatIntervalMs = 5000,
): Promise<WorkerStatusReport> {
  const [groups, depth, beats] = await Promise.all([
    inspector.groups(),
    failedEvents.depth(),
    inspector.heartbeats(),
  ]);
  return {
    groups: groups.map((g) => ({ ...g, deadLetterDepth: depth[g.group] ?? 0 })),
    processes: beats.map((b) => ({
      ...b,
      startedAt: b.startedAt.toISOString(),
      beatAt: b.beatAt.toISOString(),
      alive: Date.now() - b.beatAt.getTime() < 3 * heartbeatIntervalMs,
    })),
  };
}
