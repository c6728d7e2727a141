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
