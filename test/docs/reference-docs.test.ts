/**
 * The hand-written reference pages must follow the code: every CLI command's real `--help` text is
 * in docs/cli.md, every setting of src/runtime/config.ts is in docs/configuration.md, and the links
 * between the pages resolve (files and heading anchors).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCliWithPreload } from '../support/cli-preload.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const docs = join(root, 'docs');

interface CommandHelp {
  path: string[];
  help: string;
  commands: CommandHelp[];
}

/**
 * The CLI's command tree with each command's help text, from the real program: a preload replaces
 * commander's `parseAsync` (which src/cli/main.ts calls once every command is registered) with a
 * dump of the tree, so one process yields every help text without running a command.
 */
function dumpCli(): Promise<CommandHelp> {
  const preload = `
    import { createRequire } from 'node:module';
    const require = createRequire(${JSON.stringify(join(root, 'package.json'))});
    const { Command } = require('commander');
    Command.prototype.parseAsync = async function () {
      const walk = (command, path) => ({
        path,
        help: command.helpInformation(),
        commands: command.commands.filter((c) => c.name() !== 'help').map((c) => walk(c, [...path, c.name()])),
      });
      process.stdout.write(JSON.stringify(walk(this, [])));
      process.exit(0);
    };`;
  return runCliWithPreload<CommandHelp>(preload, 'dumping the CLI', { COLUMNS: '80' });
}

function leaves(command: CommandHelp): CommandHelp[] {
  return command.commands.length === 0 ? [command] : command.commands.flatMap(leaves);
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** The pages of this documentation set (others' pages are checked by their own tests). */
const PAGES = [
  'README.md',
  'architecture.md',
  'event-flows.md',
  'events.md',
  'workers.md',
  'testing.md',
  'runbook.md',
  'configuration.md',
  'cli.md',
];

describe('docs/cli.md', () => {
  let tree: CommandHelp;
  let page: string;
  beforeAll(async () => {
    [tree, page] = await Promise.all([dumpCli(), readFile(join(docs, 'cli.md'), 'utf8')]);
  }, 30_000);

  it('shows the real --help text of every command', () => {
    const commands = leaves(tree).filter((c) => c.path.length > 0);
    expect(commands.map((c) => c.path.join(' '))).toContain('deploy');
    for (const command of commands) {
      expect(page, `the --help of materi ${command.path.join(' ')} in docs/cli.md`).toContain(
        command.help.trimEnd(),
      );
    }
  });

  it('lists every command in its synopsis', () => {
    const synopsis = page.split('## Conventions')[0]!;
    for (const command of leaves(tree).filter((c) => c.path.length > 0)) {
      expect(synopsis, `materi ${command.path.join(' ')} in the synopsis`).toContain(
        `materi ${command.path.join(' ')}`,
      );
    }
  });
});

describe('docs/configuration.md', () => {
  it('documents every setting that src/runtime/config.ts reads', async () => {
    const [config, page] = await Promise.all([
      readFile(join(root, 'src/runtime/config.ts'), 'utf8'),
      readFile(join(docs, 'configuration.md'), 'utf8'),
    ]);
    const settings = [...config.matchAll(/^\s+(MATERI_[A-Z_]+):/gm)].map((m) => m[1]!);
    expect(settings).toContain('MATERI_REDIS_URL');
    for (const name of settings) {
      expect(page, `${name} in the settings table`).toMatch(new RegExp(`^\\| \`${name}\` +\\|`, 'm'));
    }
  });
});

describe('links between the pages', () => {
  it('point at files that exist and at headings that exist', async () => {
    const problems: string[] = [];
    for (const name of PAGES) {
      const file = join(docs, name);
      const text = (await readFile(file, 'utf8')).replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target!)) continue;
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const resolved = path === '' ? file : resolve(dirname(file), path);
        if (!existsSync(resolved)) {
          problems.push(`${name}: ${target} does not exist`);
          continue;
        }
        if (anchor && resolved.endsWith('.md')) {
          const anchors = anchorsOf(await readFile(resolved, 'utf8'));
          if (!anchors.has(anchor)) problems.push(`${name}: ${target} has no heading #${anchor}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});
