import {
  create,
  type DescEnum,
  type DescField,
  type DescMessage,
  fromBinary,
  fromJson,
  fromJsonString,
  type JsonValue,
  type MessageShape,
  ScalarType,
  toBinary,
  toJson,
} from '@bufbuild/protobuf';
import { EventDecodeError, EventValidationError, MateriError } from '../errors/index.js';
import { type EventSpec, PRIORITY_RANK, type PriorityName, resolveEventType } from './catalog.js';
import { CONTENT_TYPES, type ContentType, type DeploymentEvent } from './envelope.js';

/**
 * Stream entry codec. An entry is a flat list of fields — id, type, source, time, correlation_id,
 * causation_id, deployment_id, priority, schema, content_type, data — so that any Redis client can
 * read it. `data` is the proto3 JSON mapping of the payload (`application/json`, the default) or
 * the base64 of its binary encoding (`application/protobuf`).
 *
 * @module
 */

/** Entry field names in the order they are written. */
export const ENTRY_FIELDS = [
  'id',
  'type',
  'source',
  'time',
  'correlation_id',
  'causation_id',
  'deployment_id',
  'priority',
  'schema',
  'content_type',
  'data',
] as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
// Proto3 JSON: fields at their default value (0, "", false, empty list) are left out.

/** Encodes a payload for the `data` field. */
export function encodeData(
  spec: EventSpec,
  data: MessageShape<typeof spec.schema>,
  contentType: ContentType,
): string {
  if (contentType === 'application/protobuf') {
    return Buffer.from(toBinary(spec.schema, data)).toString('base64');
  }
  return jsonText(spec.schema, data as unknown as Record<string, unknown>);
}

const WRITE_AS_IS = new Set(['google.protobuf.Struct']);

/**
 * The proto3 JSON mapping of a message as text, written directly: the same output as
 * `JSON.stringify(toJson(desc, message))` (fields at their default left out, enums by name,
 * lowerCamelCase names) without building the intermediate object — this runs on every publish.
 * Map fields and well-known types other than Struct fall back to protobuf-es' `toJson`.
 */
export function jsonText(desc: DescMessage, message: Record<string, unknown>): string {
  return writerOf(desc)(message);
}

type JsonWriter = (message: Record<string, unknown>) => string;

const jsonWriters = new WeakMap<DescMessage, JsonWriter>();

/** A message's JSON writer, built once per message type: field names quoted ahead of time. */
function writerOf(desc: DescMessage): JsonWriter {
  let writer = jsonWriters.get(desc);
  if (writer) return writer;
  const fields = desc.fields.map((field) => ({
    field,
    localName: field.localName,
    key: `${JSON.stringify(field.jsonName)}:`,
  }));
  writer = (message) => {
    let out = '';
    for (const { field, localName, key } of fields) {
      const text = fieldJson(field, message[localName]);
      if (text === undefined) continue;
      out = out === '' ? key + text : `${out},${key}${text}`;
    }
    return `{${out}}`;
  };
  jsonWriters.set(desc, writer);
  return writer;
}

function scalarJson(type: ScalarType, value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value === '' ? undefined : JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : undefined;
    case 'bigint':
      return value === 0n ? undefined : `"${value}"`;
    case 'number':
      if (value === 0 && !Object.is(value, -0)) return undefined;
      if (Number.isFinite(value)) {
        return type === ScalarType.INT64 || type === ScalarType.UINT64 || type === ScalarType.SINT64
          ? `"${value}"`
          : String(value);
      }
      return JSON.stringify(String(value));
    default:
      return value instanceof Uint8Array
        ? value.length === 0
          ? undefined
          : JSON.stringify(Buffer.from(value).toString('base64'))
        : undefined;
  }
}

function messageJson(desc: DescMessage, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (WRITE_AS_IS.has(desc.typeName)) return JSON.stringify(value);
  if (desc.typeName.startsWith('google.protobuf.')) return JSON.stringify(toJson(desc, value as never));
  return jsonText(desc, value as Record<string, unknown>);
}

