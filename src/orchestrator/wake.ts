import type { EventEmitter } from 'node:events';

/** Options of {@link pollUntil}. */
export interface PollUntilOptions<T> {
  /** Reads the store; undefined while there is nothing yet. */
  query: () => Promise<T | undefined>;
  /**
   * Emits `key` when this process records what the query looks for (a local result), with what
   * the query would find as its argument when the emitter has it: then no query follows.
   */
  events: EventEmitter;
  key: string;
  deadlineAt: number;
  signal: AbortSignal;
  /** The longest wait between two queries when nothing wakes it (results written elsewhere). */
  pollMs: number;
  /** Runs after each wait (e.g. noticing a cancel written by another process). */
  between?: () => Promise<void>;
}

/**
 * Queries until it finds something, the deadline passes or `signal` aborts, woken at once when
 * `events` emits `key`. The listener is in place before each query, so something recorded between
 * the query and the wait wakes it (no lost wake-up waiting for the next poll).
 */
export async function pollUntil<T>(options: PollUntilOptions<T>): Promise<T | undefined> {
  const { events, key, signal } = options;
  for (;;) {
    let wake: (found?: T) => void = () => {};
    const woken = new Promise<T | undefined>((resolve) => {
      wake = resolve;
    });
    events.once(key, wake);
    const aborted = () => wake();
    signal.addEventListener('abort', aborted, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      const found = await options.query();
      if (found !== undefined) return found;
      if (signal.aborted || Date.now() >= options.deadlineAt) return undefined;
      const waitMs = Math.min(options.pollMs, Math.max(1, options.deadlineAt - Date.now()));
      const handed = await Promise.race([
        woken,
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), waitMs);
        }),
      ]);
      if (handed !== undefined) return handed;
    } finally {
      clearTimeout(timer);
      events.off(key, wake);
      signal.removeEventListener('abort', aborted);
    }
    await options.between?.();
  }
}
