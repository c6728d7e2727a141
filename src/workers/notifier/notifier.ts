import type { HandlerRegistration } from '../../bus/router.js';
import type { Handler, HandlerContext } from '../../bus/types.js';
import { describeCause, MateriError } from '../../errors/index.js';
import type { DeploymentEvent } from '../../events/envelope.js';
import { stableEventId } from '../../events/ids.js';
import { NotificationOutcome } from '../../events/index.js';
import type { Logger } from '../../runtime/logging.js';
import { environmentLookup, findReferences, type Lookup } from '../../runtime/references.js';
import { createChannel } from './channels/index.js';
import type { NotificationChannel } from './channels/types.js';
import {
  buildNotification,
  type DeploymentFacts,
  factsFromEvent,
  lacksFacts,
  type NotificationMessage,
} from './notification.js';
import { notifierEventTypes, routeNotification } from './routing.js';
import { scrubSecrets, secretValues } from './secrets.js';
import type { NotifierSettings } from './settings.js';
import type { NotifierState } from './state.js';

/** Options of {@link createNotifier}. */
export interface NotifierOptions {
  settings: NotifierSettings;
  /** Ledger, rate limiter, open incidents and deployment facts; on Redis when several processes share the work. */
  state: NotifierState;
  /** Where `${NAME}` references are resolved, at send time. @defaultValue the process environment */
  lookup?: Lookup;
  /** Logs start-up warnings; per-event lines go to the handler context's logger. @defaultValue silent */
  logger?: Logger;
  /** Time limit of one provider request when a channel sets no `timeoutMs`. @defaultValue 10000 */
  timeoutMs?: number;
  /**
   * Replaces channels the settings describe, by name (a channel built outside this package, or
   * one wrapped with extra behaviour). Routing, ledger and rate limit still apply to it.
   */
  channels?: Record<string, NotificationChannel>;
  /** Called after every delivery attempt, e.g. to count outcomes in metrics. */
  onDelivery?: (delivery: DeliveryReport) => void;
}

/** One attempt to notify one channel about one event. */
export interface DeliveryReport {
  channel: string;
  /** `<type>:<name>`. */
  target: string;
  eventId: string;
  eventType: string;
  /**
   * SENT, FAILED or SUPPRESSED as published; SKIPPED when the ledger says the pair was already
   * handled (nothing published); PENDING when another process is sending it right now.
   */
  outcome: 'SENT' | 'FAILED' | 'SUPPRESSED' | 'SKIPPED' | 'PENDING';
  /** Why it was suppressed: the rate limit, or the channel's own reason. */
  suppressedBy?: 'rate-limit' | 'channel';
  message: string;
}

/** Delivery counts per channel since the notifier was created. */
export type NotifierStats = Record<string, Record<DeliveryReport['outcome'] | 'RATE_LIMITED', number>>;

/**
 * Some routed channels were not notified (they failed, or another process is still sending).
 * Thrown by the handler after every channel was tried, so the bus retries the event; the ledger
 * makes the retry send only to the channels that have not been notified. Never holds a secret.
 */
export class NotificationDeliveryError extends MateriError {
  /** The channels that were not notified and why. */
  readonly failures: { target: string; message: string }[];

  constructor(event: DeploymentEvent, failures: { target: string; message: string }[], routed: number) {
    super(
      'MATERI_ERR_BACKEND_UNAVAILABLE',
      `notifier: ${failures.length} of ${routed} channel(s) not notified about ${event.type} ${event.id}: ${failures
        .map((f) => f.message)
        .join('; ')}`,
    );
    this.failures = failures;
  }
}

/** The notifier's consumer group. */
export const NOTIFIER_GROUP = 'printery-notifier';

/** The notifier: a bus handler plus what the router needs to subscribe it. */
export interface Notifier {
  /** The handler to run in the `printery-notifier` group. */
  readonly handle: Handler;
  /** Event types and patterns the group should read for these settings. */
  readonly eventTypes: string[];
  /**
   * Where the group starts when it is created (the settings' `startFrom`, `latest` by default):
   * a first start announces only what happens from then on, not the streams' history. Streams
   * that appear later (a new stage) are read from their beginning, their events being new.
   */
  readonly startFrom: 'latest' | 'beginning';
  stats(): NotifierStats;
}