function fieldJson(field: DescField, value: unknown): string | undefined {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarJson(field.scalar, value);
    case 'enum':
      return value === 0 || value === undefined
        ? undefined
        : JSON.stringify(field.enum.value[value as number]?.name ?? value);
    case 'message':
      return messageJson(field.message, value);
    case 'list': {
      const list = value as unknown[];
      if (!list || list.length === 0) return undefined;
      const items = list.map((item) => {
        if (field.listKind === 'message') return messageJson(field.message, item) ?? '{}';
        if (field.listKind === 'enum') return JSON.stringify(field.enum.value[item as number]?.name ?? item);
        return (
          scalarJson(field.scalar, item) ??
          (typeof item === 'string' ? '""' : typeof item === 'boolean' ? 'false' : '0')
        );
      });
      return `[${items.join(',')}]`;
    }
    case 'map': {
      if (!value || Object.keys(value).length === 0) return undefined;
      const json = toJson(field.parent, {
        $typeName: field.parent.typeName,
        [field.localName]: value,
      } as never) as Record<string, unknown>;
      return JSON.stringify(json[field.jsonName]);
    }
  }
}

/**
 * Builds a payload message from a plain object (the message's init shape, e.g. from TypeScript
 * code) and checks it against the schema. Throws {@link EventValidationError} naming the field.
 * Required fields ({@link checkRequiredFields}) are not checked here: every publish goes through
 * this, and producers (tests, other teams' tools) write partial payloads the consumers tolerate.
 */
export function buildPayload(spec: EventSpec, init: unknown): MessageShape<typeof spec.schema> {
  const problem = checkMessageInit(spec.schema, init);
  if (problem) throw new EventValidationError(spec.type, problem);
  try {
    return create(spec.schema, init as never);
  } catch (cause) {
    throw new EventValidationError(spec.type, cause instanceof Error ? cause.message : String(cause), {
      cause,
    });
  }
}

/**
 * Throws {@link EventValidationError} naming the first of the spec's required fields that is
 * unset (proto3: empty string, zero enum or number, empty list), e.g. `"version" is required`.
 * For payloads a person typed (`materi events publish`, through {@link parsePayloadJson}).
 */
export function checkRequiredFields(spec: EventSpec, message: MessageShape<DescMessage>): void {
  const values = message as unknown as Record<string, unknown>;
  for (const name of spec.required) {
    const value = values[name];
    const unset =
      value === undefined ||
      value === '' ||
      value === 0 ||
      value === false ||
      (Array.isArray(value) && value.length === 0);
    if (unset) {
      const field = fieldsByName(spec.schema).get(name);
      throw new EventValidationError(spec.type, `"${field?.jsonName ?? name}" is required`);
    }
  }
}

const INTEGER_SCALARS = new Set([
  ScalarType.INT32,
  ScalarType.UINT32,
  ScalarType.SINT32,
  ScalarType.FIXED32,
  ScalarType.SFIXED32,
]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date);
}

function checkScalar(type: ScalarType, value: unknown): string | undefined {
  switch (type) {
    case ScalarType.STRING:
      return typeof value === 'string' ? undefined : 'a string';
    case ScalarType.BOOL:
      return typeof value === 'boolean' ? undefined : 'a boolean';
    case ScalarType.BYTES:
      return value instanceof Uint8Array ? undefined : 'bytes';
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return typeof value === 'number' ? undefined : 'a number';
    default:
      if (INTEGER_SCALARS.has(type)) return Number.isInteger(value) ? undefined : 'an integer';
      return typeof value === 'bigint' || Number.isInteger(value) ? undefined : 'an integer';
  }
}

/** A validation problem: the path to the field (built on the way out, only on failure) and what is wrong. */
interface Problem {
  at: string;
  message: string;
}

function within(prefix: string, problem: Problem | undefined): Problem | undefined {
  if (!problem) return undefined;
  return {
    at: problem.at.startsWith('[') || problem.at === '' ? prefix + problem.at : `${prefix}.${problem.at}`,
    message: problem.message,
  };
}

function got(value: unknown): string {
  return `, got ${JSON.stringify(value)?.slice(0, 40)}`;
}

const fieldMaps = new WeakMap<DescMessage, Map<string, DescField>>();

function fieldsByName(desc: DescMessage): Map<string, DescField> {
  let map = fieldMaps.get(desc);
  if (!map) {
    map = new Map(desc.fields.map((f) => [f.localName, f]));
    fieldMaps.set(desc, map);
  }
  return map;
}

/**
 * Checks a plain object against a message's fields, recursively. Returns the first problem as
 * `stageResults[0].durationMs: expected an integer`, or undefined. Runs on every publish, so the
 * path is only built when something is wrong.
 */
function checkMessageInit(desc: DescMessage, value: unknown): string | undefined {
  const problem = checkMessage(desc, value);
  if (!problem) return undefined;
  return problem.at ? `${problem.at}: ${problem.message}` : `data: ${problem.message}`;
}

