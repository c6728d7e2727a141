/**
 * Generates docs/events.md, the event reference, from the protobuf descriptors (the generated code
 * in src/events/gen), the comments of the .proto files and the event catalog (src/events/catalog.ts).
 * The page is never edited by hand: change the .proto files or the catalog and run this again.
 *
 *   node --import tsx scripts/gen-event-docs.ts            # writes docs/events.md
 *   node --import tsx scripts/gen-event-docs.ts --check    # exit 1 when docs/events.md is stale
 *   node --import tsx scripts/gen-event-docs.ts --out F    # another file (tests)
 *
 * The generated descriptors carry no source comments (buf strips them), so the comments come from
 * a small parser of the .proto files. Every message, field, enum and enum value must have one:
 * a missing comment stops the generator, naming the element, so the reference never has holes.
 *
 * @module
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DescEnum, DescField, DescMessage } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { FIXED_EVENT_TYPES, resolveEventType } from '../src/events/catalog.js';
import { buildPayload, ENTRY_FIELDS, encodeEntry } from '../src/events/codec.js';
import { file_materi_events_v1_base_event } from '../src/events/gen/materi/events/v1/base_event_pb.js';
import { file_materi_events_v1_deployment_events } from '../src/events/gen/materi/events/v1/deployment_events_pb.js';
import { DEFAULT_STREAM_PREFIX, deadLetterStreamKey, streamKey } from '../src/events/streams.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PROTO_DIR = 'proto/materi/events/v1';
const PROTO_FILES = ['base_event.proto', 'deployment_events.proto'];
const DEFAULT_OUT = join(ROOT, 'docs', 'events.md');

/** Comments of a .proto file, by full name: `pkg.Message`, `pkg.Message.field`, `pkg.Enum.VALUE`. */
export type ProtoComments = Map<string, string>;

/**
 * Reads the leading comments of messages, fields, enums and enum values. A comment block belongs
 * to the declaration right below it; a blank line in between detaches it (as protoc does).
 */
export function parseProtoComments(text: string, file: string): ProtoComments {
  const comments: ProtoComments = new Map();
  let pkg = '';
  let pending: string[] = [];
  const scopes: { kind: 'message' | 'enum' | 'other'; name: string }[] = [];
  const fullName = (name: string) =>
    [pkg, ...scopes.filter((s) => s.kind !== 'other').map((s) => s.name), name].filter(Boolean).join('.');
  const take = (name: string) => {
    if (pending.length > 0) comments.set(fullName(name), pending.join(' '));
    pending = [];
  };
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') {
      pending = [];
      return;
    }
    if (line.startsWith('//')) {
      const body = line.replace(/^\/\/\s?/, '');
      // Rulers (`// -----`) are section dividers, not documentation.
      if (/^-+$/.test(body)) pending = [];
      else pending.push(body);
      return;
    }
    const inEnum = scopes.at(-1)?.kind === 'enum';
    const pkgMatch = /^package\s+([\w.]+)\s*;/.exec(line);
    const block = /^(message|enum)\s+(\w+)\s*\{\s*(\})?$/.exec(line);
    const oneof = /^oneof\s+(\w+)\s*\{$/.exec(line);
    const value = inEnum ? /^(\w+)\s*=\s*-?\d+/.exec(line) : null;
    const field =
      !inEnum && scopes.length > 0
        ? /^(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+/.exec(line)
        : null;
    if (pkgMatch) {
      pkg = pkgMatch[1]!;
      pending = [];
    } else if (block) {
      take(block[2]!);
      if (!block[3]) scopes.push({ kind: block[1] as 'message' | 'enum', name: block[2]! });
    } else if (oneof) {
      pending = [];
      scopes.push({ kind: 'other', name: oneof[1]! });
    } else if (line === '}') {
      if (scopes.pop() === undefined) throw new Error(`${file}:${index + 1}: unbalanced "}"`);
      pending = [];
    } else if (value) {
      take(value[1]!);
    } else if (field) {
      take(field[1]!);
    } else {
      // syntax, import, option, reserved: nothing to document.
      pending = [];
    }
  });
  if (scopes.length > 0) throw new Error(`${file}: ${scopes.length} unclosed block(s)`);
  return comments;
}

