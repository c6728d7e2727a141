import type { EventBus } from '../bus/open.js';
import { BadInputError, ConflictError, NotFoundError } from '../errors/index.js';
import type { FailedEvent, FailedEventStore } from '../store/index.js';

export interface ReplayResult {
  id: string;
  group: string;
  /** Entry id of the replay on `<prefix>:replay:<group>`. */
  replayEntryId: string;
}

/**
 * Delivers dead-lettered events again, each to the group that failed it and to no other (through
 * the group's replay stream), with deliveries counted from one; marks each row replayed. A
 * replay that fails again comes back to the dead-letter stream and its row returns to `dead`.
 */
export async function replayFailedEvents(
  bus: Pick<EventBus, 'replay'>,
  failedEvents: FailedEventStore,
  selection: { ids: string[] } | { all: true; group?: string },
): Promise<ReplayResult[]> {
  let rows: FailedEvent[];
  if ('ids' in selection) {
    if (selection.ids.length === 0) throw new BadInputError('give a failed event id, or --all');
    rows = [];
    for (const id of selection.ids) {
      const row = await failedEvents.get(id);
      if (!row) throw new NotFoundError(`no failed event with id ${id} (see materi dlq list)`);
      if (row.status === 'purged')
        throw new ConflictError(`failed event ${id} was purged and cannot be replayed`);
      rows.push(row);
    }
  } else {
    rows = await failedEvents.list({ status: 'dead', group: selection.group, limit: 1000 });
  }
  const results: ReplayResult[] = [];
  for (const row of rows) {
    if (Object.keys(row.fields).length === 0) {
      throw new ConflictError(`failed event ${row.id} has no stored payload to replay`);
    }
    const replayEntryId = await bus.replay(row.group, row.fields, {
      stream: row.sourceStream,
      entryId: row.entryId,
    });
    await failedEvents.markReplayed(row.id);
    results.push({ id: row.id, group: row.group, replayEntryId });
  }
  return results;
}
