import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** What a command that needs no backend must not load: stores, drivers, the bus, the server, mail. */
const BACKEND_PACKAGES = ['kysely', 'mysql2', 'nodemailer', 'ioredis', 'fastify', 'better-sqlite3', 'pg'];

/**
 * Logs every module the process loads to the file in `MATERI_TEST_MODULE_LOG`, one URL a line: a
 * resolve hook (module.register) sees each ES module import, static or `await import()`, and at
 * exit `require.cache` adds the CommonJS modules that packages `require` among themselves.
 */
const HOOKS = `
import { appendFileSync } from 'node:fs';
let log;
export function initialize(file) { log = file; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(log, resolved.url + '\\n');
  return resolved;
}`;
const PRELOAD = `
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
const log = process.env.MATERI_TEST_MODULE_LOG;
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)}, import.meta.url, { data: log });
const cache = createRequire(\`\${process.cwd()}/\`).cache;
process.on('exit', () => {
  appendFileSync(log, Object.keys(cache).map((file) => pathToFileURL(file).href + '\\n').join(''));
});`;

/** The package a module URL belongs to (the innermost node_modules), if any. */
function packageOf(url: string): string | undefined {
  const matches = [...url.matchAll(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)];
  return matches.at(-1)?.[1];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every package the process loaded, by name. */
  packages: Set<string>;
  /** The project's own modules it loaded, relative to the repository (e.g. `src/cli/plan.ts`). */
  sources: Set<string>;
}

let workdir: string;
let runs = 0;

beforeAll(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'materi-lazy-'));
});

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

/** Runs `materi <args>` from source in a child process and reports what it loaded. */
async function materi(args: string[]): Promise<Run> {
  const log = join(workdir, `modules-${++runs}.log`);
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--import',
          `data:text/javascript,${encodeURIComponent(PRELOAD)}`,
          'src/cli/main.ts',
          ...args,
        ],
        {
          cwd: root,
          env: { ...process.env, MATERI_TEST_MODULE_LOG: log },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('exit', (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
    },
  );
  const urls = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  if (urls.length === 0)
    throw new Error(`materi ${args.join(' ')} logged no modules (exit ${code}): ${stderr}`);
  const packages = new Set(urls.map(packageOf).filter((name): name is string => name !== undefined));
  const sources = new Set(
    urls
      .filter((url) => url.startsWith('file:') && !url.includes('/node_modules/'))
      .map((url) => fileURLToPath(url).slice(root.length)),
  );
  return { code, stdout, stderr, packages, sources };
}

describe('when a command needs no backend', () => {
  it('materi --help loads commander and none of the backends', async () => {
    const run = await materi(['--help']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('Usage: materi');
    expect(run.stdout).toContain('plan');
    // The log works: it saw the one package help needs.
    expect(run.packages).toContain('commander');
    expect(BACKEND_PACKAGES.filter((name) => run.packages.has(name))).toEqual([]);
    // Nor the plan's parser, the logger or the generated event types.
    const parsers = ['zod', 'yaml', 'pino', '@bufbuild/protobuf'];
    expect([...run.packages].filter((name) => parsers.includes(name))).toEqual([]);
  });

  it("a command's own --help loads none of what its action runs", async () => {
    const run = await materi(['deploy', '--help']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('Usage: materi deploy');
    expect(BACKEND_PACKAGES.filter((name) => run.packages.has(name))).toEqual([]);
    expect(run.sources).not.toContain('src/cli/deploy-actions.ts');
  });

  it('materi plan validate loads the plan parser and none of the backends', async () => {
    const run = await materi(['plan', 'validate', 'examples/three-stage.yaml']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('examples/three-stage.yaml: valid plan');
    // What the action imports when it runs is in the log too.
    expect(run.sources).toContain('src/cli/plan-actions.ts');
    expect(run.packages).toContain('yaml');
    expect(run.packages).toContain('zod');
    expect(BACKEND_PACKAGES.filter((name) => run.packages.has(name))).toEqual([]);
    // Nor the bus, the store, the API, the stack or Shield (beyond its commands' registration).
    const backendModule = /^src\/(bus|store|api)\/|^src\/runtime\/stack\.ts$|^src\/shield\/(?!cli\.ts$)/;
    expect([...run.sources].filter((file) => backendModule.test(file))).toEqual([]);
  });
});
