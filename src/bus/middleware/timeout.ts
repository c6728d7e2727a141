import { TimeoutError } from '../../errors/index.js';
import type { Middleware } from '../types.js';

/**
 * Fails a handler that runs longer than `ms` (it is then retried). The handler is not killed —
 * JavaScript cannot — so handlers should also watch `context.signal`.
 */
export function timeout(ms: number): Middleware {
  return (next) => (event, context) => {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`handler for ${event.type} ran longer than ${ms} ms`)),
        ms,
      );
    });
    return Promise.race([next(event, context), expired]).finally(() => clearTimeout(timer));
  };
}
