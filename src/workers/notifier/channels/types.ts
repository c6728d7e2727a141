import { MateriError } from '../../../errors/index.js';
import type { Lookup } from '../../../runtime/references.js';
import type { IncidentStore } from '../incidents.js';
import type { NotificationMessage } from '../notification.js';
import type { ChannelSettings, ChannelType } from '../settings.js';
import type { Templates } from '../templates.js';

/** What a channel reports after a send. Every text in it is safe to publish (no secrets). */
export interface ChannelReceipt {
  /** The provider's id for what it accepted: PagerDuty dedup keys, an e-mail's Message-ID. */
  providerId?: string;
  /** One line about the provider's answer, e.g. `250 Accepted` or `resolved 2 incidents`. */
  detail?: string;
  /**
   * Set when the channel sent nothing on purpose (a success with no open incident to resolve);
   * the notifier records it as SUPPRESSED with this reason.
   */
  suppressed?: string;
}

export interface SendOptions {
  /** Aborts the request (the consumer is shutting down). */
  signal?: AbortSignal;
}

/**
 * Somewhere a notification can go. `send` resolves when the provider accepted the message and
 * throws when it refused it or could not be reached; the error message must hold no secret
 * (the notifier scrubs resolved secret values from it too, as a second line of defence).
 */
export interface NotificationChannel {
  /** The channel's name in the settings file. */
  readonly name: string;
  readonly type: ChannelType;
  /** Where messages go, safe to publish: `<type>:<name>`, e.g. `slack:deploys`. */
  readonly target: string;
  /**
   * Whether the channel keeps incidents open until a success resolves them (PagerDuty,
   * Alertmanager). Such a channel gets resolving events even when no route names it.
   */
  readonly tracksIncidents: boolean;
  send(message: NotificationMessage, options?: SendOptions): Promise<ChannelReceipt>;
}

/** What a channel factory gets besides its own settings. */
export interface ChannelDependencies {
  name: string;
  /** Resolves `${NAME}` references in the settings, at send time. */
  lookup: Lookup;
  templates: Templates;
  /** Open incidents, for channels that track them. */
  incidents: IncidentStore;
  /** Time limit of one request when the channel's settings give none. */
  timeoutMs: number;
}

/** Builds a channel of one type from its (unresolved) settings. */
export type ChannelFactory<S extends ChannelSettings = ChannelSettings> = (
  settings: S,
  dependencies: ChannelDependencies,
) => NotificationChannel;

/**
 * A channel refused a message or could not be reached. Its message is one line, names the
 * channel's target and the provider's answer, and never holds a secret.
 */
export class ChannelError extends MateriError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_BACKEND_UNAVAILABLE', message, options);
  }
}
