import type { Middleware } from '../types.js';

/** Logs every handled event at debug level and every failure at warn, with its duration. */
export function logging(): Middleware {
  return (next) => async (event, context) => {
    const started = performance.now();
    try {
      await next(event, context);
      if (context.isLevelEnabled('debug')) {
        context.logger.debug({ duration_ms: Math.round(performance.now() - started) }, 'event handled');
      }
    } catch (error) {
      context.logger.warn(
        {
          err: error,
          duration_ms: Math.round(performance.now() - started),
          delivery: context.delivery.deliveryCount,
        },
        'event handling failed',
      );
      throw error;
    }
  };
}