/** Options of {@link notifierRegistration}. */
export type NotifierRegistrationOptions = Partial<
  Pick<HandlerRegistration, 'concurrency' | 'claimIdleMs' | 'maxDeliveries' | 'backoff' | 'instances'>
>;

/**
 * The router registration of a notifier: handler `notifier` in the `printery-notifier` group,
 * reading its event types, 5 at once, and — for a new group — from where its settings say.
 *
 * @example
 * router.addHandler(notifierRegistration(createNotifier({ settings, state }), { claimIdleMs }));
 */
export function notifierRegistration(
  notifier: Notifier,
  options: NotifierRegistrationOptions = {},
): HandlerRegistration {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return {
    name: 'notifier',
    group: NOTIFIER_GROUP,
    types: [...notifier.eventTypes],
    concurrency: 5,
    startFrom: notifier.startFrom,
    ...defined,
    handler: notifier.handle,
  };
}

const OUTCOME = {
  SENT: NotificationOutcome.SENT,
  FAILED: NotificationOutcome.FAILED,
  SUPPRESSED: NotificationOutcome.SUPPRESSED,
} as const;

/**
 * Builds the notifier. For each event it reads severity, deployment and failure from the event,
 * routes it to channels, and sends to every channel in parallel: each (event, channel) pair at
 * most once thanks to the ledger, within the channel's rate limit, publishing one
 * `notification:sent` per attempt. Throws {@link NotificationDeliveryError} when a channel failed.
 */
