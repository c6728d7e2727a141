import type { Level } from 'pino';
import { describeCause, UnrecoverableError } from '../errors/index.js';
import { decodeEntry, isDecodeError } from '../events/codec.js';
import type { DeploymentEvent } from '../events/envelope.js';
import { type Logger, silentLogger } from '../runtime/logging.js';
import { runInEventContext } from './context.js';
import type {
  Delivery,
  Disposition,
  Handler,
  HandlerContext,
  Middleware,
  OutgoingEvent,
  Publisher,
  ReceivedMessage,
  Subscriber,
  Subscription,
  SubscriptionObserver,
  SubscriptionOptions,
} from './types.js';

/** A handler and how it consumes. */
export interface HandlerRegistration extends SubscriptionOptions {
  /** Name for logs and metrics, e.g. `validator`. */
  name: string;
  handler: Handler;
  /** Middleware of this handler only, inside the router's (outermost first). */
  middleware?: readonly Middleware[];
  /** How many subscriptions (each with `concurrency` slots and its own consumer name) to run. @defaultValue 1 */
  instances?: number;
  /**
   * `deployment`: the events of one deployment are handled one at a time, in the order they are
   * delivered to this subscription, while those of different deployments run in parallel (up to
   * `concurrency`). Events without a deployment id are not ordered. Unset: no ordering.
   */
  orderedBy?: 'deployment';
}

/** Options of {@link Router}. */
export interface RouterOptions {
  subscriber: Subscriber;
  /** Publisher handed to handlers (wrapped to carry correlation and causation). */
  publisher: Publisher;
  logger?: Logger;
  /** Middleware of every handler, outermost first. */
  middleware?: readonly Middleware[];
  /** Observer of every subscription (metrics). */
  observer?: SubscriptionObserver;
  /** How long `close()` waits for handlers in flight. @defaultValue 10000 */
  shutdownGraceMs?: number;
}

/**
 * Runs handlers on consumer groups, Watermill-style: each registration is a subscription; every
 * message is decoded, passed through the middleware chain, and the outcome decides its fate.
 * Only the router decides ack or retry: a handler that returns is acknowledged, one that throws
 * is retried with backoff, one that throws {@link UnrecoverableError} — or whose entry cannot be
 * decoded — is dead-lettered at once.
 */
export class Router {
  private readonly registrations: HandlerRegistration[] = [];
  private readonly subscriptions: Subscription[] = [];
  private readonly logger: Logger;
  private started = false;

  constructor(private readonly options: RouterOptions) {
    this.logger = options.logger ?? silentLogger();
  }

  addHandler(registration: HandlerRegistration): this {
    if (this.started) throw new Error('Router: handlers must be added before start()');
    if (this.registrations.some((r) => r.name === registration.name)) {
      throw new Error(`Router: a handler named "${registration.name}" is already registered`);
    }
    this.registrations.push(registration);
    return this;
  }

  /** Subscribes every handler. Resolves once all consumer groups exist and reading has begun. */
  async start(): Promise<void> {
    this.started = true;
    for (const registration of this.registrations) {
      const process = this.processFor(registration);
      for (let slot = 0; slot < (registration.instances ?? 1); slot++) {
        const subscription = await this.options.subscriber.subscribe(
          { ...registration, slot: (registration.slot ?? 0) + slot },
          process,
          this.options.observer,
        );
        this.subscriptions.push(subscription);
        this.logger.info(
          {
            handler: registration.name,
            group: registration.group,
            consumer: subscription.consumer,
            types: registration.types,
          },
          'handler subscribed',
        );
      }
    }
  }

  /** The subscriptions started, for status reports. */
  get running(): readonly Subscription[] {
    return this.subscriptions;
  }