function commentOf(comments: ProtoComments, name: string): string {
  const comment = comments.get(name);
  if (comment === undefined) {
    throw new Error(`no comment for ${name} in ${PROTO_DIR}: document it with a // comment above it`);
  }
  return comment;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces as dashes. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');
}

/** Splits a table row into its cells; `\|` inside a cell is not a separator. */
function cellsOf(row: string): string[] {
  return row
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/**
 * Pads every table to aligned columns, the way Markdown formatters print tables, so that
 * formatting the docs folder leaves this generated page unchanged.
 */
function alignTables(lines: string[]): string[] {
  const out: string[] = [];
  let fenced = false;
  for (let i = 0; i < lines.length; ) {
    if (lines[i]!.startsWith('```')) fenced = !fenced;
    if (fenced || !lines[i]!.startsWith('|')) {
      out.push(lines[i++]!);
      continue;
    }
    const rows: string[][] = [];
    while (i < lines.length && lines[i]!.startsWith('|')) rows.push(cellsOf(lines[i++]!));
    const widths = rows[0]!.map((_, c) =>
      Math.max(3, ...rows.map((r, n) => (n === 1 ? 3 : [...(r[c] ?? '')].length))),
    );
    for (const [n, row] of rows.entries()) {
      const cells = widths.map((w, c) => (n === 1 ? '-'.repeat(w) : (row[c] ?? '').padEnd(w)));
      out.push(`| ${cells.join(' | ')} |`);
    }
  }
  return out;
}

/** Escapes prose taken from a comment: `<stage>` must not read as an HTML tag. */
function prose(text: string): string {
  return text.replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escapes a table cell. */
function cell(text: string): string {
  return prose(text).replace(/\|/g, '\\|');
}

const SCALAR_NAMES: Record<number, string> = {
  [ScalarType.DOUBLE]: 'double',
  [ScalarType.FLOAT]: 'float',
  [ScalarType.INT64]: 'int64',
  [ScalarType.UINT64]: 'uint64',
  [ScalarType.INT32]: 'int32',
  [ScalarType.FIXED64]: 'fixed64',
  [ScalarType.FIXED32]: 'fixed32',
  [ScalarType.BOOL]: 'bool',
  [ScalarType.STRING]: 'string',
  [ScalarType.BYTES]: 'bytes',
  [ScalarType.UINT32]: 'uint32',
  [ScalarType.SFIXED32]: 'sfixed32',
  [ScalarType.SFIXED64]: 'sfixed64',
  [ScalarType.SINT32]: 'sint32',
  [ScalarType.SINT64]: 'sint64',
};

/** How a well-known type looks in the proto3 JSON mapping. */
const WELL_KNOWN: Record<string, string> = {
  'google.protobuf.Timestamp': 'RFC 3339 in JSON',
  'google.protobuf.Struct': 'JSON object',
};

function typeLink(desc: DescMessage | DescEnum): string {
  if (WELL_KNOWN[desc.typeName]) return `\`${desc.typeName}\` (${WELL_KNOWN[desc.typeName]})`;
  return `[${desc.name}](#${anchor(desc.name)})`;
}

function fieldType(field: DescField): string {
  switch (field.fieldKind) {
    case 'scalar':
      return `\`${SCALAR_NAMES[field.scalar]}\``;
    case 'enum':
      return typeLink(field.enum);
    case 'message':
      return typeLink(field.message);
    case 'list': {
      const item =
        field.listKind === 'scalar'
          ? `\`${SCALAR_NAMES[field.scalar]}\``
          : field.listKind === 'enum'
            ? typeLink(field.enum)
            : typeLink(field.message);
      return `repeated ${item}`;
    }
    case 'map':
      return 'map';
  }
}

function fieldTable(message: DescMessage, comments: ProtoComments): string[] {
  const lines = ['| field | JSON name | type | meaning |', '| --- | --- | --- | --- |'];
  for (const field of message.fields) {
    const meaning = commentOf(comments, `${message.typeName}.${field.name}`);
    lines.push(`| \`${field.name}\` | \`${field.jsonName}\` | ${fieldType(field)} | ${cell(meaning)} |`);
  }
  return lines;
}

function enumTable(desc: DescEnum, comments: ProtoComments): string[] {
  const lines = ['| value | number | meaning |', '| --- | --- | --- |'];
  for (const value of desc.values) {
    lines.push(
      `| \`${value.name}\` | ${value.number} | ${cell(commentOf(comments, `${desc.typeName}.${value.name}`))} |`,
    );
  }
  return lines;
}

/** Event types in the order a deployment publishes them; any other catalog type follows. */
const LIFECYCLE_ORDER = [
  'deployment:started',
  'validation:started',
  'validation:completed',
  'dependency:check:started',
  'dependency:check:completed',
  'deployment:stage:<stage>:started',
  'deployment:stage:<stage>:completed',
  'health:check:started',
  'health:check:completed',
  'deployment:failed',
  'rollback:initiated',
  'rollback:completed',
  'deployment:completed',
  'notification:sent',
  'alert:raised',
];

interface EventDoc {
  type: string;
  schema: DescMessage;
  priority: string;
  required: readonly string[];
}

function eventDocs(): EventDoc[] {
  const types = [
    ...LIFECYCLE_ORDER.filter((t) => t.includes('<stage>') || FIXED_EVENT_TYPES.includes(t as never)),
  ];
  for (const fixed of FIXED_EVENT_TYPES) if (!types.includes(fixed)) types.push(fixed);
  return types.map((type) => {
    // Any valid stage name resolves a per-stage type; the page shows the placeholder.
    const spec = resolveEventType(type.replace('<stage>', 'stage'));
    return { type, schema: spec.schema, priority: spec.defaultPriority, required: spec.required };
  });
}

/** The proto comment of an event message says `Type "…", priority X.`; it must agree with the catalog. */
function checkCommentAgrees(event: EventDoc, comment: string): void {
  const stated = /Type "([^"]+)", priority (\w+)/.exec(comment);
  if (!stated) return;
  if (stated[1] !== event.type || stated[2] !== event.priority) {
    throw new Error(
      `${event.schema.typeName}: its comment says type "${stated[1]}" priority ${stated[2]}, but the catalog ` +
        `(src/events/catalog.ts) has type "${event.type}" priority ${event.priority}; fix one of them`,
    );
  }
}

