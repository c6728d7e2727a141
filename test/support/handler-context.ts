import type { HandlerContext, Publisher } from '../../src/bus/types.js';
import { type Logger, silentLogger } from '../../src/runtime/logging.js';

export interface TestHandlerContextOptions {
  /** Stream the event was "read" from. */
  stream: string;
  group: string;
  publisher: Publisher;
  /** @defaultValue `0-1` */
  entryId?: string;
  /** @defaultValue a silent logger */
  logger?: Logger;
  signal?: AbortSignal;
  renewClaim?: () => Promise<void>;
}

/**
 * A handler context as the router builds it for a first delivery, for tests that call a handler
 * directly. Deferred acknowledgements are dropped: there is no entry to acknowledge.
 */
export function testHandlerContext(options: TestHandlerContextOptions): HandlerContext {
  const logger = options.logger ?? silentLogger();
  return {
    delivery: {
      stream: options.stream,
      entryId: options.entryId ?? '0-1',
      deliveryCount: 1,
      group: options.group,
      consumer: `${options.group}:test:${process.pid}:0`,
    },
    logger,
    isLevelEnabled: (level) => logger.isLevelEnabled(level),
    deferAck: () => {},
    publisher: options.publisher,
    signal: options.signal ?? new AbortController().signal,
    renewClaim: options.renewClaim ?? (async () => {}),
  };
}