function checkMessage(desc: DescMessage, value: unknown): Problem | undefined {
  if (!isPlainObject(value)) return { at: '', message: `expected an object${got(value)}` };
  const fields = fieldsByName(desc);
  for (const key in value) {
    if (key === '$typeName' || key === '$unknown') continue;
    const fieldValue = value[key];
    const field = fields.get(key);
    if (!field) return { at: key, message: `unknown field for ${desc.typeName}` };
    if (fieldValue === undefined) continue;
    const problem = checkField(field, fieldValue);
    if (problem) return within(key, problem);
  }
  return undefined;
}

function checkField(field: DescField, value: unknown): Problem | undefined {
  switch (field.fieldKind) {
    case 'scalar':
      return checkScalarValue(field.scalar, value);
    case 'enum':
      return checkEnumValue(field.enum, value);
    case 'message':
      return checkNested(field.message, value);
    case 'list': {
      if (!Array.isArray(value)) return { at: '', message: `expected a list${got(value)}` };
      for (let i = 0; i < value.length; i++) {
        const item = value[i];
        const problem =
          field.listKind === 'scalar'
            ? checkScalarValue(field.scalar, item)
            : field.listKind === 'enum'
              ? checkEnumValue(field.enum, item)
              : checkNested(field.message, item);
        if (problem) return within(`[${i}]`, problem);
      }
      return undefined;
    }
    case 'map':
      return isPlainObject(value) ? undefined : { at: '', message: `expected an object${got(value)}` };
  }
}

function checkScalarValue(type: ScalarType, value: unknown): Problem | undefined {
  const want = checkScalar(type, value);
  return want ? { at: '', message: `expected ${want}${got(value)}` } : undefined;
}

function checkEnumValue(desc: DescEnum, value: unknown): Problem | undefined {
  return desc.value[value as number]
    ? undefined
    : { at: '', message: `expected a ${desc.typeName} value${got(value)}` };
}

function checkNested(desc: DescMessage, value: unknown): Problem | undefined {
  if (desc.typeName === 'google.protobuf.Struct') {
    return isPlainObject(value) ? undefined : { at: '', message: `expected an object${got(value)}` };
  }
  if (desc.typeName === 'google.protobuf.Timestamp') {
    return isPlainObject(value) && 'seconds' in value
      ? undefined
      : { at: '', message: 'expected a Timestamp (timestampFromDate)' };
  }
  return checkMessage(desc, value);
}

/**
 * Parses a payload given as JSON text in the proto3 JSON mapping (for the CLI and the HTTP API).
 * Unknown fields, wrong types and missing required fields are rejected with the field's name.
 */
export function parsePayloadJson(spec: EventSpec, json: string): MessageShape<typeof spec.schema> {
  let message: MessageShape<typeof spec.schema>;
  try {
    message = fromJsonString(spec.schema, json);
  } catch (cause) {
    throw new EventValidationError(spec.type, cause instanceof Error ? cause.message : String(cause), {
      cause,
    });
  }
  checkRequiredFields(spec, message);
  return message;
}

/**
 * Writes an event as the flat field list of a stream entry, appended to `into` (e.g. an XADD
 * command being built) when given.
 */
export function encodeEntry(
  event: DeploymentEvent,
  spec: EventSpec = resolveEventType(event.type),
  into: string[] = [],
): string[] {
  into.push(
    'id',
    event.id,
    'type',
    event.type,
    'source',
    event.source,
    'time',
    isoTime(event.time),
    'correlation_id',
    event.correlationId,
    'causation_id',
    event.causationId,
    'deployment_id',
    event.deploymentId,
    'priority',
    event.priority,
    'schema',
    spec.schema.typeName,
    'content_type',
    event.contentType,
    'data',
    encodeData(spec, event.data as never, event.contentType),
  );
  return into;
}

let lastIsoMs = Number.NaN;
let lastIso = '';