export function createNotifier(options: NotifierOptions): Notifier {
  const { settings, state } = options;
  const lookup = options.lookup ?? environmentLookup();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const channels = new Map<string, NotificationChannel>();
  for (const [name, channelSettings] of Object.entries(settings.channels)) {
    channels.set(
      name,
      options.channels?.[name] ??
        createChannel(channelSettings, {
          name,
          lookup,
          templates: settings.templates,
          incidents: state.incidents,
          timeoutMs,
        }),
    );
    const missing = findReferences(channelSettings).filter((ref) => lookup(ref) === undefined);
    if (missing.length > 0) {
      options.logger?.warn(
        { channel: name, missing: missing.map((m) => `\${${m}}`) },
        'notifier channel references unset variables; its sends fail until they are set',
      );
    }
  }
  const counts: NotifierStats = {};

  function count(channel: string, outcome: keyof NotifierStats[string]): void {
    counts[channel] ??= { SENT: 0, FAILED: 0, SUPPRESSED: 0, SKIPPED: 0, PENDING: 0, RATE_LIMITED: 0 };
    counts[channel][outcome]++;
  }

  async function factsFor(event: DeploymentEvent): Promise<DeploymentFacts | undefined> {
    const deploymentId = event.deploymentId || ((event.data as { deploymentId?: string }).deploymentId ?? '');
    if (!deploymentId || event.type === 'alert:raised') return undefined;
    const own = factsFromEvent(event);
    if (Object.keys(own).length > 0) await state.facts.remember(deploymentId, own);
    return lacksFacts(event) ? state.facts.recall(deploymentId) : undefined;
  }

  /** Incident channels not routed for this message that still have something it resolves. */
  async function resolvers(message: NotificationMessage, routed: readonly string[]): Promise<string[]> {
    if (message.incident !== 'resolve') return [];
    const keys = new Set(message.incidentTargets.map((t) => t.key));
    const extra: string[] = [];
    for (const [name, channel] of channels) {
      if (!channel.tracksIncidents || routed.includes(name)) continue;
      const open = await state.incidents.list(name, message.incidentScope);
      if (open.some((o) => message.event.type !== 'alert:raised' || keys.has(o.key))) extra.push(name);
    }
    return extra;
  }

  async function deliver(
    name: string,
    message: NotificationMessage,
    ctx: HandlerContext,
  ): Promise<DeliveryReport> {
    const channel = channels.get(name)!;
    const event = message.event;
    const logger = ctx.logger;
    const report = (
      outcome: DeliveryReport['outcome'],
      text: string,
      suppressedBy?: DeliveryReport['suppressedBy'],
    ) => {
      const delivery: DeliveryReport = {
        channel: name,
        target: channel.target,
        eventId: event.id,
        eventType: event.type,
        outcome,
        message: text,
        suppressedBy,
      };
      count(name, outcome);
      if (suppressedBy === 'rate-limit') count(name, 'RATE_LIMITED');
      options.onDelivery?.(delivery);
      return delivery;
    };
    const publish = (outcome: keyof typeof OUTCOME, text: string) =>
      ctx.publisher.publish({
        type: 'notification:sent',
        // SENT and SUPPRESSED happen once per pair: a stable id makes a repeated publish a duplicate consumers drop.
        id: outcome === 'FAILED' ? undefined : stableEventId(`${event.id}:${name}:${outcome}`),
        correlationId: event.correlationId,
        causationId: event.id,
        deploymentId: message.deploymentId,
        data: {
          deploymentId: message.deploymentId,
          channel: channel.type,
          target: channel.target,
          notifiedEventId: event.id,
          notifiedEventType: event.type,
          outcome: OUTCOME[outcome],
          message: text,
        },
      });

    const claim = await state.ledger.claim(event.id, name);
    if (claim === 'already-sent') return report('SKIPPED', 'already notified');
    if (claim === 'in-progress')
      return report('PENDING', `${channel.target}: being sent by another notifier`);

    const secrets = secretValues(settings.channels[name] ?? {}, lookup);
    let outcome: 'SENT' | 'SUPPRESSED';
    let text: string;
    let suppressedBy: DeliveryReport['suppressedBy'];
    try {
      const limit = settings.channels[name]?.rateLimit ?? settings.rateLimit;
      if (!(await state.rateLimiter.take(name, limit))) {
        outcome = 'SUPPRESSED';
        suppressedBy = 'rate-limit';
        text = `rate limit: more than ${limit.perChannel} messages in ${limit.windowMs} ms`;
      } else {
        const receipt = await channel.send(message, { signal: ctx.signal });
        if (receipt.suppressed !== undefined) {
          outcome = 'SUPPRESSED';
          suppressedBy = 'channel';
          text = scrubSecrets(receipt.suppressed, secrets);
        } else {
          outcome = 'SENT';
          const id = receipt.providerId ? ` (id ${receipt.providerId})` : '';
          text = scrubSecrets(`${receipt.detail ?? 'accepted'}${id}`, secrets);
        }
      }
    } catch (error) {
      const problem = scrubSecrets(describeCause(error), secrets);
      const failure = problem.startsWith(channel.target) ? problem : `${channel.target}: ${problem}`;
      logger.warn({ channel: name, target: channel.target, error: failure }, 'notification failed');
      await state.ledger
        .release(event.id, name)
        .catch((cause) =>
          logger.error({ channel: name, err: describeCause(cause) }, 'cannot release notification claim'),
        );
      await publish('FAILED', failure).catch((cause) =>
        logger.error({ channel: name, err: describeCause(cause) }, 'cannot publish notification:sent'),
      );
      return report('FAILED', failure);
    }
    await state.ledger.complete(event.id, name, outcome);
    // The message went out and the ledger says so; a lost record must not make the bus send it again.
    await publish(outcome, text).catch((cause) =>
      logger.error({ channel: name, err: describeCause(cause) }, 'cannot publish notification:sent'),
    );
    if (suppressedBy === 'rate-limit')
      logger.warn({ channel: name, target: channel.target }, 'notification rate limited');
    else logger.debug({ channel: name, target: channel.target, outcome }, 'notification delivered');
    return report(outcome, text, suppressedBy);
  }

  const handle: Handler = async (event, ctx) => {
    if (event.type === 'notification:sent') return;
    const facts = await factsFor(event);
    const message = buildNotification(event, { dashboardUrl: settings.dashboardUrl, facts });
    const routed = routeNotification(message, settings);
    const names = [...routed, ...(await resolvers(message, routed))];
    if (names.length === 0) return;
    const reports = await Promise.all(names.map((name) => deliver(name, message, ctx)));
    const failures = reports
      .filter((r) => r.outcome === 'FAILED' || r.outcome === 'PENDING')
      .map((r) => ({ target: r.target, message: r.message }));
    if (failures.length > 0) throw new NotificationDeliveryError(event, failures, names.length);
  };

  return {
    handle,
    eventTypes: notifierEventTypes(settings),
    startFrom: settings.startFrom,
    stats: () => structuredClone(counts),
  };
}

/** The notifier's bus handler alone (see {@link createNotifier}). */
export function createNotifierHandler(options: NotifierOptions): Handler {
  return createNotifier(options).handle;
}
