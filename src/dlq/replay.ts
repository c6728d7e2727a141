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
 * With `all`, every dead row goes, oldest first (the order the events failed in, and so mostly
 * the order they were published in): a consumer that needs a deployment's `started` before its
 * `completed` sees them so again.
 */
export async function replayFailedEvents(
  bus: Pick<EventBus, 'replay'>,
  failedEvents: FailedEventStore,
  selection: { ids: string[] } | { all: true; group?: string },
  /** Who replays, recorded with each row (`replayedBy`). */
  by?: string,
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
    rows = (await allDead(failedEvents, selection.group)).sort(oldestFirst);
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
    await failedEvents.markReplayed(row.id, by);
    results.push({ id: row.id, group: row.group, replayEntryId });
  }
  return results;
}

/** Rows listed per query: the store's own maximum. */
const PAGE = 1000;

/**
 * Every row still dead (of one group, when given). The store lists newest failure first, at most
 * {@link PAGE} rows, with a strict `before`; rows sharing the last failure time of a page may
 * continue on the next one, so each next page starts just after that time and repeats are dropped.
 */
async function allDead(failedEvents: FailedEventStore, group: string | undefined): Promise<FailedEvent[]> {
  const rows = new Map<string, FailedEvent>();
  let before: Date | undefined;
  for (;;) {
    const page = await failedEvents.list({ status: 'dead', group, limit: PAGE, before });
    for (const row of page) rows.set(row.id, row);
    if (page.length < PAGE) break;
    const last = page.at(-1)!.lastFailedAt.getTime();
    // A whole page failed in one millisecond: the only way on is past it (that millisecond's
    // rows beyond the page stay dead, for the next replay).
    before = new Date(before !== undefined && last + 1 >= before.getTime() ? last : last + 1);
  }
  return [...rows.values()];
}

/** First dead-lettered first; then in the order of the original entries, for failures in the same millisecond. */
function oldestFirst(a: FailedEvent, b: FailedEvent): number {
  return (
    a.firstFailedAt.getTime() - b.firstFailedAt.getTime() ||
    compareEntryIds(a.entryId, b.entryId) ||
    compareEntryIds(a.dlqEntryId, b.dlqEntryId) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/** Compares stream entry ids (`<ms>-<seq>`, on both backends); ids that are not numbers compare equal. */
function compareEntryIds(a: string, b: string): number {
  const [aMs = Number.NaN, aSeq = 0] = a.split('-').map(Number);
  const [bMs = Number.NaN, bSeq = 0] = b.split('-').map(Number);
  return Math.sign(aMs - bMs) || Math.sign(aSeq - bSeq) || 0;
}
