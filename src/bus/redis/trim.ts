import type { TrimOptions, TrimResult } from '../types.js';
import { compareStreamIds, type RedisClient } from './connection.js';

function minId(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareStreamIds(a, b) <= 0 ? a : b;
}

/**
 * The oldest entry id some consumer group still needs: its oldest pending entry, or — when
 * nothing is pending — the entry after its last-delivered id. Undefined when no group reads the
 * stream. Entries below the returned id are acknowledged by every group.
 */
export async function oldestNeededId(client: RedisClient, stream: string): Promise<string | undefined> {
  let groups: unknown[][];
  try {
    groups = (await client.xinfo('GROUPS', stream)) as unknown[][];
  } catch (error) {
    if (error instanceof Error && /no such key/i.test(error.message)) return undefined;
    throw error;
  }
  let floor: string | undefined;
  for (const raw of groups) {
    const info: Record<string, unknown> = {};
    for (let i = 0; i + 1 < raw.length; i += 2) info[String(raw[i])] = raw[i + 1];
    const name = String(info.name);
    const lastDelivered = String(info['last-delivered-id']);
    let needed = nextStreamId(lastDelivered);
    if (Number(info.pending) > 0) {
      const summary = (await client.xpending(stream, name)) as [
        number,
        string | null,
        string | null,
        unknown,
      ];
      if (summary[1]) needed = minId(needed, summary[1])!;
    }
    floor = minId(floor, needed);
  }
  return floor;
}

function nextStreamId(id: string): string {
  const [ms = '0', seq = '0'] = id.split('-');
  return `${ms}-${Number(seq) + 1}`;
}

/** Trims a stream without dropping entries a group has not acknowledged. See {@link TrimOptions}. */
export async function trimStream(
  client: RedisClient,
  stream: string,
  options: TrimOptions,
): Promise<TrimResult> {
  let cut: string | undefined;
  if (options.maxAgeMs !== undefined) cut = `${Math.max(0, Date.now() - options.maxAgeMs)}-0`;
  if (options.maxLen !== undefined) {
    const newest = (await client.xrevrange(stream, '+', '-', 'COUNT', options.maxLen)) as [
      string,
      string[],
    ][];
    const oldestKept = newest.length === options.maxLen ? newest[newest.length - 1]![0] : undefined;
    if (oldestKept === undefined) return { stream, removed: 0, protectedByGroups: false };
    cut = cut === undefined ? oldestKept : maxId(cut, oldestKept);
  }
  if (cut === undefined) return { stream, removed: 0, protectedByGroups: false };
  const needed = await oldestNeededId(client, stream);
  const protectedByGroups = needed !== undefined && compareStreamIds(needed, cut) < 0;
  const bound = protectedByGroups ? needed! : cut;
  const removed = Number(await client.xtrim(stream, 'MINID', '=', bound));
  return { stream, removed, protectedByGroups };
}

function maxId(a: string, b: string): string {
  return compareStreamIds(a, b) >= 0 ? a : b;
}
