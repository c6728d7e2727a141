/**
 * The notifier worker (`printery-notifier` group): turns lifecycle events and bus alerts into
 * messages on Slack, e-mail, PagerDuty, Alertmanager, signed webhooks and team status lines,
 * routed by event type, environment and severity; one message per (event, channel) across
 * redeliveries and processes; rate limited per channel. See docs/workers/notifier.md.
 *
 * @example
 * const settings = await loadNotifierSettings('notifier.yaml');
 * const notifier = createNotifier({ settings, state: createRedisNotifierState({ client: redis }) });
 * router.addHandler(notifierRegistration(notifier)); // `printery-notifier`, from its settings' startFrom
 *
 * @module
 */
export {
  CHANNEL_FACTORIES,
  type ChannelDependencies,
  ChannelError,
  type ChannelFactory,
  type ChannelReceipt,
  createChannel,
  type NotificationChannel,
  type SendOptions,
} from './channels/index.js';
export type { DeploymentFactsStore } from './deployment-facts.js';
export { MemoryDeploymentFactsStore, RedisDeploymentFactsStore } from './deployment-facts.js';
export type { IncidentStore, OpenIncident } from './incidents.js';
export { MemoryIncidentStore, RedisIncidentStore } from './incidents.js';
export type {
  ClaimResult,
  CompletedOutcome,
  NotificationLedger,
  RedisNotificationLedgerOptions,
} from './ledger.js';
export { MemoryNotificationLedger, RedisNotificationLedger } from './ledger.js';
export {
  buildNotification,
  type DeploymentFacts,
  type IncidentAction,
  type IncidentTarget,
  type NotificationMessage,
  type NotificationPhase,
  type NotificationProblem,
} from './notification.js';
export {
  createNotifier,
  createNotifierHandler,
  type DeliveryReport,
  NOTIFIER_GROUP,
  NotificationDeliveryError,
  type Notifier,
  type NotifierOptions,
  type NotifierRegistrationOptions,
  type NotifierStats,
  notifierRegistration,
} from './notifier.js';
export type { RateLimit, RateLimiter } from './rate-limit.js';
export { MemoryRateLimiter, RedisRateLimiter } from './rate-limit.js';
export { notifierEventTypes, routeMatches, routeNotification } from './routing.js';
export {
  CHANNEL_TYPES,
  type ChannelSettings,
  type ChannelType,
  loadNotifierSettings,
  type NotifierSettings,
  parseNotifierSettings,
  type RouteSettings,
  SEVERITIES,
  type Severity,
  START_FROM,
} from './settings.js';
export {
  createMemoryNotifierState,
  createRedisNotifierState,
  DEFAULT_NOTIFIER_PREFIX,
  type NotifierState,
  type RedisNotifierStateOptions,
} from './state.js';
export { DEFAULT_TEMPLATES, renderTemplate, TEMPLATE_FIELDS, type Templates } from './templates.js';