  /** Stops reading and waits for handlers in flight (see {@link Subscription.close}). */
  async close(graceMs = this.options.shutdownGraceMs ?? 10_000): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.close(graceMs)));
  }

  private processFor(registration: HandlerRegistration): (message: ReceivedMessage) => Promise<Disposition> {
    const chain = [...(this.options.middleware ?? []), ...(registration.middleware ?? [])];
    const handler = chain.reduceRight<Handler>((next, middleware) => middleware(next), registration.handler);
    const scope: HandlerScope = {
      name: registration.name,
      logger: this.logger,
      publisher: this.options.publisher,
    };
    // The hot path of every consumer: no async function of its own, one context object per
    // message, the bound logger and publisher built only when a handler asks for them.
    const run = (message: ReceivedMessage): Promise<Disposition> => {
      let event: DeploymentEvent;
      try {
        event = decodeEntry(message.fields);
      } catch (error) {
        return Promise.resolve({ kind: 'dead-letter', error, reason: 'decode' });
      }
      const context = new MessageContext(scope, event, message);
      let handled: Promise<void>;
      try {
        handled = runInEventContext(
          { correlationId: event.correlationId, eventId: event.id, deploymentId: event.deploymentId },
          () => handler(event, context),
        );
      } catch (error) {
        handled = Promise.reject(error);
      }
      return handled.then(
        () => context.disposition(),
        (error) => failed(error, context),
      );
    };
    if (registration.orderedBy !== 'deployment') return run;
    // The last handling of each deployment with events in flight: the next one runs after it.
    const tails = new Map<string, Promise<unknown>>();
    return (message) => {
      const key = message.fields.deployment_id;
      if (!key) return run(message);
      const previous = tails.get(key);
      const outcome = previous ? previous.then(() => run(message)) : run(message);
      const tail = outcome.catch(() => {});
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return outcome;
    };
  }
}

const ACK: Disposition = { kind: 'ack' };

/** What a handler's error means: dead-letter now, or retry with backoff. */
function failed(error: unknown, context: HandlerContext): Disposition {
  if (error instanceof UnrecoverableError) return { kind: 'dead-letter', error, reason: 'unrecoverable' };
  if (isDecodeError(error)) return { kind: 'dead-letter', error, reason: 'decode' };
  if (context.isLevelEnabled('debug')) context.logger.debug({ err: describeCause(error) }, 'handler failed');
  return { kind: 'retry', error };
}

/** What the contexts of one registration share. */
interface HandlerScope {
  name: string;
  logger: Logger;
  publisher: Publisher;
}

/** The context of one message (see {@link HandlerContext}). */
class MessageContext implements HandlerContext {
  readonly delivery: Delivery;
  readonly signal: AbortSignal;
  private boundLogger: Logger | undefined;
  private boundPublisher: Publisher | undefined;
  private beforeAck: Promise<void>[] | undefined;

  constructor(
    private readonly scope: HandlerScope,
    private readonly event: DeploymentEvent,
    private readonly message: ReceivedMessage,
  ) {
    this.delivery = {
      stream: message.stream,
      entryId: message.entryId,
      deliveryCount: message.deliveryCount,
      group: message.group,
      consumer: message.consumer,
    };
    this.signal = message.signal;
  }

  get logger(): Logger {
    this.boundLogger ??= this.scope.logger.child({
      handler: this.scope.name,
      event_id: this.event.id,
      type: this.event.type,
      correlation_id: this.event.correlationId,
      deployment_id: this.event.deploymentId || undefined,
    });
    return this.boundLogger;
  }

  isLevelEnabled(level: Level): boolean {
    return (this.boundLogger ?? this.scope.logger).isLevelEnabled(level);
  }

  get publisher(): Publisher {
    if (!this.boundPublisher) {
      const base = this.scope.publisher;
      const cause = { correlationId: this.event.correlationId, causationId: this.event.id };
      this.boundPublisher = {
        publish: (e) => base.publish(withCause(e, cause)),
        publishBatch: (events) => base.publishBatch(events.map((e) => withCause(e, cause))),
        close: async () => {},
      };
    }
    return this.boundPublisher;
  }

  /** An own function, as it was on the plain context object: handlers may pass it around unbound. */
  readonly renewClaim = (): Promise<void> => this.message.renewClaim();

  deferAck(task: Promise<void>): void {
    // Observed here so that a task whose handler then fails is no unhandled rejection.
    task.catch(() => {});
    this.beforeAck ??= [];
    this.beforeAck.push(task);
  }

  /** The disposition of a handler that returned. */
  disposition(): Disposition {
    const tasks = this.beforeAck;
    if (!tasks) return ACK;
    return { kind: 'ack', after: tasks.length === 1 ? tasks[0]! : Promise.all(tasks).then(() => {}) };
  }
}

function withCause<T extends string>(
  event: OutgoingEvent<T>,
  cause: { correlationId: string; causationId: string },
): OutgoingEvent<T> {
  return {
    ...event,
    correlationId: event.correlationId ?? cause.correlationId,
    causationId: event.causationId ?? cause.causationId,
  };
}