/** How `redis-cli` on a terminal prints one XRANGE entry. */
function redisCliEntry(entryId: string, fields: string[]): string[] {
  const quote = (s: string) => JSON.stringify(s);
  const width = String(fields.length).length;
  const lines = [`1) 1) ${quote(entryId)}`];
  fields.forEach((value, i) => {
    const number = `${String(i + 1).padStart(width)})`;
    lines.push(i === 0 ? `   2) ${number} ${quote(value)}` : `      ${number} ${quote(value)}`);
  });
  return lines;
}

/** Describes the stream entry fields; the envelope fields take their text from base_event.proto. */
const ENTRY_FIELD_SOURCE: Record<string, string | undefined> = {
  id: 'event_id',
  type: 'type',
  source: 'source',
  time: 'time',
  correlation_id: 'correlation_id',
  causation_id: 'causation_id',
  deployment_id: 'deployment_id',
  priority: 'priority',
  schema: 'schema',
};

const ENTRY_FIELD_FORMAT: Record<string, string> = {
  id: 'UUID',
  type: 'event type',
  source: 'text',
  time: 'RFC 3339, UTC, milliseconds',
  correlation_id: 'UUID',
  causation_id: 'event id or empty',
  deployment_id: 'text, empty for bus alerts',
  priority: '`LOW` \\| `NORMAL` \\| `HIGH` \\| `CRITICAL`',
  schema: 'full protobuf message name',
  content_type: '`application/json` \\| `application/protobuf`',
  data: 'payload',
};

const ENTRY_FIELD_EXTRA: Record<string, string> = {
  content_type:
    'How `data` is encoded: `application/json` (the default) is the proto3 JSON mapping; `application/protobuf` is the base64 of the binary encoding.',
  data: 'The payload: the message named by `schema`, encoded as `content_type` says. In JSON, fields at their default value (0, "", false, empty list) are left out, enums are written by name and field names are lowerCamelCase (the JSON names below).',
};

