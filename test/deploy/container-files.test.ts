/**
 * The container files (Docker does not run on our machines, so they are checked as text): the
 * Dockerfile and compose.yaml are parsed, every `materi` command line they run is parsed by the
 * real CLI, and every variable they set is a documented setting or one their images know.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { COMPONENTS } from '../../src/runtime/stack.js';
import { runCliWithPreload } from '../support/cli-preload.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Variables the images of the compose file read, besides Materi's own settings. */
const IMAGE_VARIABLES = [/^POSTGRES_[A-Z_]+$/, /^REDIS_[A-Z_]+$/, /^NODE_ENV$/];

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** A Dockerfile as its stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const joined = (pending + line).trim();
    pending = '';
    if (joined) logical.push(joined);
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') {
      const [from = '', as, name] = rest.filter((word) => !word.startsWith('--'));
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile: ${instruction.keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

/** The exec form (`["a", "b"]`) of CMD, ENTRYPOINT or HEALTHCHECK's CMD; the shell form is refused. */
function execForm(args: string, where: string): string[] {
  const form = JSON.parse(args) as unknown;
  if (!Array.isArray(form) || !form.every((word) => typeof word === 'string'))
    throw new Error(`${where} must use the exec form ["…", …], got ${args}`);
  return form;
}

/** The names an `ENV` instruction sets (`ENV A=1 B="x y"`, or the legacy `ENV A 1`). */
function envNames(args: string): string[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) return [args.split(/\s+/)[0] ?? ''];
  return [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(?:"(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)].map((m) => m[1]!);
}

/** The settings documented in docs/configuration.md: the first column of its "Settings" table. */
async function documentedSettings(): Promise<Set<string>> {
  const text = await readFile(join(root, 'docs', 'configuration.md'), 'utf8');
  const section = text.split(/^## /m).find((part) => part.startsWith('Settings\n')) ?? '';
  const names = [...section.matchAll(/^\|\s*`(MATERI_[A-Z0-9_]+)`/gm)].map((m) => m[1]!);
  return new Set(names);
}

interface ParsedCommandLine {
  ok: boolean;
  command?: string[];
  args?: string[];
  options?: Record<string, unknown>;
  error?: string;
}

/**
 * Parses `materi` command lines with the real program of src/cli/main.ts, without running them: a
 * preload replaces commander's `parseAsync` (which main.ts calls once every command is registered)
 * with one that swaps each leaf command's action for a recorder and parses each line in turn.
 * Unknown commands, unknown options and missing arguments fail as they would for a user.
 */
function parseCommandLines(lines: string[][]): Promise<ParsedCommandLine[]> {
  const preload = `
    import { createRequire } from 'node:module';
    const require = createRequire(${JSON.stringify(join(root, 'package.json'))});
    const { Command } = require('commander');
    const parseAsync = Command.prototype.parseAsync;
    Command.prototype.parseAsync = async function () {
      const all = (c) => [c, ...c.commands.flatMap(all)];
      const path = (c) => (c.parent ? [...path(c.parent), c.name()] : []);
      let ran;
      let errors = '';
      for (const command of all(this)) {
        command.configureOutput({
          writeOut: () => {},
          writeErr: (text) => { errors += text; },
          outputError: (text) => { errors += text; },
        });
        if (command.commands.length === 0) {
          command.action((...args) => {
            const self = args.at(-1);
            ran = { command: path(self), args: self.processedArgs, options: self.opts() };
          });
        }
      }
      const results = [];
      for (const line of JSON.parse(process.env.CLI_LINES)) {
        ran = undefined;
        errors = '';
        try {
          await parseAsync.call(this, line, { from: 'user' });
          results.push(ran ? { ok: true, ...ran } : { ok: false, error: 'no command ran' });
        } catch (error) {
          results.push({ ok: false, error: (errors || String(error)).trim() });
        }
      }
      process.stdout.write(JSON.stringify(results));
      process.exit(0);
    };`;
  return runCliWithPreload<ParsedCommandLine[]>(preload, 'parsing command lines', {
    CLI_LINES: JSON.stringify(lines),
  });
}

/**
 * Why a `materi` command line would not run, or undefined when it would: commander's verdict, plus
 * what the actions check themselves (the worker's name, numeric option values).
 */
function commandLineProblem(line: string[], parsed: ParsedCommandLine | undefined): string | undefined {
  const shown = `materi ${line.join(' ')}`;
  if (!parsed?.ok) return `${shown}: ${parsed?.error ?? 'not parsed'}`;
  const [name] = parsed.args ?? [];
  if (parsed.command?.join(' ') === 'worker' && !(COMPONENTS as readonly string[]).includes(String(name)))
    return `${shown}: unknown worker "${name}" (use one of ${COMPONENTS.join(', ')})`;
  for (const option of ['port', 'concurrency']) {
    const value = parsed.options?.[option];
    if (value !== undefined && !/^\d+$/.test(String(value))) return `${shown}: --${option} "${value}"`;
  }
  return undefined;
}

/** Problems with the variables one container sets: undocumented MATERI_ names, unknown others. */
function variableProblems(where: string, names: string[], documented: Set<string>): string[] {
  return names.flatMap((name) => {
    if (name.startsWith('MATERI_'))
      return documented.has(name) ? [] : [`${where}: ${name} is not a setting in docs/configuration.md`];
    return IMAGE_VARIABLES.some((known) => known.test(name))
      ? []
      : [`${where}: ${name} is neither a Materi setting nor a variable its image reads`];
  });
}

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, unknown> | string[];
  healthcheck?: { test?: string | string[] };
  depends_on?: string[] | Record<string, { condition?: string }>;
  deploy?: { replicas?: number };
}

function isMateriService(service: ComposeService): boolean {
  return service.build !== undefined || /materi/.test(service.image ?? '');
}

function environmentNames(service: ComposeService): string[] {
  const env = service.environment ?? {};
  return Array.isArray(env) ? env.map((entry) => entry.split('=')[0]!) : Object.keys(env);
}

function commandLine(command: string | string[] | undefined): string[] | undefined {
  if (command === undefined) return undefined;
  return Array.isArray(command) ? command.map(String) : command.trim().split(/\s+/);
}

let stages: Stage[];
let services: Record<string, ComposeService>;
let documented: Set<string>;
/** Every `materi` command line the container files run, by where it is written. */
let commandLines: Map<string, string[]>;
let parsedLines: Map<string, ParsedCommandLine>;
/** Lines a typo made: the check must refuse the first three and accept the last. */
const WRONG_LINES = [
  ['wrker', 'validator'],
  ['worker', 'validatr'],
  ['up', '--prot', '4600'],
  ['worker', 'notifier'],
];
let parsedWrongLines: ParsedCommandLine[];

function dockerfileCommandLine(): string[] {
  const final = stages.at(-1)!;
  const last = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword).at(-1);
  const entrypoint = execForm(last('ENTRYPOINT')?.args ?? '[]', 'ENTRYPOINT');
  const cmd = execForm(last('CMD')?.args ?? '[]', 'CMD');
  // `materi`, or node running the package's bin.
  const program = entrypoint[0] === 'node' ? entrypoint.slice(0, 2) : entrypoint.slice(0, 1);
  expect(program.at(-1), 'ENTRYPOINT runs materi').toMatch(/(^|\/)(materi|bin\/materi\.js)$/);
  return [...entrypoint.slice(program.length), ...cmd];
}

beforeAll(async () => {
  stages = parseDockerfile(await readFile(join(root, 'Dockerfile'), 'utf8'));
  const compose = parseYaml(await readFile(join(root, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  services = compose.services;
  documented = await documentedSettings();
  commandLines = new Map([['Dockerfile ENTRYPOINT + CMD', dockerfileCommandLine()]]);
  for (const [name, service] of Object.entries(services)) {
    const line = commandLine(service.command);
    if (isMateriService(service) && line) commandLines.set(`compose service ${name}`, line);
  }
  // One CLI process parses them all, with the lines that show the check can fail.
  const parsed = await parseCommandLines([...commandLines.values(), ...WRONG_LINES]);
  parsedLines = new Map([...commandLines.keys()].map((where, i) => [where, parsed[i]!]));
  parsedWrongLines = parsed.slice(commandLines.size);
}, 60_000);

describe('the Dockerfile', () => {
  it('builds in one node:20-slim stage and runs in another, not as root', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.map((stage) => stage.from)).toEqual(stages.map(() => 'node:20-slim'));
    const final = stages.at(-1)!;
    expect(final.from).toBe('node:20-slim');
    const user = final.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user, 'the final stage sets USER').toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const runs = final.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.join('\n'), 'no compilers in the runtime image').not.toMatch(/\b(g\+\+|make|python3)\b/);
  });

  it('checks /healthz with node and exposes the default port', () => {
    const final = stages.at(-1)!;
    const healthcheck = final.instructions.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
    const cmd = healthcheck.match(/(?:^|\s)CMD\s+(.*)$/)?.[1] ?? '';
    const test = execForm(cmd, 'HEALTHCHECK CMD');
    expect(test[0]).toBe('node');
    expect(test.join(' ')).toContain('/healthz');
    expect(final.instructions.some((i) => i.keyword === 'EXPOSE' && /\b4600\b/.test(i.args))).toBe(true);
  });

  it('copies only files that exist and that .dockerignore lets into the build context', async () => {
    const ignored = (await readFile(join(root, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    const sources = stages.flatMap((stage) =>
      stage.instructions
        .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
        .flatMap((i) =>
          i.args
            .split(/\s+/)
            .filter((word) => !word.startsWith('--'))
            .slice(0, -1),
        ),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(root, source)), `COPY ${source}: no such file`).toBe(true);
      expect(ignored, `COPY ${source}: excluded by .dockerignore`).not.toContain(source.replace(/\/$/, ''));
    }
  });
});

describe('compose.yaml', () => {
  it('runs Redis 7, PostgreSQL 15 with a health check and a volume, materi up and the four workers', () => {
    expect(services.redis?.image).toMatch(/^redis:7/);
    expect(services.postgres?.image).toMatch(/^postgres:15/);
    expect(services.postgres?.healthcheck?.test).toBeDefined();
    const workers = Object.values(services)
      .filter(isMateriService)
      .map((service) => commandLine(service.command)?.join(' '));
    expect(workers).toContain('up');
    for (const name of ['validator', 'dependency-checker', 'health-monitor', 'notifier'])
      expect(workers.some((line) => line?.startsWith(`worker ${name}`))).toBe(true);
  });

  it('checks each materi service on /healthz and starts it after the services it depends on are healthy', () => {
    for (const [name, service] of Object.entries(services).filter(([, s]) => isMateriService(s))) {
      expect([service.healthcheck?.test].flat().join(' '), `${name}: healthcheck`).toContain('/healthz');
      const dependsOn = service.depends_on ?? {};
      expect(Array.isArray(dependsOn), `${name}: depends_on with conditions`).toBe(false);
      for (const [dependency, { condition }] of Object.entries(dependsOn)) {
        expect(services[dependency], `${name}: depends on ${dependency}, which is no service`).toBeDefined();
        expect(condition, `${name} → ${dependency}`).toBe('service_healthy');
      }
      expect(Object.keys(dependsOn), `${name}: depends on the backends`).toEqual(
        expect.arrayContaining(['redis', 'postgres']),
      );
    }
  });
});

describe('what the container files run', () => {
  it('is a valid materi command line every time', () => {
    expect(commandLines.size).toBeGreaterThanOrEqual(6);
    const problems = [...commandLines].flatMap(([where, line]) => {
      const problem = commandLineProblem(line, parsedLines.get(where));
      return problem ? [`${where}: ${problem}`] : [];
    });
    expect(problems).toEqual([]);
  });

  it('sets only documented settings and variables their images read', () => {
    const fromDockerfile = stages.flatMap((stage, i) =>
      stage.instructions
        .filter((instruction) => instruction.keyword === 'ENV')
        .flatMap((instruction) =>
          variableProblems(`Dockerfile stage ${stage.name ?? i}`, envNames(instruction.args), documented),
        ),
    );
    const fromCompose = Object.entries(services).flatMap(([name, service]) =>
      variableProblems(`compose service ${name}`, environmentNames(service), documented),
    );
    expect([...fromDockerfile, ...fromCompose]).toEqual([]);
  });
});

describe('the checks themselves', () => {
  it('refuse a misspelt command, an unknown worker and an unknown option', () => {
    const problems = WRONG_LINES.map((line, i) => commandLineProblem(line, parsedWrongLines[i]));
    expect(problems[0]).toMatch(/materi wrker validator: .*unknown command 'wrker'/);
    expect(problems[1]).toMatch(/unknown worker "validatr"/);
    expect(problems[2]).toMatch(/unknown option '--prot'/);
    expect(problems[3]).toBeUndefined();
  });

  it('refuse a misspelt setting and a variable no image reads', () => {
    expect(variableProblems('x', ['MATERI_PROT', 'PGDATA_X', 'POSTGRES_DB', 'NODE_ENV'], documented)).toEqual(
      [
        'x: MATERI_PROT is not a setting in docs/configuration.md',
        'x: PGDATA_X is neither a Materi setting nor a variable its image reads',
      ],
    );
  });
});
