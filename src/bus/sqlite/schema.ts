/**
 * Tables of the embedded event bus. They mirror Redis Streams: an append-only log of entries per
 * stream, consumer groups with a cursor, a pending list per group with delivery counts, and a
 * registry of the event streams the publishers created.
 *
 * @module
 */

/** Version written to `bus_meta`; a file written by a newer Materi is refused rather than misread. */
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS bus_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Every stream's entries. AUTOINCREMENT: a seq is never reused, even after the newest entries were
-- trimmed, so a group's cursor (last_delivered_seq) can never point past a future entry.
CREATE TABLE IF NOT EXISTS bus_entries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  stream TEXT NOT NULL,
  -- '<ms>-<n>' like a Redis stream id, increasing within the stream.
  entry_id TEXT NOT NULL,
  -- The flat entry fields (id, type, source, time, …, data) as a JSON object.
  fields TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_entries_by_stream ON bus_entries (stream, seq);

-- Every stream that has entries, with the last entry id handed out. The registries subscribers
-- discover new streams in: \`type\` is set for the event streams a publisher created,
-- \`dead_letter_group\` for the dead-letter streams of consumer groups (both under \`prefix\`).
CREATE TABLE IF NOT EXISTS bus_streams (
  stream TEXT PRIMARY KEY,
  prefix TEXT,
  type TEXT,
  dead_letter_group TEXT,
  last_ms INTEGER NOT NULL,
  last_n INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS bus_groups (
  group_name TEXT NOT NULL,
  stream TEXT NOT NULL,
  last_delivered_seq INTEGER NOT NULL,
  last_delivered_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (group_name, stream)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bus_groups_by_stream ON bus_groups (stream);

-- Entries delivered to a group and not yet acknowledged (Redis' PEL). seq is unique across streams.
CREATE TABLE IF NOT EXISTS bus_pending (
  group_name TEXT NOT NULL,
  seq INTEGER NOT NULL,
  stream TEXT NOT NULL,
  entry_id TEXT NOT NULL,
  consumer TEXT NOT NULL,
  delivery_count INTEGER NOT NULL,
  delivered_ms INTEGER NOT NULL,
  PRIMARY KEY (group_name, seq)
) WITHOUT ROWID;
-- The only secondary index: every ack, claim and renewal rewrites index pages, so the scans walk
-- it consumer by consumer instead of having an index of their own.
CREATE INDEX IF NOT EXISTS bus_pending_by_consumer ON bus_pending (group_name, consumer, delivered_ms);

CREATE TABLE IF NOT EXISTS bus_consumers (
  group_name TEXT NOT NULL,
  consumer TEXT NOT NULL,
  seen_ms INTEGER NOT NULL,
  PRIMARY KEY (group_name, consumer)
) WITHOUT ROWID;

-- No index on expires_ms: two marker writes per handled event are the hot path; expired markers are
-- found by walking the primary key in chunks, once a minute.
-- Process heartbeats, for telling live consumers from dead ones (\`materi workers\`).
CREATE TABLE IF NOT EXISTS bus_heartbeats (
  process TEXT NOT NULL,
  prefix TEXT NOT NULL,
  heartbeat TEXT NOT NULL,
  beat_ms INTEGER NOT NULL,
  PRIMARY KEY (process, prefix)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS bus_idempotency (
  group_name TEXT NOT NULL,
  event_id TEXT NOT NULL,
  state TEXT NOT NULL,
  expires_ms INTEGER NOT NULL,
  PRIMARY KEY (group_name, event_id)
) WITHOUT ROWID;
`;