/** Options of {@link renderEventDocs}. */
export interface RenderEventDocsOptions {
  /** Reads a .proto file by name (`base_event.proto`). @defaultValue the files in proto/materi/events/v1 */
  readProto?: (file: string) => Promise<string>;
}

/** The text of docs/events.md. Throws naming the element when a message, field or value has no comment. */
export async function renderEventDocs(options: RenderEventDocsOptions = {}): Promise<string> {
  const readProto = options.readProto ?? ((file: string) => readFile(join(ROOT, PROTO_DIR, file), 'utf8'));
  const comments: ProtoComments = new Map();
  for (const file of PROTO_FILES) {
    for (const [name, comment] of parseProtoComments(await readProto(file), `${PROTO_DIR}/${file}`)) {
      comments.set(name, comment);
    }
  }
  const base = file_materi_events_v1_base_event;
  const deployment = file_materi_events_v1_deployment_events;
  const envelope = base.messages.find((m) => m.name === 'EventEnvelope')!;
  const events = eventDocs();
  const payloads = new Set(events.map((e) => e.schema.typeName));
  const structures = deployment.messages.filter((m) => !payloads.has(m.typeName));
  const enums = [...base.enums, ...deployment.enums];

  const out: string[] = [];
  const push = (...lines: string[]) => out.push(...lines);
  push(
    '<!-- Generated by scripts/gen-event-docs.ts from proto/materi/events/v1/*.proto and src/events/catalog.ts.',
    '     Do not edit by hand: change the .proto files or the catalog, then run `npm run docs:events`. -->',
    '',
    '# Event reference',
    '',
    `Every event of Materi Deploy: its type, the Redis stream it is appended to, its default priority,`,
    `its protobuf message and the message's fields. The schemas are`,
    `[\`${PROTO_DIR}/\`](../${PROTO_DIR}/) (package \`materi.events.v1\`); TypeScript types are generated`,
    'into `src/events/gen/`. How events follow each other in a deployment: [event-flows.md](event-flows.md).',
    'What delivery guarantees hold: [delivery.md](delivery.md).',
    '',
    `- **Stream key**: \`<prefix>:<type>\`, one stream per type. The prefix is \`MATERI_STREAM_PREFIX\`,`,
    `  default \`${DEFAULT_STREAM_PREFIX}\` (the keys below use it).`,
    '- **Per-stage types**: `deployment:stage:<stage>:started` and `…:completed` exist for every stage name',
    '  of a plan (`[a-z0-9][a-z0-9_-]{0,62}`), so their streams appear when a plan first uses a stage.',
    '  Every type ever published is added to the set `<prefix>:registry:streams`, which consumers read to',
    '  discover new streams.',
    `- **Dead letters** of a consumer group go to \`${deadLetterStreamKey(DEFAULT_STREAM_PREFIX, '<group>')}\``,
    '  (see [delivery.md](delivery.md#dead-letter-stream)).',
    '- **Default priority** is used when the publisher is not told otherwise (`OutgoingEvent.priority`).',
    '',
    '## Event types',
    '',
    '| type | stream key | priority | message |',
    '| --- | --- | --- | --- |',
  );
  for (const event of events) {
    push(
      `| [\`${event.type}\`](#${anchor(event.type)}) | \`${streamKey(DEFAULT_STREAM_PREFIX, event.type)}\` | ${event.priority} | \`${event.schema.name}\` |`,
    );
  }

  push('', '## Stream entries', '');
  push(
    'A stream entry is a flat list of string fields, in this order, so that anyone with `redis-cli`',
    '(or the `sqlite3` shell on the embedded bus) and a JSON parser can read every event. The envelope',
    'fields mirror `materi.events.v1.EventEnvelope` in `base_event.proto`.',
    '',
    '| field | format | meaning |',
    '| --- | --- | --- |',
  );
  for (const name of ENTRY_FIELDS) {
    const source = ENTRY_FIELD_SOURCE[name];
    const meaning = source
      ? commentOf(comments, `${envelope.typeName}.${source}`)
      : (ENTRY_FIELD_EXTRA[name] ?? '');
    push(`| \`${name}\` | ${ENTRY_FIELD_FORMAT[name]} | ${cell(meaning)} |`);
  }

  const sample = resolveEventType('deployment:stage:api:started');
  const sampleFields = encodeEntry(
    {
      id: '3f0b7c1e-9a4d-4e8b-b2c6-5d1e7f9a0c2b',
      type: sample.type,
      source: 'materi/up',
      time: new Date('2026-01-08T10:15:30.123Z'),
      correlationId: 'd89b67ee-3fb3-47de-91e8-ee09c9ade7b3',
      causationId: 'bf683a15-1718-5f85-b1b0-9fd4e04b5bfb',
      deploymentId: 'dep-646dec7d64e0',
      priority: sample.defaultPriority,
      schema: sample.schema.typeName,
      contentType: 'application/json',
      data: buildPayload(sample, {
        deploymentId: 'dep-646dec7d64e0',
        stage: 'api',
        description: 'API on port 4791',
        services: ['api'],
        provider: 'local',
      }),
    },
    sample,
  );
  push(
    '',
    'One entry, as `redis-cli` prints it:',
    '',
    '```',
    `$ redis-cli XRANGE ${streamKey(DEFAULT_STREAM_PREFIX, sample.type)} - + COUNT 1`,
    ...redisCliEntry('1767867330124-0', sampleFields),
    '```',
    '',
    'Publishers fill in what the caller leaves out: a new UUID for `id`, now for `time`, the handled',
    "event's correlation id (or a new UUID) for `correlation_id` and its id for `causation_id` when",
    "publishing from a handler, `data.deploymentId` for `deployment_id`, and the type's default",
    'priority. The orchestrator and the gate workers set `id` themselves: a UUID-shaped hash of the',
    "deployment and the step, or of the request's id, so that a step published again after a crash or a",
    'redelivery has the same id. Consumers deduplicate by `id`; an entry missing a required field, with',
    "an unknown `type` or a `schema` that is not the type's message is dead-lettered at once (`decode`).",
  );

  push('', '## Events', '');
  for (const event of events) {
    const comment = commentOf(comments, event.schema.typeName);
    checkCommentAgrees(event, comment);
    push(
      `### \`${event.type}\``,
      '',
      `Stream \`${streamKey(DEFAULT_STREAM_PREFIX, event.type)}\` · priority ${event.priority} · message`,
      `\`${event.schema.typeName}\``,
      '',
      prose(comment),
      '',
      `Required (\`materi events publish\` refuses the event without them): ${event.required.map((f) => `\`${f}\``).join(', ')}.`,
      '',
      ...fieldTable(event.schema, comments),
      '',
    );
  }

  push('## Structures', '', 'Messages used inside the events.', '');
  for (const message of structures) {
    push(
      `### ${message.name}`,
      '',
      prose(commentOf(comments, message.typeName)),
      '',
      ...fieldTable(message, comments),
      '',
    );
  }

  push(
    '## Enums',
    '',
    'In JSON an enum is written as the name of its value (`"DEPLOYMENT_STATUS_SUCCESS"`); a value at 0',
    '(`…_UNSPECIFIED`) is the default and is left out.',
    '',
  );
  for (const desc of enums) {
    push(
      `### ${desc.name}`,
      '',
      prose(commentOf(comments, desc.typeName)),
      '',
      ...enumTable(desc, comments),
      '',
    );
  }
  while (out.at(-1) === '') out.pop();
  return `${alignTables(out).join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes('--check');
  const at = argv.indexOf('--out');
  const target = at >= 0 && argv[at + 1] ? argv[at + 1]! : DEFAULT_OUT;
  const shown = relative(process.cwd(), target) || target;
  const text = await renderEventDocs();
  if (check) {
    const current = await readFile(target, 'utf8').catch(() => undefined);
    if (current !== text) {
      process.stderr.write(
        `${shown} is stale: run \`node --import tsx scripts/gen-event-docs.ts\` (npm run docs:events) and commit it\n`,
      );
      return 1;
    }
    process.stdout.write(`${shown} is current\n`);
    return 0;
  }
  await writeFile(target, text);
  process.stdout.write(`wrote ${shown}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`gen-event-docs: ${error.message}\n`);
      process.exit(1);
    },
  );
}
