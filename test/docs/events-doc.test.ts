/**
 * docs/events.md is generated from the protobuf descriptors, the .proto comments and the event
 * catalog by scripts/gen-event-docs.ts. These tests keep it from drifting: the committed page must
 * be exactly what the generator produces now.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProtoComments, renderEventDocs } from '../../scripts/gen-event-docs.js';
import { FIXED_EVENT_TYPES, resolveEventType } from '../../src/events/catalog.js';
import { DEFAULT_STREAM_PREFIX, streamKey } from '../../src/events/streams.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** A table row with these cells, whatever the padding of its columns. */
function row(...cells: string[]): RegExp {
  const escaped = cells.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^\\| ${escaped.join(' +\\| ')} +\\|`, 'm');
}
const proto = (file: string) => readFile(join(root, 'proto/materi/events/v1', file), 'utf8');

function generator(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/gen-event-docs.ts', ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let workdir: string;
beforeAll(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'materi-events-doc-'));
});
afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

describe('the generated event reference', () => {
  it('is current: docs/events.md is exactly what the generator produces now', async () => {
    const result = await generator(['--check']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('is current');
  });

  it('fails the check, naming the file and the fix, when the page is stale', async () => {
    const out = join(workdir, 'events.md');
    const written = await generator(['--out', out]);
    expect(written.code).toBe(0);
    expect((await generator(['--check', '--out', out])).code).toBe(0);

    const page = await readFile(out, 'utf8');
    await writeFile(out, page.replace('| CRITICAL |', '| HIGH |'));
    const stale = await generator(['--check', '--out', out]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/events\.md is stale: run .*gen-event-docs\.ts/);
  });

  it('documents every event type of the catalog with its stream key, priority, message and fields', async () => {
    const page = await renderEventDocs();
    const types = [
      ...FIXED_EVENT_TYPES,
      'deployment:stage:<stage>:started',
      'deployment:stage:<stage>:completed',
    ];
    for (const type of types) {
      const spec = resolveEventType(type.replace('<stage>', 'api'));
      const section = page.split(`### \`${type}\`\n`)[1]?.split('\n### ')[0];
      expect(section, `section of ${type}`).toBeDefined();
      expect(section).toContain(`Stream \`${streamKey(DEFAULT_STREAM_PREFIX, type)}\``);
      expect(section).toContain(`priority ${spec.defaultPriority}`);
      expect(section).toContain(spec.schema.typeName);
      for (const field of spec.schema.fields) {
        expect(section, `${type} field ${field.name}`).toMatch(
          row(`\`${field.name}\``, `\`${field.jsonName}\``),
        );
      }
    }
  });

  it('takes every description from the .proto comments', async () => {
    const page = await renderEventDocs();
    expect(page).toMatch(
      row(
        '`previous_version`',
        '`previousVersion`',
        '`string`',
        'Version running before this deployment, if known; the rollback target.',
      ),
    );
    expect(page).toMatch(
      row(
        '`DEPLOYMENT_STATUS_ROLLED_BACK`',
        '5',
        'Failed and the completed stages were restored to the previous version.',
      ),
    );
    expect(page).toMatch(
      row(
        '`causation_id`',
        'event id or empty',
        'Id of the event that caused this one; empty for the first event of a flow.',
      ),
    );
  });

  it('refuses to generate when a field has no comment, naming the field', async () => {
    const readProto = async (file: string) => {
      const text = await proto(file);
      return file === 'deployment_events.proto'
        ? text.replace('  // Who asked for the deployment (user, token name or CI job).\n', '')
        : text;
    };
    await expect(renderEventDocs({ readProto })).rejects.toThrow(
      'no comment for materi.events.v1.DeploymentStartedEvent.triggered_by',
    );
  });

  it('refuses to generate when a message comment states another priority than the catalog', async () => {
    const readProto = async (file: string) => {
      const text = await proto(file);
      return file === 'deployment_events.proto'
        ? text.replace(
            '// Type "deployment:failed", priority CRITICAL.',
            '// Type "deployment:failed", priority LOW.',
          )
        : text;
    };
    await expect(renderEventDocs({ readProto })).rejects.toThrow(
      /DeploymentFailedEvent: its comment says type "deployment:failed" priority LOW, but the catalog .* priority CRITICAL/,
    );
  });
});

describe('parseProtoComments', () => {
  const text = [
    'syntax = "proto3";',
    'package demo.v1;',
    '',
    '// A section note, detached by the blank line below.',
    '',
    '// Color is a color.',
    'enum Color {',
    '  // Not set.',
    '  COLOR_UNSPECIFIED = 0;',
    '  COLOR_RED = 1;',
    '}',
    '',
    '// ---------------------------------------------------------------',
    '// Paint is',
    '// a message.',
    'message Paint {',
    '  // Its color.',
    '  Color color = 1;',
    '  // Layers.',
    '  repeated Layer layers = 2;',
    '  // A nested one.',
    '  message Layer {',
    '    // Thickness in µm.',
    '    int32 microns = 1;',
    '  }',
    '}',
  ].join('\n');

  it('keys leading comments by full name, joins multi-line comments, and skips detached ones', () => {
    const comments = parseProtoComments(text, 'demo.proto');
    expect(comments.get('demo.v1.Color')).toBe('Color is a color.');
    expect(comments.get('demo.v1.Color.COLOR_UNSPECIFIED')).toBe('Not set.');
    expect(comments.has('demo.v1.Color.COLOR_RED')).toBe(false);
    expect(comments.get('demo.v1.Paint')).toBe('Paint is a message.');
    expect(comments.get('demo.v1.Paint.color')).toBe('Its color.');
    expect(comments.get('demo.v1.Paint.layers')).toBe('Layers.');
    expect(comments.get('demo.v1.Paint.Layer')).toBe('A nested one.');
    expect(comments.get('demo.v1.Paint.Layer.microns')).toBe('Thickness in µm.');
    expect([...comments.values()].some((c) => c.includes('section note'))).toBe(false);
  });

  it('reports an unbalanced brace with the file and line', () => {
    expect(() => parseProtoComments('package a;\n}\n', 'broken.proto')).toThrow(
      'broken.proto:2: unbalanced "}"',
    );
  });
});
