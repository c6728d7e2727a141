/**
 * One registry of the errors Materi raises on purpose. Each has a stable code (for scripts and
 * the HTTP API), an HTTP status and a CLI exit code. Callers test with `instanceof` or `code`,
 * never by matching messages. The CLI prints `message` (one line), never a stack.
 *
 * @module
 */

export const ERROR_CODES = {
  MATERI_ERR_CONFIG: { status: 500, exitCode: 2 },
  MATERI_ERR_BAD_INPUT: { status: 400, exitCode: 2 },
  MATERI_ERR_PLAN_INVALID: { status: 400, exitCode: 2 },
  MATERI_ERR_UNKNOWN_EVENT_TYPE: { status: 400, exitCode: 2 },
  MATERI_ERR_EVENT_INVALID: { status: 400, exitCode: 2 },
  MATERI_ERR_EVENT_DECODE: { status: 422, exitCode: 1 },
  MATERI_ERR_PUBLISH: { status: 503, exitCode: 1 },
  MATERI_ERR_BACKEND_UNAVAILABLE: { status: 503, exitCode: 1 },
  MATERI_ERR_UNRECOVERABLE: { status: 500, exitCode: 1 },
  MATERI_ERR_NOT_FOUND: { status: 404, exitCode: 1 },
  MATERI_ERR_CONFLICT: { status: 409, exitCode: 1 },
  MATERI_ERR_NOT_CURRENT_RELEASE: { status: 409, exitCode: 1 },
  /** A freeze window or an open critical incident: a policy refusal, fixed by waiting or an override with a reason. */
  MATERI_ERR_ENVIRONMENT_FROZEN: { status: 423, exitCode: 2 },
  MATERI_ERR_UNAUTHORIZED: { status: 401, exitCode: 1 },
  MATERI_ERR_FORBIDDEN: { status: 403, exitCode: 1 },
  MATERI_ERR_TIMEOUT: { status: 504, exitCode: 1 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base of every error Materi raises on purpose. */
export class MateriError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.httpStatus = ERROR_CODES[code].status;
    this.exitCode = ERROR_CODES[code].exitCode;
  }
}

/** A setting (environment variable or option) has a value that cannot be used. */
export class ConfigError extends MateriError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_CONFIG', message, options);
  }
}

/** Input given by a user (CLI argument, API body) is wrong. */
export class BadInputError extends MateriError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_BAD_INPUT', message, options);
  }
}

/** An event type string is not in the catalog. */
export class UnknownEventTypeError extends MateriError {
  readonly eventType: string;
  constructor(eventType: string) {
    super('MATERI_ERR_UNKNOWN_EVENT_TYPE', `unknown event type "${eventType}"`);
    this.eventType = eventType;
  }
}

/** Event data given to a publisher does not match the event's protobuf schema. */
export class EventValidationError extends MateriError {
  readonly eventType: string;
  constructor(eventType: string, problem: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_EVENT_INVALID', `invalid data for event "${eventType}": ${problem}`, options);
    this.eventType = eventType;
  }
}

/**
 * A stream entry could not be decoded into an event: a field is missing or malformed, the type is
 * unknown, the schema does not match the type, or the payload does not parse. Never retried: the
 * entry goes to the dead-letter stream at once.
 */
export class EventDecodeError extends MateriError {
  /** The entry field that is wrong (`data`, `type`, `time`, …). */
  readonly field: string;
  constructor(field: string, problem: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_EVENT_DECODE', `cannot decode event: field "${field}" ${problem}`, options);
    this.field = field;
  }
}

/** Publishing failed after the bounded retries; names the stream key and the cause. */
export class PublishError extends MateriError {
  readonly streamKey: string;
  constructor(streamKey: string, cause: unknown) {
    super('MATERI_ERR_PUBLISH', `cannot publish to ${streamKey}: ${describeCause(cause)}`, { cause });
    this.streamKey = streamKey;
  }
}

/** The event bus or store cannot be reached. */
export class BackendUnavailableError extends MateriError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_BACKEND_UNAVAILABLE', message, options);
  }
}

/**
 * Thrown by a handler when retrying cannot help (bad settings in the event, a permanent refusal).
 * The router dead-letters the entry at once instead of retrying it.
 */
export class UnrecoverableError extends MateriError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MATERI_ERR_UNRECOVERABLE', message, options);
  }
}

export class NotFoundError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_NOT_FOUND', message);
  }
}

export class ConflictError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_CONFLICT', message);
  }
}

/**
 * A deployment was refused because its environment is frozen: a freeze window covers now, or an
 * open critical incident stops the line. The message names the environment, the window or the
 * incident, when it ends and how to override it.
 */
export class EnvironmentFrozenError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_ENVIRONMENT_FROZEN', message);
  }
}

/**
 * A rollback of a deployment that is not its environment's current release: rolling it back would
 * reinstall an older version behind the one that runs. The message names the current release.
 */
export class NotCurrentReleaseError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_NOT_CURRENT_RELEASE', message);
  }
}

export class TimeoutError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_TIMEOUT', message);
  }
}

/** A one-line description of any thrown value, for messages that wrap a cause. */
export function describeCause(cause: unknown): string {
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return describeCause(cause.errors[0]);
  }
  if (cause instanceof MateriError) return cause.message;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    const text = cause.message || cause.name;
    return typeof code === 'string' && !text.includes(code) ? `${code} ${text}` : text;
  }
  return String(cause);
}