/** `Date#toISOString`, remembering the last result: events published together share a millisecond. */
function isoTime(time: Date): string {
  const ms = time.getTime();
  if (ms !== lastIsoMs) {
    lastIso = time.toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}

let lastTimeText = '';
let lastTimeMs = 0;

/**
 * The `time` field as a Date. Entries read together were mostly published in the same
 * millisecond, so the last text parsed is remembered (each event still gets its own Date).
 */
function parseTime(text: string): Date {
  if (text !== lastTimeText) {
    const ms = RFC3339.test(text) ? new Date(text).getTime() : Number.NaN;
    if (Number.isNaN(ms)) {
      throw new EventDecodeError('time', `is not an RFC 3339 timestamp: "${text.slice(0, 40)}"`);
    }
    lastTimeText = text;
    lastTimeMs = ms;
  }
  return new Date(lastTimeMs);
}

/** Turns a flat `[field, value, …]` list (as XRANGE returns it) into a record. */
export function fieldsToRecord(fields: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
  return record;
}

function required(entry: Record<string, string>, field: string): string {
  const value = entry[field];
  if (value === undefined) throw new EventDecodeError(field, 'is missing');
  if (value === '') throw new EventDecodeError(field, 'is empty');
  return value;
}

/**
 * Decodes a stream entry into an event. Throws {@link EventDecodeError} naming the first field
 * that is wrong; never anything else.
 */
export function decodeEntry(fields: Record<string, string> | readonly string[]): DeploymentEvent {
  const entry = Array.isArray(fields)
    ? fieldsToRecord(fields as readonly string[])
    : (fields as Record<string, string>);
  const id = required(entry, 'id');
  if (!UUID.test(id)) throw new EventDecodeError('id', `is not a UUID: "${id.slice(0, 60)}"`);
  const type = required(entry, 'type');
  let spec: EventSpec;
  try {
    spec = resolveEventType(type);
  } catch {
    throw new EventDecodeError('type', `is not a known event type: "${type.slice(0, 80)}"`);
  }
  const time = parseTime(required(entry, 'time'));
  const priority = required(entry, 'priority');
  if (!(priority in PRIORITY_RANK)) {
    throw new EventDecodeError(
      'priority',
      `must be LOW, NORMAL, HIGH or CRITICAL, not "${priority.slice(0, 20)}"`,
    );
  }
  const schema = required(entry, 'schema');
  if (schema !== spec.schema.typeName) {
    throw new EventDecodeError('schema', `is "${schema}" but type ${type} carries ${spec.schema.typeName}`);
  }
  const contentType = (entry.content_type ?? 'application/json') as ContentType;
  if (!CONTENT_TYPES.includes(contentType)) {
    throw new EventDecodeError(
      'content_type',
      `must be application/json or application/protobuf, not "${contentType}"`,
    );
  }
  const raw = entry.data;
  if (raw === undefined) throw new EventDecodeError('data', 'is missing');
  let data: unknown;
  try {
    data =
      contentType === 'application/protobuf'
        ? fromBinary(spec.schema, Buffer.from(raw, 'base64'))
        : readJsonPayload(spec.schema, raw);
  } catch (cause) {
    const problem = cause instanceof Error ? cause.message : String(cause);
    throw new EventDecodeError('data', `does not parse as ${spec.schema.typeName}: ${problem}`, { cause });
  }
  return {
    id,
    type,
    source: required(entry, 'source'),
    time,
    correlationId: required(entry, 'correlation_id'),
    causationId: entry.causation_id ?? '',
    deploymentId: entry.deployment_id ?? '',
    priority: priority as PriorityName,
    schema,
    contentType,
    data,
  };
}

const JSON_OPTIONS = { ignoreUnknownFields: true };

/**
 * The payload of a JSON entry: what `fromJsonString(schema, raw, { ignoreUnknownFields: true })`
 * returns, on every consumer's hot path. Plain payloads (the usual case) are read by a reader
 * built once per message type; anything it does not accept exactly as protobuf-es would (a
 * number given as a string, a null, an unknown enum name, a map field, …) goes to protobuf-es,
 * which converts it or throws the error that names the field.
 */
export function readJsonPayload(desc: DescMessage, raw: string): MessageShape<DescMessage> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return fromJsonString(desc, raw, JSON_OPTIONS);
  }
  const reader = messageReader(desc);
  const message = reader ? reader(json) : NOT_PLAIN;
  return message === NOT_PLAIN ? fromJson(desc, json as JsonValue, JSON_OPTIONS) : (message as never);
}

/** What a reader returns for JSON it leaves to protobuf-es. */
const NOT_PLAIN = Symbol('not plain');

type ValueReader = (value: unknown) => unknown;

const INT32_RANGE = { min: -(2 ** 31), max: 2 ** 31 - 1 };
const UINT32_RANGE = { min: 0, max: 2 ** 32 - 1 };

