import { DONE_MARKER, entryPrefix, leaseMarker, parseLeaseMarker } from '../lease.js';
import type { HeldLease, IdempotencyStore, LeaseHolder } from '../types.js';
import type { SqliteBusDatabase } from './database.js';

/** Options of {@link SqliteIdempotencyStore}. */
export interface SqliteIdempotencyStoreOptions {
  database: SqliteBusDatabase;
  /** How long a handled event id is remembered. @defaultValue 7 days */
  windowMs?: number;
  /** How often expired markers are deleted (at most this many ms apart, while the store is used). @defaultValue 60000 */
  cleanupIntervalMs?: number;
}

/** Markers looked at per transaction while deleting expired ones. */
const CLEANUP_CHUNK = 5000;

/**
 * Idempotency markers in the embedded bus file (`bus_idempotency`): the lease (see `lease.ts`)
 * until it expires while a consumer handles the event, then `done` for the window — the same
 * markers as the Redis store. Markers of one tick are written in one transaction with the acks.
 */
export class SqliteIdempotencyStore implements IdempotencyStore {
  private readonly database: SqliteBusDatabase;
  private readonly windowMs: number;
  private readonly cleanupIntervalMs: number;
  private lastCleanup = Date.now();

  constructor(options: SqliteIdempotencyStoreOptions) {
    this.database = options.database;
    this.windowMs = options.windowMs ?? 7 * 24 * 3600_000;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
    for (const name of ['windowMs', 'cleanupIntervalMs'] as const) {
      const value = options[name];
      if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
      }
    }
  }

  begin(
    group: string,
    eventId: string,
    leaseMs: number,
    holder?: LeaseHolder,
  ): Promise<'acquired' | 'done' | 'busy'> {
    this.cleanupWhenDue();
    return this.database.write(() => {
      const now = Date.now();
      const entry = holder ? entryPrefix(holder) : '';
      // Takes the id when it is free, its lease expired (a crashed consumer's), or its lease is on
      // the same entry (reclaimed from its holder), atomically.
      const taken = this.database
        .statement(
          `INSERT INTO bus_idempotency (group_name, event_id, state, expires_ms) VALUES (@group, @eventId, @marker, @expires)
           ON CONFLICT (group_name, event_id) DO UPDATE SET state = excluded.state, expires_ms = excluded.expires_ms
           WHERE bus_idempotency.expires_ms <= @now
              OR (@entry <> '' AND substr(bus_idempotency.state, 1, length(@entry)) = @entry)`,
        )
        .run({ group, eventId, marker: leaseMarker(holder), expires: now + leaseMs, now, entry }).changes;
      if (taken > 0) return 'acquired';
      return this.stateOf(group, eventId) === DONE_MARKER ? 'done' : 'busy';
    });
  }

  async complete(group: string, eventId: string): Promise<void> {
    await this.database.write(() =>
      this.database
        .statement(
          `INSERT INTO bus_idempotency (group_name, event_id, state, expires_ms) VALUES (?, ?, '${DONE_MARKER}', ?)
           ON CONFLICT (group_name, event_id) DO UPDATE SET state = excluded.state, expires_ms = excluded.expires_ms`,
        )
        .run(group, eventId, Date.now() + this.windowMs),
    );
  }

  async release(group: string, eventId: string, holder?: LeaseHolder): Promise<void> {
    // Only a lease is given back — with a holder, only that holder's: a `done` or another
    // consumer's lease written meanwhile (the entry was reclaimed) must stay.
    await this.database.write(() =>
      holder
        ? this.database
            .statement('DELETE FROM bus_idempotency WHERE group_name = ? AND event_id = ? AND state = ?')
            .run(group, eventId, leaseMarker(holder))
        : this.database
            .statement(
              `DELETE FROM bus_idempotency WHERE group_name = ? AND event_id = ? AND state <> '${DONE_MARKER}'`,
            )
            .run(group, eventId),
    );
  }

  async heldBy(group: string, eventId: string): Promise<HeldLease | undefined> {
    const now = Date.now();
    const row = this.database
      .statement('SELECT state, expires_ms FROM bus_idempotency WHERE group_name = ? AND event_id = ?')
      .get(group, eventId) as { state: string; expires_ms: number } | undefined;
    return row && row.expires_ms > now ? parseLeaseMarker(row.state) : undefined;
  }

  async takeOver(
    group: string,
    eventId: string,
    marker: string,
    holder: LeaseHolder,
    leaseMs: number,
  ): Promise<boolean> {
    return this.database.write(
      () =>
        this.database
          .statement(
            'UPDATE bus_idempotency SET state = ?, expires_ms = ? WHERE group_name = ? AND event_id = ? AND state = ?',
          )
          .run(leaseMarker(holder), Date.now() + leaseMs, group, eventId, marker).changes > 0,
    );
  }

  private stateOf(group: string, eventId: string): unknown {
    return this.database
      .scalar('SELECT state FROM bus_idempotency WHERE group_name = ? AND event_id = ?')
      .get(group, eventId);
  }

  /**
   * Deletes expired markers (expired ones are already treated as free), walking the table a chunk
   * per transaction so that other writers never wait long. Returns how many were deleted.
   */
  async deleteExpired(now = Date.now()): Promise<number> {
    const next = this.database.statement(
      `SELECT group_name, event_id FROM bus_idempotency WHERE (group_name, event_id) > (?, ?)
        ORDER BY group_name, event_id LIMIT 1 OFFSET ${CLEANUP_CHUNK - 1}`,
    );
    const remove = this.database.statement(
      `DELETE FROM bus_idempotency
        WHERE (group_name, event_id) > (@fromGroup, @fromEvent)
          AND (@toGroup IS NULL OR (group_name, event_id) <= (@toGroup, @toEvent))
          AND expires_ms <= @now`,
    );
    let deleted = 0;
    let from = { group: '', event: '' };
    for (;;) {
      const to = await this.database.write(() => {
        const end = next.get(from.group, from.event) as { group_name: string; event_id: string } | undefined;
        deleted += remove.run({
          fromGroup: from.group,
          fromEvent: from.event,
          toGroup: end?.group_name ?? null,
          toEvent: end?.event_id ?? null,
          now,
        }).changes;
        return end;
      });
      if (!to) return deleted;
      from = { group: to.group_name, event: to.event_id };
    }
  }

  private cleanupWhenDue(): void {
    const now = Date.now();
    if (now - this.lastCleanup < this.cleanupIntervalMs) return;
    this.lastCleanup = now;
    this.deleteExpired(now).catch(() => {
      // Expired markers are harmless (begin() treats them as free); the next interval tries again.
    });
  }
}
