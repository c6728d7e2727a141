/** Shared by the benchmarks: result lines and timing. */

export interface Result {
  bench: string;
  metric: string;
  value: number;
  baseline: number;
  ratio: number;
  target?: string;
}

/** Prints one result line; `ratio` = value / baseline (for latencies, baseline / value is not used). */
export function report(result: Omit<Result, 'ratio'> & { ratio?: number }): void {
  const ratio = result.ratio ?? result.value / result.baseline;
  process.stdout.write(`${JSON.stringify({ ...result, ratio: Math.round(ratio * 1000) / 1000 })}\n`);
}

/** Runs `fn` and returns events per second for `count` events. */
export async function throughput(count: number, fn: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return count / seconds;
}

/** Best of `rounds` runs, alternating so both sides see the same machine state. */
export async function bestOf(rounds: number, fn: () => Promise<number>): Promise<number> {
  let best = 0;
  for (let i = 0; i < rounds; i++) best = Math.max(best, await fn());
  return best;
}

/**
 * Like {@link report}, with the figure's spread in words (`"p50 140 / p95 180 ms"`,
 * `"min 120 / max 190 ms over 7 runs"`) as an extra `spread` field of the JSON line; the runner's
 * table ignores it.
 */
export function reportWithSpread(result: Omit<Result, 'ratio'> & { ratio?: number; spread?: string }): void {
  report(result);
}

/** The `p`th percentile (nearest rank) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

/** `"p50 X / p95 Y / max Z unit"`, rounded to two decimals. */
export function describeSpread(
  values: readonly number[],
  unit: string,
  ps: readonly number[] = [50, 95],
): string {
  const round = (v: number) => Math.round(v * 100) / 100;
  const parts = ps.map((p) => `p${p} ${round(percentile(values, p))}`);
  parts.push(`min ${round(Math.min(...values))}`, `max ${round(Math.max(...values))}`);
  return `${parts.join(' / ')} ${unit} (n=${values.length})`;
}
