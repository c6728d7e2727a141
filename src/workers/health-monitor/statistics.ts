/**
 * Nearest-rank percentile of values sorted ascending (p in 0..100): the smallest value with at
 * least p% of the values at or below it. Chosen over interpolation because it always returns a
 * latency that was actually observed. 0 for no values.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * At most `limit` items picked at even steps across the list, first and last included, so a
 * chart of a long window keeps its shape.
 */
export function downsampleEvenly<T>(items: readonly T[], limit: number): T[] {
  if (items.length <= limit) return [...items];
  if (limit <= 0) return [];
  if (limit === 1) return [items[0]!];
  const step = (items.length - 1) / (limit - 1);
  return Array.from({ length: limit }, (_, i) => items[Math.round(i * step)]!);
}

/** Rounds to two decimals, for figures that end up in events and messages. */
export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
