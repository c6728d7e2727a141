/** Exponential backoff with jitter, shared by publisher retries and consumer redelivery. */
export interface BackoffSettings {
  /** Delay before the first retry. @defaultValue 1000 */
  baseMs: number;
  /** Upper bound of any delay. @defaultValue 60000 */
  maxMs: number;
  /** Share of the delay that is randomised, 0..1. @defaultValue 0.2 */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = { baseMs: 1000, maxMs: 60_000, jitter: 0.2 };

/**
 * Delay before retry number `attempt` (1 = first retry): `baseMs * 2^(attempt-1)`, capped at
 * `maxMs`, spread by ±jitter. `random` in [0, 1) may be given to make the jitter deterministic
 * (several consumers must agree on when an entry is due).
 */
export function backoffDelay(
  attempt: number,
  settings: BackoffSettings,
  random: number = Math.random(),
): number {
  const exp = Math.min(settings.maxMs, settings.baseMs * 2 ** Math.max(0, attempt - 1));
  const spread = exp * settings.jitter;
  return Math.max(0, Math.round(exp - spread + 2 * spread * random));
}

/** A number in [0, 1) derived from a string, for jitter every process computes alike. */
export function stableRandom(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) / 4294967296;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Settles like `work`, or rejects with the signal's reason as soon as `signal` aborts. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