function scalarReader(type: ScalarType): ValueReader | undefined {
  switch (type) {
    case ScalarType.STRING:
      return (v) => (typeof v === 'string' ? v : NOT_PLAIN);
    case ScalarType.BOOL:
      return (v) => (typeof v === 'boolean' ? v : NOT_PLAIN);
    case ScalarType.DOUBLE:
      return (v) => (typeof v === 'number' && Number.isFinite(v) ? v : NOT_PLAIN);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
    case ScalarType.UINT32:
    case ScalarType.FIXED32: {
      const range = type === ScalarType.UINT32 || type === ScalarType.FIXED32 ? UINT32_RANGE : INT32_RANGE;
      return (v) =>
        typeof v === 'number' && Number.isInteger(v) && v >= range.min && v <= range.max ? v : NOT_PLAIN;
    }
    default:
      // 64-bit integers (bigint), bytes (base64), float (range checks): protobuf-es.
      return undefined;
  }
}

function enumReader(desc: DescEnum): ValueReader {
  const byName = new Map(desc.values.map((v) => [v.name, v.number]));
  const numbers = new Set(desc.values.map((v) => v.number));
  return (v) => {
    if (typeof v === 'string') return byName.get(v) ?? NOT_PLAIN;
    return typeof v === 'number' && numbers.has(v) ? v : NOT_PLAIN;
  };
}

function nestedReader(desc: DescMessage): ValueReader | undefined {
  if (desc.typeName === 'google.protobuf.Struct') {
    // A Struct field holds the JSON object itself (protobuf-es unboxes it).
    return (v) => (isPlainObject(v) ? v : NOT_PLAIN);
  }
  if (desc.typeName === 'google.protobuf.Timestamp') {
    return (v) => {
      if (typeof v !== 'string') return NOT_PLAIN;
      try {
        return fromJson(desc, v);
      } catch {
        return NOT_PLAIN;
      }
    };
  }
  if (desc.typeName.startsWith('google.protobuf.')) return undefined;
  return messageReader(desc);
}

function fieldReader(field: DescField): ValueReader | undefined {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarReader(field.scalar);
    case 'enum':
      return field.enum.typeName === 'google.protobuf.NullValue' ? undefined : enumReader(field.enum);
    case 'message':
      return nestedReader(field.message);
    case 'list': {
      const item =
        field.listKind === 'scalar'
          ? scalarReader(field.scalar)
          : field.listKind === 'enum'
            ? enumReader(field.enum)
            : nestedReader(field.message);
      if (!item) return undefined;
      return (v) => {
        if (!Array.isArray(v)) return NOT_PLAIN;
        const out = new Array(v.length);
        for (let i = 0; i < v.length; i++) {
          const read = item(v[i]);
          if (read === NOT_PLAIN) return NOT_PLAIN;
          out[i] = read;
        }
        return out;
      };
    }
    case 'map':
      return undefined;
  }
}

const messageReaders = new WeakMap<DescMessage, ValueReader | null>();

/** The reader of a message type, or undefined when its fields are beyond the plain subset. */
function messageReader(desc: DescMessage): ValueReader | undefined {
  const known = messageReaders.get(desc);
  if (known !== undefined) return known ?? undefined;
  // Marked first, so a recursive message type (it meets itself while being built) is never
  // plain: it always goes to protobuf-es.
  messageReaders.set(desc, null);
  const fields = new Map<string, { index: number; localName: string; read: ValueReader }>();
  // Up to 31 fields: which ones a payload gave is kept in the bits of one number.
  let plain = desc.oneofs.length === 0 && desc.fields.length <= 31;
  desc.fields.forEach((field, index) => {
    const read = plain ? fieldReader(field) : undefined;
    if (!read) {
      plain = false;
      return;
    }
    // Proto3 JSON accepts the lowerCamelCase name and the proto name.
    fields.set(field.jsonName, { index, localName: field.localName, read });
    fields.set(field.name, { index, localName: field.localName, read });
  });
  if (!plain) return undefined;
  const reader: ValueReader = (json) => {
    if (!isPlainObject(json)) return NOT_PLAIN;
    const message = create(desc) as Record<string, unknown>;
    let seen = 0;
    for (const key in json) {
      const field = fields.get(key);
      if (!field) continue;
      // A field given twice (by both its names) is an error protobuf-es reports.
      const bit = 1 << field.index;
      if ((seen & bit) !== 0) return NOT_PLAIN;
      seen |= bit;
      const read = field.read(json[key]);
      if (read === NOT_PLAIN) return NOT_PLAIN;
      message[field.localName] = read;
    }
    return message;
  };
  messageReaders.set(desc, reader);
  return reader;
}

/** Whether an error is a decoding problem (never worth retrying). */
export function isDecodeError(error: unknown): error is EventDecodeError {
  return (
    error instanceof EventDecodeError ||
    (error instanceof MateriError && error.code === 'MATERI_ERR_EVENT_DECODE')
  );
}
